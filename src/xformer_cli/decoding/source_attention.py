"""The decoder's attention over the source, recorded while a model translates or reads a translation.

Inline markup follows the model's attention from English pieces to German ones (`documents/`).
The attention of the encoder–decoder sublayer, averaged over the heads a model's decoding config
names (`DecodeConfig.alignment_heads`; by default every head of the last two decoder layers), is
what a tag follows. It can be had two ways that give the same numbers: during
the search itself (`History`, kept for each running hypothesis and handed out with the finished
ones: no extra pass of the model), or by reading a given translation teacher-forced (`teacher_forced`: one
more pass), for a translation whose pieces are not the search's own.

A finished hypothesis's attention travels as a `Matrix`: worker processes send it back pickled
as a flat float32 array, where a tensor would go through shared memory, one file descriptor per
tensor.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from xformer_cli.batching import collate
from xformer_cli.errors import ConfigError
from xformer_cli.model.multi_head import MultiHeadAttention
from xformer_cli.model.transformer import Transformer


class Matrix:
    """Attention of each target step (rows) over the source pieces (columns): a tensor that
    pickles as a flat float32 array (compared and hashed as an object)."""

    def __init__(self, weights: Tensor) -> None:
        self.weights = weights  # (rows, columns)

    @property
    def rows(self) -> int:
        return self.weights.size(0)

    @property
    def columns(self) -> int:
        return self.weights.size(1)

    def tensor(self) -> Tensor:
        """Shape (rows, columns), float32."""
        return self.weights

    def __reduce__(self):
        return matrix_of, (self.rows, self.columns, array("f", self.weights.reshape(-1).tolist()))


def matrix_of(rows: int, columns: int, values: array) -> Matrix:
    """A `Matrix` from its pickled form: `values` row by row."""
    weights = torch.frombuffer(values, dtype=torch.float32) if values else torch.zeros(0)
    return Matrix(weights.view(rows, columns).clone())


@dataclass(frozen=True)
class PieceAttention:
    """A translation as the search made it: the source's piece ids, the translation's, and the
    attention of each step over the source, of shape (len(target) + 1, len(source) + 1): row j
    the step that chose piece j (the last row the step that chose EOS), the last column the
    source's EOS."""

    source: tuple[int, ...]
    target: tuple[int, ...]
    attention: Matrix


def default_heads(model: Transformer) -> list[tuple[int, int]]:
    """Every head of the last two decoder layers (of the only one, for a one-layer decoder)."""
    n = len(model.decoder.layers)
    return [(layer, head) for layer in range(max(0, n - 2), n) for head in range(model.config.h)]


class Recorder:
    """While entered, the encoder–decoder attention of the decoder layers named in `heads`
    ((layer, head) pairs, layers counted from 0 or from the end as -1; empty: `default_heads`)
    keeps its last weights (those layers run the written-out attention, not the fused kernel);
    `read()` averages the named heads."""

    def __init__(self, model: Transformer, heads: Sequence[tuple[int, int]] = ()) -> None:
        n, h = len(model.decoder.layers), model.config.h
        by_layer: dict[int, list[int]] = {}
        for layer, head in heads or default_heads(model):
            if not (-n <= layer < n and 0 <= head < h):
                raise ConfigError(f"alignment head ({layer}, {head}) is not in this model ({n} decoder layers of {h} heads)")
            by_layer.setdefault(layer % n, []).append(head)
        self.layers: list[tuple[MultiHeadAttention, list[int]]] = [(model.decoder.layers[i].encoder_attn, hs) for i, hs in by_layer.items()]
        self.count = sum(len(hs) for _, hs in self.layers)

    def __enter__(self) -> "Recorder":
        for attention, _ in self.layers:
            attention.record_weights = True
        return self

    def __exit__(self, *exc_info) -> None:
        for attention, _ in self.layers:
            attention.record_weights = False
            attention.last_weights = None

    def read(self) -> Tensor:
        """The last call's weights averaged over the named heads: (B, h, Q, S) -> (B, Q, S), where
        the Q queries of row b are its target positions, or its beams at one step."""
        total = sum(
            (a.last_weights if len(hs) == a.h else a.last_weights[:, hs]).float().sum(dim=1) for a, hs in self.layers
        )  # (B, Q, S), summed over the heads
        return total / self.count


