"""The training and validation loss: cross-entropy over target tokens, padding excluded, and its
backward over the micro-batches of one update."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from xformer_cli.batching import Batch
from xformer_cli.decoding.source_attention import Recorder
from xformer_cli.training.distributed import Distributed
from xformer_cli.training.guided_alignment import alignment_loss


@dataclass(frozen=True)
class GuidedAlignment:
    """The guided-alignment loss of a run: its weight and the (decoder layer, head) pairs whose
    averaged encoder–decoder attention it trains (empty: every head of the last two layers)."""

    weight: float
    heads: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, weight: float, heads: Sequence[Sequence[int]]) -> "GuidedAlignment | None":
        """A run's guided alignment (`TrainConfig.guided_alignment`, `DecodeConfig.alignment_heads`); None when off."""
        return cls(weight, tuple((int(layer), int(head)) for layer, head in heads)) if weight > 0 else None


class Losses(NamedTuple):
    """One update's summed losses over this process's micro-batches, and its target tokens."""

    loss: float  # the translation loss (cross-entropy, label-smoothed)
    tokens: int
    alignment: float = 0.0  # the guided-alignment loss, unweighted (0 without)


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
    guided: GuidedAlignment | None = None,
) -> Losses:
    """Forward and backward over the micro-batches of one update; returns the summed losses and
    the target tokens of this process.

    The loss is normalized by the target tokens of the whole update, over every micro-batch of
    every process (fairseq's rule), so accumulating micro-batches of B gives the gradient of one
    batch of 2B. Under DDP, which averages gradients over processes, each process scales by
    world / tokens, and the all-reduce runs once, after the last micro-batch (`no_sync` before it).
    With float16 autocast, `grad_scaler` scales the loss so small gradients do not underflow.
    With `guided` and batches that carry alignment targets, the guided-alignment loss times its
    weight joins the translation loss, normalized the same way (`guided_alignment.py`).
    """
    tokens = sum(b.n_tokens for b in batches)
    scale = dist.world / max(dist.all_sum(tokens), 1)
    total = aligned = 0.0
    core = getattr(model, "module", model)  # the Transformer inside DDP
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        guide = guided is not None and guided.weight > 0 and batch.alignment is not None
        with nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync():
            with autocast(), Recorder(core, guided.heads) if guide else nullcontext() as recorder:
                logits = model(batch.src, batch.tgt_in)  # (B, T, V)
                attention = recorder.read() if guide else None  # (B, T, S), the heads averaged
            loss = token_loss(logits, batch.tgt_out, pad_id, label_smoothing)
            alignment = alignment_loss(attention, batch.alignment) if guide else None
            scaled = (loss if alignment is None else loss + guided.weight * alignment) * scale
            (grad_scaler.scale(scaled) if grad_scaler is not None else scaled).backward()
        total += float(loss.detach())
        aligned += float(alignment.detach()) if alignment is not None else 0.0
    return Losses(total, tokens, aligned)
