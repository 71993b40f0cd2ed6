"""The data of a training run: its tokenizer, its corpora (encoded once into the cache and
memory-mapped), the validation set, and the batches of each epoch.

An epoch takes round(weight × pairs) pairs of each corpus (pairs counted after filtering):
weight 1 is every pair once, 2 every pair twice, 0.5 a fresh seeded half in each epoch. Its
pairs are sorted by length (ties broken at random), cut into token-budget batches and the
batches shuffled: a pure function of (lengths, weights, budget, seed, epoch), held in numpy
arrays, so a resumed run finds the same batches and needs to remember only (epoch, batch index).

A corpus marked `tag` (synthetic) is encoded with the tokenizer's tag id in front of every source,
into a cache entry of its own: its lengths, and so its batches, count the tag.

Under torchrun, rank 0 trains or loads the tokenizer and encodes the corpora; the others wait,
then load the same tokenizer and map the same cache files. Every rank computes the same batches
and takes every world-th of them, all ranks equally many.

Subword regularization (`subword_alpha` > 0): each epoch trains on a sampled segmentation of its
own, seeded by (seed, epoch, corpus), encoded into a cache entry of its own when the epoch
starts (rank 0 again; `TrainingData.for_epoch`) and filtered as it came out, so an epoch counts
the pairs that fit with that segmentation. The epoch's batches come from that entry's lengths,
so they are still a pure function of the run's settings and the epoch: a resumed run finds, or
encodes again, the same entry and the same batches. Entries of earlier epochs are deleted as
an epoch starts. The plain segmentation stays encoded too: it gives the corpus statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xformer_cli.batching import Batch, batch_bounds, collate
from xformer_cli.config import CorpusConfig, TrainConfig
from xformer_cli.errors import RunError
from xformer_cli.model.config import ModelConfig
from xformer_cli.text.files import read_parallel
from xformer_cli.text.tokenizer import TAG_PIECE, AnyTokenizer
from xformer_cli.training.corpus_cache import (
    EncodedCorpus,
    StaleCache,
    cache_root,
    cached_corpus,
    corpus_key,
    entry_folder,
    file_digest,
    open_encoded,
    remove_entry,
    tokenizer_cache_path,
)
from xformer_cli.training.corpus_encoding import CorpusEncoding, Sampling
from xformer_cli.training.distributed import Distributed
from xformer_cli.training.guided_alignment import alignment_targets
from xformer_cli.training.run_folder import RunFolder
from xformer_cli.training.run_tokenizer import check_sampling, check_tags, corpus_sentences, prepare_tokenizer


@dataclass(frozen=True)
class EpochBatches:
    """One epoch's batches, in training order: batch k is the pairs order[starts[k]:ends[k]]."""

    order: np.ndarray  # (pairs of the epoch,) pair ids sorted by length
    starts: np.ndarray  # (batches,)
    ends: np.ndarray  # (batches,)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, k: int) -> np.ndarray:
        return self.order[self.starts[k] : self.ends[k]]

    def shard(self, rank: int, world: int) -> "EpochBatches":
        """Every world-th batch from `rank` on, cut so that every rank has equally many."""
        usable = len(self) // world * world
        return EpochBatches(self.order, self.starts[rank:usable:world], self.ends[rank:usable:world])


