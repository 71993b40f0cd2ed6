"""The model card (README.md of a bundle): Hub metadata in YAML front matter, then text."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Score:
    """One sacreBLEU-family score of the model on a test set."""

    testset: str  # e.g. "tatoeba/test"
    metric: str  # bleu | chrf | ter
    value: float
    signature: str
    command: str = ""  # the `xformer evaluate` command that reproduces it


@dataclass
class CardInfo:
    name: str
    src_lang: str = "de"
    tgt_lang: str = "en"
    license: str = ""  # Hub license id of the weights' training data; left out of the card when unknown
    license_name: str = ""  # with license "other": a short name for the terms, which the card's text explains
    datasets: list[str] = field(default_factory=list)  # names of the training corpora; left out when unknown
    parameters: int = 0
    data: str = ""  # training data, attribution and licenses (markdown)
    recipe: str = ""  # the recipe text (TOML)
    decoding: str = ""  # decoding defaults (markdown)
    training: str = ""  # how training went (markdown)
    notes: str = ""
    scores: list[Score] = field(default_factory=list)


def metadata_yaml(info: CardInfo) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    results = [
        EvalResult(
            task_type="translation",
            dataset_type=s.testset,
            dataset_name=s.testset,
            metric_type=s.metric,
            metric_value=round(s.value, 2),
            metric_name=f"{s.metric.upper() if s.metric != 'chrf' else 'chrF'} ({s.signature})",
        )
        for s in info.scores
    ]
    data = ModelCardData(
        language=[info.src_lang, info.tgt_lang],
        license=info.license or None,
        license_name=info.license_name or None,
        datasets=list(info.datasets) or None,
        library_name="xformer",
        tags=["translation", "transformer", f"{info.src_lang}-{info.tgt_lang}"],
        pipeline_tag="translation",
        metrics=sorted({s.metric for s in info.scores}) or None,
        model_name=info.name,
        eval_results=results or None,
    )
    return data.to_yaml()


def render_card(info: CardInfo) -> str:
    rows = "\n".join(f"| {s.testset} | {s.metric} | {s.value:.1f} | `{s.signature.replace('|', chr(92) + '|')}` |" for s in info.scores)
    commands = "\n".join(f"    {s.command}" for s in info.scores if s.command)
    scores = (
        f"| test set | metric | score | sacreBLEU signature |\n|---|---|---:|---|\n{rows}\n"
        + (f"\nReproduce:\n\n{commands}\n" if commands else "")
        if info.scores
        else "No scores yet.\n"
    )
    return f"""---
{metadata_yaml(info)}
---

# {info.name}

A {info.src_lang}→{info.tgt_lang} Transformer trained from scratch with
xformer ({info.parameters:,} parameters).

    echo "Guten Tag" | xformer translate --model path/to/{info.name}

## Scores

{scores}
## Training data

{info.data or "Not recorded."}

## Training

{info.training or "Not recorded."}

## Decoding defaults

{info.decoding or "See config.json."}

## Recipe

```toml
{info.recipe.strip()}
```
{info.notes}
"""
