"""The worker processes of `--workers N` (xformer_cli/workers.py), on plain functions: order,
reuse, errors, a worker that dies, and forking after the parent ran torch on several threads."""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from xformer_cli.decoding.workers import RemoteTraceback, WorkerPool, ending
from xformer_cli.errors import DataError, WorkerError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are forked: Linux only")


def children() -> set[int]:
    return {process.pid for process in multiprocessing.active_children()}


def slow_square(x: int, seconds: float = 0.0) -> tuple[int, int]:
    """x², after a pause, with the process that computed it."""
    time.sleep(seconds)
    return x * x, os.getpid()


def test_results_come_in_task_order_from_both_workers_which_serve_every_call():
    """Later tasks finish first (shorter pauses), yet results are in task order; each worker takes
    several tasks, and the second call is served by the same two processes."""
    before = children()
    with WorkerPool(slow_square, workers=2, threads=1) as pool:
        pids = {process.pid for process, _ in pool.workers}
        assert len(pids) == 2 and os.getpid() not in pids and children() == before | pids
        for _ in range(2):
            results = pool.map([(x, 0.02 * (10 - x)) for x in range(10)])
            assert [square for square, _ in results] == [x * x for x in range(10)]
            assert {pid for _, pid in results} == pids
        assert pool.map([]) == []
    assert children() == before and pool.closed
    with pytest.raises(WorkerError, match="closed"):
        pool.map([(1,)])


def fail_on_three(x: int) -> int:
    if x == 3:
        raise DataError(f"line {x}: cannot be translated")
    return x


def test_an_exception_in_a_worker_is_raised_in_the_parent_with_its_traceback_and_closes_the_pool():
    before = children()
    pool = WorkerPool(fail_on_three, workers=2, threads=1)
    with pytest.raises(DataError, match="^line 3: cannot be translated$") as raised:
        pool.map([(x,) for x in range(6)])
    assert isinstance(raised.value.__cause__, RemoteTraceback)
    assert "in fail_on_three" in str(raised.value.__cause__)
    assert pool.closed and children() == before  # the other worker was stopped and reaped


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickling re-creates an exception from .args: one argument fails here
        super().__init__(f"{a} and {b}")


def raise_unpicklable(x: int) -> int:
    raise Unpicklable(x, "more")


def test_an_exception_that_cannot_travel_comes_back_as_a_runtime_error_naming_it():
    with WorkerPool(raise_unpicklable, workers=2, threads=1) as pool:
        with pytest.raises(RuntimeError, match="Unpicklable: 1 and more"):
            pool.map([(1,)])


def die_on_two(x: int) -> int:
    if x == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
    time.sleep(0.05)
    return x


def test_a_worker_that_dies_is_an_error_not_a_hang():
    before = children()
    pool = WorkerPool(die_on_two, workers=2, threads=1)
    with pytest.raises(WorkerError, match=r"ended unexpectedly \(killed by SIGKILL, out of memory\?\)"):
        pool.map([(x,) for x in range(5)])
    assert pool.closed and children() == before


def interrupt_self(x: int) -> int:
    os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C in a terminal reaches every process of the group
    time.sleep(0.05)
    return x


def test_workers_ignore_ctrl_c_which_is_the_parents_to_handle():
    with WorkerPool(interrupt_self, workers=2, threads=1) as pool:
        assert pool.map([(x,) for x in range(4)]) == [0, 1, 2, 3]


def test_ending_names_an_exit_status_or_a_signal():
    assert ending(3) == "exit status 3"
    assert ending(-signal.SIGTERM) == "killed by SIGTERM"


