"""A run's tokenizer: the run folder's own, the bundle's it fine-tunes, a given SentencePiece model,
one trained on the same data before (kept in the corpus cache), or SentencePiece trained anew on
a seeded sample of the corpora; and the checks that it suits tagged corpora and subword sampling."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from xformer_cli.config import CorpusConfig, TrainConfig
from xformer_cli.errors import ConfigError, ModelLoadError
from xformer_cli.text.files import ParallelReader
from xformer_cli.text.tokenizer import TAG_PIECE, AnyTokenizer, Tokenizer, has_tokenizer, load_tokenizer, train_tokenizer
from xformer_cli.training.checkpoint import atomic_write
from xformer_cli.training.distributed import Distributed
from xformer_cli.training.run_folder import RunFolder


def corpus_sentences(corpora: Iterable[CorpusConfig]) -> Iterator[str]:
    """Every sentence of the corpora, source and target in turn, read as a stream."""
    for corpus in corpora:
        for src, tgt in ParallelReader(corpus.src, corpus.tgt).chunks(10_000):
            for s, t in zip(src, tgt):
                yield s
                yield t


def prepare_tokenizer(
    cfg: TrainConfig,
    run: RunFolder,
    dist: Distributed,
    vocab_size: int,
    sentences: Callable[[], Iterable[str]],
    log: Callable[[str], None],
    given: AnyTokenizer | None = None,
    cache_path: Path | None = None,
    console=None,
) -> AnyTokenizer:
    """The run's tokenizer, made once: rank 0 takes the run folder's own, the `given` one,
    `cfg.spm_model`, the one trained on the same data before (`cache_path`), or trains
    SentencePiece on a seeded sample of `sentences()` (and keeps it at `cache_path`); it writes
    it to the run folder atomically. Every other rank waits for the file and loads it."""
    from xformer_cli.progress import status

    if dist.main and not has_tokenizer(run.out):
        tokenizer = given or (Tokenizer.load(cfg.spm_model) if cfg.spm_model else None) or cached_tokenizer(cache_path, log)
        if tokenizer is None:
            started = time.perf_counter()
            with status(
                console, f"training a {vocab_size}-piece SentencePiece model on a seeded sample of up to {cfg.spm_sample:,} sentences"
            ):
                tokenizer = train_tokenizer(sentences(), vocab_size, max_sentences=cfg.spm_sample, seed=cfg.seed)
            log(
                f"trained a {tokenizer.vocab_size}-piece SentencePiece model in {time.perf_counter() - started:.0f} s, on a seeded "
                f"sample of up to {cfg.spm_sample:,} sentences"
            )
            if cache_path is not None:
                try:
                    cache_path.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write(cache_path, tokenizer.save)
                except OSError as err:
                    log(f"warning: could not keep the SentencePiece model in the cache ({err.strerror or err})")
        for name, data in tokenizer.files().items():  # the marker file (spm.model or vocab.json) last
            atomic_write(run.out / name, lambda tmp, data=data: Path(tmp).write_bytes(data))
    dist.barrier()
    return load_tokenizer(run.out)


def cached_tokenizer(path: Path | None, log: Callable[[str], None]) -> Tokenizer | None:
    if path is None or not path.exists():
        return None
    try:
        tokenizer = Tokenizer.load(path)
    except ModelLoadError:
        return None  # damaged: train again
    log(f"SentencePiece model: trained on the same data before, {path}")
    return tokenizer


def tokenizer_origin(cfg: TrainConfig) -> str:
    """Where a run's tokenizer came from, for error messages."""
    return (
        f"the bundle --init-from {cfg.init_from}" if cfg.init_from else f"spm_model {cfg.spm_model}" if cfg.spm_model else "this run folder"
    )


def check_sampling(tokenizer: AnyTokenizer, cfg: TrainConfig) -> None:
    """Subword sampling needs a joint BPE tokenizer; else a ConfigError saying what the run's is."""
    problem = tokenizer.sampling_problem() if cfg.subword_alpha else None
    if problem:
        raise ConfigError(
            f"subword_alpha {cfg.subword_alpha:g} samples BPE-dropout segmentations of one joint BPE SentencePiece model, as xformer "
            f"trains; the tokenizer of {tokenizer_origin(cfg)} is {problem}: set subword_alpha = 0"
        )


def check_tags(specs: tuple[CorpusConfig, ...], tokenizer: AnyTokenizer, cfg: TrainConfig) -> None:
    """A tagged corpus needs a tokenizer that reserves the tag piece; else a ConfigError naming the
    corpus and where the tokenizer came from."""
    tagged = [s.label for s in specs if s.tag]
    if tagged and tokenizer.tag_id is None:
        origin = tokenizer_origin(cfg)
        raise ConfigError(
            f"corpus {tagged[0]!r} has tag = true, but the tokenizer of {origin} reserves no {TAG_PIECE} piece (it was made before "
            "tagged corpora existed): drop the tag or use a tokenizer trained by this version"
        )
