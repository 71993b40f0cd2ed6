"""A training run's folder: its lock, its checkpoints and its metrics log.

Run folder (`--out`):
    .lock               held while a run trains in it (a portable file lock)
    run.json            model and training config of the run
    spm.model           the tokenizer
    checkpoints/        step-NNNNNNN.safetensors, the last K (model, optimizer, RNG, data position)
    best.safetensors    model weights with the best validation BLEU
    metrics.jsonl       one JSON object per log line and per validation
    curves.png          training and validation curves
    bundle/             the final model bundle
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xformer_cli.checkpoint import atomic_write
from xformer_cli.errors import RunError


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a `metrics.jsonl` file, in order."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class RunFolder:
    """The run folder and its lock: two runs on one folder refuse to clobber each other.

    Only the main process (rank 0) writes; the others only read.
    """

    def __init__(self, out: Path, main: bool) -> None:
        from filelock import FileLock, Timeout

        self.out = out
        self.main = main
        self.checkpoints = out / "checkpoints"
        self.lock: FileLock | None = None
        if main:
            try:
                self.checkpoints.mkdir(parents=True, exist_ok=True)
                self.lock = FileLock(out / ".lock", timeout=0, thread_local=False)
                self.lock.acquire()
            except Timeout:
                raise RunError(f"another training run is using {out}; choose another --out") from None
            except OSError as err:
                raise RunError(f"cannot write to --out {out}: {err.strerror or err}") from None

    def release(self) -> None:
        """Let another run use the folder (the lock also ends with the process)."""
        if self.lock is not None:
            self.lock.release()

    def checkpoint_paths(self) -> list[Path]:
        return sorted(self.checkpoints.glob("step-*.safetensors"))

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:07d}.safetensors"

    def metrics(self, record: dict[str, Any]) -> None:
        if self.main:
            with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        path = self.out / "metrics.jsonl"
        return read_metrics(path) if path.exists() else []

    def truncate_metrics(self, step: int) -> None:
        """Forget records after `step` (written by a run that died before its next checkpoint)."""
        path = self.out / "metrics.jsonl"
        if self.main and path.exists():
            keep = [json.dumps(r) + "\n" for r in self.records() if r["step"] <= step]
            atomic_write(path, lambda tmp: Path(tmp).write_text("".join(keep), encoding="utf-8"))
