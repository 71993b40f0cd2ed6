"""Progress on stderr: a rich bar on a terminal, plain log lines otherwise (or nothing, without
a console)."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any


def status(console, text: str) -> AbstractContextManager:
    """A spinner with `text` while a long step runs, on a terminal only (it leaves no line behind)."""
    if console is not None and console.is_terminal:
        return console.status(text)
    return nullcontext()


def terminal_bar(console, first: str, last: str):
    """A rich bar on `console` (text, bar, text, time left), or None off a terminal."""
    if console is None or not console.is_terminal:
        return None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(first), BarColumn(), TextColumn(last), TimeRemainingColumn(), console=console)


class Bar:
    """Starts and stops its rich bar (if any) as a context manager."""

    progress = None

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()


class TrainProgress(Bar):
    def __init__(self, console, total_steps: int, start_step: int) -> None:
        self.console = console
        self.progress = terminal_bar(
            console, "step {task.completed}/{task.total}", "loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[tps]} tok/s"
        )
        if self.progress is not None:
            self.task = self.progress.add_task("train", total=total_steps, completed=start_step, loss="-", lr="-", tps="-")

    def update(self, record: dict[str, Any]) -> None:
        if self.console is None:
            return
        if self.progress is not None:
            self.progress.update(
                self.task,
                completed=record["step"],
                loss=f"{record['loss']:.3f}",
                lr=f"{record['lr']:.2e}",
                tps=f"{record['tokens_per_s']:.0f}",
            )
        else:
            self.console.print(
                f"step {record['step']} epoch {record['epoch']} loss {record['loss']:.3f} "
                + (f"alignment {record['alignment_loss']:.3f} " if "alignment_loss" in record else "")
                + f"lr {record['lr']:.2e} "
                f"{record['tokens_per_s']:.0f} tok/s {record['elapsed']:.0f} s",
                highlight=False,
            )


class EncodeProgress(Bar):
    """Encoding a corpus: a bar over the source file's bytes with pairs, pairs/s and the time left
    on a terminal; one summary line at the end on any console."""

    def __init__(self, console, name: str, total_bytes: int) -> None:
        self.console = console
        self.name = name
        self.started = time.perf_counter()
        self.pairs = 0
        self.progress = terminal_bar(
            console, "encoding {task.description}", "{task.fields[pairs]:,} pairs  {task.fields[rate]:,.0f} pairs/s"
        )
        if self.progress is not None:
            self.task = self.progress.add_task(name, total=max(total_bytes, 1), pairs=0, rate=0.0)

    @property
    def rate(self) -> float:
        """Pairs per second so far."""
        return self.pairs / max(time.perf_counter() - self.started, 1e-9)

    def update(self, bytes_read: int, pairs: int) -> None:
        self.pairs = pairs
        if self.progress is not None:
            self.progress.update(self.task, completed=bytes_read, pairs=pairs, rate=self.rate)

    def finished(self, detail: str) -> None:
        if self.console is not None:
            seconds = time.perf_counter() - self.started
            self.console.print(
                f"encoded {self.name}: {self.pairs:,} pairs in {seconds:.1f} s ({self.rate:,.0f} pairs/s); {detail}", highlight=False
            )


class LinesProgress(Bar):
    """Translating a stream: lines translated so far and the time, on a terminal only; it leaves
    no line behind."""

    def __init__(self, console) -> None:
        if console is None or not console.is_terminal:
            return
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.completed} lines translated"), TimeElapsedColumn(), console=console, transient=True
        )
        self.task = self.progress.add_task("translate", total=None)

    def update(self, lines: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=lines)
