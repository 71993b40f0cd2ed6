"""Configs as dataclasses: the model, training and decoding, plus presets and recipe files.

A recipe (`models/*.toml`) maps one to one onto these dataclasses:

    preset = "small"          # optional: start from a model preset
    [model]                   # ModelConfig fields
    [train]                   # TrainConfig fields
    [[train.corpora]]         # CorpusConfig fields, one table per training corpus (or src/tgt in [train])
    [decode]                  # DecodeConfig fields
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from xformer_cli.errors import ConfigError

NORMS = ("layernorm", "rmsnorm", "dyt", "derf")
NORM_POSITIONS = ("post", "pre")
ACTIVATIONS = ("relu", "silu", "gelu")
POSITION_LAYOUTS = ("interleaved", "halves")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in every bundle and checkpoint."""

    vocab_size: int = 8000  # one joint source/target SentencePiece vocabulary
    d_model: int = 512  # width of every sub-layer output (paper: 512)
    h: int = 8  # attention heads (paper: 8)
    d_ff: int = 2048  # inner width of the position-wise feed-forward network (paper: 2048)
    n_encoder_layers: int = 6  # N in the paper
    n_decoder_layers: int = 6
    dropout: float = 0.1  # P_drop on sub-layer outputs and embeddings (paper: 0.1)
    attention_dropout: float = 0.0  # dropout on attention weights
    activation_dropout: float = 0.0  # dropout inside the feed-forward network, after ReLU (fairseq's default 0)
    max_len: int = 256  # longest sequence (in pieces, with BOS/EOS) the model accepts
    norm: str = "layernorm"  # layernorm | rmsnorm | dyt | derf
    norm_position: str = "post"  # post (the paper) | pre
    tie_embeddings: bool = True  # share source, target and output embeddings
    activation: str = "relu"  # feed-forward activation: relu (the paper) | silu (Marian's "swish") | gelu
    positions: str = "interleaved"  # sinusoid layout: interleaved sin, cos (the paper) | halves (all sines, then all cosines: Marian)
    output_bias: bool = False  # a learned bias added to the output logits (Marian's final_logits_bias)
    pad_id: int = 0
    unk_id: int = 1
    bos_id: int = 2  # the id decoding starts from, and the first decoder input in training (Marian: its pad id)
    eos_id: int = 3
    # The tokenizer's reserved tag piece (tokenizer.TAG_PIECE), which search never emits; -1: none.
    # Like vocab_size, training sets it from the tokenizer.
    tag_id: int = -1

    def __post_init__(self) -> None:
        if self.d_model % self.h:
            raise ConfigError(f"d_model must be divisible by h (got d_model={self.d_model}, h={self.h})")
        if self.norm not in NORMS:
            raise ConfigError(f"unknown norm {self.norm!r} (choose from {', '.join(NORMS)})")
        if self.norm_position not in NORM_POSITIONS:
            raise ConfigError(f"unknown norm position {self.norm_position!r} (choose pre or post)")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {self.activation!r} (choose from {', '.join(ACTIVATIONS)})")
        if self.positions not in POSITION_LAYOUTS:
            raise ConfigError(f"unknown positions layout {self.positions!r} (choose from {', '.join(POSITION_LAYOUTS)})")
        for name in ("vocab_size", "d_model", "h", "d_ff", "n_encoder_layers", "n_decoder_layers", "max_len"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive (got {getattr(self, name)})")
        if self.max_len < 2:
            raise ConfigError(f"max_len must be at least 2, for BOS or EOS and one piece (got {self.max_len})")
        if not -1 <= self.tag_id < self.vocab_size:
            raise ConfigError(f"tag_id must be -1 (none) or a piece id below vocab_size (got {self.tag_id})")

    @property
    def max_pieces(self) -> int:
        """The most pieces one sentence may have, BOS/EOS not counted: the source gets an EOS and
        the target a BOS (as decoder input) or an EOS (as output), so each side needs one position."""
        return self.max_len - 1


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(d_model=32, h=2, d_ff=64, n_encoder_layers=2, n_decoder_layers=2),
    "small": dict(d_model=256, h=4, d_ff=1024, n_encoder_layers=3, n_decoder_layers=3),
    "base": dict(d_model=512, h=8, d_ff=2048, n_encoder_layers=6, n_decoder_layers=6),
    "big": dict(d_model=1024, h=16, d_ff=4096, n_encoder_layers=6, n_decoder_layers=6, dropout=0.3),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The ModelConfig of a named size preset, with fields overridden."""
    return ModelConfig(**{**preset_values(name), **overrides})


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
        self.check_sampling()
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
                raise ConfigError(f"sample top-k and temperature apply only to sampling (got top-k {self.sample_topk}, temperature {self.temperature} without sampling)")
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

    src: str = ""  # training source file (plain or .gz): the one-corpus shorthand for `corpora`
    tgt: str = ""  # training target file
    # Several training corpora with weights ([[train.corpora]] tables: name, src, tgt, weight, tag),
    # instead of src/tgt. One epoch = each corpus contributes round(weight × its pair count after
    # filtering) pairs: weight 2 = every pair twice, 0.5 = a fresh seeded half in every epoch.
    corpora: tuple[CorpusConfig, ...] = ()
    valid_src: str = ""  # validation source file (optional)
    valid_tgt: str = ""
    src_lang: str = "de"
    tgt_lang: str = "en"
    spm_model: str = ""  # an existing SentencePiece model; trained on the data when empty
    init_from: str = ""  # a bundle (folder or Hub id) to fine-tune: its weights, tokenizer and model config
    max_steps: int = 100_000  # optimizer updates
    max_epochs: int = 0  # 0: no limit
    max_time: float = 0.0  # seconds of training; 0: no limit
    batch_tokens: int = 2048  # target tokens per batch (before accumulation)
    accumulate: int = 1  # batches per optimizer update
    lr: float = 1.56e-3  # peak learning rate, reached at the end of warmup
    warmup: int = 400  # inverse-square-root schedule warmup steps
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-9
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    clip_norm: float = 1.0  # 0: no clipping
    max_tokens_per_sentence: int = 128  # longer pairs are dropped from training
    max_length_ratio: float = 3.0  # pairs whose piece counts differ more are dropped
    # Subword regularization: with alpha > 0 every epoch trains on a fresh sampled segmentation of
    # the corpora, seeded by (seed, epoch): BPE-dropout, each merge of the BPE tokenizer skipped
    # with probability alpha (SentencePiece's alpha for BPE; about 0.1). Needs xformer's joint BPE
    # tokenizer. 0: the plain segmentation. Validation and translation always use the plain one.
    subword_alpha: float = 0.0
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # CPU threads; 0: torch's default
    bf16: bool = True  # autocast to bfloat16 on CUDA (float16 with a gradient scaler where a GPU lacks bfloat16) and on CPUs where it measured faster (AVX512-BF16 without AMX; devices.cpu_bf16_pays)
    valid_every: int = 500  # steps between validations; 0: only at the end
    valid_bleu_sentences: int = 500  # greedy BLEU on this many valid sentences
    save_every: int = 500  # steps between checkpoints
    keep_last: int = 3  # last checkpoints kept on disk
    patience: int = 0  # stop after this many validations without a better BLEU; 0: never
    average_last: int = 0  # bundle the average of the last N checkpoints instead of the best
    log_every: int = 50
    spm_sample: int = 2_000_000  # sentences SentencePiece learns from; larger corpora are sampled (seeded)
    # Where encoded corpora (and tokenizers trained on them) are cached, keyed by content; empty:
    # $XFORMER_CACHE, else $XDG_CACHE_HOME/xformer, else ~/.cache/xformer.
    cache_dir: str = ""
    license: str = ""  # license of the training data, for the model card (e.g. "cc-by-2.0"); omitted when empty
    datasets: tuple[str, ...] = ()  # names of the training corpora, for the model card; omitted when empty

    def __post_init__(self) -> None:
        if self.accumulate < 1:
            raise ConfigError(f"accumulate must be at least 1 (got {self.accumulate})")
        if self.batch_tokens < 1:
            raise ConfigError(f"batch_tokens must be positive (got {self.batch_tokens})")
        if not 0.0 <= self.subword_alpha < 1.0:
            raise ConfigError(f"subword_alpha must be at least 0 (off) and below 1 (got {self.subword_alpha})")
        if self.corpora and (self.src or self.tgt):
            raise ConfigError("give the training data either as src/tgt or as [[train.corpora]], not both")
        if self.corpora and not any(c.weight > 0 for c in self.corpora):
            raise ConfigError("every training corpus has weight 0: nothing to train on")
        labels = [c.label for c in self.corpora]
        if len(set(labels)) < len(labels):
            raise ConfigError(f"two training corpora share the name {next(n for n in labels if labels.count(n) > 1)!r}; give each its own name")

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
    missing = [f.name for f in fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in checked]
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
            return tuple(typed_value(f"{key}[{i}]" if dataclasses.is_dataclass(args[0]) else key, v, args[0], where) for i, v in enumerate(value))
        if len(value) != len(args):
            raise wrong(f"a list of {len(args)}")
        return tuple(typed_value(key, v, t, where) for v, t in zip(value, args))
    return value


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe file: model, training and decoding settings together."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    path: str = ""


def load_recipe(path: str | Path) -> Recipe:
    """Read a TOML recipe; relative data paths are resolved against the recipe's folder.

    The model section starts from the recipe's `preset` (if any); its own keys override that.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"recipe not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot parse recipe {path}: {err}") from None
    unknown = sorted(set(raw) - {"preset", "model", "train", "decode"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in recipe {path}")
    for section in ("model", "train", "decode"):
        if not isinstance(raw.get(section, {}), dict):
            raise ConfigError(f"{section} in recipe {path} must be a [{section}] table")
    model_values = preset_values(raw["preset"], f"recipe {path}") if "preset" in raw else {}
    model_values.update(raw.get("model", {}))
    train_values = dict(raw.get("train", {}))
    for key in ("src", "tgt", "valid_src", "valid_tgt", "spm_model", "init_from", "cache_dir"):
        value = train_values.get(key)
        if isinstance(value, str) and value and (key != "init_from" or (path.parent / value).exists()):  # else a Hub id
            train_values[key] = str((path.parent / value).resolve())
    if isinstance(train_values.get("corpora"), list):
        train_values["corpora"] = [
            {**c, **{k: str((path.parent / c[k]).resolve()) for k in ("src", "tgt") if isinstance(c.get(k), str) and c[k]}} if isinstance(c, dict) else c
            for c in train_values["corpora"]
        ]
    return Recipe(
        model=from_dict(ModelConfig, model_values, f"[model] of {path}"),
        train=from_dict(TrainConfig, train_values, f"[train] of {path}"),
        decode=from_dict(DecodeConfig, raw.get("decode", {}), f"[decode] of {path}"),
        path=str(path),
    )


def preset_values(name: Any, where: str = "") -> dict[str, Any]:
    """The ModelConfig fields a size preset sets (and only those)."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}{' in ' + where if where else ''} (choose from {', '.join(PRESETS)})")
    return dict(PRESETS[name])


def apply_flags(
    recipe: Recipe,
    preset: str | None = None,
    model: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    decode: dict[str, Any] | None = None,
) -> Recipe:
    """The recipe with command-line flags applied, in this order: recipe < --preset < other flags.

    Each flag overrides only the field it names (None means the flag was not given); `--preset`
    names the size fields of its preset (width, heads, layers and, for `big`, dropout) and
    leaves every other field of the recipe (norm, norm position, vocabulary, ...) as it was.
    `--src`/`--tgt` (one corpus) replace the recipe's `[[train.corpora]]`.
    """
    model_values = preset_values(preset) if preset is not None else {}
    model_values.update(given(model))
    train_values = given(train)
    if "src" in train_values or "tgt" in train_values:  # --src/--tgt replace the recipe's corpora
        train_values.setdefault("corpora", ())

    def merged(config: Any, values: dict[str, Any]) -> Any:
        return from_dict(type(config), {**to_dict(config), **values}, "the command line") if values else config

    return Recipe(
        model=merged(recipe.model, model_values),
        train=merged(recipe.train, train_values),
        decode=merged(recipe.decode, given(decode)),
        path=recipe.path,
    )


def given(values: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (values or {}).items() if v is not None}
