"""What every command shares: the stderr console, the error boundary and the model options."""

from __future__ import annotations

import functools
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from xformer_cli.errors import Interrupted, XformerError


def stderr() -> Console:
    """The console for talk: stderr, and a message stays one line however long (no hard wrap)."""
    return Console(stderr=True, soft_wrap=True)


def user_errors(command):
    """Turn an XformerError into one red line on stderr and exit status 1 (130 for Ctrl-C)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except XformerError as err:
            stderr().print(f"[red]error:[/red] {escape(str(err))}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(130 if isinstance(err, Interrupted) else 1) from None
        except KeyboardInterrupt:
            stderr().print("[red]interrupted[/red]")
            raise typer.Exit(130) from None

    return wrapper


ModelOption = Annotated[
    Optional[str], typer.Option("--model", "-m", help="Bundle folder or Hugging Face Hub id [default: the shipped model].")
]
RevisionOption = Annotated[Optional[str], typer.Option("--revision", help="Hub revision (branch, tag or commit).")]
NoRepeatNgramOption = Annotated[
    Optional[int],
    typer.Option(
        "--no-repeat-ngram",
        help="Never repeat an n-gram of N pieces within a translation (fairseq's --no-repeat-ngram-size); 0 = off "
        "[default: the model's, 0].",
    ),
]

ShortlistOption = Annotated[
    Optional[bool],
    typer.Option(
        "--shortlist/--no-shortlist",
        help="Greedy and beam search score only the target pieces each sentence's source makes likely, from the model's lexical "
        "shortlist (Marian's; shortlist.safetensors, made by scripts/build_shortlist.py): faster, its scores renormalized over "
        "the shortlist, which costs some BLEU [default: the model's, off].",
    ),
]


def model_ref(model: str | None) -> str:
    from xformer_cli.shipped import default_model

    return model or default_model()
