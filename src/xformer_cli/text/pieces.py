"""SentencePiece pieces and the whitespace words they spell: a piece that starts with "▁" starts
the next word, so pieces map to words without character offsets (inline tags follow the
attention between words; guided alignment trains on links between words)."""

from __future__ import annotations

from collections.abc import Sequence


def piece_words(pieces: Sequence[str]) -> list[int]:
    """The whitespace word of each piece (0, 0, 1, 2, 2, ...): a piece starting with "▁" starts a word."""
    words, word = [], -1
    for piece in pieces:
        if piece.startswith("▁") or word < 0:
            word += 1
        words.append(word)
    return words
