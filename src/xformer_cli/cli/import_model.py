"""`xformer import`: a Marian (OPUS-MT) model as an xformer bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xformer_cli.cli.common import RevisionOption, stderr, user_errors


@user_errors
def import_(
    source: Annotated[
        str,
        typer.Argument(
            help="A Marian (OPUS-MT) model in the transformers format: a folder, or a Hub id such as Helsinki-NLP/opus-mt-de-en."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the xformer bundle to.")],
    revision: RevisionOption = None,
) -> None:
    """Import a Marian (OPUS-MT) model as an xformer bundle: its weights in the from-scratch model.

    Reads config.json, generation_config.json, tokenizer_config.json, source.spm, target.spm,
    vocab.json and model.safetensors (or pytorch_model.bin with torch.load(weights_only=True));
    never runs code from the model. The bundle decodes by the model's own generation config
    (beam, length cap, banned ids, transformers' stopping rule) on whole lines, as `generate`
    does; every option of `xformer translate` overrides that.
    """
    from xformer_cli.bundles.marian import import_marian

    path = import_marian(source, out, revision)
    stderr().print(f"wrote {path} (from {source})", highlight=False)
