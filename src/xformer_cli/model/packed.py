"""A CPU fast path for decoding: the output projection with its weight packed once for oneDNN.

At each decoding step a few rows (the beams) meet the 8,000-row output matrix. PyTorch's default
CPU matrix product is slow for that shape; oneDNN's kernels on a weight packed ahead of time are
several times faster there, and equal to `F.linear` up to float32 rounding (tests/test_packed.py).
Inference only: the packed copy does not follow later changes to the weight and has no gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def packable(weight: Tensor) -> bool:
    """True where oneDNN can serve this weight: a float32 CPU tensor, a build with oneDNN, and oneDNN
    not switched off (`torch.backends.mkldnn.enabled = False` keeps every op on PyTorch's own kernels)."""
    return (
        weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


class PackedLinear:
    """x -> x Wᵀ + b with W packed once (b optional). Shape: (..., d_in) -> (..., d_out)."""

    def __init__(self, weight: Tensor, bias: Tensor | None = None) -> None:
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
        self.bias = None if bias is None else bias.detach()

    def __call__(self, x: Tensor) -> Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


def output_projection(weight: Tensor, bias: Tensor | None = None, packed: bool = True) -> Callable[[Tensor], Tensor]:
    """The projection to vocabulary logits for decoding: packed where possible, else `F.linear`."""
    if packed and packable(weight):
        return PackedLinear(weight, bias)
    return lambda x: F.linear(x, weight, bias)
