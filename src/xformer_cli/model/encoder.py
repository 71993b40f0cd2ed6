"""The encoder (section 3.1): a stack of N identical layers, each self-attention then a
position-wise feed-forward network, each wrapped in a residual connection and a norm."""

from __future__ import annotations

from torch import Tensor, nn

from xformer_cli.model.config import ModelConfig
from xformer_cli.model.layers import FeedForward, residual
from xformer_cli.model.multi_head import MultiHeadAttention
from xformer_cli.model.norms import make_norm


class EncoderLayer(nn.Module):
    """Self-attention and feed-forward sub-layers. Shape: (B, S, d_model) -> (B, S, d_model)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(config.d_model, config.h, config.attention_dropout)
        self.self_attn_layer_norm = make_norm(config.norm, config.d_model)
        self.ffn = FeedForward(config)
        self.final_layer_norm = make_norm(config.norm, config.d_model)
        self.pre_norm = config.norm_position == "pre"
        self.dropout = config.dropout

    def forward(self, x: Tensor, src_mask: Tensor | None) -> Tensor:
        x = residual(x, lambda y: self.self_attn(y, y, src_mask), self.self_attn_layer_norm, self.pre_norm, self.dropout, self.training)
        return residual(x, self.ffn, self.final_layer_norm, self.pre_norm, self.dropout, self.training)


class Encoder(nn.Module):
    """N encoder layers; with pre-norm, a final norm on the output.

    Shape: x (B, S, d_model) embedded source, src_mask (B, 1, 1, S) True at padding -> (B, S, d_model)
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_encoder_layers))
        self.layer_norm = make_norm(config.norm, config.d_model) if config.norm_position == "pre" else None

    def forward(self, x: Tensor, src_mask: Tensor | None) -> Tensor:
        for layer in self.layers:
            x = layer(x, src_mask)
        return self.layer_norm(x) if self.layer_norm is not None else x
