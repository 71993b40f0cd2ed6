"""Batching across requests: the sentences of every request in flight translated together.

Each loaded model has lanes: threads that take the requests (jobs) from one queue, as many as
the model has worker processes (one where its batches run in threads or in this process). A
free lane that takes a job waits `wait_ms` for more, and again after each one that comes, for at
most MAX_WAITS times `wait_ms`; under load (the answers of a call bring their clients' next
requests back in a burst, spread over tens of milliseconds) it waits, within that cap, until as
many jobs as its recent calls held have come, so that the burst is not cut into a small call and
a large one. Then it translates the texts of all gathered jobs that share one decoding config
with a single `Translator.translate_nbest` call: that call length-sorts the sentences, cuts them
into batches and, with several workers, hands them to the worker processes. The results go back
to each job's future in the job's order. While a lane's call runs, the other lanes gather and
translate the jobs that come meanwhile, so every worker has a batch of its own to search and
none waits for the slowest batch of another's call (as one call at a time would make them).

A call is cut into batches for every worker, so that no worker waits while another searches a
call alone: one batch per worker for a call made while another lane's call runs (the batches of
the two calls share the workers), BATCHES_PER_WORKER per worker for a call made while no other
runs (so that a lone request uses them all). Cutting a call made beside another into one batch
for one worker instead left a worker idle whenever the other lane was gathering: 0.71 of the CLI
path's speed against 0.83 (medians of 7 and 9 runs of `bench/serve_load.py --requests 1000`).

A job whose future was cancelled before its call starts (its client hung up, or waited past the
request timeout) is dropped without being translated. An exception of the call (a worker that
died: `WorkerError`) goes to the futures of that call's jobs (and of the calls in flight with it,
when a worker died); the next call starts new workers.
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
        self._lock = threading.Lock()  # guards the stats and the count of calls running
        self._running = 0  # lanes in the middle of a call
        lanes = translator.workers if translator.worker_kind == "processes" else 1
        self._threads = [threading.Thread(target=self._run, name=f"xformer-batcher-{n + 1}", daemon=True) for n in range(lanes)]
        for thread in self._threads:
            thread.start()

    def submit(self, texts: Sequence[str], config: DecodeConfig) -> Future:
        """A future of the n-best translations of `texts` (as `translate_nbest` gives them)."""
        job = Job(list(texts), config)
        if self._closed:
            job.future.set_exception(RuntimeError("the server is shutting down"))
        else:
            self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Translate the jobs already queued, then end the lanes."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:  # one end mark for each lane, after the jobs queued
                self._queue.put(None)
            for thread in self._threads:
                thread.join()
            while not self._queue.empty():  # a job submitted as close() began: refused, not left waiting
                job = self._queue.get()
                if job is not None and job.future.set_running_or_notify_cancel():
                    job.future.set_exception(RuntimeError("the server is shutting down"))

    def _run(self) -> None:
        """A lane's loop: gather jobs, translate them, until its end mark from `close`."""
        carry: Job | None = None  # a job that did not fit into the last call
        expected = 1  # jobs this lane's recent calls held: under load their clients come back together
        while True:
            first = carry or self._queue.get()
            if first is None:
                return
            jobs, carry, stop = self._gather(first, expected)
            for config, group in group_by_config(jobs).items():
                done = self._translate(config, group)
                if done:
                    expected = max(done, int(expected * 0.8))  # forgets a burst within a few calls
            if stop:
                return

    def _gather(self, first: Job, expected: int) -> tuple[list[Job], Job | None, bool]:
        """`first` and the jobs arriving within the wait (or already waiting): (jobs, a job left
        for the next call, whether this lane's end mark was seen)."""
        jobs, texts = [first], len(first.texts)
        started = time.monotonic()
        deadline = started + (MAX_WAITS * self.wait if expected > 1 else self.wait)
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
            deadline = cap if len(jobs) < expected else min(time.monotonic() + self.wait, cap)

    def _translate(self, config: DecodeConfig, jobs: list[Job]) -> int:
        """One translate_nbest call for the texts of `jobs` (all with `config`); results routed
        back. Returns how many jobs it translated (0 where the call failed)."""
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        with self._lock:
            self.stats.skipped += len(jobs) - len(live)
            alone = self._running == 0
            self._running += bool(live)
        if not live:
            return 0
        texts = [text for job in live for text in job.texts]
        try:
            results = self.translator.translate_nbest(texts, self.call_config(config, len(texts), alone))
        except BaseException as err:  # noqa: BLE001 - every job of the call learns why
            for job in live:
                job.future.set_exception(err)
            return 0
        finally:
            with self._lock:
                self._running -= 1
                self.stats.calls += 1
                self.stats.largest_call = max(self.stats.largest_call, len(live))
        start = 0
        for job in live:
            job.future.set_result(results[start : start + len(job.texts)])
            start += len(job.texts)
        with self._lock:
            self.stats.jobs += len(live)
        return len(live)

    def call_config(self, config: DecodeConfig, texts: int, alone: bool = True) -> DecodeConfig:
        """The config of one call: with several workers and no batch size set, at most
        ceil(texts / (workers * BATCHES_PER_WORKER)) sentences per batch when no other call runs
        (`alone`), ceil(texts / workers) beside another call, but not under MIN_BATCH, so that the
        call's batches go to every worker (texts that make one batch run on one)."""
        workers = self.translator.workers
        if workers == 1 or config.batch_size:
            return config
        per_worker = BATCHES_PER_WORKER if alone else 1
        return replace(config, batch_size=max(MIN_BATCH, math.ceil(texts / (workers * per_worker))))


def group_by_config(jobs: list[Job]) -> dict[DecodeConfig, list[Job]]:
    """The jobs grouped by decoding config, each group in arrival order."""
    groups: dict[DecodeConfig, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.config, []).append(job)
    return groups
