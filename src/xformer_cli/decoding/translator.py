"""Translator: text in, text out — the one path used by `translate`, `evaluate` and validation."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import torch

from xformer_cli.batching import cut_batches, pad_with_eos
from xformer_cli.bundles.bundle import Bundle, load_bundle
from xformer_cli.bundles.language_codes import THREE_LETTER, same_language, two_letter
from xformer_cli.bundles.shortlist import SHORTLIST_FILE
from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.ctranslate2_engine import ENGINES, CTranslate2Engine
from xformer_cli.decoding.search import Hypothesis, search
from xformer_cli.decoding.shortlist import restrict
from xformer_cli.decoding.source_attention import PieceAttention
from xformer_cli.decoding.workers import WorkerPool, processes_available
from xformer_cli.devices import resolve_device
from xformer_cli.errors import ConfigError
from xformer_cli.model.packed import output_projection
from xformer_cli.text.language_tags import split_language_tag
from xformer_cli.text.sentences import split_sentences
from xformer_cli.text.spans import Masked, needs_model, protect, restore


def share_threads(threads: int | None, workers: int) -> None:
    """Give each of `workers` workers its share of `threads` torch threads (all torch has where
    None); with one worker and no `threads`, torch's own choice stays."""
    if threads or workers > 1:
        torch.set_num_threads(max(1, (threads or torch.get_num_threads()) // workers))


def check_workers(workers: int) -> None:
    """A ConfigError unless `workers` is a usable number of workers (at least 1)."""
    if workers < 1:
        raise ConfigError(f"workers must be at least 1 (got {workers})")


@dataclass(frozen=True)
class Translation:
    text: str
    score: float
    # With DecodeConfig.source_attention, for a line translated as one segment: its pieces and attention.
    pieces: PieceAttention | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LineWarning:
    """A warning about one input line (numbered from 1 within the texts given)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class Segment:
    """One model input: a sentence of input line `line`, or a part of an over-long sentence."""

    line: int  # the input line it comes from
    sentence: int  # the sentence it belongs to, numbered over all lines
    masked: Masked  # that sentence with its spans held back
    ids: list[int]  # what the model translates (empty: nothing to translate)


def piece_attention(segment: Segment, hypothesis: Hypothesis) -> PieceAttention | None:
    """What the search saw and chose for a segment, where it recorded its attention."""
    if hypothesis.attention is None:
        return None
    return PieceAttention(tuple(segment.ids), hypothesis.tokens, hypothesis.attention)


class Translator:
    """A loaded bundle ready to translate lists of sentences.

    >>> Translator.load("models/de-en-general").translate(["Guten Tag"])

    With `workers` > 1 on the CPU it keeps worker processes once it has started them: `close()`
    it, or use it in a `with` block (at the latest they end when the program does).
    """

    def __init__(self, bundle: Bundle, device: str | torch.device = "cpu", workers: int = 1, engine: str = "xformer") -> None:
        check_workers(workers)
        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
        self.bundle = bundle
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.model = bundle.model.to(self.device).eval()
        self.project = output_projection(self.model.output_weight, self.model.output_bias)  # packed for oneDNN on CPU
        self.output = (self.model.output_weight, self.model.output_bias)  # float, kept for the shortlist if the model is quantized
        self.tokenizer = bundle.tokenizer
        self.decode_config = bundle.decode
        self.workers = workers  # batches searched at once, each in a process (CPU, Linux) or thread of its own
        self._pool: WorkerPool | None = None  # started at the first search of several batches
        self.engine = engine
        self._ctranslate2: CTranslate2Engine | None = None  # made at the first search with engine "ctranslate2"
        self.compute_type = "default"  # CTranslate2's; "int8" after quantize("int8")
        self._pool_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        ref: str,
        revision: str | None = None,
        device: str = "auto",
        quantize: str | None = None,
        workers: int = 1,
        engine: str = "xformer",
    ) -> "Translator":
        """A translator for a bundle folder or Hub id; `quantize="int8"` makes linear layers dynamic int8 (CPU).

        `workers` > 1 searches that many batches at once (what CTranslate2 calls inter_threads and
        Marian's --cpu-threads do): on the CPU under Linux in worker processes forked from this
        one, which share the loaded weights; on a GPU, or where there is no fork, in threads.
        Each worker uses `torch.get_num_threads()` threads as set when the workers start (the
        first search of several batches), so on the CPU set that to cores // workers.
        """
        translator = cls(load_bundle(ref, revision), device, workers, engine)
        if translator.device.type == "cpu":  # one-query decoding steps run faster written out than fused on CPU
            translator.model.set_fused_attention(False)
        if quantize is not None:
            translator.quantize(quantize)
        return translator

    def quantize(self, kind: str) -> None:
        """Dynamic int8 quantization of the linear layers (weights int8, activations quantized on the fly)."""
        if kind != "int8":
            raise ConfigError(f"unknown quantization {kind!r} (only int8)")
        if self.device.type != "cpu":
            raise ConfigError("--quantize int8 runs on the CPU only (use --device cpu)")
        if self.engine == "ctranslate2":
            self.compute_type, self._ctranslate2 = "int8", None  # CTranslate2 quantizes as it loads
            return
        self.close()  # workers started before would keep the float model
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's notice about moving to torchao
            self.model = torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)

    def translate(self, texts: Sequence[str], beam_size: int | None = None, **options) -> list[str]:
        """One translation per input text, in order (empty text gives empty text)."""
        config = self.config(beam_size=beam_size, **options)
        return [nbest[0].text for nbest in self.translate_nbest(texts, config)]

    def config(self, **options) -> DecodeConfig:
        """The bundle's decoding defaults with the given options (None keeps a default). Sampling
        gives one translation per sentence: `sample=True` without a beam size or n-best sets both
        to 1 (the bundle's beam size is for search); naming another is an error."""
        given = {k: v for k, v in options.items() if v is not None}
        if given.get("sample"):
            given = {"beam_size": 1, "n_best": 1, **given}
        return self.check_shortlist(replace(self.decode_config, **given))

    def check_shortlist(self, config: DecodeConfig) -> DecodeConfig:
        """`config`, unless it asks for a lexical shortlist the bundle does not have, or the
        CTranslate2 engine is to use one (a ConfigError)."""
        if config.shortlist and self.engine == "ctranslate2":
            raise ConfigError("--shortlist is xformer's own search; --engine ctranslate2 scores every piece")
        if config.shortlist and self.bundle.shortlist is None:
            where = f" {self.bundle.path}" if self.bundle.path else ""
            raise ConfigError(
                f"--shortlist: model{where} has no lexical shortlist ({SHORTLIST_FILE}; scripts/build_shortlist.py makes one)"
            )
        return config

    def translate_nbest(
        self, texts: Sequence[str], config: DecodeConfig, warn: Callable[[LineWarning], None] | None = None
    ) -> list[list[Translation]]:
        """The config's n best translations of each text, best first.

        Each text is translated sentence by sentence, with numbers, URLs, e-mail addresses and
        emoji held back and put back (see `text/spans.py`), and the sentences are joined on one line.
        A text of several sentences, or of a sentence longer than the model takes, gets one
        translation (its n-best list repeats it); a single sentence gets its n best. A text that
        starts with a target-language tag of a multi-target model (`>>ukr<< ...`, see
        `target_tag`) has it in front of each of its sentences.
        """
        tags = self.tokenizer.language_tags.values()
        sentences = []  # (input line, sentence with its spans held back), in order
        for line, text in enumerate(texts):
            tag, text = split_language_tag(text, tags)
            for sentence in split_sentences(text) if config.split_sentences else [text] if text else []:
                masked = protect(sentence) if config.protect_spans else Masked(sentence, ())
                sentences.append((line, replace(masked, text=f"{tag} {masked.text}") if tag and needs_model(masked) else masked))
        return self._translate_sentences(sentences, len(texts), config, warn)

    def target_tag(self, language: str) -> str:
        """The piece that asks a multi-target model for `language` (`uk`, `ukr` -> `>>ukr<<`): put
        it in front of a text. "" for the target language of a one-target model; a ConfigError
        for a language the model does not write."""
        tags = self.tokenizer.language_tags
        for code in (language, THREE_LETTER.get(language, language), two_letter(language)):
            if code in tags:
                return tags[code]
        if not tags and same_language(language, self.bundle.tgt_lang):
            return ""
        known = ", ".join(sorted(tags)) if tags else self.bundle.tgt_lang
        raise ConfigError(f"this model does not translate into {language!r} (it writes: {known})")

    def translate_masked(self, sentences: Sequence[Masked], config: DecodeConfig) -> list[list[Translation]]:
        """The config's n best translations of each sentence, given with its spans already held
        back (`spans.protect`, maybe with more spans of the caller's, as the documents do); no
        sentence splitting, spans restored."""
        return self._translate_sentences(list(enumerate(sentences)), len(sentences), config, None)

    def _translate_sentences(
        self, sentences: list[tuple[int, Masked]], lines: int, config: DecodeConfig, warn: Callable[[LineWarning], None] | None
    ) -> list[list[Translation]]:
        """Translate (input line, masked sentence) pairs; one n-best list per line, its sentences joined."""
        limit = self.model.config.max_pieces
        encoded = iter(self.tokenizer.encode([m.text for _, m in sentences if needs_model(m)]))  # one SentencePiece call
        segments: list[Segment] = []
        tag_ids = set(self.tokenizer.piece_ids(list(self.tokenizer.language_tags.values())))
        for number, (line, masked) in enumerate(sentences):
            ids = next(encoded) if needs_model(masked) else []
            tag = ids[:1] if ids[:1] and ids[0] in tag_ids else []  # a target-language tag goes in front of every part
            room = limit - len(tag)
            parts = [tag + ids[start : start + room] for start in range(len(tag), len(ids), room)] or [[]]
            if len(parts) > 1 and warn:
                warn(
                    LineWarning(
                        line + 1, f"a sentence of {len(ids)} pieces is longer than the model's {limit}; translated in {len(parts)} parts"
                    )
                )
            segments.extend(Segment(line, number, masked, part) for part in parts)
        hyps = iter(self.search_ids([s.ids for s in segments if s.ids], config))
        found = [next(hyps) if s.ids else [] for s in segments]
        # One SentencePiece call for every hypothesis of every segment.
        texts_out = iter(self.tokenizer.decode([h.tokens for nbest in found for h in nbest]))
        by_line: list[list[tuple[Segment, list[Translation]]]] = [[] for _ in range(lines)]
        for segment, nbest in zip(segments, found):
            by_line[segment.line].append((segment, [Translation(next(texts_out), h.score, piece_attention(segment, h)) for h in nbest]))
        english = self.bundle.tgt_lang == "en"  # numbers in English form only in English output
        return [self.join(line_segments, config.n_best, english) for line_segments in by_line]

    @staticmethod
    def join(segments: list[tuple[Segment, list[Translation]]], n_best: int, english_numbers: bool = True) -> list[Translation]:
        """The translations of one line from those of its segments: exactly `n_best` entries; spans
        restored with numbers in English form where `english_numbers` (see `spans.restore`)."""
        if not segments:
            return [Translation("", 0.0)] * n_best
        if len(segments) == 1:
            segment, nbest = segments[0]
            if not segment.ids:  # nothing for the model: the spans alone
                return [Translation(restore("", segment.masked, english_numbers), 0.0)] * n_best
            results = [Translation(restore(t.text, segment.masked, english_numbers), t.score, t.pieces) for t in nbest]
            return results + [results[-1]] * (n_best - len(results))  # a tiny vocabulary can give fewer
        parts: dict[int, list[str]] = {}  # sentence -> the best translation of each of its parts
        masks = {segment.sentence: segment.masked for segment, _ in segments}
        for segment, nbest in segments:
            parts.setdefault(segment.sentence, []).append(nbest[0].text if nbest else "")
        scores = [nbest[0].score for _, nbest in segments if nbest]
        line = " ".join(restore(" ".join(t for t in translated if t), masks[s], english_numbers) for s, translated in parts.items())
        return [Translation(" ".join(line.split()), sum(scores) / max(len(scores), 1))] * n_best

    def search_ids(self, segments: Sequence[list[int]], config: DecodeConfig) -> list[list[Hypothesis]]:
        """Search every segment, in token-budget batches of similar length; results in input order."""
        self.check_shortlist(config)
        if self.engine == "ctranslate2":
            if self.device.type != "cpu":
                raise ConfigError("--engine ctranslate2 runs on the CPU here (use --device cpu)")
            if self._ctranslate2 is None:
                self._ctranslate2 = CTranslate2Engine(self.bundle, self.workers, torch.get_num_threads(), self.compute_type)
            return self._ctranslate2.search(segments, config)
        lengths = [len(s) + 1 for s in segments]  # with EOS
        batches = cut_batches(sorted(range(len(segments)), key=lambda i: lengths[i]), lengths, config.batch_tokens, config.batch_size)
        tasks = [([segments[i] for i in rows], config) for rows in batches]
        results: list[list[Hypothesis]] = [[] for _ in segments]
        for rows, hyps in zip(batches, self._map(tasks)):
            for i, nbest in zip(rows, hyps):
                results[i] = nbest
        return results

    def search_batch(self, segments: list[list[int]], config: DecodeConfig) -> list[list[Hypothesis]]:
        """One batch: the segments padded with EOS into one tensor and searched together."""
        c = self.model.config
        src = pad_with_eos(segments, c.eos_id, c.pad_id).to(self.device)
        shortlist = self.bundle.shortlist if config.shortlist and not config.sample else None
        restriction = restrict(shortlist, src, *self.output, c.pad_id, c.eos_id) if shortlist is not None else None
        return search(self.model, src, config, self.project, restriction)

    @property
    def worker_kind(self) -> str:
        """What runs the batches of `workers` > 1: "processes" on the CPU under Linux, else "threads"."""
        return "processes" if self.device.type == "cpu" and processes_available() else "threads"

    def _map(self, tasks: list[tuple[list[list[int]], DecodeConfig]]) -> list[list[list[Hypothesis]]]:
        """`search_batch` of every task, in order; with several workers, that many batches at a time."""
        processes = self.worker_kind == "processes"
        running = processes and self._pool is not None and not self._pool.closed
        # One batch is searched here, unless worker processes run: then they take it, for a
        # caller with several calls at once (the server's lanes) must not search in its own
        # process, where those calls would wait on each other for one interpreter.
        if self.workers == 1 or (len(tasks) == 1 and not running):
            return [self.search_batch(*task) for task in tasks]
        if processes:
            # Longest batches (the last: batches are cut from sentences sorted by length) first,
            # so that no worker is left with a long one while the others have finished.
            return self._worker_pool().map(tasks[::-1])[::-1]
        pool = ThreadPoolExecutor(self.workers)
        try:
            return list(pool.map(lambda task: self.search_batch(*task), tasks))
        finally:  # on Ctrl-C, don't wait for the batches not yet started
            pool.shutdown(wait=False, cancel_futures=True)

    def _worker_pool(self) -> WorkerPool:
        """The worker processes, started (forked, sharing the model as it is now) if not running."""
        with self._pool_lock:  # two threads searching at once start one pool, not two
            if self._pool is None or self._pool.closed:
                self._pool = WorkerPool(self.search_batch, self.workers, torch.get_num_threads())
                weakref.finalize(self, self._pool.close)  # a translator dropped without close()
            return self._pool

    def close(self) -> None:
        """End the worker processes, if any were started (a later search starts new ones)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> "Translator":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
