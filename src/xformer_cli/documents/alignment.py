"""Where a tag goes in the translation: the model's attention over the source as a word alignment.

Inline markup is not sent to the model (it was trained on plain sentences). A tag around German
words must come back around their English translation, so each English word is aligned to the
German word its translation attended to most (the encoder–decoder attention of the decoder,
averaged over heads and over `ATTENTION_LAYERS`, teacher-forced on the translation, as Firefox's
offline translation moves markup by its model's alignments). A tag then covers, in the
translation, the English words aligned into it, from the first to the last.

Words are whitespace-separated: a piece that starts with SentencePiece's "▁" starts the next
word, so pieces map to words without character offsets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from xformer_cli.batching import collate
from xformer_cli.model.transformer import Transformer

ATTENTION_LAYERS = (-2, -1)  # the decoder layers whose source attention is averaged (measured in bench/documents/inline_tags.py)


def piece_words(pieces: Sequence[str]) -> list[int]:
    """The whitespace word of each piece (0, 0, 1, 2, 2, ...): a piece starting with "▁" starts a word."""
    words, word = [], -1
    for piece in pieces:
        if piece.startswith("▁") or word < 0:
            word += 1
        words.append(word)
    return words


@torch.inference_mode()
def source_attention(model: Transformer, src_ids: Sequence[list[int]], tgt_ids: Sequence[list[int]]) -> list[Tensor]:
    """For each (source, translation) pair, the attention of each translation piece over the
    source pieces, averaged over heads and `ATTENTION_LAYERS`: shape (len(tgt), len(src)), row j
    the attention of the step that chose piece j. All pairs in one teacher-forced batch."""
    c = model.config
    device = next(model.parameters()).device
    batch = collate(src_ids, tgt_ids, c.pad_id, c.bos_id, c.eos_id)
    layers = [model.decoder.layers[i].encoder_attn for i in ATTENTION_LAYERS]
    for attention in layers:
        attention.record_weights = True
    try:
        memory, src_mask = model.encode(batch.src.to(device))  # (B, S, d_model)
        model.decode(batch.tgt_in.to(device), model.init_state(memory, src_mask))
        weights = torch.stack([a.last_weights for a in layers]).float().mean(dim=(0, 2)).cpu()  # (L, B, h, T, S) -> (B, T, S)
    finally:
        for attention in layers:
            attention.record_weights = False
            attention.last_weights = None
    return [weights[b, : len(t), : len(s)] for b, (s, t) in enumerate(zip(src_ids, tgt_ids))]


def word_alignment(attention: Tensor, src_words: list[int], tgt_words: list[int]) -> Tensor:
    """Attention between words: shape (target words, source words), each entry the attention of
    a target word's pieces over a source word's pieces, summed."""
    n_src, n_tgt = max(src_words, default=-1) + 1, max(tgt_words, default=-1) + 1
    pieces = torch.zeros(len(tgt_words), n_src).index_add_(1, torch.tensor(src_words, dtype=torch.long), attention)  # (T, S_words)
    return torch.zeros(n_tgt, n_src).index_add_(0, torch.tensor(tgt_words, dtype=torch.long), pieces)  # (T_words, S_words)


def project_words(source_words: set[int], words: Tensor) -> tuple[int, int] | None:
    """The target words (first, last + 1) a tag over `source_words` covers: from the first to
    the last target word whose strongest attention is on one of them; where there is none, the
    one target word that attends to them most. None without source words or target words."""
    if not source_words or words.numel() == 0:
        return None
    inside = [t for t, s in enumerate(words.argmax(dim=1).tolist()) if s in source_words]
    if not inside:
        best = int(words[:, sorted(source_words)].sum(dim=1).argmax())
        return best, best + 1
    return inside[0], inside[-1] + 1