def test_children_forked_after_the_parent_ran_torch_on_two_threads_run_on_two_threads():
    """GNU OpenMP keeps its thread team per thread, and a forked child has only the thread that
    forked: forked from the thread that ran a parallel region, a child hangs at its first one.
    The pool forks from a new thread, so children run matrix products on two threads each, with
    the parent's result. (In a subprocess, with a time limit: a hang fails the test.)"""
    script = textwrap.dedent(
        """
        import torch
        from xformer_cli.decoding.workers import WorkerPool
        torch.set_num_threads(2)
        a = torch.randn(512, 512, generator=torch.Generator().manual_seed(0))
        want = (a @ a).sum().item()  # a parallel region on two threads in the parent

        def product(n):
            return torch.get_num_threads(), (a @ a).sum().item()

        with WorkerPool(product, workers=2, threads=2) as pool:
            got = pool.map([(n,) for n in range(4)])
        assert got == [(2, want)] * 4, got
        print("ok")
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # timed out: end it with its (hung) children, all in its session
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0 and out.strip() == "ok", err


def test_ctrl_c_delivered_to_another_thread_ends_a_wait_on_slow_workers():
    """The kernel gives a process's SIGINT to any thread that does not block it, one of torch's
    OpenMP threads too; the parent waiting on a worker that takes long must still see it soon."""
    script = textwrap.dedent(
        """
        import signal, threading, time
        from xformer_cli.decoding.workers import WorkerPool

        pool = WorkerPool(time.sleep, 1, 1)

        def interrupt():
            time.sleep(0.5)
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this thread, not the main one

        threading.Thread(target=interrupt).start()
        started = time.monotonic()
        try:
            pool.map([(30,)])
        except KeyboardInterrupt:
            print(f"{time.monotonic() - started:.2f}")
        """
    )
    # SIGINT as a terminal leaves it, even where this suite runs as a background job (started with SIGINT ignored)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 3.0  # 0.5 s, and a moment to notice: not the 30 s of the task


def map_in_thread(pool: WorkerPool, tasks: list[tuple]) -> tuple[threading.Thread, dict]:
    """`pool.map(tasks)` on a thread of its own; its result or exception lands in the dict."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = pool.map(tasks)
        except BaseException as err:  # noqa: BLE001 - the test looks at it
            outcome["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    while not pool._calls and thread.is_alive():  # until its tasks are queued (or it has ended)
        time.sleep(0.001)
    return thread, outcome


def test_calls_from_two_threads_share_the_workers_and_each_gets_its_own_results():
    """A second call made while the first runs: its tasks go to whichever worker is free, and each
    caller gets the results of its own tasks, in its order (the server's lanes map at once)."""
    with WorkerPool(slow_square, workers=2, threads=1) as pool:
        slow, slow_out = map_in_thread(pool, [(x, 0.3) for x in range(3)])
        time.sleep(0.1)  # the first call's tasks are running
        quick, quick_out = map_in_thread(pool, [(x, 0.01) for x in range(10, 16)])
        slow.join(10), quick.join(10)
        assert [square for square, _ in slow_out["result"]] == [0, 1, 4]
        assert [square for square, _ in quick_out["result"]] == [x * x for x in range(10, 16)]
        assert not pool.closed and pool.map([(7,)])[0][0] == 49


def fail_on_three_slowly(x: int) -> int:
    time.sleep(0.05)
    return fail_on_three(x)


def test_an_exception_reaches_only_its_call_while_another_call_runs():
    """With another call in flight, a child's exception ends its own call and no other: the pool
    stays open for the call beside it, and for later ones."""
    with WorkerPool(fail_on_three_slowly, workers=2, threads=1) as pool:
        failing, failing_out = map_in_thread(pool, [(2,), (3,), (4,), (5,)])
        time.sleep(0.01)  # 2 and 3 are running; this call's tasks queue behind 4 and 5
        assert pool.map([(x,) for x in range(10, 18)]) == list(range(10, 18))
        failing.join(10)
        assert isinstance(failing_out["error"], DataError) and str(failing_out["error"]) == "line 3: cannot be translated"
        assert not pool.closed and pool.map([(1,), (2,)]) == [1, 2]


def test_a_worker_that_dies_fails_every_call_in_flight():
    before = children()
    pool = WorkerPool(die_on_two, workers=2, threads=1)
    dying, dying_out = map_in_thread(pool, [(x,) for x in range(5)])
    time.sleep(0.01)  # 0 and 1 are running, 2 (which kills its worker) is next
    with pytest.raises(WorkerError, match="ended unexpectedly"):
        pool.map([(x,) for x in range(10, 16)])
    dying.join(10)
    assert isinstance(dying_out["error"], WorkerError) and "killed by SIGKILL" in str(dying_out["error"])
    assert pool.closed and children() == before
