"""`xformer info`: describe a model: config, parameters, vocabulary, the card's scores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from xformer_cli.cli.common import RevisionOption, model_ref, user_errors


@user_errors
def info(
    model: Annotated[Optional[str], typer.Argument(help="Bundle folder or Hub id [default: the shipped model].")] = None,
    revision: RevisionOption = None,
) -> None:
    """Describe a model: config, parameters, vocabulary and the model card's metrics."""
    from rich.table import Table

    from xformer_cli.bundles.bundle import load_bundle
    from xformer_cli.config import to_dict
    from xformer_cli.model.transformer import count_parameters

    bundle = load_bundle(model_ref(model), revision)
    table = Table(title=str(bundle.path), show_header=False)
    table.add_row("languages", f"{bundle.src_lang} → {bundle.tgt_lang}")
    table.add_row("parameters", f"{count_parameters(bundle.model):,}")
    from xformer_cli.text.tokenizer import SourceTargetTokenizer

    kind = "pieces (source + target SentencePiece)" if isinstance(bundle.tokenizer, SourceTargetTokenizer) else "SentencePiece pieces"
    table.add_row("vocabulary", f"{bundle.tokenizer.vocab_size:,} {kind}")
    for key, value in to_dict(bundle.model.config).items():
        table.add_row(key, str(value))
    for key, value in to_dict(bundle.decode).items():
        table.add_row(f"decode.{key}", str(value))
    for metric in card_metrics(bundle.path):
        table.add_row("score", metric)
    Console().print(table)


def card_metrics(path: Path | None) -> list[str]:
    """'testset metric value' lines from the model card's model-index metadata."""
    card = (path / "README.md") if path else None
    if card is None or not card.exists():
        return []
    from huggingface_hub import ModelCard

    data = ModelCard.load(card).data
    return [f"{r.dataset_name}: {r.metric_type} {r.metric_value}" for r in (data.eval_results or [])]
