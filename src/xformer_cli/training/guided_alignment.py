"""Guided alignment (Garg et al. 2019, "Jointly Learning to Align and Translate"; Marian's
--guided-alignment): some heads of the encoder–decoder attention are trained to follow a word
aligner's links, so the attention that places inline tags (`documents/alignment.py`) points at
the German word each English word translates.

A corpus may come with a file of word links, line by line beside its source and target, in the
Pharaoh format of fast_align and eflomal: "0-0 1-2 2-1", each link "source word-target word",
words counted from 0 over the whitespace-separated words of the line (`scripts/align_corpus.py`
makes one). When the corpus is encoded, each pair's word links become piece links: every piece of
a target word is linked to every piece of the source words that word is linked to.

In training, decoder position t (the step that predicts target piece t) has as its target the
uniform distribution over the source pieces linked to piece t; the loss is the cross-entropy of
the averaged heads' attention against it, summed over the positions that have links, weighted by
`TrainConfig.guided_alignment` and normalized like the translation loss (by target tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from xformer_cli.errors import DataError
from xformer_cli.text.pieces import piece_words

EPSILON = 1e-6  # keeps log(attention) finite where a head gives a linked piece no weight at all


def parse_links(line: str, where: str = "") -> list[tuple[int, int]]:
    """The (source word, target word) links of one Pharaoh line ("0-0 1-2"); a DataError naming
    `where` for anything else."""
    links = []
    for item in line.split():
        source, dash, target = item.partition("-")
        if not dash or not source.isdigit() or not target.isdigit():
            raise DataError(f"{where}: {item!r} is not a word link (Pharaoh format: source-target, e.g. 0-0 1-2)")
        links.append((int(source), int(target)))
    return links


def piece_links(
    links: Sequence[tuple[int, int]], src_pieces: Sequence[str], tgt_pieces: Sequence[str], src_words: int, tgt_words: int
) -> np.ndarray:
    """The word `links` of one pair as piece links: (target piece, source piece) rows, every piece
    of a linked target word with every piece of its source word. Empty where the pieces do not
    spell the line's whitespace words (`src_words`, `tgt_words` of them: SentencePiece's
    normalization can merge or split words) or a link names a word the line does not have.
    Shape (links, 2)."""
    src_of, tgt_of = piece_words(src_pieces), piece_words(tgt_pieces)
    counts = (src_of[-1] + 1 if src_of else 0, tgt_of[-1] + 1 if tgt_of else 0)
    if counts != (src_words, tgt_words) or any(not (0 <= s < src_words and 0 <= t < tgt_words) for s, t in links):
        return np.zeros((0, 2), dtype=np.int64)
    linked = np.zeros((tgt_words, src_words), dtype=bool)  # (target words, source words)
    for s, t in links:
        linked[t, s] = True
    return np.argwhere(linked[tgt_of][:, src_of])  # over (target pieces, source pieces)


def alignment_targets(links: Sequence[np.ndarray], batch: int, tgt_len: int, src_len: int) -> Tensor:
    """The attention each decoder position should have: for pair b, row t uniform over the source
    pieces linked to target piece t, a row of zeros where there is none (EOS, padding, unlinked
    words). `links[b]` holds (target piece, source piece) rows. Shape (B, T, S)."""
    targets = torch.zeros(batch, tgt_len, src_len)
    for b, pairs in enumerate(links):
        if len(pairs):
            rows = torch.as_tensor(np.asarray(pairs, dtype=np.int64))
            targets[b, rows[:, 0], rows[:, 1]] = 1.0
    total = targets.sum(dim=2, keepdim=True)
    return targets / total.clamp(min=1.0)


def alignment_loss(attention: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of the attention against the alignment targets, summed over the positions
    that have links: -Σ_t Σ_s targets[t, s] · log(attention[t, s]). Shapes (B, T, S) -> a scalar."""
    return -(targets * (attention.float() + EPSILON).log()).sum()
