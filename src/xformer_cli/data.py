"""Reading parallel corpora, filtering pairs and cutting token-budget batches.

Batching is a pure function of (lengths, budget, seed, epoch), so a resumed run finds the same
batches in the same order and needs to remember only (epoch, batch index).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from xformer_cli.errors import DataError
from xformer_cli.tokenizer import PAD_ID


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file (plain or .gz), stripped of surrounding whitespace."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not valid UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def read_parallel(src: str | Path, tgt: str | Path) -> tuple[list[str], list[str]]:
    """Source and target lines, which must be equally many and not zero."""
    src_lines, tgt_lines = read_lines(src), read_lines(tgt)
    if len(src_lines) != len(tgt_lines):
        raise DataError(f"line counts differ: {len(src_lines)} in {src}, {len(tgt_lines)} in {tgt}")
    if not src_lines:
        raise DataError(f"empty corpus: {src} and {tgt} have no lines")
    return src_lines, tgt_lines


@dataclass(frozen=True)
class FilterReport:
    kept: int
    empty: int
    too_long: int
    ratio: int

    def __str__(self) -> str:
        return f"kept {self.kept} pairs; dropped {self.empty} empty, {self.too_long} over-long, {self.ratio} length-mismatched"


def filter_pairs(
    src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]], max_tokens: int, max_ratio: float
) -> tuple[list[int], FilterReport]:
    """Indices of the pairs to train on, and how many were dropped for which reason."""
    kept: list[int] = []
    empty = too_long = ratio = 0
    for i, (s, t) in enumerate(zip(src_ids, tgt_ids)):
        if not s or not t:
            empty += 1
        elif len(s) > max_tokens or len(t) > max_tokens:
            too_long += 1
        elif max(len(s), len(t)) > max_ratio * min(len(s), len(t)) and max(len(s), len(t)) > 5:
            ratio += 1
        else:
            kept.append(i)
    return kept, FilterReport(len(kept), empty, too_long, ratio)


def make_batches(src_lens: Sequence[int], tgt_lens: Sequence[int], batch_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """Token-budget batches with length bucketing, in a shuffled order fixed by (seed, epoch).

    Pairs are sorted by length (ties broken at random), cut into batches whose padded size
    (rows × longest side) stays within `batch_tokens`, and the batches are shuffled.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    tie = torch.randperm(len(src_lens), generator=g).tolist()
    order = sorted(range(len(src_lens)), key=lambda i: (tgt_lens[i], src_lens[i], tie[i]))
    batches = cut_batches(order, [max(s, t) for s, t in zip(src_lens, tgt_lens)], batch_tokens)
    perm = torch.randperm(len(batches), generator=g).tolist()
    return [batches[p] for p in perm]


def cut_batches(order: Sequence[int], sizes: Sequence[int], batch_tokens: int, batch_size: int = 0) -> list[list[int]]:
    """`order` cut into consecutive batches whose padded size (rows × largest size) stays within
    `batch_tokens` and, unless 0, whose rows number at most `batch_size`. An item larger than the
    budget gets a batch of its own."""
    batches: list[list[int]] = []
    longest = 0
    for i in order:
        if batches and max(longest, sizes[i]) * (len(batches[-1]) + 1) <= batch_tokens and (batch_size == 0 or len(batches[-1]) < batch_size):
            batches[-1].append(i)
            longest = max(longest, sizes[i])
        else:
            batches.append([i])
            longest = sizes[i]
    return batches


def pad(seqs: Sequence[Sequence[int]], pad_id: int) -> Tensor:
    """Right-padded id matrix. Shape (len(seqs), longest)."""
    longest = max(len(s) for s in seqs)
    out = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    for row, s in enumerate(seqs):
        out[row, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


@dataclass
class Batch:
    """src (B, S) ending in EOS; tgt_in (B, T) starting with BOS; tgt_out (B, T) ending in EOS."""

    src: Tensor
    tgt_in: Tensor
    tgt_out: Tensor

    @property
    def n_tokens(self) -> int:
        return int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.src.to(device), self.tgt_in.to(device), self.tgt_out.to(device))


def pad_with_eos(seqs: Sequence[Sequence[int]], eos_id: int, pad_id: int) -> Tensor:
    """Each sequence with EOS appended, right-padded: a source batch, or the targets the model
    must predict. Shape (len(seqs), longest + 1)."""
    return pad([[*s, eos_id] for s in seqs], pad_id)


def collate(src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]], pad_id: int, bos_id: int, eos_id: int) -> Batch:
    return Batch(
        src=pad_with_eos(src_ids, eos_id, pad_id),
        tgt_in=pad([[bos_id, *t] for t in tgt_ids], pad_id),
        tgt_out=pad_with_eos(tgt_ids, eos_id, pad_id),
    )
