"""Worker processes for `--workers N` on the CPU: N forked children that share the parent's loaded
model copy-on-write and run one function on the tasks they are sent.

Threads that share one interpreter wait on each other for it (a decoding step is hundreds of
small operations), so N worker threads gain less than N times one. Processes share no
interpreter. They are forked after the model is loaded, so a child starts with the weights (and
the oneDNN-packed output weight) in memory it shares with the parent until one of them writes;
only a task (a batch's piece ids and the decoding config) and its result (the hypotheses) are
pickled through the pipe of each worker.

Each task goes to whichever worker is free; results come back in task order, to the call that
sent them (several threads may map at once). An exception raised by the function in a child is
raised again in the parent (the same type and message, so an `XformerError` is still a one-line
CLI error). The children ignore Ctrl-C: it is the parent's,
which ends them. A child that died, or Ctrl-C, closes the pool and fails every call in flight; a
child's exception fails its own call (and closes the pool when no other call is in flight).
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
import threading
import traceback
from collections import deque
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


class Call:
    """One `map` call as the pool routes it: its results by task index, how many are still due,
    and the error that ended it (a child's exception, a worker that died, the pool closed)."""

    def __init__(self, count: int) -> None:
        self.results: list[Any] = [None] * count
        self.due = count
        self.error: BaseException | None = None

    @property
    def finished(self) -> bool:
        return self.due == 0 or self.error is not None


class WorkerPool:
    """`workers` forked processes, each with `threads` torch threads, running `function(*task)`.

    `function` and whatever it reaches (a loaded model) are inherited at the fork, not pickled.
    Use `map`, then `close` (or `with`); a closed pool stays closed. Several threads may `map` at
    once (the server's lanes): the tasks of every call wait in one queue, in the order they came,
    for whichever worker is free, and each result goes back to its own call.
    """

    def __init__(self, function: Callable[..., Any], workers: int, threads: int) -> None:
        self.workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        self.closed = False
        self._lock = threading.Lock()  # guards the queue, the busy workers and the calls in flight
        self._receiving = threading.RLock()  # held by the one thread that waits on the pipes (close takes it too)
        self._queue: deque[tuple[Call, int, tuple]] = deque()  # (call, task index, task) not yet sent
        self._busy: dict[Connection, tuple[Call, int]] = {}  # worker -> the call and index of its task
        self._calls: set[Call] = set()  # calls not yet finished

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
        """`function(*task)` of every task, in task order; each task goes to the next free worker.

        An exception raised for one task ends this call (its tasks not yet sent are dropped, the
        results of those running are dropped as they come) and reaches this call only; with no
        other call in flight the pool is closed as well, which stops the call's other tasks at
        once. A worker that dies fails every call in flight and closes the pool; so does Ctrl-C
        (any exception while waiting)."""
        call = Call(len(tasks))
        with self._lock:
            if self.closed:
                raise WorkerError("the worker processes were closed")
            if not tasks:
                return []
            self._calls.add(call)
            self._queue.extend((call, index, task) for index, task in enumerate(tasks))
        try:
            with self._lock:
                for _, connection in self.workers:
                    if connection not in self._busy:
                        self._give(connection)
            while not call.finished:
                # One thread at a time waits on the pipes, for every call; the others wait for it
                # here, in steps short enough for Ctrl-C to be seen.
                if self._receiving.acquire(timeout=SIGNAL_CHECK_SECONDS):
                    try:
                        if not call.finished:
                            self._receive()
                    finally:
                        self._receiving.release()
        except BaseException:
            self.close()
            raise
        if call.error is not None:
            with self._lock:
                alone = not self._calls
            if alone:
                self.close()
            raise call.error
        return call.results

    def _give(self, connection: Connection) -> None:
        """Send the free worker at `connection` the next task waiting, if any (under the lock)."""
        if self._queue:
            call, index, task = self._queue.popleft()
            connection.send(task)
            self._busy[connection] = (call, index)

    def _receive(self) -> None:
        """Wait (at most SIGNAL_CHECK_SECONDS) for results or a worker's end, and route what came.

        Not an endless wait: Ctrl-C may be delivered to another thread of this process (one of
        torch's OpenMP threads), and then only a wait that ends lets Python see it. With workers
        slow to answer (a heavily loaded machine), an endless wait missed Ctrl-C for as long as
        their batches took. Every worker's pipe is waited on, idle ones too: another thread may
        send one a task meanwhile."""
        sentinels = {process.sentinel: process for process, _ in self.workers}
        owners = {connection: process for process, connection in self.workers}
        ready = wait([*owners, *sentinels], timeout=SIGNAL_CHECK_SECONDS)
        for connection in [r for r in ready if r in owners]:
            try:
                ok, value = connection.recv()
            except (EOFError, OSError):  # the worker ended in the middle of its task
                self._fail_all(died(owners[connection]))
                return
            with self._lock:
                call, index = self._busy.pop(connection)
                if not ok:
                    err, trace = value
                    err.__cause__ = RemoteTraceback(trace)  # shown where a traceback is shown
                    self._end(call, err)
                elif call.error is None:  # else the call has ended: a result no one waits for
                    call.results[index] = value
                    call.due -= 1
                    if call.due == 0:
                        self._calls.discard(call)
                self._give(connection)
        for process in [sentinels[r] for r in ready if r in sentinels]:
            self._fail_all(died(process))
            return

    def _end(self, call: Call, err: BaseException) -> None:
        """End `call` with `err`: its tasks not yet sent leave the queue (under the lock)."""
        if call.error is None:
            call.error = err
            self._queue = deque(item for item in self._queue if item[0] is not call)
            self._calls.discard(call)

    def _fail_all(self, err: BaseException) -> None:
        """Every call in flight ends with `err`; the pool closes (a worker died)."""
        with self._lock:
            for call in list(self._calls):
                self._end(call, err)
        self.close()

    def close(self) -> None:
        """End every worker (at once: one in the middle of a task too) and reap it; the calls in
        flight end with a WorkerError."""
        with self._receiving:  # no thread is waiting on the pipes closed here
            with self._lock:
                self.closed = True
                for call in list(self._calls):
                    self._end(call, WorkerError("the worker processes were closed"))
                self._queue.clear()
                self._busy.clear()
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
