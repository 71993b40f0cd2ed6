"""Configs as dataclasses: decoding and training (the model's own is `model/config.py`).

A field whose metadata carries a `help` (made by `flag`) is also a flag of `xformer train`: the
command's options are generated from these fields, so a new setting is one edit here. A recipe
file (`recipe.py`) maps one to one onto the same fields.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from xformer_cli.errors import ConfigError


def flag(help: str, name: str = "") -> dict[str, str]:
    """Field metadata that makes a config field a flag of `xformer train`: its help text and,
    where it differs from --field-name, its name."""
    return {"help": help, "flag": name} if name else {"help": help}


INLINE_TAGS = ("attention", "model")  # DecodeConfig.inline_tags


@dataclass(frozen=True)
class DecodeConfig:
    """How to search for a translation."""

    beam_size: int = 5  # 1 is greedy search
    length_penalty: float = 1.0  # alpha: hypothesis score = log-prob / length**alpha (0 = raw sum)
    max_len_a: float = 1.2  # output length cap = a * source length + b (in pieces)
    max_len_b: int = 10
    n_best: int = 1  # hypotheses returned per input, best first
    batch_tokens: int = 4000  # source pieces per batch when translating many lines
    batch_size: int = 0  # at most this many sentences per batch (0: only batch_tokens limits)
    split_sentences: bool = True  # translate a line sentence by sentence, joined back on one line
    protect_spans: bool = True  # hold numbers, URLs, e-mail addresses and emoji back from the model (numbers return in English form)
    no_repeat_ngram: int = 0  # never repeat an n-gram of pieces within a translation (fairseq's --no-repeat-ngram-size); 0: off
    # Beam search ends a sentence once it has beam_size finished hypotheses (True: fairseq's and
    # xformer's rule), or only once no running hypothesis can beat the worst of them (False:
    # transformers' default, kept for imported models so that they reproduce `generate`).
    early_stopping: bool = True
    ban_unk: bool = True  # never choose <unk> (transformers does not ban it unless a model's bad_words_ids say so)
    banned_ids: tuple[int, ...] = ()  # more ids never chosen (a model's bad_words_ids); padding and BOS always are
    renormalize: bool = False  # log-softmax again after banning ids (transformers' renormalize_logits), so scores sum to 1
    source_attention: bool = False  # hand out each translation's attention over the source (documents move inline tags by it)
    # The (decoder layer, head) pairs whose source attention is averaged into that alignment
    # (layers from 0, or -1 for the last); empty: every head of the last two layers.
    alignment_heads: tuple[tuple[int, int], ...] = ()
    # Documents: narrow a tag the attention spread over several English words to those the model
    # needs its German words for (`documents/occlusion.py`: one more teacher-forced pass per such tag).
    check_tags: bool = False
    # Documents: who places a tag in the translation. "attention": the model translates the plain
    # sentence and the tag follows its source attention (above). "model": the tags are written
    # into the sentence and a model trained to carry them (`documents/tag_text.py`) writes them
    # into its translation; a tag it loses goes by the attention after all.
    inline_tags: str = "attention"
    # Greedy and beam search score only each sentence's shortlist of target pieces, from the
    # bundle's shortlist.safetensors (`decoding/shortlist.py`, Marian's lexical shortlist): faster,
    # its scores renormalized over the shortlist. Off by default: it measured a little worse.
    shortlist: bool = False
    # Sampling (one random translation per sentence, as for back-translation) instead of search;
    # needs beam_size = n_best = 1. The draws of a sentence come from (seed, its source pieces).
    sample: bool = False
    sample_topk: int = 0  # draw from the k most probable next pieces only; 0: from every piece
    temperature: float = 1.0  # sampling distribution ∝ p ** (1 / temperature); below 1 sharper, above flatter
    seed: int = 1  # of the draws; the same seed gives the same samples on every run

    def __post_init__(self) -> None:
        if self.batch_size < 0:
            raise ConfigError(f"batch size must be 0 (no limit) or positive (got {self.batch_size})")
        if self.beam_size < 1:
            raise ConfigError(f"beam size must be at least 1 (got {self.beam_size})")
        if self.no_repeat_ngram < 0:
            raise ConfigError(f"no-repeat n-gram size must be 0 (off) or positive (got {self.no_repeat_ngram})")
        self.check_sampling()
        if self.inline_tags not in INLINE_TAGS:
            raise ConfigError(f"inline tags are placed by {' or '.join(INLINE_TAGS)} (got {self.inline_tags!r})")
        if not 1 <= self.n_best <= self.beam_size:
            raise ConfigError(f"n-best must be between 1 and the beam size (got {self.n_best}, beam {self.beam_size})")

    def check_sampling(self) -> None:
        """Sampling settings that are valid, and none that would be silently ignored."""
        if self.sample_topk < 0:
            raise ConfigError(f"sample top-k must be 0 (the whole distribution) or positive (got {self.sample_topk})")
        if not (0.0 < self.temperature < math.inf):
            raise ConfigError(f"temperature must be a positive number (got {self.temperature})")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed must be between 0 and 2**63 - 1 (got {self.seed})")
        if not self.sample:
            if self.sample_topk != 0 or self.temperature != 1.0:
                raise ConfigError(
                    f"sample top-k and temperature apply only to sampling (got top-k {self.sample_topk}, temperature "
                    f"{self.temperature} without sampling)"
                )
            return
        if self.beam_size != 1:
            raise ConfigError(f"sampling draws one translation per sentence: beam size must be 1 (got {self.beam_size})")
        if self.n_best != 1:
            raise ConfigError(f"sampling draws one translation per sentence: n-best must be 1 (got {self.n_best})")


@dataclass(frozen=True)
class CorpusConfig:
    """One training corpus of a recipe, a `[[train.corpora]]` table (OpenNMT-py's corpus weights).

    An epoch takes round(weight × pairs) pairs of each corpus, its pairs counted after filtering:
    weight 1 is every pair once, 2 every pair twice, 0.5 a fresh seeded half of the pairs in each
    epoch, 0 none. A corpus marked `tag` is synthetic (e.g. back-translated): each of its sources
    gets the tokenizer's reserved tag piece in front (tagged back-translation, Caswell et al. 2019).
    """

    src: str  # source file (plain or .gz); relative to the recipe's folder in a recipe
    tgt: str  # target file, line i translating line i of src
    name: str = ""  # for logs and the model card; default: the source file's name without suffixes
    weight: float = 1.0  # pairs per epoch = round(weight × the corpus's pairs)
    tag: bool = False  # synthetic: the reserved tag piece goes in front of every source sentence
    alignment: str = ""  # word links of every pair (Pharaoh format, scripts/align_corpus.py), for guided alignment

    def __post_init__(self) -> None:
        if not self.src or not self.tgt:
            raise ConfigError(f"a training corpus needs both src and tgt files (got src={self.src!r}, tgt={self.tgt!r})")
        if not self.weight >= 0:
            raise ConfigError(f"corpus weight must be 0 or more (got {self.weight} for {self.label})")

    @property
    def label(self) -> str:
        """The name, or the source file's name without its .gz and language suffixes."""
        if self.name:
            return self.name
        name = Path(self.src).name
        name = name[: -len(".gz")] if name.endswith(".gz") else name
        return name.rsplit(".", 1)[0] if "." in name else name


@dataclass(frozen=True)
class TrainConfig:
    """Data, optimisation, validation and checkpointing of one training run."""

    src: str = field(default="", metadata=flag("Training source file (plain or .gz)."))
    tgt: str = field(default="", metadata=flag("Training target file."))
    # Several training corpora with weights ([[train.corpora]] tables: name, src, tgt, weight, tag),
    # instead of src/tgt. One epoch = each corpus contributes round(weight × its pair count after
    # filtering) pairs: weight 2 = every pair twice, 0.5 = a fresh seeded half in every epoch.
    corpora: tuple[CorpusConfig, ...] = ()
    valid_src: str = field(default="", metadata=flag("Validation source file."))
    valid_tgt: str = field(default="", metadata=flag("Validation target file."))
    src_lang: str = "de"
    tgt_lang: str = "en"
    spm_model: str = ""  # an existing SentencePiece model; trained on the data when empty
    init_from: str = field(
        default="",
        metadata=flag(
            "Fine-tune a bundle (folder or Hub id): start from its weights, tokenizer and model config, with a fresh optimizer and "
            "learning-rate schedule (--lr, --warmup)."
        ),
    )
    init_encoder_layers: int = field(
        default=0,
        metadata=flag(
            "With --init-from: grow or cut the bundle's encoder to this many layers (deeper: its trained stack repeated on top, "
            "progressive stacking; shallower: layers spread evenly, the first and last kept); 0 keeps it."
        ),
    )
    init_decoder_layers: int = field(default=0, metadata=flag("With --init-from: the same for the decoder; 0 keeps it."))
    init_new_layers: str = field(
        default="copy",
        metadata=flag(
            "Layers added by --init-encoder-layers/--init-decoder-layers: copy (the trained stack repeated) or identity (the same "
            "copies with their output projections zeroed, so a pre-norm model starts unchanged)."
        ),
    )  # copy | identity
    max_steps: int = field(default=100_000, metadata=flag("Stop after this many updates."))  # optimizer updates
    max_epochs: int = field(default=0, metadata=flag("Stop after this many epochs."))  # 0: no limit
    max_time: float = field(default=0.0, metadata=flag("Stop after this many seconds of training."))  # seconds of training; 0: no limit
    batch_tokens: int = field(default=2048, metadata=flag("Tokens per batch."))  # target tokens per batch (before accumulation)
    accumulate: int = field(default=1, metadata=flag("Batches per optimizer update (gradient accumulation)."))
    lr: float = field(default=1.56e-3, metadata=flag("Peak learning rate."))  # peak learning rate, reached at the end of warmup
    warmup: int = field(
        default=400, metadata=flag("Steps of linear warmup to the peak learning rate.")
    )  # inverse-square-root schedule warmup steps
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-9
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    # Guided alignment (Garg et al. 2019; Marian's --guided-alignment-weight): the weight of the
    # loss that trains the decoding config's alignment_heads (the heads that place inline tags)
    # to follow the word links of the corpora that have them (`alignment` of [[train.corpora]]);
    # 0: off. training/guided_alignment.py.
    guided_alignment: float = 0.0
    clip_norm: float = 1.0  # 0: no clipping
    max_tokens_per_sentence: int = 128  # longer pairs are dropped from training
    max_length_ratio: float = 3.0  # pairs whose piece counts differ more are dropped
    # Subword regularization: with alpha > 0 every epoch trains on a fresh sampled segmentation of
    # the corpora, seeded by (seed, epoch): BPE-dropout, each merge of the BPE tokenizer skipped
    # with probability alpha (SentencePiece's alpha for BPE; about 0.1). Needs xformer's joint BPE
    # tokenizer. 0: the plain segmentation. Validation and translation always use the plain one.
    subword_alpha: float = field(
        default=0.0,
        metadata=flag(
            "Subword regularization: train each epoch on a fresh BPE-dropout segmentation, seeded by (--seed, epoch), each merge "
            "skipped with this probability (about 0.1); 0 = off. Validation and translation use the plain segmentation [default: the "
            "recipe's, else 0]."
        ),
    )
    seed: int = field(default=1, metadata=flag("Random seed."))
    device: str = field(default="auto", metadata=flag("auto, cpu, cuda or cuda:N."))  # auto | cpu | cuda | cuda:N
    threads: int = field(default=0, metadata=flag("CPU threads."))  # CPU threads; 0: torch's default
    # Autocast to bfloat16 on CUDA (float16 with a gradient scaler where a GPU lacks bfloat16) and on
    # CPUs where it measured faster (AVX512-BF16 without AMX; devices.cpu_bf16_pays).
    bf16: bool = field(
        default=True,
        metadata=flag(
            "Autocast to bfloat16 on GPUs and on CPUs where it measured faster (AVX512-BF16 without AMX); float32 elsewhere (AMX, "
            "AVX2) or with --no-bf16 [default: the recipe's, else on]."
        ),
    )
    valid_every: int = field(default=500, metadata=flag("Steps between validations."))  # steps between validations; 0: only at the end
    valid_bleu_sentences: int = 500  # greedy BLEU on this many valid sentences
    save_every: int = field(default=500, metadata=flag("Steps between checkpoints."))  # steps between checkpoints
    keep_last: int = 3  # last checkpoints kept on disk
    patience: int = field(
        default=0, metadata=flag("Stop after this many validations without a better BLEU.")
    )  # stop after this many validations without a better BLEU; 0: never
    average_last: int = field(
        default=0, metadata=flag("Bundle the average of the last N checkpoints instead of the best.")
    )  # bundle the average of the last N checkpoints instead of the best
    log_every: int = field(default=50, metadata=flag("Steps between log lines."))
    spm_sample: int = 2_000_000  # sentences SentencePiece learns from; larger corpora are sampled (seeded)
    # Where encoded corpora (and tokenizers trained on them) are cached, keyed by content; empty:
    # $XFORMER_CACHE, else $XDG_CACHE_HOME/xformer, else ~/.cache/xformer.
    cache_dir: str = field(
        default="",
        metadata=flag(
            "Folder of the encoded-corpus cache, keyed by content [default: $XFORMER_CACHE, else $XDG_CACHE_HOME/xformer, else "
            "~/.cache/xformer]."
        ),
    )
    license: str = field(
        default="", metadata=flag("License of the training data, for the model card (e.g. cc-by-4.0) [default: the recipe's, else none].")
    )  # license of the training data, for the model card (e.g. "cc-by-2.0"); omitted when empty
    datasets: tuple[str, ...] = field(
        default=(),
        metadata=flag("Name of a training corpus, for the model card; repeat for several [default: the recipe's, else none].", "--dataset"),
    )  # names of the training corpora, for the model card; omitted when empty

    def __post_init__(self) -> None:
        if self.accumulate < 1:
            raise ConfigError(f"accumulate must be at least 1 (got {self.accumulate})")
        if self.batch_tokens < 1:
            raise ConfigError(f"batch_tokens must be positive (got {self.batch_tokens})")
        if not 0.0 <= self.subword_alpha < 1.0:
            raise ConfigError(f"subword_alpha must be at least 0 (off) and below 1 (got {self.subword_alpha})")
        if min(self.init_encoder_layers, self.init_decoder_layers) < 0:
            raise ConfigError("init_encoder_layers and init_decoder_layers must be 0 (as the bundle has them) or positive")
        if (self.init_encoder_layers or self.init_decoder_layers) and not self.init_from:
            raise ConfigError("init_encoder_layers and init_decoder_layers grow a bundle: they need init_from")
        if self.init_new_layers not in ("copy", "identity"):
            raise ConfigError(f"init_new_layers must be copy or identity (got {self.init_new_layers!r})")
        if self.init_new_layers == "identity" and not (self.init_encoder_layers or self.init_decoder_layers):
            raise ConfigError("init_new_layers = identity says how grown layers start: it needs init_encoder_layers or init_decoder_layers")
        if self.corpora and (self.src or self.tgt):
            raise ConfigError("give the training data either as src/tgt or as [[train.corpora]], not both")
        if self.corpora and not any(c.weight > 0 for c in self.corpora):
            raise ConfigError("every training corpus has weight 0: nothing to train on")
        if self.guided_alignment < 0:
            raise ConfigError(f"guided_alignment is a loss weight: 0 (off) or more (got {self.guided_alignment})")
        if self.guided_alignment > 0 and not any(c.alignment for c in self.training_corpora()):
            raise ConfigError("guided_alignment needs word links: give a training corpus its alignment file (scripts/align_corpus.py)")
        labels = [c.label for c in self.corpora]
        if len(set(labels)) < len(labels):
            raise ConfigError(
                f"two training corpora share the name {next(n for n in labels if labels.count(n) > 1)!r}; give each its own name"
            )

    def training_corpora(self) -> tuple[CorpusConfig, ...]:
        """The corpora to train on: `corpora`, or the one corpus src/tgt (weight 1)."""
        if self.corpora:
            return self.corpora
        return (CorpusConfig(self.src, self.tgt),) if self.src or self.tgt else ()


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass."""
    return dataclasses.asdict(config)


def from_dict(cls: type, values: dict[str, Any], where: str = "config") -> Any:
    """Build a config dataclass from JSON or TOML values, naming any unknown or mistyped key."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where}")
    types = typing.get_type_hints(cls)
    checked = {key: typed_value(key, value, types[key], where) for key, value in values.items()}
    missing = [
        f.name
        for f in fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in checked
    ]
    if missing:
        raise ConfigError(f"{missing[0]} missing in {where}")
    try:
        return cls(**checked)
    except TypeError as err:
        raise ConfigError(f"bad {where}: {err}") from None


def typed_value(key: str, value: Any, expected: Any, where: str) -> Any:
    """`value` as the field's type (an int where a float is expected becomes a float, a list a
    tuple), or a ConfigError naming the key, the type it needs and where it came from."""

    def wrong(kind: str) -> ConfigError:
        return ConfigError(f"{key} in {where} must be {kind} (got {value!r})")

    if expected is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if dataclasses.is_dataclass(expected):  # a table, e.g. one of [[train.corpora]]
        if isinstance(value, expected):
            return value
        if not isinstance(value, dict):
            raise wrong("a table")
        return from_dict(expected, value, f"{key} in {where}")
    if typing.get_origin(expected) is tuple:
        args = typing.get_args(expected)
        if not isinstance(value, (list, tuple)):
            raise wrong("a list")
        if args[-1] is Ellipsis:  # tuple[T, ...]
            return tuple(
                typed_value(f"{key}[{i}]" if dataclasses.is_dataclass(args[0]) else key, v, args[0], where) for i, v in enumerate(value)
            )
        if len(value) != len(args):
            raise wrong(f"a list of {len(args)}")
        return tuple(typed_value(key, v, t, where) for v, t in zip(value, args))
    return value
