"""Encoding a corpus into a cache entry's arrays: chunk by chunk on SentencePiece's threads (or,
for a sampled segmentation, BPE-dropout worker processes), filtered, written end to end with the
offsets and lengths of every sentence, the piece links of every pair where the corpus has word
links (`guided_alignment.py`), and meta.json last (see `corpus_cache.py` for the layout)."""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from xformer_cli.errors import DataError
from xformer_cli.text.files import LineReader, ParallelReader
from xformer_cli.text.tokenizer import AnyTokenizer, sample_in_worker, sampling_seed, start_sampling_worker
from xformer_cli.training.filtering import FilterReport, filter_pairs
from xformer_cli.training.guided_alignment import parse_links, piece_links

FORMAT = 1  # of a cache entry; part of every key
CHUNK_PAIRS = 20_000  # pairs encoded at a time: big enough for SentencePiece's threads, small in memory
ARRAYS = ("src.tokens", "tgt.tokens", "src.offsets", "tgt.offsets", "src.lengths", "tgt.lengths")
LINK_ARRAYS = ("links", "links.offsets")  # (target piece, source piece) pairs end to end, and where each pair's links begin


@dataclass(frozen=True)
class Sampling:
    """A sampled segmentation (subword regularization) instead of the plain one."""

    alpha: float  # BPE-dropout's probability of skipping a merge
    seed: int  # every chunk's seed is made from it and the chunk's index


@dataclass(frozen=True)
class CorpusEncoding:
    """How one corpus is encoded: all that its cache entry depends on besides the two files."""

    tokenizer: AnyTokenizer
    max_tokens: int  # the filter's longest sentence, in pieces
    max_ratio: float  # the filter's largest length ratio
    tag: int | None = None  # an id put in front of every source (a synthetic corpus)
    sampling: Sampling | None = None  # a sampled segmentation instead of the plain one
    links: str = ""  # a file of word links beside the corpus (Pharaoh format), kept as piece links


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.int32)


class ArrayWriter:
    """Appends numpy arrays to a file of one dtype, counting elements; fsyncs on close."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.file = open(path, "wb")
        self.dtype = np.dtype(dtype)
        self.count = 0

    def write(self, array: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(array, dtype=self.dtype).data)
        self.count += len(array)

    def close(self) -> None:
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()


def flat(ids: list[list[int]], dtype: np.dtype, total: int) -> np.ndarray:
    """Piece-id lists joined end to end. Shape (total,)."""
    return np.fromiter(chain.from_iterable(ids), dtype=dtype, count=total)


def chunk_seeds(sampling: Sampling, chunk: int) -> tuple[int, int]:
    """The seeds of chunk number `chunk`'s sources and targets."""
    return sampling_seed(sampling.seed, chunk, 0), sampling_seed(sampling.seed, chunk, 1)


def encode_chunk(
    tokenizer: AnyTokenizer, src: list[str], tgt: list[str], threads: int, sampling: Sampling | None, chunk: int
) -> dict[str, list[list[int]]]:
    """The piece ids of chunk number `chunk` of a corpus (`threads` SentencePiece threads):
    plain, or sampled with its `chunk_seeds`."""
    if sampling is None:
        return {"src": tokenizer.encode(src, threads), "tgt": tokenizer.encode_target(tgt, threads)}
    seeds = chunk_seeds(sampling, chunk)
    return {
        "src": tokenizer.sample_encode(src, sampling.alpha, seeds[0], threads),
        "tgt": tokenizer.sample_encode_target(tgt, sampling.alpha, seeds[1], threads),
    }


def encoded_chunks(
    reader: ParallelReader, tokenizer: AnyTokenizer, threads: int, sampling: Sampling | None
) -> Iterator[tuple[list[str], list[str], dict[str, list[list[int]]]]]:
    """(source lines, target lines, piece ids) of each chunk of the corpus, in order. A sampled segmentation of
    more than one chunk is drawn by `threads` worker processes (spawned, each with a copy of the
    tokenizer), a few chunks ahead; the ids do not depend on how many (each chunk has its seeds)."""
    chunks = enumerate(reader.chunks(CHUNK_PAIRS))
    first = next(chunks, None)
    second = next(chunks, None) if first is not None else None
    if sampling is None or threads <= 1 or second is None:
        for chunk, (src, tgt) in (c for c in (first, second) if c is not None):
            yield src, tgt, encode_chunk(tokenizer, src, tgt, threads, sampling, chunk)
        for chunk, (src, tgt) in chunks:
            yield src, tgt, encode_chunk(tokenizer, src, tgt, threads, sampling, chunk)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from itertools import chain

    with ProcessPoolExecutor(threads, multiprocessing.get_context("spawn"), start_sampling_worker, (tokenizer.model_proto,)) as pool:
        pending: deque = deque()
        try:
            for chunk, (src, tgt) in chain((first, second), chunks):
                pending.append((src, tgt, pool.submit(sample_in_worker, src, tgt, sampling.alpha, chunk_seeds(sampling, chunk))))
                if len(pending) > 2 * threads:
                    done_src, done_tgt, future = pending.popleft()
                    yield done_src, done_tgt, dict(zip(("src", "tgt"), future.result()))
            while pending:
                done_src, done_tgt, future = pending.popleft()
                yield done_src, done_tgt, dict(zip(("src", "tgt"), future.result()))
        finally:
            pool.shutdown(cancel_futures=True)


