"""Sinusoidal positional encoding (section 3.5).

    PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

That is the "interleaved" layout. Marian (and so OPUS-MT) lays the same values out in "halves":
the d_model/2 sines first, then the d_model/2 cosines, PE(pos, i) = sin(...) and
PE(pos, d_model/2 + i) = cos(...) with the same frequencies.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_table(max_len: int, d_model: int, layout: str = "interleaved") -> Tensor:
    """The encoding of positions 0..max_len-1, "interleaved" or in "halves". Shape (max_len, d_model)."""
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (max_len, 1)
    div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))
    sines = torch.sin(position * div_term)  # (max_len, ceil(d_model / 2))
    cosines = torch.cos(position * div_term[: d_model // 2])  # (max_len, floor(d_model / 2))
    if layout == "halves":
        return torch.cat([sines, cosines], dim=1).float()
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = sines
    table[:, 1::2] = cosines
    return table.float()


class PositionalEncoding(nn.Module):
    """Adds PE to embeddings that start at position `offset` (non-zero while decoding step by step).

    Shape: x (B, T, d_model) -> (B, T, d_model)
    """

    def __init__(self, d_model: int, max_len: int, layout: str = "interleaved") -> None:
        super().__init__()
        # Not a parameter and not saved: it is a function of the config.
        self.register_buffer("table", sinusoidal_table(max_len, d_model, layout), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        return x + self.table[offset : offset + x.size(1)].to(x.dtype)
