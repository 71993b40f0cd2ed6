"""Encoded corpora on disk: each corpus encoded once, kept as compact token arrays plus offsets,
and memory-mapped by training (fairseq's binarized data, kept in a cache like Hugging Face
datasets' ~/.cache/huggingface/datasets).

The cache is keyed by content, never by file name: the sha256 of the corpus files' bytes and of
the SentencePiece model, the filter settings, the tag (for a synthetic corpus), the sampling (for
a sampled segmentation: its alpha, seed, chunk size and sampler), the file of word links (for
guided alignment) and the format version. A repeated or resumed run
on the same data finds its corpus there; a changed file, tokenizer or filter makes a new entry.

A sampled segmentation (subword regularization: `Sampling`, BPE-dropout) is encoded chunk by
chunk, each chunk's source and target drawn with a seed of their own made from the sampling's
seed, the chunk's index and the side, so the same key holds the same ids in any process. BPE-dropout
runs in Python, so a corpus of several chunks is sampled by `threads` worker processes at once.

    <cache>/                        --cache-dir, else $XFORMER_CACHE, else $XDG_CACHE_HOME/xformer,
                                    else ~/.cache/xformer
      corpora/<key>/                one encoded corpus (the pairs the filter kept)
        meta.json                   format, key, counts, dtypes, file sizes, filter report, sources
        src.tokens, tgt.tokens      every sentence's piece ids one after another (uint16, or int32
                                    for a vocabulary over 65,536 pieces); a tagged corpus's
                                    sources start with the tag id
        src.offsets, tgt.offsets    int64, pairs + 1: sentence i is tokens[offsets[i]:offsets[i + 1]]
        src.lengths, tgt.lengths    pieces per sentence (uint16, or int32), for batching
        links, links.offsets        with a file of word links (guided alignment): (target piece,
                                    source piece) pairs end to end (uint16), and int64, pairs + 1:
                                    pair i's links are links[2 * offsets[i]:2 * offsets[i + 1]]
      tokenizers/<key>.model        SentencePiece models trained on a corpus, keyed by the corpus
                                    files, vocabulary size, sample size and seed

An entry is built in a temporary sibling folder, fsynced and renamed into place, under a lock
(two runs never encode the same corpus at once); opening one checks its meta.json and the size
of every array, so a truncated, foreign or half-written entry is rebuilt, never trained on.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xformer_cli.errors import DataError
from xformer_cli.text.bpe_dropout import SAMPLER
from xformer_cli.text.tokenizer import TAG_PIECE
from xformer_cli.training import corpus_encoding  # CHUNK_PAIRS read when a key is made
from xformer_cli.training.checkpoint import fsync_folder
from xformer_cli.training.corpus_encoding import ARRAYS, FORMAT, LINK_ARRAYS, CorpusEncoding, encode_corpus
from xformer_cli.training.filtering import FilterReport


def cache_root(configured: str = "") -> Path:
    """The cache folder: `configured` (TrainConfig.cache_dir), else $XFORMER_CACHE, else
    $XDG_CACHE_HOME/xformer, else ~/.cache/xformer."""
    if configured:
        return Path(configured)
    if os.environ.get("XFORMER_CACHE"):
        return Path(os.environ["XFORMER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xformer"


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    return digest.hexdigest()


def content_key(**parts: object) -> str:
    """A cache key: sha256 of the named parts and the format version."""
    return hashlib.sha256(json.dumps({"format": FORMAT, **parts}, sort_keys=True).encode()).hexdigest()


def tokenizer_cache_path(root: Path, corpus_digests: list[tuple[str, str]], vocab_size: int, sample: int, seed: int) -> Path:
    """Where a SentencePiece model trained on these corpora (sha256 of source and target files,
    in order) with these settings, reserved pieces and this SentencePiece version is kept (a model
    cached before the tag piece was reserved is not taken for one that has it)."""
    import sentencepiece

    key = content_key(
        kind="tokenizer",
        corpora=corpus_digests,
        vocab_size=vocab_size,
        sample=sample,
        seed=seed,
        sentencepiece=sentencepiece.__version__,
        reserved=[TAG_PIECE],
    )
    return root / "tokenizers" / f"{key[:32]}.model"


def corpus_key(digests: tuple[str, str], encoding: CorpusEncoding) -> str:
    """The content key of the corpus with these sha256 `digests` (source, target) in this
    `encoding`: untagged, plain keys without links are those of earlier versions."""
    e = encoding
    extra: dict[str, object] = {"tag": e.tag} if e.tag is not None else {}
    if e.sampling is not None:
        chunks = corpus_encoding.CHUNK_PAIRS
        extra["sampling"] = {"alpha": e.sampling.alpha, "seed": e.sampling.seed, "chunk_pairs": chunks, "sampler": SAMPLER}
    if e.links:
        extra["links"] = file_digest(e.links)
    filtered = {"max_tokens": e.max_tokens, "max_ratio": e.max_ratio}
    return content_key(kind="corpus", src=digests[0], tgt=digests[1], tokenizer=e.tokenizer.digest(), **filtered, **extra)


def entry_folder(root: Path, key: str) -> Path:
    """Where the entry of `key` lives under the cache `root`."""
    return root / "corpora" / key[:32]


def remove_entry(root: Path, key: str) -> bool:
    """Delete the entry of `key` unless a run holds its lock (encoding or opening it) right now;
    whether it was there and is gone. A run that has it memory-mapped keeps reading it (POSIX)."""
    from filelock import FileLock, Timeout

    folder = entry_folder(root, key)
    if not folder.exists():
        return False
    lock = FileLock(folder.parent / f".{folder.name}.lock", thread_local=False)
    try:
        lock.acquire(timeout=0)
    except (Timeout, OSError):
        return False
    try:
        shutil.rmtree(folder, ignore_errors=True)
        return not folder.exists()
    finally:
        lock.release()


@dataclass
class EncodedCorpus:
    """One encoded corpus, memory-mapped: the pairs the filter kept, in corpus order."""

    folder: Path
    key: str  # the content key it was made for
    src_tokens: np.ndarray  # (source pieces,)
    tgt_tokens: np.ndarray  # (target pieces,)
    src_offsets: np.ndarray  # (pairs + 1,)
    tgt_offsets: np.ndarray  # (pairs + 1,)
    src_lengths: np.ndarray  # (pairs,)
    tgt_lengths: np.ndarray  # (pairs,)
    report: FilterReport
    links: np.ndarray | None = None  # (2 × links,) (target piece, source piece) pairs, where the corpus has word links
    links_offsets: np.ndarray | None = None  # (pairs + 1,)

    def __len__(self) -> int:
        return len(self.src_lengths)

    def pair_links(self, i: int) -> np.ndarray:
        """The (target piece, source piece) links of pair `i`, none without links. Shape (links, 2)."""
        if self.links is None:
            return np.zeros((0, 2), dtype=np.int64)
        return np.asarray(self.links[2 * self.links_offsets[i] : 2 * self.links_offsets[i + 1]], dtype=np.int64).reshape(-1, 2)

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The source and target piece ids of pair `i` (views into the mapped files)."""
        return (
            self.src_tokens[self.src_offsets[i] : self.src_offsets[i + 1]],
            self.tgt_tokens[self.tgt_offsets[i] : self.tgt_offsets[i + 1]],
        )


