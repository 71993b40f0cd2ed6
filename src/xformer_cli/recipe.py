"""Recipe files (`models/*.toml`) onto the config dataclasses, and command-line flags over them.

A recipe maps one to one onto the dataclasses:

    preset = "small"          # optional: start from a model preset
    [model]                   # ModelConfig fields
    [train]                   # TrainConfig fields
    [[train.corpora]]         # CorpusConfig fields, one table per training corpus (or src/tgt in [train])
    [decode]                  # DecodeConfig fields
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xformer_cli.config import DecodeConfig, TrainConfig, from_dict, to_dict
from xformer_cli.errors import ConfigError
from xformer_cli.model.config import ModelConfig, preset_values


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
            {**c, **{k: str((path.parent / c[k]).resolve()) for k in ("src", "tgt", "alignment") if isinstance(c.get(k), str) and c[k]}}
            if isinstance(c, dict)
            else c
            for c in train_values["corpora"]
        ]
    return Recipe(
        model=from_dict(ModelConfig, model_values, f"[model] of {path}"),
        train=from_dict(TrainConfig, train_values, f"[train] of {path}"),
        decode=from_dict(DecodeConfig, raw.get("decode", {}), f"[decode] of {path}"),
        path=str(path),
    )


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
