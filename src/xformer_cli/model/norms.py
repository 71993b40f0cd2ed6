"""Normalization layers behind one factory: LayerNorm, RMSNorm, DyT and Derf.

DyT (Zhu et al., 2025, "Transformers without Normalization"):   γ · tanh(α x) + β
Derf (Chen et al., 2025, "Stronger Normalization-Free Transformers"): γ · erf(α x + s) + β
with α and s learnable scalars and γ, β learnable per channel.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


class DyT(nn.Module):
    """Dynamic Tanh, a point-wise stand-in for a normalization layer."""

    def __init__(self, d_model: int, alpha_init: float = 0.5) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(alpha_init))
        self.weight = nn.Parameter(torch.ones(d_model))  # γ
        self.bias = nn.Parameter(torch.zeros(d_model))  # β

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * torch.tanh(self.alpha * x) + self.bias


class Derf(nn.Module):
    """Dynamic erf: like DyT with the error function and a learnable shift s inside it."""

    def __init__(self, d_model: int, alpha_init: float = 0.5, shift_init: float = 0.0) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(alpha_init))
        self.shift = nn.Parameter(torch.tensor(shift_init))  # s
        self.weight = nn.Parameter(torch.ones(d_model))  # γ
        self.bias = nn.Parameter(torch.zeros(d_model))  # β

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * torch.erf(self.alpha * x + self.shift) + self.bias


# The one registry of normalization layers: the config validates `norm` against its names and
# the model builds each norm from it.
NORMS: dict[str, Callable[[int], nn.Module]] = {
    "layernorm": nn.LayerNorm,
    "rmsnorm": lambda d_model: nn.RMSNorm(d_model, eps=1e-6),
    "dyt": DyT,
    "derf": Derf,
}


def make_norm(kind: str, d_model: int) -> nn.Module:
    """The normalization layer named by `kind`, one of NORMS, over `d_model` channels."""
    return NORMS[kind](d_model)
