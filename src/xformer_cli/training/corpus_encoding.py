"""Encoding a corpus into a cache entry's arrays: chunk by chunk on SentencePiece's threads (or,
for a sampled segmentation, BPE-dropout worker processes), filtered, written end to end with the
offsets and lengths of every sentence, and meta.json last (see `corpus_cache.py` for the layout)."""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from xformer_cli.text.files import ParallelReader
from xformer_cli.text.tokenizer import AnyTokenizer, sample_in_worker, sampling_seed, start_sampling_worker
from xformer_cli.training.filtering import FilterReport, filter_pairs

FORMAT = 1  # of a cache entry; part of every key
CHUNK_PAIRS = 20_000  # pairs encoded at a time: big enough for SentencePiece's threads, small in memory
ARRAYS = ("src.tokens", "tgt.tokens", "src.offsets", "tgt.offsets", "src.lengths", "tgt.lengths")


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
) -> Iterator[tuple[list[str], dict[str, list[list[int]]]]]:
    """(source lines, piece ids) of each chunk of the corpus, in order. A sampled segmentation of
    more than one chunk is drawn by `threads` worker processes (spawned, each with a copy of the
    tokenizer), a few chunks ahead; the ids do not depend on how many (each chunk has its seeds)."""
    chunks = enumerate(reader.chunks(CHUNK_PAIRS))
    first = next(chunks, None)
    second = next(chunks, None) if first is not None else None
    if sampling is None or threads <= 1 or second is None:
        for chunk, (src, tgt) in (c for c in (first, second) if c is not None):
            yield src, encode_chunk(tokenizer, src, tgt, threads, sampling, chunk)
        for chunk, (src, tgt) in chunks:
            yield src, encode_chunk(tokenizer, src, tgt, threads, sampling, chunk)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from itertools import chain

    with ProcessPoolExecutor(threads, multiprocessing.get_context("spawn"), start_sampling_worker, (tokenizer.model_proto,)) as pool:
        pending: deque = deque()
        try:
            for chunk, (src, tgt) in chain((first, second), chunks):
                pending.append((src, pool.submit(sample_in_worker, src, tgt, sampling.alpha, chunk_seeds(sampling, chunk))))
                if len(pending) > 2 * threads:
                    done_src, future = pending.popleft()
                    yield done_src, dict(zip(("src", "tgt"), future.result()))
            while pending:
                done_src, future = pending.popleft()
                yield done_src, dict(zip(("src", "tgt"), future.result()))
        finally:
            pool.shutdown(cancel_futures=True)


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
    segmentation is sampled (`encode_chunk`) and filtered as it came out."""
    tokenizer, tag = encoding.tokenizer, encoding.tag
    reader = ParallelReader(src, tgt)
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
        for s_text, ids in encoded_chunks(reader, tokenizer, threads, encoding.sampling):
            lengths = {side: np.fromiter(map(len, ids[side]), np.int64, count=len(ids[side])) for side in ids}
            keep, chunk_report = filter_pairs(
                lengths["src"], lengths["tgt"], encoding.max_tokens, encoding.max_ratio, src_extra=int(tag is not None)
            )
            if tag is not None:
                ids["src"] = [[tag, *s] for s in ids["src"]]
                lengths["src"] += 1
            report += chunk_report
            kept = np.flatnonzero(keep).tolist()
            for side in ("src", "tgt"):
                kept_lengths = lengths[side][keep]
                writers[f"{side}.tokens"].write(flat([ids[side][i] for i in kept], dtype, int(kept_lengths.sum())))
                writers[f"{side}.lengths"].write(kept_lengths)
                writers[f"{side}.offsets"].write(ends[side] + np.cumsum(kept_lengths))
                ends[side] += int(kept_lengths.sum())
            pairs += len(s_text)
            progress.update(reader.bytes_read, pairs)
    finally:
        for writer in writers.values():
            writer.close()
    meta = {
        "format": FORMAT,
        "key": key,
        "pairs": report.kept,
        "lines": pairs,
        "report": asdict(report),
        "dtypes": {name: w.dtype.name for name, w in writers.items()},
        "counts": {name: w.count for name, w in writers.items()},
        "vocab_size": tokenizer.vocab_size,
        "tag": tag,
        "source": {"src": str(src), "tgt": str(tgt)},
        **({"sampling": asdict(encoding.sampling)} if encoding.sampling is not None else {}),
    }
    with open(folder / "meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
