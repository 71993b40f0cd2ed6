"""A training run's folder: its lock, its checkpoints and its metrics log.

Run folder (`--out`):
    .lock               held while a run trains in it (a portable file lock)
    run.json            model, training and decoding config of the run, and its training corpora
    spm.model           the tokenizer
    checkpoints/        step-NNNNNNN.safetensors, the last K (model, optimizer, RNG, data position)
    best.safetensors    model weights with the best validation BLEU
    metrics.jsonl       one JSON object per log line and per validation
    curves.png          training and validation curves
    bundle/             the final model bundle
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from xformer_cli.errors import RunError
from xformer_cli.training.checkpoint import TrainState, atomic_write, save_checkpoint

TOKENIZER_FIELDS = ("vocab_size", "tag_id")  # ModelConfig fields training takes from the tokenizer, not the recipe


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

    @property
    def best_path(self) -> Path:
        return self.out / "best.safetensors"

    def check_start(self, model: dict[str, Any], resume: bool) -> None:
        """A new run needs a folder without checkpoints; a resumed one, a run.json whose model
        config equals `model` (the vocabulary size and the tag id aside: the tokenizer sets them)."""
        if resume:
            if not (self.out / "run.json").exists():
                raise RunError(f"nothing to resume in {self.out}: no run.json")
            old = {k: v for k, v in self.read_run()["model"].items() if k not in TOKENIZER_FIELDS}
            new = {k: v for k, v in model.items() if k not in TOKENIZER_FIELDS}
            if old != new:
                raise RunError(f"--resume with a changed model config ({config_difference(old, new)})")
        elif self.checkpoint_paths():
            raise RunError(f"{self.out} already holds checkpoints: pass --resume to continue, or choose another --out")

    def read_run(self) -> dict[str, Any]:
        """run.json: {"model": ..., "train": ..., "decode": ..., "corpora": [...]}."""
        return json.loads((self.out / "run.json").read_text(encoding="utf-8"))

    def write_run(self, run: dict[str, Any]) -> None:
        if self.main:
            atomic_write(self.out / "run.json", lambda tmp: Path(tmp).write_text(json.dumps(run, indent=2), encoding="utf-8"))

    def checkpoint_paths(self) -> list[Path]:
        return sorted(self.checkpoints.glob("step-*.safetensors"))

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:07d}.safetensors"

    def save(self, state: TrainState, model_state: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, keep: int) -> Path:
        """A checkpoint of `state`, keeping only the last `keep` (at least 1)."""
        path = self.checkpoint_path(state.step)
        save_checkpoint(path, model_state, optimizer, asdict(state))
        for old in self.checkpoint_paths()[: -max(keep, 1)]:
            old.unlink()
        return path

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


def config_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return "; ".join(diffs)
