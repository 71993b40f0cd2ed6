"""The `xformer` command line: the Typer app and its commands, one module each (Typer + rich).

Each command module keeps its heavy imports inside the command, so `xformer translate` starts as
fast as torch allows and `xformer --help` without it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from xformer_cli import __version__
from xformer_cli.cli import evaluate, export, import_model, info, push, serve, train, translate

app = typer.Typer(
    help="German→English translation with a Transformer written from scratch.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[default: ...]" stays as written
    add_completion=False,
)


def version_callback(value: bool) -> None:
    if value:
        print(f"xformer {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """German→English translation with a Transformer written from scratch."""


app.command("train")(train.command())
app.command("translate")(translate.translate)
app.command("evaluate")(evaluate.evaluate)
app.command("info")(info.info)
app.command("push")(push.push)
app.command("import")(import_model.import_)
app.command("export")(export.export)
app.command("serve")(serve.serve)


def main() -> None:
    app()
