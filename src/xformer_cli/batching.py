"""Reading parallel text as a stream, the pair filter, token-budget batch cutting, padding.

Text is read line by line (plain or gzip), so a corpus is never held whole in memory; training
encodes it once into a cache (`corpus_cache.py`) and batches from there (`training_data.py`).
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from xformer_cli.errors import DataError
from xformer_cli.text.tokenizer import PAD_ID


class LineReader:
    """The lines of a UTF-8 text file (plain or .gz), read a block at a time and stripped of
    surrounding whitespace. A line that is not UTF-8 is a DataError naming the file and the line.

    `size` and `bytes_read` are counted in the file's own bytes (compressed for .gz), for progress.
    """

    BLOCK = 1 << 20  # bytes decoded at a time

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.raw = open(self.path, "rb")
        except FileNotFoundError:
            raise DataError(f"file not found: {self.path}") from None
        except OSError as err:
            raise DataError(f"cannot read {self.path}: {err.strerror or err}") from None
        self.size = os.fstat(self.raw.fileno()).st_size
        # A buffered reader over gzip splits lines in C, not line by line in gzip's Python.
        self.file = io.BufferedReader(gzip.GzipFile(fileobj=self.raw, mode="rb"), self.BLOCK) if self.path.suffix == ".gz" else self.raw
        self.line = 0  # lines decoded so far
        self.pending: list[str] = []  # decoded lines not yet returned

    @property
    def bytes_read(self) -> int:
        return self.raw.tell() if not self.raw.closed else self.size

    def read(self, n: int) -> list[str]:
        """The next `n` lines, fewer only at the end of the file."""
        while len(self.pending) < n and not self.raw.closed:
            self.pending += self.decode_block()
        lines, self.pending = self.pending[:n], self.pending[n:]
        return lines

    def decode_block(self) -> list[str]:
        try:
            block = b"".join(self.file.readlines(self.BLOCK))
        except (OSError, EOFError, zlib.error) as err:
            self.close()
            raise DataError(f"cannot read {self.path}: {err}") from None
        if not block:
            self.close()
            return []
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as err:
            self.close()
            line = self.line + block.count(b"\n", 0, err.start) + 1
            raise DataError(f"{self.path}, line {line}: not valid UTF-8") from None
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        self.line += len(lines)
        return [line.strip() for line in lines]

    def close(self) -> None:
        self.file.close()
        self.raw.close()

    def __iter__(self) -> Iterator[str]:
        while lines := self.read(10_000):
            yield from lines


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file (plain or .gz), stripped: for small files (test sets)."""
    return list(LineReader(path))


class ParallelReader:
    """A source and a target file read together, in chunks of line-aligned pairs.

    The files must have equally many lines, and not zero; that is checked as the stream ends.
    """

    def __init__(self, src: str | Path, tgt: str | Path) -> None:
        self.src, self.tgt = LineReader(src), LineReader(tgt)

    @property
    def size(self) -> int:
        """Bytes of the source file: progress is measured in it."""
        return self.src.size

    @property
    def bytes_read(self) -> int:
        return self.src.bytes_read

    def chunks(self, size: int) -> Iterator[tuple[list[str], list[str]]]:
        """(source lines, target lines) of up to `size` pairs at a time."""
        pairs = 0
        while True:
            s, t = self.src.read(size), self.tgt.read(size)
            if len(s) != len(t):
                n_src = pairs + len(s) + sum(1 for _ in self.src)
                n_tgt = pairs + len(t) + sum(1 for _ in self.tgt)
                raise DataError(f"line counts differ: {n_src} in {self.src.path}, {n_tgt} in {self.tgt.path}")
            if not s:
                break
            pairs += len(s)
            yield s, t
        if not pairs:
            raise DataError(f"empty corpus: {self.src.path} and {self.tgt.path} have no lines")


def read_parallel(src: str | Path, tgt: str | Path) -> tuple[list[str], list[str]]:
    """All source and target lines (equally many, not zero): for small sets (validation)."""
    src_lines: list[str] = []
    tgt_lines: list[str] = []
    for s, t in ParallelReader(src, tgt).chunks(50_000):
        src_lines += s
        tgt_lines += t
    return src_lines, tgt_lines


@dataclass(frozen=True)
class FilterReport:
    kept: int
    empty: int
    too_long: int
    ratio: int

    def __str__(self) -> str:
        return f"kept {self.kept} pairs; dropped {self.empty} empty, {self.too_long} over-long, {self.ratio} length-mismatched"

    def __add__(self, other: "FilterReport") -> "FilterReport":
        return FilterReport(self.kept + other.kept, self.empty + other.empty, self.too_long + other.too_long, self.ratio + other.ratio)


