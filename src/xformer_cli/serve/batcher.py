"""Batching across requests: the sentences of every request in flight translated together.

One thread per loaded model takes the requests (jobs) from a queue. When a job arrives it waits
`wait_ms` for more, and again after each one that comes, for at most MAX_WAITS times `wait_ms`;
under load (the answers of a call bring their clients' next requests back in a burst, spread
over tens of milliseconds) it waits, within that cap, until as many jobs as its recent calls held
have come, so that the burst is not cut into a small call and a large one. Then it translates the texts of all gathered jobs that share one
decoding config with a single `Translator.translate_nbest` call: that call length-sorts the
sentences, cuts them into the batches the CLI uses and, with several workers, maps those batches
over the worker processes. The results go back to each job's future in the job's order. While a
call runs, new jobs queue up and are gathered into the next one.

A job whose future was cancelled before its call starts (its client hung up, or waited past the
request timeout) is dropped without being translated. An exception of the call (a worker that
died: `WorkerError`) goes to the futures of that call's jobs only; the next call starts new
workers.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.translator import Translator

BATCHES_PER_WORKER = 2  # a call with several workers is cut into this many batches per worker, at least
MAX_TEXTS_PER_CALL = 4096  # a call gathers no more texts than this (later jobs wait for the next)
MAX_WAITS = 20  # while jobs keep arriving (or are expected), gathering goes on for up to this many waits
MIN_BATCH = 8  # sentences: smaller batches cost more per sentence than a worker left idle gains


@dataclass
class Job:
    """The texts of one request, its decoding config and the future its results go to."""

    texts: list[str]
    config: DecodeConfig
    future: Future = field(default_factory=Future)


@dataclass
class BatcherStats:
    """What the batcher has done: counters the tests and the benchmark read."""

    calls: int = 0  # translate_nbest calls made
    jobs: int = 0  # jobs translated
    skipped: int = 0  # jobs dropped because their future was cancelled before their call
    largest_call: int = 0  # the most jobs merged into one call


class Batcher:
    """Gathers jobs for one translator and translates them together on a thread of its own.

    >>> batcher = Batcher(translator, wait_ms=5)
    >>> batcher.submit(["Guten Tag"], translator.config()).result()[0][0].text
    """

    def __init__(self, translator: Translator, wait_ms: float = 5.0) -> None:
        self.translator = translator
        self.wait = wait_ms / 1000  # seconds
        self.stats = BatcherStats()
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._closed = False
        self._expected = 1  # jobs the recent calls held: under load their clients come back together
        self._thread = threading.Thread(target=self._run, name="xformer-batcher", daemon=True)
        self._thread.start()

    def submit(self, texts: Sequence[str], config: DecodeConfig) -> Future:
        """A future of the n-best translations of `texts` (as `translate_nbest` gives them)."""
        job = Job(list(texts), config)
        if self._closed:
            job.future.set_exception(RuntimeError("the server is shutting down"))
        else:
            self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Translate the jobs already queued, then end the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
            while not self._queue.empty():  # a job submitted as close() began: refused, not left waiting
                job = self._queue.get()
                if job is not None and job.future.set_running_or_notify_cancel():
                    job.future.set_exception(RuntimeError("the server is shutting down"))

    def _run(self) -> None:
        """The thread's loop: gather jobs, translate them, until `close`."""
        carry: Job | None = None  # a job that did not fit into the last call
        while True:
            first = carry or self._queue.get()
            if first is None:
                return
            jobs, carry, stop = self._gather(first)
            for config, group in group_by_config(jobs).items():
                self._translate(config, group)
            if stop:
                return

    def _gather(self, first: Job) -> tuple[list[Job], Job | None, bool]:
        """`first` and the jobs arriving within the wait (or already waiting): (jobs, a job left
        for the next call, whether close() was seen)."""
        jobs, texts = [first], len(first.texts)
        started = time.monotonic()
        deadline = started + (MAX_WAITS * self.wait if self._expected > 1 else self.wait)
        while True:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return jobs, None, False
            if job is None:
                return jobs, None, True
            if texts + len(job.texts) > MAX_TEXTS_PER_CALL:
                return jobs, job, False
            jobs.append(job)
            texts += len(job.texts)
            # Jobs still arriving: wait for more, up to MAX_WAITS waits in all; until as many
            # jobs as the recent calls held have come, up to that cap without a pause.
            cap = started + MAX_WAITS * self.wait
            deadline = cap if len(jobs) < self._expected else min(time.monotonic() + self.wait, cap)

    def _translate(self, config: DecodeConfig, jobs: list[Job]) -> None:
        """One translate_nbest call for the texts of `jobs` (all with `config`); results routed back."""
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        self.stats.skipped += len(jobs) - len(live)
        if not live:
            return
        texts = [text for job in live for text in job.texts]
        try:
            results = self.translator.translate_nbest(texts, self.call_config(config, len(texts)))
        except BaseException as err:  # noqa: BLE001 - every job of the call learns why
            for job in live:
                job.future.set_exception(err)
            return
        finally:
            self.stats.calls += 1
            self.stats.largest_call = max(self.stats.largest_call, len(live))
        start = 0
        for job in live:
            job.future.set_result(results[start : start + len(job.texts)])
            start += len(job.texts)
        self.stats.jobs += len(live)
        self._expected = max(len(live), int(self._expected * 0.8))  # forgets a burst within a few calls

    def call_config(self, config: DecodeConfig, texts: int) -> DecodeConfig:
        """The config of one call: with several workers and no batch size set, at most
        ceil(texts / (workers * BATCHES_PER_WORKER)) sentences per batch (but not under MIN_BATCH),
        so that the call's batches keep every worker busy (texts that make one batch run on one)."""
        workers = self.translator.workers
        if workers == 1 or config.batch_size:
            return config
        return replace(config, batch_size=max(MIN_BATCH, math.ceil(texts / (workers * BATCHES_PER_WORKER))))


def group_by_config(jobs: list[Job]) -> dict[DecodeConfig, list[Job]]:
    """The jobs grouped by decoding config, each group in arrival order."""
    groups: dict[DecodeConfig, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.config, []).append(job)
    return groups
