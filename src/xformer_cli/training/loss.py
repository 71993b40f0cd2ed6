"""The training and validation loss: cross-entropy over target tokens, padding excluded, and its
backward over the micro-batches of one update."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F

from xformer_cli.batching import Batch
from xformer_cli.training.distributed import Distributed


def token_loss(logits: torch.Tensor, target: torch.Tensor, pad_id: int, label_smoothing: float = 0.0) -> torch.Tensor:
    """Summed cross-entropy of the target tokens, padding excluded (label-smoothed for training,
    plain for validation). Shapes: logits (B, T, V), target (B, T) -> a scalar."""
    return F.cross_entropy(
        logits.float().view(-1, logits.size(-1)),  # (B*T, V)
        target.reshape(-1),  # (B*T,)
        ignore_index=pad_id,
        label_smoothing=label_smoothing,
        reduction="sum",
    )


def backward_accumulated(
    model: torch.nn.Module,
    batches: list[Batch],
    pad_id: int,
    label_smoothing: float,
    dist: Distributed,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    grad_scaler: torch.amp.GradScaler | None = None,
) -> tuple[float, int]:
    """Forward and backward over the micro-batches of one update; returns the summed loss and the
    target tokens of this process.

    The loss is normalized by the target tokens of the whole update, over every micro-batch of
    every process (fairseq's rule), so accumulating micro-batches of B gives the gradient of one
    batch of 2B. Under DDP, which averages gradients over processes, each process scales by
    world / tokens, and the all-reduce runs once, after the last micro-batch (`no_sync` before it).
    With float16 autocast, `grad_scaler` scales the loss so small gradients do not underflow.
    """
    tokens = sum(b.n_tokens for b in batches)
    scale = dist.world / max(dist.all_sum(tokens), 1)
    total = 0.0
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        with nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync():
            with autocast():
                logits = model(batch.src, batch.tgt_in)  # (B, T, V)
            loss = token_loss(logits, batch.tgt_out, pad_id, label_smoothing)
            scaled = loss * scale
            (grad_scaler.scale(scaled) if grad_scaler is not None else scaled).backward()
        total += float(loss.detach())
    return total, tokens
