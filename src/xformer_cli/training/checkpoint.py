"""Training checkpoints: one safetensors file each (model, optimizer and RNG tensors, JSON
metadata), written atomically: temporary file, fsync, rename, fsync of the folder."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from xformer_cli.errors import RunError


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then move it over `path` so readers see the old or the new file, never half.

    write() creates the temporary file itself, so it gets the usual permissions (0666 less the
    umask), as a plain write would; tempfile.mkstemp's 0600 would make bundles unreadable to others."""
    tmp = str(path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_folder(path.parent)


def fsync_folder(path: Path) -> None:
    """Make a folder's entries (a rename into it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class TrainState:
    """Where a run stands: stored in every checkpoint's metadata, restored by --resume."""

    step: int = 0  # optimizer updates done
    epoch: int = 0  # the current epoch, from 0
    batch_index: int = 0  # the next batch of this epoch (of this process's share)
    elapsed: float = 0.0  # training seconds over all sessions of the run
    best_bleu: float = -1.0  # the best validation BLEU so far (-1: none yet)
    bad_validations: int = 0  # validations since the best one (for patience)
    grad_scaler: dict[str, Any] = field(default_factory=dict)  # the float16 loss scaler's state (empty unless used)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "TrainState":
        """The state stored in a checkpoint (a field older checkpoints lack keeps its default)."""
        return cls(**{f.name: meta[f.name] for f in fields(cls) if f.name in meta})


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Adam's per-parameter state as flat tensors, and its param groups as JSON."""
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return tensors, {"param_groups": state["param_groups"]}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def save_checkpoint(path: Path, model_state: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model_state.items()}
    optim, groups = optimizer_tensors(optimizer)
    tensors.update(optim)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    metadata = {"xformer": json.dumps({**meta, "optimizer": groups})}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """All tensors of a checkpoint and its metadata."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["xformer"])
        return load_file(str(path)), meta
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as err:
        raise RunError(f"corrupt checkpoint {path}: {err}") from None


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of several model states (checkpoint averaging)."""
    return {k: sum(s[k].double() for s in states).div(len(states)).to(states[0][k].dtype) for k in states[0]}
