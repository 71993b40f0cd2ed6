"""Worker processes for `--workers N` on the CPU: N forked children that share the parent's loaded
model copy-on-write and run one function on the tasks they are sent.

Threads that share one interpreter wait on each other for it (a decoding step is hundreds of
small operations), so N worker threads gain less than N times one. Processes share no
interpreter. They are forked after the model is loaded, so a child starts with the weights (and
the oneDNN-packed output weight) in memory it shares with the parent until one of them writes;
only a task (a batch's piece ids and the decoding config) and its result (the hypotheses) are
pickled through the pipe of each worker.

Each task goes to whichever worker is free; results come back in task order. An exception
raised by the function in a child is raised again in the parent (the same type and message, so
an `XformerError` is still a one-line CLI error). The children ignore Ctrl-C: it is the parent's,
which ends them. Any exception in `map` (a child's, Ctrl-C, a child that died) closes the pool.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from xformer_cli.errors import WorkerError

SIGNAL_CHECK_SECONDS = 0.2  # how often a parent waiting on its workers looks for Ctrl-C


def processes_available() -> bool:
    """True where worker processes can inherit a loaded model: Linux, which forks (elsewhere
    fork is missing, or unsafe with the system's libraries, as on macOS)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached to it as its cause."""


class WorkerPool:
    """`workers` forked processes, each with `threads` torch threads, running `function(*task)`.

    `function` and whatever it reaches (a loaded model) are inherited at the fork, not pickled.
    Use `map`, then `close` (or `with`); a closed pool stays closed.
    """

    def __init__(self, function: Callable[..., Any], workers: int, threads: int) -> None:
        self.workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        self.closed = False
        # The forks happen in a new thread. A child has only the thread that forked, and GNU
        # OpenMP (torch's intra-op threads, oneDNN, MKL) keeps its team of threads per thread: a
        # child forked by a thread that has run a parallel region finds that team there without
        # its threads and hangs at its first parallel region with more than one thread. A new
        # thread has no team, so each child starts one of its own.
        failed: list[BaseException] = []
        starter = threading.Thread(target=self._start, args=(function, workers, threads, failed), name="xformer-fork")
        starter.start()
        try:
            starter.join()
        except BaseException:  # Ctrl-C: the forks take milliseconds; let them end, then end the children
            starter.join()
            self.close()
            raise
        if failed:
            self.close()
            raise failed[0]

    def _start(self, function: Callable[..., Any], workers: int, threads: int, failed: list[BaseException]) -> None:
        """Fork the workers (run in a thread of its own); an exception goes into `failed`."""
        # A Ctrl-C between a fork and the child's ignoring it would give a traceback from the
        # child: this thread holds SIGINT back, and a child inherits that, then ignores SIGINT.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        context = multiprocessing.get_context("fork")
        try:
            for number in range(workers):
                mine, theirs = context.Pipe()
                process = context.Process(target=serve, args=(function, theirs, threads), name=f"xformer-worker-{number + 1}", daemon=True)
                process.start()
                theirs.close()
                self.workers.append((process, mine))
        except BaseException as err:  # noqa: BLE001 - raised again by __init__
            failed.append(err)

    def map(self, tasks: Sequence[tuple]) -> list[Any]:
        """`function(*task)` of every task, in task order; each task goes to the next free worker."""
        if self.closed:
            raise WorkerError("the worker processes were closed")
        results: list[Any] = [None] * len(tasks)
        queue = iter(enumerate(tasks))
        busy: dict[Connection, int] = {}  # worker -> index of the task it is working on

        def give(connection: Connection) -> None:
            index, task = next(queue, (None, None))
            if index is not None:
                connection.send(task)
                busy[connection] = index

        try:
            for _, connection in self.workers:
                give(connection)
            sentinels = {process.sentinel: process for process, _ in self.workers}
            owners = {connection: process for process, connection in self.workers}
            while busy:
                # Not an endless wait: Ctrl-C may be delivered to another thread of this process
                # (one of torch's OpenMP threads), and then only a wait that ends lets Python see
                # it. With workers slow to answer (a heavily loaded machine), an endless wait
                # missed Ctrl-C for as long as their batches took.
                ready = wait([*busy, *sentinels], timeout=SIGNAL_CHECK_SECONDS)
                for connection in [r for r in ready if r in busy]:
                    try:
                        ok, value = connection.recv()
                    except (EOFError, OSError):  # the worker ended in the middle of its task
                        raise died(owners[connection]) from None
                    if not ok:
                        err, trace = value
                        err.__cause__ = RemoteTraceback(trace)  # shown where a traceback is shown
                        raise err
                    results[busy.pop(connection)] = value
                    give(connection)
                for process in [sentinels[r] for r in ready if r in sentinels]:
                    raise died(process)
        except BaseException:
            self.close()
            raise
        return results

    def close(self) -> None:
        """End every worker (at once: one in the middle of a task too) and reap it."""
        self.closed = True
        for process, _ in self.workers:
            if process.is_alive():
                process.terminate()  # SIGTERM: the default action, no Python code runs in the child
        for process, connection in self.workers:
            process.join(5)
            if process.is_alive():  # SIGTERM not acted on within 5 s: end it for sure
                process.kill()
                process.join()
            connection.close()
        self.workers = []

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def serve(function: Callable[..., Any], connection: Connection, threads: int) -> None:
    """A worker's loop: receive a task, send back (True, result) or (False, (exception, its
    traceback)), until the parent closes its end (or is gone)."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the whole process group; the parent handles it
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a Ctrl-C held back at the fork is dropped now
    torch.set_num_threads(threads)
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        try:
            reply = (True, function(*task))
        except Exception as err:  # noqa: BLE001 - every failure goes back to the parent
            reply = (False, portable(err))
        try:
            connection.send(reply)
        except (EOFError, OSError):  # the parent is gone: nobody to tell
            return


def portable(err: Exception) -> tuple[Exception, str]:
    """`err` as it can travel to the parent (itself, or a RuntimeError naming it where it does
    not survive pickling) and the child's traceback as text."""
    trace = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001
        err = RuntimeError(f"{type(err).__name__}: {err}")
    return err, trace


def died(process: multiprocessing.process.BaseProcess) -> WorkerError:
    """The error for a worker that ended unexpectedly, once it is reaped (its exit status known)."""
    process.join(5)  # its pipe and sentinel close as it ends, a moment before it can be reaped
    return WorkerError(f"translation worker {process.pid} ended unexpectedly ({ending(process.exitcode)})")


def ending(exitcode: int | None) -> str:
    """How a process ended, in words: 'exit status 3', 'killed by SIGKILL'."""
    if exitcode is None or exitcode >= 0:
        return f"exit status {exitcode}"
    name = signal.Signals(-exitcode).name
    return f"killed by {name}" + (", out of memory?" if name == "SIGKILL" else "")
