"""Turn a run of a recipe models/NAME.toml into a shipped bundle, models/NAME/ (by default
the default model, de-en-general).

    python scripts/ship_model.py runs/de-en-general [--name de-en-general] [--average 5] \
        [--examples scripts/ship_model_examples.de] [--data-dir ../shared/data]

Takes the run's best validated weights (or, with --average N, the mean of its last N
checkpoints; or, for a run trained on another machine that sent back only its bundle, run.json
and tokenizer, the bundle's weights), stores them in float16 (loaded as float32), scores the
bundle with its default decoding through `xformer evaluate` on every public test set of
../shared/data, times `xformer translate` on newstest2014, translates the example sentences
(--examples: German, one a line; by default scripts/ship_model_examples.de, chosen before the
default model was trained: everyday sentences, a paragraph, spans to keep and news sentences),
and writes the model card with all of it: the corpora and their licenses, the recipe
(models/NAME.toml, or the run's own configuration where there is no such file), the scores with
their sacreBLEU signatures and the commands that reproduce them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from xformer_cli.bundles.bundle import Bundle, save_bundle
from xformer_cli.bundles.card import CardInfo, Score, render_card
from xformer_cli.config import to_dict
from xformer_cli.model.transformer import count_parameters
from xformer_cli.training.checkpoint import load_checkpoint
from xformer_cli.training.final_bundle import final_weights, run_info
from xformer_cli.training.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
NAME = "de-en-general"  # the default model
EXAMPLES = Path(__file__).resolve().parent / "ship_model_examples.de"  # chosen before training the default model
XFORMER = [sys.executable, "-m", "xformer_cli"]
TESTSETS = ["tatoeba/test", "multi30k/test2016", "multi30k/test2017", "wmt14/full", "wmt17", "wmt19", "wmt20"]
# English news of ../shared/data/mono (back-translated into synthetic German sources):
# file -> (what it is, terms as stated at the source)
MONO = {
    "rss": (
        "lead sentences of news items in news outlets' RSS feeds, 2021–2023 (rumca-js/RSS-Link-Database)",
        "repository GPL-3.0; the snippets remain their publishers' copyright",
    ),
    "reuters": ("Reuters-21578 newswire, 1987", "free distribution for research purposes only"),
    "bbc": ("BBC News articles 2004–05 (Greene & Cunningham 2006)", "all rights owned by the BBC; a research data set"),
    "abc": ("Australian Broadcasting Commission rural and science news, 2006 (NLTK data)", "none stated"),
}
# name in scripts/prepare_general.py -> (what it is, license as stated by its source)
CORPORA = {
    "europarl": ("Europarl v7 (European Parliament proceedings)", "no known copyright restrictions (Europarl); source repository MIT"),
    "ted": ("TED talk transcripts", "CC BY-NC-ND 4.0"),
    "news": ("WMT news test sets 2008–2012", "none stated (WMT: research use)"),
    "chat": ("WMT20 chat (BConTrasT customer support)", "CC BY-SA 4.0"),
    "wmtsample": ("WMT sample of OpenNMT-py (detokenized)", "MIT (repository); upstream WMT"),
    "subtitles": ("OpenSubtitles2016 sample (detokenized)", "CC BY-NC-SA 4.0"),
    "tatoeba": (
        "Tatoeba, via manythings.org/anki (shipped in models/corpus/tatoeba)",
        "CC BY 2.0 (attribution: tatoeba.org, manythings.org/anki)",
    ),
    "multi30k": ("Multi30k train (Flickr30K image descriptions)", "unknown; images for non-commercial research and education"),
}
LIMITS = """
## Limits and terms

- Trained on about 267,000 real sentence pairs, 473,000 English news sentences with machine-made
  German (back-translation) and 273,000 German news sentences with a model's own English, a
  low-resource setting: short everyday sentences, image descriptions and short news come out
  well; long or specialised text (news, law, medicine) often loses words or meaning. Check what
  matters.
- A line with several sentences is translated sentence by sentence; numbers, URLs, e-mail
  addresses and emoji are carried through unchanged, except that numbers an English reader would
  misread take English form (2,3 -> 2.3, 1.500 -> 1,500) and dates with a German month name come
  out in English (1. Januar 2027 -> 1 January 2027) (`--no-split-sentences` and
  `--no-protect-spans` turn this off).
- **Terms**: the training data includes TED (CC BY-NC-ND 4.0), OpenSubtitles (CC BY-NC-SA 4.0)
  and Multi30k (research and education use), and news text that remains its publishers'
  copyright, so use these weights for non-commercial research and education. Attribution for
  Tatoeba: tatoeba.org and manythings.org/anki (CC BY 2.0).
