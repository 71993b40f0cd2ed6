"""Scoring rules for finished hypotheses, as pure functions."""

from __future__ import annotations


def length_normalized(log_prob: float, length: int, alpha: float) -> float:
    """Score = log P(y|x) / |y|^alpha (fairseq's rule; |y| counts EOS). alpha=0 keeps the raw sum,
    alpha=1 is the mean log-probability per token; larger alpha favours longer outputs."""
    return log_prob / (max(length, 1) ** alpha)


def max_output_length(src_len: int, a: float, b: int, max_pieces: int) -> int:
    """Most target pieces (EOS included) a source of `src_len` pieces may get: a*src_len + b,
    capped by the model's `max_pieces` (its positional table also holds the BOS)."""
    return max(1, min(int(a * src_len + b), max_pieces))