def epoch_pairs(sizes: list[int], weights: list[float], seed: int, epoch: int) -> np.ndarray:
    """The pair ids of one epoch over corpora of `sizes` pairs (ids numbered across the corpora in
    order): corpus c gives round(weights[c] × sizes[c]) pairs, every pair floor(weight) times
    plus a sample without replacement, fresh each epoch, for the fraction. Shape (pairs,)."""
    parts, first = [], 0
    for c, (n, weight) in enumerate(zip(sizes, weights)):
        count = int(weight * n + 0.5)
        whole, rest = divmod(count, n) if n else (0, 0)
        ids = np.arange(first, first + n, dtype=np.int64)
        parts += [ids] * whole
        if rest:
            rng = np.random.default_rng([seed, epoch, 1, c])
            parts.append(first + np.sort(rng.choice(n, rest, replace=False)))
        first += n
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def make_batches(
    src_lens: np.ndarray, tgt_lens: np.ndarray, batch_tokens: int, seed: int, epoch: int, pairs: np.ndarray | None = None
) -> EpochBatches:
    """Token-budget batches of `pairs` (default: all), bucketed by length, in a shuffled order
    fixed by (seed, epoch).

    `src_lens`/`tgt_lens` are the sequence lengths the model sees (pieces + EOS or BOS). Pairs are
    sorted by their size max(source, target), then target length, ties broken at random; cut
    into batches whose padded size (rows × largest size) stays within `batch_tokens`
    (`data.batch_bounds`); and the batches are shuffled."""
    ids = np.arange(len(src_lens), dtype=np.int64) if pairs is None else np.asarray(pairs, dtype=np.int64)
    rng = np.random.default_rng([seed, epoch])
    tgt = np.asarray(tgt_lens)[ids].astype(np.int32)
    size = np.maximum(np.asarray(src_lens)[ids].astype(np.int32), tgt)
    # One int64 key per pair, (size, target length, random tie) in that order of importance: a
    # single argsort is four times faster than np.lexsort of the three, and the keys are unique.
    n, longest = len(ids), int(size.max(initial=0)) + 1
    if longest * longest * max(n, 1) >= 1 << 62:
        raise ValueError(f"too many pairs ({n}) of such lengths ({longest}) to sort by one int64 key")
    key = size.astype(np.int64)
    key *= longest
    key += tgt
    key *= n
    key += rng.permutation(n)
    order = np.argsort(key)
    del key, tgt
    bounds = batch_bounds(size[order], batch_tokens)
    shuffled = rng.permutation(len(bounds) - 1)
    return EpochBatches(ids[order], bounds[:-1][shuffled], bounds[1:][shuffled])


@dataclass(frozen=True)
class CorpusStats:
    """What the run folder and the model card say about one training corpus."""

    name: str
    src: str
    tgt: str
    weight: float
    pairs: int  # after filtering
    report: str  # the filter's report
    tagged: bool = False  # synthetic: its sources start with the tag piece (absent from older run.json files)


def epoch_sampling(alpha: float, seed: int, epoch: int, corpus: int) -> Sampling | None:
    """The sampled segmentation of corpus number `corpus` in `epoch` (None: the plain one, alpha 0)."""
    if not alpha:
        return None
    return Sampling(alpha, int(np.random.SeedSequence([seed, epoch, 2, corpus]).generate_state(1, np.uint64)[0] >> 1))


@dataclass(frozen=True)
class Encoding:
    """How a run encodes its corpora into the cache (again for every epoch, when it samples)."""

    root: Path  # the cache folder
    digests: tuple[tuple[str, str], ...]  # sha256 of each corpus's source and target file (rank 0 only; the others never encode)
    max_tokens: int  # the filter's longest sentence, in pieces
    max_ratio: float  # the filter's largest length ratio
    threads: int  # SentencePiece threads (a sampled segmentation starts from the plain one)
    alpha: float = 0.0  # TrainConfig.subword_alpha: 0, every epoch the plain segmentation
    seed: int = 1  # TrainConfig.seed, of the sampled segmentations

    def sampling(self, epoch: int | None, corpus: int) -> Sampling | None:
        """Epoch `epoch`'s segmentation of corpus number `corpus` (None: plain; so is epoch None)."""
        return None if epoch is None else epoch_sampling(self.alpha, self.seed, epoch, corpus)

    def of(self, spec: CorpusConfig, tokenizer: AnyTokenizer, epoch: int | None, corpus: int) -> CorpusEncoding:
        """How corpus number `corpus` (`spec`) is encoded for `epoch` (None: the plain segmentation)."""
        tag = tokenizer.tag_id if spec.tag else None
        return CorpusEncoding(tokenizer, self.max_tokens, self.max_ratio, tag, self.sampling(epoch, corpus), spec.alignment)


