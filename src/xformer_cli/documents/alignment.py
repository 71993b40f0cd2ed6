"""Where a tag goes in the translation: the model's attention over the source as a word alignment.

Inline markup is not sent to the model (it was trained on plain sentences). A tag around German
words must come back around their English translation, so each English word is aligned to the
German word its translation attended to most (the encoder–decoder attention of the decoder,
averaged over the heads the model's `DecodeConfig.alignment_heads` names, as Firefox's offline translation moves markup by
its model's alignments): as the search recorded it where the translation's pieces are the
search's own, else read teacher-forced on the translation (`source_attention.teacher_forced`). A tag then
covers, in the translation, the English words aligned into it, from the first to the last.

Words are whitespace-separated: a piece that starts with SentencePiece's "▁" starts the next
word, so pieces map to words without character offsets (`text.pieces`).
"""

from __future__ import annotations

from difflib import SequenceMatcher

import torch
from torch import Tensor


def word_alignment(attention: Tensor, src_words: list[int], tgt_words: list[int]) -> Tensor:
    """Attention between words: shape (target words, source words), each entry the attention of
    a target word's pieces over a source word's pieces, summed."""
    n_src, n_tgt = max(src_words, default=-1) + 1, max(tgt_words, default=-1) + 1
    pieces = torch.zeros(len(tgt_words), n_src).index_add_(1, torch.tensor(src_words, dtype=torch.long), attention)  # (T, S_words)
    return torch.zeros(n_tgt, n_src).index_add_(0, torch.tensor(tgt_words, dtype=torch.long), pieces)  # (T_words, S_words)


def project_words(source_words: set[int], words: Tensor, weak: set[int] = frozenset()) -> tuple[int, int] | None:
    """The target words (first, last + 1) a tag over `source_words` covers: from the first to
    the last target word whose strongest attention is on one of them, leaving out those that
    are the best match of a source word outside the tag (not one of the `weak` ones: articles and
    prepositions, whose best match is often the noun they belong to) and of none inside (an
    adverb or an auxiliary that attends to the tagged word but translates its own); where there
    is no such word, the one target word that attends to them most. None without source or
    target words."""
    if not source_words or words.numel() == 0:
        return None
    inside = [t for t, s in enumerate(words.argmax(dim=1).tolist()) if s in source_words]
    if not inside:
        best = int(words[:, sorted(source_words)].sum(dim=1).argmax())
        return best, best + 1
    best_of = words.argmax(dim=0).tolist()  # (S_words,): the target word each source word attends from most
    mine = {best_of[s] for s in source_words if s < len(best_of)}
    theirs = {t for s, t in enumerate(best_of) if s not in source_words and s not in weak} - mine
    kept = [t for t in inside if t not in theirs] or inside
    return kept[0], kept[-1] + 1


def word_map(searched: list[str], final: list[str]) -> list[int]:
    """For each word of `final`, the word of `searched` it stands for: the same word where the two
    agree (difflib's matching), spread evenly over the searched words a changed stretch replaced
    ("43" -> "12", "000": both from "43"), and the searched word before it for a word added (the
    first one for a word added at the start)."""
    mapping: list[int] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(a=searched, b=final, autojunk=False).get_opcodes():
        for j in range(j1, j2):
            if op == "equal":
                mapping.append(i1 + j - j1)
            elif i2 > i1:  # replaced
                mapping.append(i1 + (j - j1) * (i2 - i1) // (j2 - j1))
            else:  # inserted
                mapping.append(max(i1 - 1, 0))
    return mapping