@torch.inference_mode()
def teacher_forced(
    model: Transformer, src_ids: Sequence[list[int]], tgt_ids: Sequence[list[int]], heads: Sequence[tuple[int, int]] = ()
) -> list[Tensor]:
    """For each (source, translation) pair, the attention of each step over the source, read in
    one teacher-forced batch (the numbers the search's incremental steps produce): shape
    (len(tgt) + 1, len(src) + 1), row j the step that chose piece j (the last the one that chose
    EOS), the last column the source's EOS, as `History` records it."""
    c = model.config
    device = next(model.parameters()).device
    batch = collate(src_ids, tgt_ids, c.pad_id, c.bos_id, c.eos_id)
    with Recorder(model, heads) as recorder:
        memory, src_mask = model.encode(batch.src.to(device))  # (B, S, d_model)
        model.decode(batch.tgt_in.to(device), model.init_state(memory, src_mask))
        weights = recorder.read().cpu()  # (B, T, S)
    return [weights[b, : len(t) + 1, : len(s) + 1] for b, (s, t) in enumerate(zip(src_ids, tgt_ids))]


class History:
    """Each running hypothesis's attention over the source so far, during a search (when not
    `enabled`, every method returns at once). Enter it around the search loop.

    `past` has shape (B_alive, k, T, S): for the k hypotheses of each alive sentence, the
    attention of each of their T pieces (of the step that chose it) over the S source positions;
    `now` (B_alive, k, S) that of the step just run (`record()` after each step of the model)."""

    def __init__(self, model: Transformer, src: Tensor, k: int, enabled: bool, heads: Sequence[tuple[int, int]] = ()) -> None:
        self.recorder = Recorder(model, heads) if enabled else None
        self.src_lens = (src != model.config.pad_id).sum(dim=1).tolist() if enabled else []  # by original sentence
        shape = (src.size(0), k, src.size(1)) if enabled else (0, 0, 0)
        self.past = torch.zeros(shape[0], shape[1], 0, shape[2])
        self.now = torch.zeros(shape)

    def __enter__(self) -> "History":
        if self.recorder is not None:
            self.recorder.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.recorder is not None:
            self.recorder.__exit__(*exc_info)

    def record(self) -> None:
        """Keep the attention of the step the model just ran."""
        if self.recorder is not None:
            self.now = self.recorder.read().cpu()  # (B_alive, k, S)

    def extend(self, beams: Tensor | None = None) -> None:
        """Add the step just run to the hypotheses; `beams` (B_alive, k): the hypothesis each new
        one continues (None: each continues its own)."""
        if self.recorder is None:
            return
        past = torch.cat([self.past, self.now.unsqueeze(2)], dim=2)  # (B_alive, k, T + 1, S)
        if beams is not None:
            past = past.gather(1, beams.cpu()[:, :, None, None].expand(-1, -1, past.size(2), past.size(3)))
        self.past = past

    def select(self, keep: Tensor) -> None:
        """Keep the sentences still searched: `keep` (B_alive',) rows of the alive ones."""
        if self.recorder is not None:
            self.past = self.past[keep.cpu()]

    def of(self, row: int, beam: int, pieces: int, sentence: int) -> Matrix | None:
        """A hypothesis that ends now, hypothesis `beam` of alive row `row` (original sentence
        `sentence`), with `pieces` pieces before its EOS: the attention of its steps (pieces + 1
        rows, the last the step just run) over the sentence's own source positions (EOS
        included, padding not)."""
        if self.recorder is None:
            return None
        steps = torch.cat([self.past[row, beam, :pieces], self.now[row, beam : beam + 1]])  # (pieces + 1, S)
        return Matrix(steps[:, : self.src_lens[sentence]])
