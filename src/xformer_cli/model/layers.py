"""What the encoder and decoder layers share: the position-wise feed-forward network (section
3.3) and the residual connection around every sub-layer with its norm (section 5.4)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from xformer_cli.model.activations import ACTIVATIONS
from xformer_cli.model.config import ModelConfig


class FeedForward(nn.Module):
    """FFN(x) = max(0, x W1 + b1) W2 + b2 (section 3.3); `activation` may replace max(0, .) by
    SiLU (x·sigmoid(x), Marian's "swish") or GELU. Shape: (B, T, d_model) -> (B, T, d_model)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, config.d_ff)
        self.fc2 = nn.Linear(config.d_ff, config.d_model)
        self.activation_dropout = config.activation_dropout
        self.activation = ACTIVATIONS[config.activation]

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.activation(self.fc1(x))  # (B, T, d_ff)
        if self.activation_dropout > 0.0:
            hidden = F.dropout(hidden, self.activation_dropout, self.training)
        return self.fc2(hidden)


def residual(x: Tensor, sublayer, norm: nn.Module, pre_norm: bool, dropout: float, training: bool) -> Tensor:
    """Post-norm (the paper): norm(x + Sublayer(x)). Pre-norm: x + Sublayer(norm(x))."""
    if pre_norm:
        return x + F.dropout(sublayer(norm(x)), dropout, training)
    return norm(x + F.dropout(sublayer(x), dropout, training))
