"""Multi-head attention (section 3.2.2) with the key/value cache used for incremental decoding."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xformer_cli.model.attention import fused_attention, scaled_dot_product_attention


class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O, head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V).

    Shape:
        query: (B, T_q, d_model); key_value: (B, T_k, d_model); mask broadcastable to (B, h, T_q, T_k)
        returns (B, T_q, d_model)
    """

    def __init__(self, d_model: int, h: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.h = h
        self.d_k = d_model // h
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.fused = True  # use PyTorch's fused kernel; False runs the written-out reference
        self.last_weights: Tensor | None = None  # filled by the reference path when record_weights is on
        self.record_weights = False

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, d_model) -> (B, h, T, d_k)"""
        return x.view(x.size(0), x.size(1), self.h, self.d_k).transpose(1, 2)

    def project_kv(self, key_value: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of a sequence, split into heads: two (B, h, T_k, d_k) tensors."""
        return self.split_heads(self.k_proj(key_value)), self.split_heads(self.v_proj(key_value))

    def attend(self, query: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Attention of `query` (B * g, T_q, d_model) over projected heads k, v (B, h, T_k, d_k);
        returns (B * g, T_q, d_model). With g > 1 (beams), query rows b*g .. b*g+g-1 share row b of
        k, v and mask: they are stacked along the query axis so each sentence's keys are read once."""
        rows, t_q = query.size(0), query.size(1)
        g = rows // k.size(0)
        q = self.split_heads(self.q_proj(query))  # (B * g, h, T_q, d_k)
        if g > 1:
            q = q.view(-1, g, self.h, t_q, self.d_k).transpose(1, 2).reshape(-1, self.h, g * t_q, self.d_k)  # (B, h, g * T_q, d_k)
        p = self.dropout if self.training else 0.0
        if self.fused and not self.record_weights:
            out = fused_attention(q, k, v, mask, p)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask, p)
            if self.record_weights:
                self.last_weights = weights
        if g > 1:
            out = out.view(-1, self.h, g, t_q, self.d_k).transpose(1, 2)  # (B, g, h, T_q, d_k)
            out = out.reshape(rows, self.h, t_q, self.d_k)
        out = out.transpose(1, 2).reshape(rows, t_q, -1)  # (B * g, T_q, d_model)
        return self.out_proj(out)

    def forward(self, query: Tensor, key_value: Tensor, mask: Tensor | None = None) -> Tensor:
        k, v = self.project_kv(key_value)
        return self.attend(query, k, v, mask)

    def forward_cached(self, query: Tensor, cache: dict[str, Tensor], mask: Tensor | None = None) -> Tensor:
        """Self-attention for new positions only: their keys/values are appended to `cache`."""
        k, v = self.project_kv(query)  # (B, h, T_new, d_k)
        if "k" in cache:
            k = torch.cat([cache["k"], k], dim=2)  # (B, h, T_past + T_new, d_k)
            v = torch.cat([cache["v"], v], dim=2)
        cache["k"], cache["v"] = k, v
        return self.attend(query, k, v, mask)