def filter_pairs(src_lens: np.ndarray, tgt_lens: np.ndarray, max_tokens: int, max_ratio: float, src_extra: int = 0) -> tuple[np.ndarray, FilterReport]:
    """Which pairs to train on (a boolean mask), from their piece counts, and how many were
    dropped for which reason, checked in this order: an empty side; a side over `max_tokens`
    pieces; sides whose lengths differ by more than `max_ratio` times (when the longer has more
    than 5 pieces). `src_extra` pieces (a tag) go in front of every source: they count toward
    `max_tokens`, not toward emptiness or the ratio. Shapes: (n,), (n,) -> (n,)."""
    s, t = np.asarray(src_lens, dtype=np.int64), np.asarray(tgt_lens, dtype=np.int64)
    empty = (s == 0) | (t == 0)
    too_long = ~empty & ((s + src_extra > max_tokens) | (t > max_tokens))
    longer, shorter = np.maximum(s, t), np.minimum(s, t)
    ratio = ~empty & ~too_long & (longer > max_ratio * shorter) & (longer > 5)
    keep = ~(empty | too_long | ratio)
    return keep, FilterReport(int(keep.sum()), int(empty.sum()), int(too_long.sum()), int(ratio.sum()))


def batch_bounds(sizes: np.ndarray, batch_tokens: int, batch_size: int = 0) -> np.ndarray:
    """Where consecutive batches start along `sizes` (nondecreasing), with len(sizes) appended:
    each batch is as long as its padded size (rows × its largest size, its last) stays within
    `batch_tokens` and, unless 0, its rows within `batch_size`. An item larger than the budget
    gets a batch of its own. Shape (n,) -> (batches + 1,)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    n = len(sizes)
    if n > 1 and bool((sizes[1:] < sizes[:-1]).any()):
        raise ValueError("batch_bounds needs sizes sorted in nondecreasing order")

    def fits(start: int, end: int) -> bool:
        return end - start == 1 or int(sizes[end - 1]) * (end - start) <= batch_tokens

    starts = []
    start = 0
    while start < n:
        # The batch grows while it fits, and whether it fits only gets worse as it grows (sizes
        # never fall), so its end is found by bisection below this upper bound.
        end = min(n, start + max(1, batch_tokens // max(int(sizes[start]), 1)), start + batch_size if batch_size else n)
        if not fits(start, end):
            good, bad = start + 1, end
            while bad - good > 1:
                mid = (good + bad) // 2
                good, bad = (mid, bad) if fits(start, mid) else (good, mid)
            end = good
        starts.append(start)
        start = end
    return np.array([*starts, n], dtype=np.int64)


def cut_batches(order: Sequence[int], sizes: Sequence[int], batch_tokens: int, batch_size: int = 0) -> list[list[int]]:
    """`order` (indices into `sizes`, sorted by size) cut into consecutive batches by
    `batch_bounds`: padded size within `batch_tokens`, rows within `batch_size` unless 0."""
    order = list(order)
    bounds = batch_bounds(np.asarray(sizes, dtype=np.int64)[np.asarray(order, dtype=np.int64)], batch_tokens, batch_size)
    return [order[a:b] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist())]


def pad(seqs: Sequence[Sequence[int]], pad_id: int, bos: int | None = None, eos: int | None = None) -> Tensor:
    """Right-padded id matrix, each row starting with `bos` and ending with `eos` where given.
    `seqs` may be lists or numpy arrays. Shape (len(seqs), longest + the extras)."""
    first = 0 if bos is None else 1
    extra = first + (0 if eos is None else 1)
    longest = max(len(s) for s in seqs) + extra
    out = np.full((len(seqs), longest), pad_id, dtype=np.int64)
    for row, s in enumerate(seqs):
        out[row, first : first + len(s)] = s
        if eos is not None:
            out[row, first + len(s)] = eos
    if bos is not None:
        out[:, 0] = bos
    return torch.from_numpy(out)


@dataclass
class Batch:
    """src (B, S) ending in EOS; tgt_in (B, T) starting with BOS; tgt_out (B, T) ending in EOS;
    all right-padded with `pad_id`."""

    src: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    pad_id: int = PAD_ID

    @property
    def n_tokens(self) -> int:
        return int((self.tgt_out != self.pad_id).sum())

    def to(self, device: torch.device) -> "Batch":
        """The batch on `device`; to a GPU through pinned memory, so the copy does not wait."""
        if device.type != "cuda":
            return Batch(self.src.to(device), self.tgt_in.to(device), self.tgt_out.to(device), self.pad_id)
        return Batch(*(t.pin_memory().to(device, non_blocking=True) for t in (self.src, self.tgt_in, self.tgt_out)), self.pad_id)


def pad_with_eos(seqs: Sequence[Sequence[int]], eos_id: int, pad_id: int) -> Tensor:
    """Each sequence with EOS appended, right-padded: a source batch, or the targets the model
    must predict. Shape (len(seqs), longest + 1)."""
    return pad(seqs, pad_id, eos=eos_id)


def collate(src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]], pad_id: int, bos_id: int, eos_id: int) -> Batch:
    return Batch(
        src=pad(src_ids, pad_id, eos=eos_id),
        tgt_in=pad(tgt_ids, pad_id, bos=bos_id),
        tgt_out=pad(tgt_ids, pad_id, eos=eos_id),
        pad_id=pad_id,
    )
