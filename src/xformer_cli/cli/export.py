"""`xformer export`: a bundle written for another inference engine (today CTranslate2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xformer_cli.cli.common import ModelOption, RevisionOption, model_ref, stderr, user_errors
from xformer_cli.errors import ConfigError


@user_errors
def export(
    out: Annotated[Path, typer.Argument(help="The folder to write (must not exist).")],
    to: Annotated[str, typer.Option("--to", help="The engine: ctranslate2.")] = "ctranslate2",
    model: ModelOption = None,
    revision: RevisionOption = None,
    quantization: Annotated[
        str, typer.Option(help="Weights as float32, int8, int8_float32, int8_float16, int8_bfloat16, int16, float16 or bfloat16.")
    ] = "float32",
) -> None:
    """Export a model for CTranslate2 (pip install 'xformer-cli[ctranslate2]'), with its tokenizer files."""
    if to != "ctranslate2":
        raise ConfigError(f"unknown engine {to!r}: xformer exports to ctranslate2")
    from xformer_cli.bundles.bundle import load_bundle
    from xformer_cli.bundles.ctranslate2_export import export_ctranslate2

    written = export_ctranslate2(load_bundle(model_ref(model), revision), out, quantization)
    stderr().print(f"wrote a CTranslate2 model ({quantization}) to {written}", highlight=False)
