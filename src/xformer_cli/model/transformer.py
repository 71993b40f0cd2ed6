"""The full encoder–decoder model: embeddings, encoder, decoder and the output projection."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xformer_cli.model.config import ModelConfig
from xformer_cli.model.decoder import Decoder, DecoderState
from xformer_cli.model.encoder import Encoder
from xformer_cli.model.multi_head import MultiHeadAttention
from xformer_cli.model.positional import PositionalEncoding


class Transformer(nn.Module):
    """encode(src) -> memory; decode(tgt, memory) -> hidden states; project(hidden) -> logits.

    With `tie_embeddings`, one matrix serves as source embedding, target embedding and output
    projection (section 3.4), and the state dict holds it once, as `embedding.weight`.
    """

    def __init__(self, config: ModelConfig, initialize: bool = True) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.d_model)  # the source (and, tied, every) embedding
        if not c.tie_embeddings:
            self.tgt_embedding = nn.Embedding(c.vocab_size, c.d_model)
            self.output_projection = nn.Linear(c.d_model, c.vocab_size, bias=False)
        # Marian's final_logits_bias; with tied embeddings it cannot live in a Linear of its own.
        self.output_bias = nn.Parameter(torch.zeros(c.vocab_size)) if c.output_bias else None
        self.positional = PositionalEncoding(c.d_model, c.max_len, c.positions)
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        if initialize:  # skipped when weights are loaded next (a faster start)
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform linear layers; embeddings N(0, d_model^-1/2), so scaled by sqrt(d_model) they have unit variance."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, self.config.d_model**-0.5)

    def set_fused_attention(self, fused: bool) -> None:
        """Switch every attention between PyTorch's fused kernel and the written-out reference."""
        for module in self.modules():
            if isinstance(module, MultiHeadAttention):
                module.fused = fused

    def embed(self, ids: Tensor, table: nn.Embedding, offset: int = 0) -> Tensor:
        """Embeddings scaled by sqrt(d_model) plus positions. Shape: (B, T) -> (B, T, d_model)."""
        x = table(ids) * math.sqrt(self.config.d_model)
        return F.dropout(self.positional(x, offset), self.config.dropout, self.training)

    def padding_mask(self, src: Tensor) -> Tensor:
        """True at source padding. Shape: (B, S) -> (B, 1, 1, S), broadcast over heads and queries."""
        return (src == self.config.pad_id)[:, None, None, :]

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder output and source mask. Shape: src (B, S) -> memory (B, S, d_model), mask (B, 1, 1, S)."""
        src_mask = self.padding_mask(src)
        return self.encoder(self.embed(src, self.embedding), src_mask), src_mask

    def init_state(self, memory: Tensor, src_mask: Tensor) -> DecoderState:
        """Decoding state for `memory`: encoder keys/values computed once, empty self-attention caches."""
        return self.decoder.init_state(memory, src_mask)

    def decode(self, tgt: Tensor, state: DecoderState, incremental: bool = False) -> Tensor:
        """Decoder output for target ids. Shape: tgt (B, T) -> (B, T, d_model).

        incremental=False: `tgt` is the whole prefix (teacher forcing in training).
        incremental=True: `tgt` holds only new positions; earlier ones come from `state`'s cache.
        """
        table = self.embedding if self.config.tie_embeddings else self.tgt_embedding
        offset = state.offset if incremental else 0
        return self.decoder(self.embed(tgt, table, offset), state, incremental)

    @property
    def output_weight(self) -> Tensor:
        """The output projection's matrix (V, d_model): the embedding when tied."""
        return self.embedding.weight if self.config.tie_embeddings else self.output_projection.weight

    def project(self, hidden: Tensor) -> Tensor:
        """Output projection to vocabulary logits (plus the output bias, where the config has one).
        Shape: (B, T, d_model) -> (B, T, V)."""
        return F.linear(hidden, self.output_weight, self.output_bias)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Logits of each next target token given the source and the target prefix (teacher forcing).

        Shape: src (B, S), tgt_in (B, T) -> (B, T, V)
        """
        memory, src_mask = self.encode(src)
        return self.project(self.decode(tgt_in, self.init_state(memory, src_mask)))


def build_model(config: ModelConfig, initialize: bool = True) -> Transformer:
    """The model of `config` (see `ModelConfig` for the paper's defaults); `initialize=False` leaves
    PyTorch's default initialization, for weights about to be loaded."""
    return Transformer(config, initialize)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters."""
    return sum(p.numel() for p in model.parameters())
