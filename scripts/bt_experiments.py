"""Issue 21's table of choices: short fine-tuning runs that differ in one thing each.

    python scripts/bt_experiments.py --out runs/bt-exp [--only NAME ...] [--steps 1000] [--table]

Every run starts from the default model before back-translation (commit f4d7a88, which the
table was measured on; `init_from`, unpacked into runs/de-en-general-f4d7a88 as the header of
models/de-en-general.toml shows), trains `--steps` updates with the same
schedule (a peak learning rate of 2.5e-4, where the shipped model's own schedule ended: a peak
of 1e-3 left the real-only run 1.1–2.4 BLEU below the shipped model after 1,000 updates),
batches and seed, and is scored with greedy search on the development sets only
(newstest2013, Multi30k valid, Tatoeba valid): the test sets of the issue's goals are kept for
the final model. That start model itself, not trained further, is scored first (`shipped`).
A run's name says what differs, `SEARCH-TAG-REAL:SYNTHETIC[-aALPHA][-SIZE]`:

    real-only           the 267,134 real pairs alone (does continued training alone help?)
    sample-tag-1:1      real + sampled back-translations, tagged, as many synthetic as real pairs
    top10-tag-1:1       ... sampled from the 10 most probable pieces only (--search sample --topk 10)
    greedy-tag-1:1      ... back-translations by greedy search
    beam-tag-1:1        ... by beam search (5)
    greedy-notag-1:1    ... greedy, without the tag
    greedy-tag-1:2      ... greedy, tagged, twice as many synthetic as real (1:4: four times;
                        2:1: half as many)
    greedy-tag-1:1-a0.1 ... greedy, tagged, 1:1, with subword sampling (alpha 0.1)

and model size at equal training seconds, from scratch for --seconds rather than fine-tuned
(the shipped tokenizer grown by the tag piece, as every tagged run grows it):
`greedy-tag-2:1-small` (the shipped layout; docs/news-model.md measured these at 2:1), `...-enc6-dec2` (a deep encoder and a shallow
decoder, faster to decode) and `...-wide320` (d_model 320). Any search goes with any tag,
ratio, alpha and size, so the later rows can take the search the first rows chose.

The back-translations are the first --bt-pairs pairs whose English is English of
runs/bt-{sample,sample-top10,greedy,beam}, made by scripts/backtranslate.py: the same English
in every variant (one seeded order, one filter). A ratio is set by corpus weights: each epoch
takes all --bt-pairs synthetic pairs and a fresh seeded share of the real ones. The data comes from `python scripts/prepare_general.py --out
runs/general-data`. Finished runs are skipped; `--table` prints what exists as Markdown.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from backtranslate import finished_pairs, write_pairs

REPO = Path(__file__).resolve().parent.parent
RUNS = REPO / "runs"
REAL_PAIRS = 267_134
DEV_SETS = ("wmt13", "multi30k/valid", "tatoeba/valid")
START = RUNS / "de-en-general-f4d7a88"  # the default model the table started from (see the docstring)



@dataclass(frozen=True)
class Experiment:
    bt: str | None  # back-translation variant: runs/bt-<bt> (sample, sample-top10, greedy, beam); None: real pairs only
    ratio: float = 1.0  # synthetic pairs per real pair in every epoch
    tag: bool = True
    alpha: float = 0.0  # subword sampling
    model: dict | None = None  # None: fine-tune the shipped model for --steps; else this model from scratch for --seconds


SMALL = {"d_model": 256, "h": 4, "d_ff": 1024, "n_encoder_layers": 3, "n_decoder_layers": 3}
SIZES = {  # from-scratch layouts at equal training seconds
    "small": SMALL,  # the shipped layout
    "enc6-dec2": {**SMALL, "n_encoder_layers": 6, "n_decoder_layers": 2},
    "wide320": {**SMALL, "d_model": 320, "h": 4, "d_ff": 1280},
}
SEARCHES = {"sample": "sample", "top10": "sample-top10", "greedy": "greedy", "beam": "beam"}  # name -> runs/bt-<variant>
NAME = re.compile(rf"({'|'.join(SEARCHES)})-(tag|notag)-(\d+):(\d+)(?:-a([\d.]+))?(?:-({'|'.join(SIZES)}))?")
DEFAULT_RUNS = ("real-only", "sample-tag-1:1", "top10-tag-1:1", "greedy-tag-1:1", "beam-tag-1:1")


def experiment(name: str) -> Experiment:
    """The run a name describes: `real-only` or SEARCH-TAG-REAL:SYNTHETIC[-aALPHA][-SIZE]."""
    if name == "real-only":
        return Experiment(None, tag=False)
    match = NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is neither real-only nor SEARCH-TAG-REAL:SYNTHETIC[-aALPHA][-SIZE] (e.g. greedy-tag-1:2-a0.1)")
    search, tag, real, synthetic, alpha, size = match.groups()
    return Experiment(SEARCHES[search], int(synthetic) / int(real), tag == "tag", float(alpha or 0.0), SIZES[size] if size else None)


def bt_corpus(variant: str, pairs: int, out: Path) -> tuple[Path, Path]:
    """The first `pairs` back-translated pairs of runs/bt-<variant> whose English is English
    (`backtranslate.looks_english`: the same pairs in every variant) as gzip files under `out`."""
    files = {lang: out / f"bt-{variant}-{pairs}.{lang}.gz" for lang in ("de", "en")}
    if all(f.exists() for f in files.values()):
        return files["de"], files["en"]
    kept = finished_pairs(sorted((RUNS / f"bt-{variant}").glob("shard-*.de")), pairs)
    if len(kept) < pairs:
        raise SystemExit(f"runs/bt-{variant} has {len(kept):,} English pairs, fewer than --bt-pairs {pairs:,}: run scripts/backtranslate.py --out runs/bt-{variant} further")
    write_pairs(kept, files)
    return files["de"], files["en"]


def grown_tokenizer(out: Path) -> Path | None:
    """The shipped tokenizer with <bt>, as every tagged fine-tuning run under `out` grows it."""
    for folder in sorted(out.iterdir()):
        spm = folder / "run" / "spm.model"
        if NAME.fullmatch(folder.name) and spm.exists():
            e = experiment(folder.name)
            if e.tag and e.model is None:
                return spm
    return None


def recipe(name: str, steps: int, seconds: int, bt_pairs: int, out: Path) -> str:
    e = experiment(name)
    data = RUNS / "general-data"
    real_weight = 1.0 if e.bt is None else bt_pairs / e.ratio / REAL_PAIRS
    corpora = [f'[[train.corpora]]\nname = "real"\nsrc = "{data}/train.de.gz"\ntgt = "{data}/train.en.gz"\nweight = {real_weight:.6f}\n']
    if e.bt is not None:
        de, en = bt_corpus(e.bt, bt_pairs, out)
        corpora.append(f'[[train.corpora]]\nname = "bt-{e.bt}"\nsrc = "{de}"\ntgt = "{en}"\nweight = 1.0\ntag = {str(e.tag).lower()}\n')
    if e.model is None:
        model, start = "", f'init_from = "{START}"\nmax_steps = {steps}\nlr = 2.5e-4\nwarmup = 200'
    else:
        spm = grown_tokenizer(out)
        if spm is None:
            raise SystemExit(f"{name} needs the tokenizer a tagged fine-tuning run grows: run one (e.g. greedy-tag-1:1) first")
        model = "[model]\nvocab_size = 8001\nnorm_position = \"pre\"\n" + "".join(f"{k} = {v}\n" for k, v in e.model.items())
        start = f'spm_model = "{spm}"\nmax_time = {seconds}\nmax_steps = 1000000\nlr = 1.56e-3\nwarmup = 400'
    return f"""# {name}: written by scripts/bt_experiments.py
{model}
[train]
{start}
batch_tokens = 2048
label_smoothing = 0.1
clip_norm = 1.0
subword_alpha = {e.alpha}
valid_every = 0
save_every = 250
keep_last = 2
log_every = 50
threads = 2
seed = 1

