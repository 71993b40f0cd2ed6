"""`xformer train`: train a model; the run folder ends with a bundle.

The command's settings are generated from the config dataclasses: every field of ModelConfig and
TrainConfig whose metadata has a `help` is a flag (`--field-name`, or the name the metadata
gives), typed as the field, None when not given. Only the flags that are not settings (the run
folder, the recipe, the preset, --resume) are written here.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from xformer_cli.cli.common import stderr, user_errors
from xformer_cli.config import TrainConfig
from xformer_cli.errors import ConfigError
from xformer_cli.model.config import ModelConfig


def settings_flags(config_class: type) -> list[inspect.Parameter]:
    """One keyword parameter per flagged field of `config_class`, annotated for Typer."""
    hints = typing.get_type_hints(config_class)
    params = []
    for f in fields(config_class):
        if "help" not in f.metadata:
            continue
        kind = hints[f.name]
        name = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        if kind is bool:
            name = f"{name}/--no-{name[2:]}"
        elif typing.get_origin(kind) is tuple:  # a repeatable flag
            kind = list[typing.get_args(kind)[0]]
        option = typer.Option(name, help=f.metadata["help"])
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[kind], option]))
    return params


def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, metrics, final bundle).")] = Path("runs/default"),
    config: Annotated[
        Optional[Path],
        typer.Option(
            "--config",
            "-c",
            help="Recipe (TOML); flags override it. Default without --src: models/tatoeba.toml, the shipped Tatoeba corpus.",
        ),
    ] = None,
    preset: Annotated[
        Optional[str],
        typer.Option(help="Model size: tiny, small, base or big. Sets only the size fields; the recipe's other model settings stay."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
    **settings: Any,
) -> None:
    """Train a model; the run folder ends with a bundle."""
    from xformer_cli.recipe import Recipe, apply_flags, load_recipe
    from xformer_cli.shipped import default_recipe

    console = stderr()
    given = {k: v for k, v in settings.items() if v not in (None, [])}
    model_names = {f.name for f in fields(ModelConfig)}
    model = {k: v for k, v in given.items() if k in model_names}
    if given.get("init_from") is not None and (preset is not None or model):
        flag = "--preset" if preset is not None else "--" + next(iter(model)).replace("_", "-")
        raise ConfigError(f"--init-from takes the model config from the bundle; drop {flag}")
    recipe_path = config if config is not None else (default_recipe() if given.get("src") is None else None)
    recipe = load_recipe(recipe_path) if recipe_path is not None else Recipe()
    train_values = {k: v for k, v in given.items() if k not in model_names}
    recipe = apply_flags(recipe, preset=preset, model=model, train=train_values)
    recipe_text = Path(recipe_path).read_text(encoding="utf-8") if recipe_path is not None else ""

    from xformer_cli.training.trainer import Trainer  # after the configs are known good: a bad flag is a quick error

    trainer = Trainer(recipe.model, recipe.train, out, resume=resume, decode=recipe.decode, recipe_text=recipe_text, console=console)
    bundle = trainer.run()
    console.print(f"done: {bundle}", highlight=False)


def command() -> typer.models.CommandFunctionType:
    """`train` with its signature: the fixed flags, then every flagged model and training field."""
    fixed = [p for p in inspect.signature(train, eval_str=True).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    train.__signature__ = inspect.Signature([*fixed, *settings_flags(ModelConfig), *settings_flags(TrainConfig)])
    return user_errors(train)