class LinkWriter:
    """Writes the piece links of a corpus's kept pairs from its file of word links, read in step
    with the corpus (`guided_alignment.py`); a pair whose pieces do not spell its words gets none."""

    def __init__(self, folder: Path, path: str, tokenizer: AnyTokenizer, tagged: bool) -> None:
        self.path = path
        self.reader = LineReader(path)
        self.tokenizer = tokenizer
        self.shift = int(tagged)  # a tag piece in front of every source moves its pieces one on
        self.writers = {"links": ArrayWriter(folder / "links", np.uint16), "links.offsets": ArrayWriter(folder / "links.offsets", np.int64)}
        self.writers["links.offsets"].write(np.zeros(1, np.int64))
        self.end = 0
        self.linked = 0  # kept pairs with at least one link

    def write(self, src: list[str], tgt: list[str], ids: dict[str, list[list[int]]], kept: list[int], before: int) -> None:
        """The links of the kept pairs (`kept`: indices into this chunk, whose first pair is line
        `before` + 1; `ids`: the chunk's pieces, a tagged corpus's sources with the tag in front)."""
        lines = self.reader.read(len(src))
        if len(lines) != len(src):
            raise DataError(f"{self.path} has {before + len(lines)} lines, fewer than the corpus it aligns")
        counts = []
        for i in kept:
            word_links = parse_links(lines[i], f"{self.path}, line {before + i + 1}")
            source, target = (self.tokenizer.pieces(ids[side][i][first:]) for side, first in (("src", self.shift), ("tgt", 0)))  # no tag
            pairs = piece_links(word_links, source, target, len(src[i].split()), len(tgt[i].split()))
            pairs[:, 1] += self.shift
            self.writers["links"].write(pairs.reshape(-1))
            counts.append(len(pairs))
            self.linked += bool(len(pairs))
        self.end += sum(counts)
        self.writers["links.offsets"].write(self.end - sum(counts) + np.cumsum(np.asarray(counts, dtype=np.int64)))

    def finish(self, lines: int) -> None:
        """Check that the links file ended with the corpus (`lines` of it)."""
        if self.reader.read(1):
            raise DataError(f"{self.path} has more lines than the corpus it aligns ({lines})")

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.reader.close()


def encode_corpus(
    folder: Path,
    key: str,
    src: str,
    tgt: str,
    encoding: CorpusEncoding,
    threads: int,
    progress,
) -> None:
    """Encode and filter the corpus into `folder` (a fresh, empty folder), in chunks of pairs on
    `threads` SentencePiece threads, and write its meta.json last. `progress` is an
    EncodeProgress (or anything with its `update`). A tag id goes in front of every source,
    counted in its length and toward max_tokens (see `filter_pairs`). With a sampling, the
    segmentation is sampled (`encode_chunk`) and filtered as it came out. With `encoding.links`,
    that file's word links of every kept pair are written as piece links (`LINK_ARRAYS`); a
    links file with another number of lines, or a line that is not links, is a DataError."""
    tokenizer, tag = encoding.tokenizer, encoding.tag
    reader = ParallelReader(src, tgt)
    links = LinkWriter(folder, encoding.links, tokenizer, tag is not None) if encoding.links else None
    dtype, length_dtype = token_dtype(tokenizer.vocab_size), np.dtype(np.uint16 if encoding.max_tokens < 1 << 16 else np.int32)
    writers = {
        name: ArrayWriter(folder / name, dtype if name.endswith("tokens") else length_dtype if name.endswith("lengths") else np.int64)
        for name in ARRAYS
    }
    try:
        report = FilterReport(0, 0, 0, 0)
        pairs = 0
        ends = {"src": 0, "tgt": 0}
        writers["src.offsets"].write(np.zeros(1, np.int64))
        writers["tgt.offsets"].write(np.zeros(1, np.int64))
        for s_text, t_text, ids in encoded_chunks(reader, tokenizer, threads, encoding.sampling):
            lengths = {side: np.fromiter(map(len, ids[side]), np.int64, count=len(ids[side])) for side in ids}
            keep, chunk_report = filter_pairs(
                lengths["src"], lengths["tgt"], encoding.max_tokens, encoding.max_ratio, src_extra=int(tag is not None)
            )
            if tag is not None:
                ids["src"] = [[tag, *s] for s in ids["src"]]
                lengths["src"] += 1
            report += chunk_report
            kept = np.flatnonzero(keep).tolist()
            if links is not None:
                links.write(s_text, t_text, ids, kept, pairs)
            for side in ("src", "tgt"):
                kept_lengths = lengths[side][keep]
                writers[f"{side}.tokens"].write(flat([ids[side][i] for i in kept], dtype, int(kept_lengths.sum())))
                writers[f"{side}.lengths"].write(kept_lengths)
                writers[f"{side}.offsets"].write(ends[side] + np.cumsum(kept_lengths))
                ends[side] += int(kept_lengths.sum())
            pairs += len(s_text)
            progress.update(reader.bytes_read, pairs)
        if links is not None:
            links.finish(pairs)
    finally:
        for writer in writers.values():
            writer.close()
        if links is not None:
            links.close()
    meta = {
        "format": FORMAT,
        "key": key,
        "pairs": report.kept,
        "lines": pairs,
        "report": asdict(report),
        "dtypes": {name: w.dtype.name for name, w in (writers | (links.writers if links else {})).items()},
        "counts": {name: w.count for name, w in (writers | (links.writers if links else {})).items()},
        "vocab_size": tokenizer.vocab_size,
        "tag": tag,
        "source": {"src": str(src), "tgt": str(tgt)},
        **({"sampling": asdict(encoding.sampling)} if encoding.sampling is not None else {}),
        **({"links": {"source": str(encoding.links), "linked_pairs": links.linked}} if links is not None else {}),
    }
    with open(folder / "meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
