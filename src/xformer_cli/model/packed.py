"""A CPU fast path for decoding: weights packed once for oneDNN.

At each decoding step a few rows (the beams) meet the 8,000-row output matrix and the decoder's
weight matrices. PyTorch's default CPU matrix product is slow for that shape; oneDNN's kernels on
a weight packed ahead of time are faster there (`bench/decode_step_profile.py`, parts 2 and 6),
and equal to `F.linear` up to float32 rounding (tests/test_packed.py). Inference only: the
packed copy does not follow later changes to the weight and has no gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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


class PackedLinearLayer(nn.Linear):
    """An `nn.Linear` for decoding on the CPU: the same parameters (and state dict), with `forward`
    on a copy of the weight packed once for oneDNN. Shape: (..., d_in) -> (..., d_out)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        self.weight, self.bias = linear.weight, linear.bias
        self.packed = PackedLinear(linear.weight, linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.packed(x)

    def unpacked(self) -> nn.Linear:
        """The plain `nn.Linear` of the same parameters (the packed copy cannot be deep-copied,
        so int8 quantization starts from this)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        linear.weight, linear.bias = self.weight, self.bias
        return linear


def pack_linears(module: nn.Module) -> None:
    """Replace every `nn.Linear` inside `module` whose weight oneDNN can serve by a
    `PackedLinearLayer` (in place; for inference only)."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and packable(child.weight):
                setattr(parent, name, PackedLinearLayer(child))


def unpack_linears(module: nn.Module) -> None:
    """Undo `pack_linears` (in place): every `PackedLinearLayer` becomes its plain `nn.Linear`."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, PackedLinearLayer):
                setattr(parent, name, child.unpacked())