def encode_corpora(
    specs: tuple[CorpusConfig, ...],
    tokenizer: AnyTokenizer,
    enc: Encoding,
    dist: Distributed,
    log: Callable[[str], None],
    console=None,
    epoch: int | None = None,
) -> list[EncodedCorpus]:
    """The corpora from the cache, plain or (with an `epoch`) in that epoch's sampled
    segmentation: rank 0 finds or encodes each entry, the others wait and map the same files."""
    if dist.main:
        corpora = [
            cached_corpus(
                enc.root,
                c.label if epoch is None else f"{c.label} (epoch {epoch + 1}, sampled)",
                c.src,
                c.tgt,
                d,
                enc.of(c, tokenizer, epoch, i),
                enc.threads,
                log,
                console,
            )
            for i, (c, d) in enumerate(zip(specs, enc.digests))
        ]
    entries = dist.share([(str(c.folder), c.key) for c in corpora] if dist.main else None)
    if not dist.main:
        try:
            corpora = [open_encoded(Path(folder), key) for folder, key in entries]
        except StaleCache as why:
            raise RunError(f"rank {dist.rank} cannot map the corpus cache rank 0 wrote ({why})") from None
    return corpora


class TrainingData:
    """The tokenizer, the memory-mapped corpora with their weights, and the validation texts."""

    def __init__(
        self,
        tokenizer: AnyTokenizer,
        corpora: list[EncodedCorpus],
        specs: tuple[CorpusConfig, ...],
        valid: tuple[list[str], list[str]] | None,
        encoding: Encoding | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.corpora = corpora
        self.specs = specs
        self.valid = valid
        self.encoding = encoding  # None: these corpora are all there is (no sampled epochs)
        sizes = [len(c) for c in corpora]
        self.first_ids = np.cumsum([0, *sizes])[:-1]  # (corpora,) the id of each corpus's first pair
        self.src_lens = np.concatenate([c.src_lengths for c in corpora])  # (pairs,) pieces, EOS not counted
        self.tgt_lens = np.concatenate([c.tgt_lengths for c in corpora])

    @property
    def pairs(self) -> int:
        return len(self.src_lens)

    def stats(self) -> list[CorpusStats]:
        return [CorpusStats(s.label, s.src, s.tgt, s.weight, len(c), str(c.report), s.tag) for s, c in zip(self.specs, self.corpora)]

    def epoch_batches(self, batch_tokens: int, seed: int, epoch: int, dist: Distributed) -> EpochBatches:
        """This rank's batches of `epoch`."""
        pairs = epoch_pairs([len(c) for c in self.corpora], [s.weight for s in self.specs], seed, epoch)
        batches = make_batches(self.src_lens + 1, self.tgt_lens + 1, batch_tokens, seed, epoch, pairs)  # + EOS / BOS
        return batches.shard(dist.rank, dist.world)

    def batch(self, pair_ids: np.ndarray, config: ModelConfig, links: bool = False) -> Batch:
        """The padded tensors of these pairs; with `links`, their alignment targets (pairs without
        word links get rows of zeros: `guided_alignment.alignment_targets`)."""
        ids = np.asarray(pair_ids, dtype=np.int64)
        which = np.searchsorted(self.first_ids, ids, side="right") - 1
        where = list(zip(which.tolist(), (ids - self.first_ids[which]).tolist()))
        pairs = [self.corpora[c].pair(i) for c, i in where]
        batch = collate([s for s, _ in pairs], [t for _, t in pairs], config.pad_id, config.bos_id, config.eos_id)
        if links:
            found = [self.corpora[c].pair_links(i) for c, i in where]
            batch.alignment = alignment_targets(found, len(pairs), batch.tgt_out.size(1), batch.src.size(1))
        return batch

    @property
    def mean_pieces(self) -> float:
        """Pieces per sentence, sources and targets together (a tag counted)."""
        return float(self.src_lens.sum(dtype=np.int64) + self.tgt_lens.sum(dtype=np.int64)) / max(2 * self.pairs, 1)

    @property
    def sampled(self) -> bool:
        """Whether each epoch trains on a sampled segmentation of its own."""
        return self.encoding is not None and self.encoding.alpha > 0

    def for_epoch(self, epoch: int, dist: Distributed, log: Callable[[str], None]) -> "TrainingData":
        """The data `epoch` trains on: these corpora, or with subword sampling the epoch's own
        sampled segmentation of them (from the cache, or encoded into it; under torchrun by rank 0,
        the others waiting), after deleting the entries of earlier epochs. Logs one line."""
        if not self.sampled:
            return self
        enc = self.encoding
        started = time.perf_counter()
        if dist.main:
            self.remove_sampled(range(epoch))
            found = all(entry_folder(enc.root, self.sampled_key(epoch, i)).exists() for i in range(len(self.specs)))
        corpora = encode_corpora(self.specs, self.tokenizer, enc, dist, log, None, epoch)
        data = TrainingData(self.tokenizer, corpora, self.specs, self.valid)
        if dist.main:
            log(
                f"epoch {epoch + 1}: sampled segmentation (subword_alpha {enc.alpha:g}), {'found in the cache' if found else 'encoded'} "
                f"in {time.perf_counter() - started:.1f} s; {data.mean_pieces:.1f} pieces per sentence (plain {self.mean_pieces:.1f}); "
                f"{data.pairs:,} pairs fit the filter (plain {self.pairs:,})"
            )
        if not data.pairs:
            raise RunError(
                f"no training pairs left after filtering epoch {epoch + 1}'s sampled segmentation "
                f"({'; '.join(str(c.report) for c in corpora)}): "
                "lower subword_alpha or raise max_tokens_per_sentence"
            )
        return data

    def sampled_key(self, epoch: int, corpus: int) -> str:
        """The cache key of corpus number `corpus` in `epoch`'s sampled segmentation (rank 0)."""
        enc = self.encoding
        return corpus_key(enc.digests[corpus], enc.of(self.specs[corpus], self.tokenizer, epoch, corpus))

    def remove_sampled(self, epochs: Iterable[int]) -> None:
        """Delete the cache entries of these epochs' sampled segmentations, where there (rank 0)."""
        if self.sampled and self.encoding.digests:
            for epoch in epochs:
                for i in range(len(self.specs)):
                    remove_entry(self.encoding.root, self.sampled_key(epoch, i))


def prepare_training_data(
    cfg: TrainConfig,
    run: RunFolder,
    dist: Distributed,
    model_config: ModelConfig,
    log: Callable[[str], None],
    console=None,
    given: AnyTokenizer | None = None,
) -> TrainingData:
    """Tokenizer, encoded corpora and validation set of a run (see the module's docstring)."""
    specs = cfg.training_corpora()
    if not specs:
        raise RunError("no training data: give --src and --tgt, or a --config recipe")
    valid = read_parallel(cfg.valid_src, cfg.valid_tgt) if cfg.valid_src else None  # small, and a bad path fails early
    root = cache_root(cfg.cache_dir)
    if dist.main:
        digests = [(file_digest(c.src), file_digest(c.tgt)) for c in specs]
        tokenizer_path = tokenizer_cache_path(root, digests, model_config.vocab_size, cfg.spm_sample, cfg.seed)
    tokenizer = prepare_tokenizer(
        cfg, run, dist, model_config.vocab_size, lambda: corpus_sentences(specs), log, given, tokenizer_path if dist.main else None, console
    )
    check_tags(specs, tokenizer, cfg)
    check_sampling(tokenizer, cfg)
    enc = Encoding(
        root,
        tuple(digests) if dist.main else (),
        min(cfg.max_tokens_per_sentence, model_config.max_pieces),
        cfg.max_length_ratio,
        torch.get_num_threads(),
        cfg.subword_alpha,
        cfg.seed,
    )
    corpora = encode_corpora(specs, tokenizer, enc, dist, log, console)
    if dist.main:
        for spec, corpus in zip(specs, corpora):
            log(f"training data {spec.label}: {corpus.report} (weight {spec.weight:g}{f', tagged {TAG_PIECE}' if spec.tag else ''})")
    if not sum(len(c) for c in corpora):
        raise RunError(f"no training pairs left after filtering ({'; '.join(str(c.report) for c in corpora)})")
    return TrainingData(tokenizer, corpora, specs, valid, enc)
