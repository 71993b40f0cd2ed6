"""Train the recipe models/multi30k.toml within a time budget, then score test2016 and test2017
with beam 5 (sacreBLEU, with signatures).

    python bench/quality/multi30k.py [--max-time 1500] [--out runs/multi30k] [--data-dir ../shared/data]

The default budget is the 25 minutes of the OpenNMT-py baseline on Multi30k (33.6 greedy /
34.4 beam 5 on test2016); `--max-time 7200` is the two-hour goal. `--resume` continues an earlier run.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from xformer_cli.decoding.translator import Translator
from xformer_cli.evaluation.metrics import corpus_bleu, corpus_chrf
from xformer_cli.recipe import load_recipe
from xformer_cli.text.files import read_lines
from xformer_cli.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=float, default=1500)
    parser.add_argument("--out", default=str(ROOT / "runs" / "multi30k"))
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    recipe = load_recipe(ROOT / "models" / "multi30k.toml")
    from rich.console import Console

    bundle = Trainer(
        recipe.model,
        replace(recipe.train, max_time=args.max_time),
        Path(args.out),
        resume=args.resume,
        decode=recipe.decode,
        console=Console(stderr=True),
    ).run()
    translator = Translator.load(str(bundle), device="cpu")
    data = Path(args.data_dir) / "multi30k"
    report = {"max_time_s": args.max_time}
    for name in ("test2016", "test2017"):
        src, ref = read_lines(data / f"{name}.de"), read_lines(data / f"{name}.en")
        for beam in (1, 5):
            hyps = translator.translate(src, beam_size=beam)
            bleu, chrf = corpus_bleu(hyps, [ref]), corpus_chrf(hyps, [ref])
            report[f"{name}_beam{beam}"] = {"bleu": round(bleu.score, 2), "chrf": round(chrf.score, 2), "signature": bleu.signature}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
