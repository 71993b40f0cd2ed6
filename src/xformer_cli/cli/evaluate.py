"""`xformer evaluate`: gather test sets and models, translate, score with sacreBLEU, print a table and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from xformer_cli.cli.common import NoRepeatNgramOption, RevisionOption, ShortlistOption, model_ref, stderr, user_errors
from xformer_cli.errors import ConfigError
from xformer_cli.evaluation.evaluate import Report, score
from xformer_cli.evaluation.test_sets import TestSet, available_testsets, find_testset, load_testset, read_nonempty


@user_errors
def evaluate(
    model: Annotated[
        Optional[list[str]],
        typer.Option("--model", "-m", help="Bundle folder or Hub id; repeat to compare models [default: the shipped model]."),
    ] = None,
    revision: RevisionOption = None,
    src: Annotated[Optional[Path], typer.Option("--src", help="Source file to translate.")] = None,
    ref: Annotated[Optional[list[Path]], typer.Option("--ref", "-r", help="Reference file; repeat for several references.")] = None,
    hyp: Annotated[Optional[Path], typer.Option("--hyp", help="Score these translations (no model needed).")] = None,
    testset: Annotated[
        Optional[list[str]], typer.Option("--testset", "-t", help="Named test set; repeat for several [default: tatoeba/test].")
    ] = None,
    data_dir: Annotated[
        Optional[str],
        typer.Option("--data-dir", help="Folder with test sets laid out as multi30k/, tatoeba/, wmt/ [env: XFORMER_DATA_DIR]."),
    ] = None,
    list_testsets: Annotated[bool, typer.Option("--list-testsets", help="List the test sets found and exit.")] = False,
    bleu: Annotated[bool, typer.Option("--bleu/--no-bleu", help="BLEU.")] = True,
    chrf: Annotated[bool, typer.Option("--chrf", help="Also chrF.")] = False,
    ter: Annotated[bool, typer.Option("--ter", help="Also TER.")] = False,
    save_hyp: Annotated[Optional[Path], typer.Option("--save-hyp", help="Write the translations here (first model and test set).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per model and test set on stdout.")] = False,
    beam_size: Annotated[Optional[int], typer.Option("--beam-size", "-b", help="Beam width [default: the model's].")] = None,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy search.")] = False,
    length_penalty: Annotated[Optional[float], typer.Option(help="Length penalty alpha.")] = None,
    no_repeat_ngram: NoRepeatNgramOption = None,
    shortlist: ShortlistOption = None,
    batch_tokens: Annotated[Optional[int], typer.Option(help="Source pieces per batch.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Score translations with sacreBLEU (BLEU, chrF, TER), printing each signature."""
    run_evaluate(
        models=[model_ref(m) for m in (model or [None])],
        revision=revision,
        src=src,
        refs=ref or [],
        hyp=hyp,
        testsets=testset or [],
        data_dir=data_dir,
        list_only=list_testsets,
        metrics=[m for m, on in (("bleu", bleu), ("chrf", chrf), ("ter", ter)) if on],
        save_hyp=save_hyp,
        json_output=json_output,
        options=dict(
            beam_size=1 if greedy else beam_size,
            length_penalty=length_penalty,
            no_repeat_ngram=no_repeat_ngram,
            batch_tokens=batch_tokens,
            shortlist=shortlist,
        ),
        device=device,
        console=stderr(),
    )


def gather_testsets(src: Path | None, refs: list[Path], testsets: list[str], data_dir: str | None) -> list[TestSet]:
    if refs and testsets:
        raise ConfigError("give either --ref (with --src or --hyp) or --testset, not both")
    if refs:
        return [load_testset(str(src or refs[0]), src, refs)]
    if src is not None:
        raise ConfigError("--src needs at least one --ref")
    sets = []
    for name in testsets or ["tatoeba/test"]:
        source, reference = find_testset(name, data_dir)
        sets.append(load_testset(name, source, [reference]))
    return sets


def print_table(reports: list[Report], metrics: list[str], console) -> None:
    table = Table(title="xformer evaluate")
    for column in ("model", "test set", "sentences", *[m.upper() if m != "chrf" else "chrF" for m in metrics], "sent/s"):
        table.add_column(column, justify="right" if column not in ("model", "test set") else "left")
    for r in reports:
        speed = f"{r.sentences_per_second:.1f}" if r.sentences_per_second else "-"
        table.add_row(r.model, r.testset, str(r.sentences), *[f"{x.score:.2f}" for x in r.results], speed)
    console.print(table)
    signatures = {x.signature for r in reports for x in r.results}
    for signature in sorted(signatures):
        console.print(f"signature: {signature}", highlight=False)


def run_evaluate(
    *,
    models: list[str],
    revision: str | None,
    src: Path | None,
    refs: list[Path],
    hyp: Path | None,
    testsets: list[str],
    data_dir: str | None,
    list_only: bool,
    metrics: list[str],
    save_hyp: Path | None,
    json_output: bool,
    options: dict[str, Any],
    device: str,
    console,
) -> None:
    if list_only:
        for name, (source, reference) in available_testsets(data_dir).items():
            print(f"{name}\t{source}\t{reference}")
        return
    if not metrics:
        raise ConfigError("no metric chosen: use --bleu, --chrf or --ter")
    reports: list[Report] = []
    if hyp is not None:
        if src is not None or testsets:
            raise ConfigError("--hyp scores existing translations: give --ref, not --src or --testset")
        if not refs:
            raise ConfigError("--hyp needs at least one --ref")
        hyps = read_nonempty(hyp, "hypothesis")
        testset = load_testset(str(refs[0]), None, refs)
        reports.append(Report(str(hyp), testset.name, len(hyps), score(hyps, testset.references, metrics)))
    else:
        from xformer_cli.decoding.translator import Translator
        from xformer_cli.evaluation.evaluate import evaluate_model

        sets = gather_testsets(src, refs, testsets, data_dir)
        for model in models:
            translator = Translator.load(model, revision, device)
            config = translator.config(**options)
            for testset in sets:
                console.print(f"translating {testset.name} ({len(testset.sources)} sentences) with {model}", highlight=False)
                report, hyps = evaluate_model(translator, testset, config, metrics, model)
                reports.append(report)
                if save_hyp is not None and len(reports) == 1:
                    save_hyp.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    print_table(reports, metrics, console)
    for r in reports:
        if json_output:
            print(json.dumps(r.to_json(), ensure_ascii=False))
        else:
            for x in r.results:
                print(f"{r.testset}\t{r.model}\t{x.text}")
