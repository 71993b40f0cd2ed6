"""The feed-forward activations, in one registry: the config validates `activation` against its
names and the feed-forward network takes its function from it."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,  # max(0, x), the paper's
    "silu": F.silu,  # x · sigmoid(x), Marian's "swish"
    "gelu": F.gelu,  # the exact (erf) form
}
