"""The `xformer` command line: a thin shell over the library (Typer + rich)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from xformer_cli import __version__
from xformer_cli.errors import ConfigError, Interrupted, XformerError

app = typer.Typer(
    help="German→English translation with a Transformer written from scratch.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[default: ...]" stays as written
    add_completion=False,
)


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


def version_callback(value: bool) -> None:
    if value:
        print(f"xformer {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """German→English translation with a Transformer written from scratch."""


ModelOption = Annotated[Optional[str], typer.Option("--model", "-m", help="Bundle folder or Hugging Face Hub id [default: the shipped model].")]
RevisionOption = Annotated[Optional[str], typer.Option("--revision", help="Hub revision (branch, tag or commit).")]


def model_ref(model: str | None) -> str:
    from xformer_cli.shipped import default_model

    return model or default_model()


@app.command()
@user_errors
def train(
    src: Annotated[Optional[Path], typer.Option(help="Training source file (plain or .gz).")] = None,
    tgt: Annotated[Optional[Path], typer.Option(help="Training target file.")] = None,
    valid_src: Annotated[Optional[Path], typer.Option(help="Validation source file.")] = None,
    valid_tgt: Annotated[Optional[Path], typer.Option(help="Validation target file.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, metrics, final bundle).")] = Path("runs/default"),
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Recipe (TOML); flags override it. Default: the shipped model's recipe.")] = None,
    preset: Annotated[Optional[str], typer.Option(help="Model size: tiny, small, base or big. Sets only the size fields; the recipe's other model settings stay.")] = None,
    norm: Annotated[Optional[str], typer.Option(help="layernorm, rmsnorm, dyt or derf.")] = None,
    norm_position: Annotated[Optional[str], typer.Option(help="post (the paper) or pre.")] = None,
    vocab_size: Annotated[Optional[int], typer.Option(help="SentencePiece vocabulary size.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many updates.")] = None,
    max_epochs: Annotated[Optional[int], typer.Option(help="Stop after this many epochs.")] = None,
    max_time: Annotated[Optional[float], typer.Option(help="Stop after this many seconds of training.")] = None,
    batch_tokens: Annotated[Optional[int], typer.Option(help="Tokens per batch.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Steps of linear warmup to the peak learning rate.")] = None,
    accumulate: Annotated[Optional[int], typer.Option(help="Batches per optimizer update (gradient accumulation).")] = None,
    subword_alpha: Annotated[Optional[float], typer.Option("--subword-alpha", help="Subword regularization: train each epoch on a fresh BPE-dropout segmentation, seeded by (--seed, epoch), each merge skipped with this probability (about 0.1); 0 = off. Validation and translation use the plain segmentation [default: the recipe's, else 0].")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Stop after this many validations without a better BLEU.")] = None,
    average_last: Annotated[Optional[int], typer.Option(help="Bundle the average of the last N checkpoints instead of the best.")] = None,
    valid_every: Annotated[Optional[int], typer.Option(help="Steps between validations.")] = None,
    save_every: Annotated[Optional[int], typer.Option(help="Steps between checkpoints.")] = None,
    log_every: Annotated[Optional[int], typer.Option(help="Steps between log lines.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads.")] = None,
    bf16: Annotated[Optional[bool], typer.Option("--bf16/--no-bf16", help="Autocast to bfloat16 on GPUs and on CPUs where it measured faster (AVX512-BF16 without AMX); float32 elsewhere (AMX, AVX2) or with --no-bf16 [default: the recipe's, else on].")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
    license: Annotated[Optional[str], typer.Option("--license", help="License of the training data, for the model card (e.g. cc-by-4.0) [default: the recipe's, else none].")] = None,
    dataset: Annotated[Optional[list[str]], typer.Option("--dataset", help="Name of a training corpus, for the model card; repeat for several [default: the recipe's, else none].")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Folder of the encoded-corpus cache, keyed by content [default: $XFORMER_CACHE, else $XDG_CACHE_HOME/xformer, else ~/.cache/xformer].")] = None,
    init_from: Annotated[Optional[str], typer.Option("--init-from", help="Fine-tune a bundle (folder or Hub id): start from its weights, tokenizer and model config, with a fresh optimizer and learning-rate schedule (--lr, --warmup).")] = None,
) -> None:
    """Train a model; the run folder ends with a bundle."""
    from xformer_cli.config import Recipe, apply_flags, load_recipe
    from xformer_cli.shipped import default_recipe

    console = stderr()
    recipe_path = config if config is not None else (default_recipe() if src is None else None)
    recipe = load_recipe(recipe_path) if recipe_path is not None else Recipe()
    model_flags = {"--preset": preset, "--norm": norm, "--norm-position": norm_position, "--vocab-size": vocab_size}
    if init_from is not None and any(v is not None for v in model_flags.values()):
        flag = next(k for k, v in model_flags.items() if v is not None)
        raise ConfigError(f"--init-from takes the model config from the bundle; drop {flag}")
    recipe = apply_flags(
        recipe,
        preset=preset,
        model={"norm": norm, "norm_position": norm_position, "vocab_size": vocab_size},
        train={
            **{k: str(v) for k, v in {"src": src, "tgt": tgt, "valid_src": valid_src, "valid_tgt": valid_tgt}.items() if v is not None},
            "max_steps": max_steps,
            "max_epochs": max_epochs, "max_time": max_time, "batch_tokens": batch_tokens, "lr": lr,
            "warmup": warmup, "accumulate": accumulate, "subword_alpha": subword_alpha, "init_from": init_from, "patience": patience, "average_last": average_last,
            "valid_every": valid_every, "save_every": save_every, "log_every": log_every, "seed": seed,
            "device": device, "threads": threads, "bf16": bf16, "license": license, "datasets": dataset or None, "cache_dir": str(cache_dir) if cache_dir is not None else None,
        },
    )
    recipe_text = Path(recipe_path).read_text(encoding="utf-8") if recipe_path is not None else ""

    from xformer_cli.training.trainer import Trainer  # after the configs are known good: a bad flag is a quick error

    trainer = Trainer(recipe.model, recipe.train, out, resume=resume, decode=recipe.decode, recipe_text=recipe_text, console=console)
    bundle = trainer.run()
    console.print(f"done: {bundle}", highlight=False)


@app.command()
@user_errors
def translate(
    model: ModelOption = None,
    revision: RevisionOption = None,
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Read this file instead of stdin.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write this file instead of stdout.")] = None,
    beam_size: Annotated[Optional[int], typer.Option("--beam-size", "-b", help="Beam width [default: the model's, 5].")] = None,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy search (beam size 1).")] = False,
    length_penalty: Annotated[Optional[float], typer.Option(help="alpha in score = log P / length^alpha; 0 = raw log-probability.")] = None,
    max_len_a: Annotated[Optional[float], typer.Option(help="Output length cap: a * source pieces + b.")] = None,
    max_len_b: Annotated[Optional[int], typer.Option(help="See --max-len-a.")] = None,
    n_best: Annotated[Optional[int], typer.Option("--n-best", help="Print the K best translations per line, best first.")] = None,
    sample: Annotated[bool, typer.Option("--sample", help="Sample one translation per sentence from the model instead of searching for the best (for back-translation, as fairseq's --sampling and Marian's --output-sampling). Beam 1; not with --greedy, --beam-size > 1 or --n-best > 1. A sentence's draws depend only on --seed and its text, not on batching; a sentence repeated in the input is sampled alike. --scores shows the model's untempered score.")] = False,
    sample_topk: Annotated[Optional[int], typer.Option("--sample-topk", help="With --sample: draw from the K most probable pieces at each step; 0 = the whole distribution [default: the model's, 0].")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="With --sample: sample from p^(1/T), i.e. logits / T; below 1 sharper (towards greedy), above 1 flatter [default: the model's, 1.0].")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="With --sample: the seed of the draws; the same seed gives the same output on every run [default: the model's, 1].")] = None,
    scores: Annotated[bool, typer.Option("--scores", help="Add a tab-separated score column.")] = False,
    batch_tokens: Annotated[Optional[int], typer.Option(help="Source pieces per batch.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="At most this many sentences per batch [default: no limit but --batch-tokens].")] = None,
    split_sentences: Annotated[Optional[bool], typer.Option("--split-sentences/--no-split-sentences", help="Translate a line sentence by sentence, joined back on one line [default: on].")] = None,
    protect_spans: Annotated[Optional[bool], typer.Option("--protect-spans/--no-protect-spans", help="Hold numbers, dates, URLs, e-mail addresses and emoji back from the model and put them back as written, except what an English reader would misread: a decimal comma becomes a point (2,3 -> 2.3), thousands points commas (1.500 -> 1,500), a date with a German month name English (1. Januar 2027 -> 1 January 2027); dates in digits, times, versions and anything ambiguous stay [default: on].")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Translate and flush each line as it arrives.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads.")] = None,
    workers: Annotated[int, typer.Option(help="Batches translated at once, each in a worker process of its own with threads/workers CPU threads, all sharing one copy of the model (Linux; threads on a GPU or without fork); N workers of 1 thread is fastest on N cores. Streaming goes line by line, with one.")] = 1,
    quantize: Annotated[Optional[str], typer.Option(help="int8: dynamic int8 linear layers (CPU).")] = None,
    attention_plot: Annotated[Optional[Path], typer.Option(help="Draw the first line's encoder attention as a PNG heatmap.")] = None,
) -> None:
    """Translate German lines from stdin (or --input) to English lines on stdout (or --output)."""
    from xformer_cli.decoding.unix_filter import run_filter

    if greedy and sample:
        raise ConfigError("--greedy and --sample exclude each other: choose one")
    run_filter(
        model_ref(model), revision, input, output, stream=stream, device=device, threads=threads, workers=workers, show_scores=scores,
        options=dict(beam_size=1 if greedy else beam_size, length_penalty=length_penalty, max_len_a=max_len_a,
                     max_len_b=max_len_b, n_best=n_best, batch_tokens=batch_tokens, batch_size=batch_size,
                     split_sentences=split_sentences, protect_spans=protect_spans,
                     sample=sample or None, sample_topk=sample_topk, temperature=temperature, seed=seed),
        console=stderr(), quantize=quantize, attention_plot=attention_plot,
    )


@app.command()
@user_errors
def evaluate(
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="Bundle folder or Hub id; repeat to compare models [default: the shipped model].")] = None,
    revision: RevisionOption = None,
    src: Annotated[Optional[Path], typer.Option("--src", help="Source file to translate.")] = None,
    ref: Annotated[Optional[list[Path]], typer.Option("--ref", "-r", help="Reference file; repeat for several references.")] = None,
    hyp: Annotated[Optional[Path], typer.Option("--hyp", help="Score these translations (no model needed).")] = None,
    testset: Annotated[Optional[list[str]], typer.Option("--testset", "-t", help="Named test set; repeat for several [default: tatoeba/test].")] = None,
    data_dir: Annotated[Optional[str], typer.Option("--data-dir", help="Folder with test sets laid out as multi30k/, tatoeba/, wmt/ [env: XFORMER_DATA_DIR].")] = None,
    list_testsets: Annotated[bool, typer.Option("--list-testsets", help="List the test sets found and exit.")] = False,
    bleu: Annotated[bool, typer.Option("--bleu/--no-bleu", help="BLEU.")] = True,
    chrf: Annotated[bool, typer.Option("--chrf", help="Also chrF.")] = False,
    ter: Annotated[bool, typer.Option("--ter", help="Also TER.")] = False,
    save_hyp: Annotated[Optional[Path], typer.Option("--save-hyp", help="Write the translations here (first model and test set).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per model and test set on stdout.")] = False,
    beam_size: Annotated[Optional[int], typer.Option("--beam-size", "-b", help="Beam width [default: the model's].")] = None,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy search.")] = False,
    length_penalty: Annotated[Optional[float], typer.Option(help="Length penalty alpha.")] = None,
    batch_tokens: Annotated[Optional[int], typer.Option(help="Source pieces per batch.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Score translations with sacreBLEU (BLEU, chrF, TER), printing each signature."""
    from xformer_cli.cli.evaluate import run_evaluate

    run_evaluate(
        models=[model_ref(m) for m in (model or [None])], revision=revision, src=src, refs=ref or [], hyp=hyp,
        testsets=testset or [], data_dir=data_dir, list_only=list_testsets,
        metrics=[m for m, on in (("bleu", bleu), ("chrf", chrf), ("ter", ter)) if on], save_hyp=save_hyp,
        json_output=json_output, options=dict(beam_size=1 if greedy else beam_size, length_penalty=length_penalty, batch_tokens=batch_tokens),
        device=device, console=stderr(),
    )


@app.command()
@user_errors
def info(model: Annotated[Optional[str], typer.Argument(help="Bundle folder or Hub id [default: the shipped model].")] = None, revision: RevisionOption = None) -> None:
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


@app.command()
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


@app.command("import")
@user_errors
def import_(
    source: Annotated[str, typer.Argument(help="A Marian (OPUS-MT) model in the transformers format: a folder, or a Hub id such as Helsinki-NLP/opus-mt-de-en.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the xformer bundle to.")],
    revision: RevisionOption = None,
) -> None:
    """Import a Marian (OPUS-MT) model as an xformer bundle: its weights in the from-scratch model.

    Reads config.json, source.spm, target.spm, vocab.json and model.safetensors (or
    pytorch_model.bin with torch.load(weights_only=True)); never runs code from the model.
    """
    from xformer_cli.bundles.marian import import_marian

    path = import_marian(source, out, revision)
    stderr().print(f"wrote {path} (from {source})", highlight=False)


def main() -> None:
    app()