"""


def evaluate(model_dir: Path, testset: str, data_dir: str) -> dict:
    command = [*XFORMER, "evaluate", "-m", str(model_dir), "-t", testset, "--json"]
    if testset != "tatoeba/test":
        command += ["--data-dir", data_dir]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def translate_seconds(model_dir: Path, source: Path) -> float:
    """Wall seconds of `xformer translate` with its defaults on a file, loading included."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run(
            [*XFORMER, "translate", "-m", str(model_dir), "-i", str(source), "-o", str(Path(tmp) / "out")], check=True, capture_output=True
        )
        return time.perf_counter() - started


def translate_lines(model_dir: Path, lines: list[str]) -> list[str]:
    done = subprocess.run(
        [*XFORMER, "translate", "-m", str(model_dir)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def heads_text(heads: list) -> str:
    """The card's sentence on the attention heads that place inline tags ("" where the config
    names none: every head of the last two layers is used)."""
    if not heads:
        return ""
    named = ", ".join(f"layer {layer} head {head}" for layer, head in heads)
    return (
        f"Inline tags of documents (HTML, Markdown, Word) follow the source attention of {len(heads)} decoder heads, "
        f"averaged ({named}, counted from 0; `alignment_heads` in config.json; how they were chosen and what they "
        'place: docs/benchmarks.md, "Files with structure"). '
    )


def data_text(info, stats: dict, history: str) -> str:
    """The card's data section: the eight real corpora (through the recipe's one real corpus,
    `runs/general-data/train.*.gz`, at its weight) and any back-translated one."""
    real = [c for c in info.corpora if not c.tagged and "general-data" in c.src]
    synthetic = [c for c in info.corpora if c not in real]
    weight = real[0].weight if real else 1.0
    rows = "\n".join(
        f"| {name} | {what} | {stats['corpora'][name]['kept']:,} | {weight:g} | {terms} |" for name, (what, terms) in CORPORA.items()
    )
    total = sum(c["kept"] for c in stats["corpora"].values())
    text = (
        "Eight corpora, cleaned and mixed by `scripts/prepare_general.py` (whitespace normalised; the "
        "Moses-tokenized wmtsample and subtitles detokenized; subtitles lines capitalised), shuffled together: "
        f"{total:,} pairs, each epoch taking weight × its pairs.\n\n"
        f"| corpus | what | pairs | weight | license |\n|---|---|---:|---:|---|\n{rows}\n"
    )
    for c in synthetic:
        mono = "\n".join(f"| {name} | {what} | {terms} |" for name, (what, terms) in MONO.items())
        text += (
            f"\nBack-translated news ({c.name}): {c.pairs:,} pairs, weight {c.weight:g}"
            f"{', each source tagged `<bt>` (tagged back-translation, Caswell et al. 2019)' if c.tagged else ''}. "
            "The English side is news from `../shared/data/mono` (every sentence sharing a 10-word span with a test set "
            "removed); the German side was made by an English→German model trained with `models/en-de-general.toml` "
            f"and `scripts/backtranslate.py`. {history}\n\n"
            f"| source | what | terms |\n|---|---|---|\n{mono}\n"
        )
    return text + (
        "\nValidation: 1,500 lines, the first 500 of Tatoeba valid, Multi30k valid and newstest2013. "
        "No test set below was trained or validated on."
    )


def shipped_weights(run: Path, folder: RunFolder, average: int) -> tuple[dict[str, torch.Tensor], str, int, float]:
    """The weights to ship, which they are, and the run's updates and seconds of training: from
    the run's checkpoints, or, where it has none (a run trained on another machine that sent back
    only its bundle, run.json and tokenizer), from its bundle as it is."""
    paths = folder.checkpoint_paths()
    if paths:
        _, meta = load_checkpoint(paths[-1])
        weights, which = final_weights(folder, average, {}, meta["step"])
        return weights, which, meta["step"], meta["elapsed"]
    training = json.loads((run / "bundle" / "config.json").read_text(encoding="utf-8"))["training"]
    weights = {name: t.float() for name, t in load_file(str(run / "bundle" / "model.safetensors")).items()}
    return weights, training["weights"], training["steps"], training["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--average", type=int, default=0, help="bundle the mean of the last N checkpoints instead of the best")
    parser.add_argument(
        "--name",
        default=NAME,
        help=f"the model's name: its folder under models/, its card's title, its recipe models/NAME.toml (default {NAME})",
    )
    parser.add_argument("--out", type=Path, help="where to write the bundle (default models/NAME)")
    parser.add_argument(
        "--examples",
        type=Path,
        default=EXAMPLES,
        help="German example sentences for the card, one a line (default scripts/ship_model_examples.de)",
    )
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument(
        "--bt-history", default="", help="a sentence on how the back-translations were made (reverse model, search, count), for the card"
    )
    parser.add_argument("--history", default="", help="a sentence on how the run went (threads, precision, restarts), for the card")
    args = parser.parse_args()
    args.out = args.out or ROOT / "models" / args.name
    examples = [line.strip() for line in args.examples.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not examples:
        parser.error(f"no sentences in {args.examples}")

    folder = RunFolder(args.run, main=False)  # reads only
    info = run_info(folder)
    weights, which, steps, elapsed = shipped_weights(args.run, folder, args.average)
    model = info.build_model()
    model.load_state_dict(weights)
    args.out.mkdir(parents=True, exist_ok=True)
    save_bundle(
        Bundle(
            model.eval(),
            info.tokenizer,
            info.decode,
            info.train.src_lang,
            info.train.tgt_lang,
            extra={"training": {"steps": steps, "weights": which, "seconds": round(elapsed)}},
        ),
        args.out,
        dtype=torch.float16,
    )

    scores = []
    for testset in TESTSETS:
        report = evaluate(args.out, testset, args.data_dir)
        command = f"xformer evaluate -t {testset}" + ("" if testset == "tatoeba/test" else " --data-dir ../shared/data")
        print(f"{testset}: BLEU {report['bleu']:.2f} ({report['sentences_per_second']} sent/s)", file=sys.stderr)
        scores.append(Score(testset, "bleu", report["bleu"], report["signatures"]["bleu"], command))
    seconds = translate_seconds(args.out, Path(args.data_dir) / "wmt" / "newstest2014.de")
    print(f"translate newstest2014: {seconds:.1f} s", file=sys.stderr)
    outputs = translate_lines(args.out, examples)
    example_rows = "\n".join(f"| {de} | {en} |" for de, en in zip(examples, outputs))
    print(example_rows, file=sys.stderr)
    chosen = "Chosen before training" if args.examples.resolve() == EXAMPLES else "Example sentences"
    recipe_file = ROOT / "models" / f"{args.name}.toml"
    recipe = recipe_file.read_text(encoding="utf-8") if recipe_file.is_file() else ""  # "": the card shows the run's configuration

    real_src = next((c.src for c in info.corpora if "general-data" in c.src), info.train.src)
    stats = json.loads((Path(real_src).parent / "stats.json").read_text(encoding="utf-8"))
    decode = to_dict(info.decode)
    where = "one GPU" if info.train.device.startswith("cuda") else "2 CPU cores"
    card = render_card(
        CardInfo(
            name=args.name,
            parameters=count_parameters(model),
            license="other",
            license_name="mixed-non-commercial-research",
            datasets=list(info.train.datasets),
            data=data_text(info, stats, args.bt_history),
            training=(
                f"`xformer train` with the recipe below (the `small` preset, pre-norm LayerNorm, a joint 8,000-piece "
                f"SentencePiece BPE vocabulary with byte fallback, tied embeddings) on {where}: {steps:,} updates "
                f"of {info.train.batch_tokens:,}-token batches, {elapsed / 3600:.1f} hours of training. {args.history} "
                f"Bundled weights: {which}, stored in float16 and loaded as float32."
            ),
            decoding=(
                f"Beam search with beam size {decode['beam_size']}, length penalty {decode['length_penalty']} "
                f"(score = log P / length^alpha), output cap {decode['max_len_a']}·source pieces + {decode['max_len_b']}; "
                f"lines split into sentences and spans kept. Scores below use these defaults. {heads_text(decode['alignment_heads'])}"
                f"`xformer translate -i newstest2014.de` (3,003 sentences) took {seconds:.0f} s on 2 CPU cores, loading included."
            ),
            recipe=recipe or json.dumps({"model": to_dict(info.model), "train": to_dict(info.train)}, indent=2),
            notes=f"\n## Examples\n\n{chosen}, translated with the defaults:\n\n| German | xformer |\n|---|---|\n{example_rows}\n{LIMITS}",
            scores=scores,
        )
    )
    (args.out / "README.md").write_text(card, encoding="utf-8")
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out} ({size / 1e6:.1f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