""" + "\n".join(corpora)


def dev_bleu(bundle: Path, data_dir: str) -> dict[str, float]:
    """Greedy BLEU of `bundle` on the development sets."""
    evaluated = subprocess.run(
        ["xformer", "evaluate", "-m", str(bundle), "--greedy", "--json", "--data-dir", data_dir, *[a for t in DEV_SETS for a in ("-t", t)]],
        check=True, capture_output=True, text=True,
    ).stdout
    return {r["testset"]: r["bleu"] for r in map(json.loads, filter(None, evaluated.splitlines()))}


def score_shipped(out: Path, data_dir: str) -> None:
    """The row every fine-tuning run starts from: the start model, not trained further."""
    scores = out / "shipped" / "scores.json"
    if not scores.exists():
        scores.parent.mkdir(parents=True, exist_ok=True)
        bleu = dev_bleu(START, data_dir)
        scores.write_text(json.dumps({"name": "shipped", "steps": 0, "train_seconds": 0.0, "bleu": bleu}, indent=1) + "\n")


def run(name: str, steps: int, seconds: int, bt_pairs: int, out: Path, data_dir: str) -> None:
    folder = out / name
    scores = folder / "scores.json"
    if scores.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "recipe.toml"
    config.write_text(recipe(name, steps, seconds, bt_pairs, out), encoding="utf-8")
    run_dir = folder / "run"
    resume = ["--resume"] if (run_dir / "checkpoints").exists() else []
    clock = folder / "train_seconds"  # wall seconds of `xformer train`, summed over resumed sittings
    started = time.perf_counter()
    try:
        subprocess.run(["xformer", "train", "--config", str(config), "--out", str(run_dir), *resume], check=True)
    finally:
        wall = (float(clock.read_text()) if clock.exists() else 0.0) + time.perf_counter() - started
        clock.write_text(f"{wall:.1f}\n")
    trained = json.loads((run_dir / "bundle" / "config.json").read_text())["training"]["steps"]
    bleu = dev_bleu(run_dir / "bundle", data_dir)
    scores.write_text(json.dumps({"name": name, "steps": trained, "train_seconds": wall, "bleu": bleu}, indent=1) + "\n")


def table(out: Path) -> None:
    print("| run | " + " | ".join(DEV_SETS) + " | updates | training s |")
    print("|---|" + "---:|" * (len(DEV_SETS) + 2))
    finished = sorted(out.glob("*/scores.json"), key=lambda p: (p.parent.name != "shipped", p.stat().st_mtime))  # in the order they ran
    for path in finished:
        s = json.loads(path.read_text())
        print(f"| {path.parent.name} | " + " | ".join(f"{s['bleu'].get(t, float('nan')):.2f}" for t in DEV_SETS) + f" | {s['steps']} | {s['train_seconds']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RUNS / "bt-exp")
    parser.add_argument("--only", nargs="+", default=list(DEFAULT_RUNS), help="runs by name (see above)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=2400, help="training seconds of each from-scratch (-SIZE) run")
    parser.add_argument("--bt-pairs", type=int, default=39_000, help="back-translated pairs per run: of the first 40,000 sentences about 39,400 are English")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--table", action="store_true", help="only print the table of finished runs")
    args = parser.parse_args()
    args.out = args.out.resolve()  # the recipes name their corpora by absolute paths
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table:
        score_shipped(args.out, args.data_dir)
        for name in args.only:  # a typo stops before hours of training, not after
            try:
                experiment(name)
            except ValueError as error:
                parser.error(str(error))
        for name in args.only:
            run(name, args.steps, args.seconds, args.bt_pairs, args.out, args.data_dir)
    table(args.out)


if __name__ == "__main__":
    sys.exit(main())
