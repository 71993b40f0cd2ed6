"""Where the shipped default model, recipe and corpus live (inside the installed package)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_NAME = "de-en-general"
DEFAULT_RECIPE_NAME = "tatoeba.toml"


def models_dir() -> Path:
    """The project's `models/` folder, installed as the package `xformer_cli.models`."""
    import xformer_cli.models

    return Path(xformer_cli.models.__file__).parent


def default_model() -> str:
    return str(models_dir() / DEFAULT_MODEL_NAME)


def default_recipe() -> Path:
    return models_dir() / DEFAULT_RECIPE_NAME
