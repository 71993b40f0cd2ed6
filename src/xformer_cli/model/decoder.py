"""The decoder (section 3.1): N layers of masked self-attention, attention over the encoder
output ("encoder_attn") and a feed-forward network, plus the state of incremental decoding."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from xformer_cli.model.attention import causal_mask
from xformer_cli.model.config import ModelConfig
from xformer_cli.model.layers import FeedForward, residual
from xformer_cli.model.multi_head import MultiHeadAttention
from xformer_cli.model.norms import make_norm


@dataclass
class DecoderState:
    """What incremental decoding keeps between steps.

    self_attn[i]: layer i's self-attention cache {"k", "v"}, each (B * g, h, T_past, d_k)
    encoder_kv[i]: layer i's keys and values of the encoder output, computed once, each (B, h, S, d_k)
    memory_mask: (B, 1, 1, S), True at source padding
    offset: number of target positions already decoded

    The decoder may run g rows per source sentence (g beams): row r reads sentence r // g, so the
    encoder's keys and values are stored once per sentence, not once per beam.
    """

    encoder_kv: list[tuple[Tensor, Tensor]]
    memory_mask: Tensor | None
    self_attn: list[dict[str, Tensor]] = field(default_factory=list)
    offset: int = 0

    def select(self, rows: Tensor, sentences: Tensor | None = None) -> "DecoderState":
        """Keep (and reorder) decoder rows, and keep the source `sentences` (None keeps all).

        Beam search reorders rows within each sentence at every step, and drops sentences (and
        their rows) once they are finished.
        """
        encoder_kv, memory_mask = self.encoder_kv, self.memory_mask
        if sentences is not None:
            encoder_kv = [(k.index_select(0, sentences), v.index_select(0, sentences)) for k, v in encoder_kv]
            memory_mask = None if memory_mask is None else memory_mask.index_select(0, sentences)
        return DecoderState(
            encoder_kv=encoder_kv,
            memory_mask=memory_mask,
            self_attn=[{name: t.index_select(0, rows) for name, t in c.items()} for c in self.self_attn],
            offset=self.offset,
        )


class DecoderLayer(nn.Module):
    """Masked self-attention, encoder attention, feed-forward. Shape: (B, T, d_model) -> (B, T, d_model)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(config.d_model, config.h, config.attention_dropout)
        self.self_attn_layer_norm = make_norm(config.norm, config.d_model)
        self.encoder_attn = MultiHeadAttention(config.d_model, config.h, config.attention_dropout)
        self.encoder_attn_layer_norm = make_norm(config.norm, config.d_model)
        self.ffn = FeedForward(config)
        self.final_layer_norm = make_norm(config.norm, config.d_model)
        self.pre_norm = config.norm_position == "pre"
        self.dropout = config.dropout

    def forward(
        self,
        x: Tensor,
        tgt_mask: Tensor | None,
        encoder_k: Tensor,
        encoder_v: Tensor,
        memory_mask: Tensor | None,
        cache: dict[str, Tensor] | None = None,
    ) -> Tensor:
        if cache is None:
            self_attn = lambda y: self.self_attn(y, y, tgt_mask)  # noqa: E731
        else:
            self_attn = lambda y: self.self_attn.forward_cached(y, cache, tgt_mask)  # noqa: E731
        x = residual(x, self_attn, self.self_attn_layer_norm, self.pre_norm, self.dropout, self.training)
        x = residual(
            x,
            lambda y: self.encoder_attn.attend(y, encoder_k, encoder_v, memory_mask),
            self.encoder_attn_layer_norm,
            self.pre_norm,
            self.dropout,
            self.training,
        )
        return residual(x, self.ffn, self.final_layer_norm, self.pre_norm, self.dropout, self.training)


class Decoder(nn.Module):
    """N decoder layers; with pre-norm, a final norm on the output.

    Shape: x (B, T, d_model) embedded target, memory (B, S, d_model) -> (B, T, d_model)
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.n_decoder_layers))
        self.layer_norm = make_norm(config.norm, config.d_model) if config.norm_position == "pre" else None

    def init_state(self, memory: Tensor, memory_mask: Tensor | None) -> DecoderState:
        """Project the encoder output once per layer for encoder attention."""
        kv = [layer.encoder_attn.project_kv(memory) for layer in self.layers]
        return DecoderState(encoder_kv=kv, memory_mask=memory_mask, self_attn=[{} for _ in self.layers])

    def forward(self, x: Tensor, state: DecoderState, incremental: bool = False) -> Tensor:
        """Decode target positions state.offset .. state.offset + T - 1.

        With `incremental`, keys/values of these positions join the state's caches, so each new
        token costs only its own projections; otherwise the whole prefix is in `x`.
        """
        tgt_len = x.size(1)
        offset = state.offset if incremental else 0
        # One new position may attend to all earlier ones: no mask needed.
        tgt_mask = None if tgt_len == 1 else causal_mask(tgt_len, offset, x.device)
        for i, layer in enumerate(self.layers):
            k, v = state.encoder_kv[i]
            x = layer(x, tgt_mask, k, v, state.memory_mask, state.self_attn[i] if incremental else None)
        if incremental:
            state.offset += tgt_len
        return self.layer_norm(x) if self.layer_norm is not None else x
