"""ModelConfig: everything needed to rebuild a model, stored in every bundle and checkpoint,
and the size presets. A field with a `help` in its metadata is also a flag of `xformer train`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xformer_cli.errors import ConfigError

NORM_POSITIONS = ("post", "pre")
POSITION_LAYOUTS = ("interleaved", "halves")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in every bundle and checkpoint."""

    vocab_size: int = field(
        default=8000, metadata={"help": "SentencePiece vocabulary size."}
    )  # one joint source/target SentencePiece vocabulary
    d_model: int = 512  # width of every sub-layer output (paper: 512)
    h: int = 8  # attention heads (paper: 8)
    d_ff: int = 2048  # inner width of the position-wise feed-forward network (paper: 2048)
    n_encoder_layers: int = 6  # N in the paper
    n_decoder_layers: int = 6
    dropout: float = 0.1  # P_drop on sub-layer outputs and embeddings (paper: 0.1)
    attention_dropout: float = 0.0  # dropout on attention weights
    activation_dropout: float = 0.0  # dropout inside the feed-forward network, after ReLU (fairseq's default 0)
    max_len: int = 256  # longest sequence (in pieces, with BOS/EOS) the model accepts
    norm: str = field(
        default="layernorm", metadata={"help": "layernorm, rmsnorm, dyt or derf."}
    )  # one of model/norms.py's NORMS: layernorm | rmsnorm | dyt | derf
    norm_position: str = field(default="post", metadata={"help": "post (the paper) or pre."})  # post (the paper) | pre
    tie_embeddings: bool = True  # share source, target and output embeddings
    activation: str = "relu"  # one of model/activations.py's ACTIVATIONS: relu (the paper) | silu (Marian's "swish") | gelu
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
        from xformer_cli.model.activations import ACTIVATIONS  # the registries, with torch: imported when a
        from xformer_cli.model.norms import NORMS  # config is made, so `xformer --help` stays light

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


def preset_values(name: Any, where: str = "") -> dict[str, Any]:
    """The ModelConfig fields a size preset sets (and only those)."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}{' in ' + where if where else ''} (choose from {', '.join(PRESETS)})")
    return dict(PRESETS[name])
