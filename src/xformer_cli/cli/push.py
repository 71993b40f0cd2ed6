"""`xformer push`: upload a bundle folder to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xformer_cli.cli.common import RevisionOption, user_errors


@user_errors
def push(
    directory: Annotated[Path, typer.Argument(help="Bundle folder.")],
    repo_id: Annotated[str, typer.Argument(help="Hub repo id, e.g. you/xformer-de-en.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private.")] = False,
    revision: RevisionOption = None,
) -> None:
    """Upload a bundle folder to the Hugging Face Hub."""
    from xformer_cli.bundles.bundle import push_bundle

    print(push_bundle(directory, repo_id, private, revision))
