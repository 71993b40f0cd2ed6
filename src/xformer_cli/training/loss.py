"""The training and validation loss: cross-entropy over target tokens, padding excluded."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