class StaleCache(Exception):
    """A cache entry that must not be used (missing, damaged, foreign or of another format)."""


def open_encoded(folder: Path, key: str) -> EncodedCorpus:
    """Map the entry in `folder` after checking it against `key` and its own meta.json; raises
    StaleCache saying what is wrong with it."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StaleCache("no meta.json") from None
    except (OSError, ValueError) as err:
        raise StaleCache(f"unreadable meta.json ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StaleCache(f"format {meta.get('format') if isinstance(meta, dict) else '?'}, not {FORMAT}")
    if meta.get("key") != key:
        raise StaleCache("made for other files, tokenizer or filter settings")
    try:
        arrays = {}
        for name in ARRAYS + (LINK_ARRAYS if "links" in meta else ()):
            dtype, count = np.dtype(meta["dtypes"][name]), int(meta["counts"][name])
            size = (folder / name).stat().st_size
            if size != count * dtype.itemsize:
                raise StaleCache(f"{name} holds {size} bytes, not {count * dtype.itemsize}")
            arrays[name] = np.memmap(folder / name, dtype=dtype, mode="r") if count else np.zeros(0, dtype)
        report = FilterReport(**meta["report"])
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise StaleCache(f"incomplete ({err})") from None
    corpus = EncodedCorpus(folder, key, *(arrays[name] for name in ARRAYS), report=report)
    pairs = len(corpus)
    if "links" in meta:
        corpus.links, corpus.links_offsets = arrays["links"], arrays["links.offsets"]
        offsets = corpus.links_offsets
        if len(offsets) != pairs + 1 or offsets[0] != 0 or 2 * offsets[-1] != len(corpus.links):
            raise StaleCache("links and their offsets do not add up")
    for side in ("src", "tgt"):
        offsets, lengths, tokens = arrays[f"{side}.offsets"], arrays[f"{side}.lengths"], arrays[f"{side}.tokens"]
        if len(offsets) != pairs + 1 or offsets[0] != 0 or offsets[-1] != len(tokens) or int(lengths.sum(dtype=np.int64)) != len(tokens):
            raise StaleCache(f"{side} offsets and lengths do not add up")
    if pairs != report.kept:
        raise StaleCache(f"{pairs} pairs, but the filter kept {report.kept}")
    return corpus


@contextmanager
def entry_lock(folder: Path, name: str, log: Callable[[str], None]) -> Iterator[None]:
    """Hold the lock of the cache entry `folder` while inside: one run encodes or opens an entry
    at a time, and a run that finds it taken says so and waits."""
    from filelock import FileLock, Timeout

    corpora = folder.parent
    try:
        corpora.mkdir(parents=True, exist_ok=True)
        lock = FileLock(corpora / f".{folder.name}.lock", thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log(f"corpus {name}: another run is encoding it; waiting for that")
            lock.acquire()
    except OSError as err:
        raise DataError(f"cannot use the corpus cache {corpora}: {err.strerror or err}") from None
    try:
        yield
    finally:
        lock.release()


def build_entry(
    folder: Path,
    key: str,
    name: str,
    src: str,
    tgt: str,
    encoding: CorpusEncoding,
    threads: int,
    console,
) -> EncodedCorpus:
    """Encode the corpus into a temporary folder beside `folder`, rename it into place (so an
    entry is whole or absent), and open it. Run under the entry's lock."""
    from xformer_cli.progress import EncodeProgress

    corpora = folder.parent
    for stale in corpora.glob(f".{folder.name}.tmp-*"):  # left by a run that died while encoding
        shutil.rmtree(stale, ignore_errors=True)
    tmp = corpora / f".{folder.name}.tmp-{os.getpid()}"
    try:
        tmp.mkdir()
        with EncodeProgress(console, name, os.path.getsize(src)) as progress:
            encode_corpus(tmp, key, src, tgt, encoding, threads, progress)
        fsync_folder(tmp)
        os.rename(tmp, folder)
        fsync_folder(corpora)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if err.errno == errno.ENOSPC:
            raise DataError(
                f"no space left on the device while encoding {src} into the corpus cache {corpora}; free space there or choose another "
                "cache folder (XFORMER_CACHE, or cache_dir in the recipe)"
            ) from None
        raise DataError(f"cannot write the corpus cache {corpora}: {err.strerror or err}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        corpus = open_encoded(folder, key)
    except StaleCache as why:
        raise DataError(f"the corpus cache entry just written to {folder} does not read back ({why})") from None
    progress.finished(str(corpus.report))
    return corpus


def cached_corpus(
    root: Path,
    name: str,
    src: str,
    tgt: str,
    digests: tuple[str, str],
    encoding: CorpusEncoding,
    threads: int,
    log: Callable[[str], None],
    console=None,
) -> EncodedCorpus:
    """The encoded corpus `src`/`tgt` (with sha256 `digests`) in this `encoding` from the cache
    under `root`, encoding it first when the cache has no sound entry for it. A tagged or sampled
    encoding is another entry than the plain one.

    A full disk (or any other write error) while encoding is a DataError, and leaves nothing
    behind but the lock file."""
    key = corpus_key(digests, encoding)
    folder = entry_folder(root, key)
    with entry_lock(folder, name, log):
        try:
            corpus = open_encoded(folder, key)
            log(f"corpus {name}: encoded before, mapping {folder}")
            return corpus
        except StaleCache as why:
            if folder.exists():
                log(f"corpus {name}: the cache entry {folder} is unusable ({why}); encoding again")
                shutil.rmtree(folder, ignore_errors=True)
        return build_entry(folder, key, name, src, tgt, encoding, threads, console)
