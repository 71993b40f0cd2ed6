"""Scaled dot-product attention (section 3.2.1 of the paper).

    Attention(Q, K, V) = softmax(Q Kᵀ / sqrt(d_k)) V

`scaled_dot_product_attention` is the written-out reference. `fused_attention` calls PyTorch's
fused kernel for the same function; tests prove the two equal, and `MultiHeadAttention`
switches between them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Attention output and weights, written out.

    Shape:
        q: (B, h, T_q, d_k); k: (B, h, T_k, d_k); v: (B, h, T_k, d_v)
        mask: bool, broadcastable to (B, h, T_q, T_k), True = may not attend
        returns (B, h, T_q, d_v) and weights (B, h, T_q, T_k), the softmax before dropout
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, h, T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0.0 else weights
    return dropped @ v, weights  # (B, h, T_q, d_v)


def fused_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0) -> Tensor:
    """The same function through `F.scaled_dot_product_attention` (no weights returned)."""
    # PyTorch's fused kernel takes True = may attend, so the mask is inverted.
    return F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else ~mask, dropout_p=dropout_p)


def causal_mask(size: int, offset: int = 0, device: torch.device | None = None) -> Tensor:
    """Mask of `size` new positions that follow `offset` earlier ones: position offset+i may not
    attend to any later position. Shape (size, offset + size); True above the shifted diagonal."""
    return torch.ones(size, offset + size, dtype=torch.bool, device=device).triu(offset + 1)
