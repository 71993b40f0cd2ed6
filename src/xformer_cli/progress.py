"""Training progress on stderr: a rich bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

from typing import Any


class TrainProgress:
    def __init__(self, console, total_steps: int, start_step: int) -> None:
        self.console = console
        self.live = console is not None and console.is_terminal
        self.progress = None
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("step {task.completed}/{task.total}"),
                BarColumn(),
                TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[tps]} tok/s"),
                TimeRemainingColumn(),
                console=console,
            )
            self.task = self.progress.add_task("train", total=total_steps, completed=start_step, loss="-", lr="-", tps="-")

    def __enter__(self) -> "TrainProgress":
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, record: dict[str, Any]) -> None:
        if self.console is None:
            return
        if self.progress is not None:
            self.progress.update(self.task, completed=record["step"], loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.2e}", tps=f"{record['tokens_per_s']:.0f}")
        else:
            self.console.print(
                f"step {record['step']} epoch {record['epoch']} loss {record['loss']:.3f} lr {record['lr']:.2e} "
                f"{record['tokens_per_s']:.0f} tok/s {record['elapsed']:.0f} s",
                highlight=False,
            )
