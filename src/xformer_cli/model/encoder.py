"""The encoder (section 3.1): a stack of N identical layers, each self-attention then a
position-wise feed-forward network, each wrapped in a residual connection and a norm."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from xformer_cli.model.multi_head import MultiHeadAttention
from xformer_cli.model.norms import make_norm


ACTIVATIONS = {"relu": F.relu, "silu": F.silu, "gelu": F.gelu}  # gelu: the exact (erf) form


class FeedForward(nn.Module):
    """FFN(x) = max(0, x W1 + b1) W2 + b2 (section 3.3); `activation` may replace max(0, .) by
    SiLU (x·sigmoid(x), Marian's "swish") or GELU. Shape: (B, T, d_model) -> (B, T, d_model)."""

    def __init__(self, d_model: int, d_ff: int, activation_dropout: float, activation: str = "relu") -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.activation_dropout = activation_dropout
        self.activation = ACTIVATIONS[activation]

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


class EncoderLayer(nn.Module):
    """Self-attention and feed-forward sub-layers. Shape: (B, S, d_model) -> (B, S, d_model)."""

    def __init__(self, d_model: int, h: int, d_ff: int, dropout: float, attention_dropout: float, activation_dropout: float, norm: str, pre_norm: bool,
                 activation: str = "relu") -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, h, attention_dropout)
        self.self_attn_layer_norm = make_norm(norm, d_model)
        self.ffn = FeedForward(d_model, d_ff, activation_dropout, activation)
        self.final_layer_norm = make_norm(norm, d_model)
        self.pre_norm = pre_norm
        self.dropout = dropout

    def forward(self, x: Tensor, src_mask: Tensor | None) -> Tensor:
        x = residual(x, lambda y: self.self_attn(y, y, src_mask), self.self_attn_layer_norm, self.pre_norm, self.dropout, self.training)
        return residual(x, self.ffn, self.final_layer_norm, self.pre_norm, self.dropout, self.training)


class Encoder(nn.Module):
    """N encoder layers; with pre-norm, a final norm on the output.

    Shape: x (B, S, d_model) embedded source, src_mask (B, 1, 1, S) True at padding -> (B, S, d_model)
    """

    def __init__(self, n_layers: int, d_model: int, h: int, d_ff: int, dropout: float, attention_dropout: float, activation_dropout: float, norm: str, pre_norm: bool,
                 activation: str = "relu") -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, h, d_ff, dropout, attention_dropout, activation_dropout, norm, pre_norm, activation) for _ in range(n_layers)
        )
        self.layer_norm = make_norm(norm, d_model) if pre_norm else None

    def forward(self, x: Tensor, src_mask: Tensor | None) -> Tensor:
        for layer in self.layers:
            x = layer(x, src_mask)
        return self.layer_norm(x) if self.layer_norm is not None else x
