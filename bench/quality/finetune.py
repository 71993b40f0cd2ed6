"""Fine-tuning the default model on a small in-domain corpus (the README's example, measured).

    python bench/quality/finetune.py [--data-dir ../shared/data] [--pairs 5000] [--steps 400] [--out runs/finetune-bench]

Takes the first `--pairs` pairs of Multi30k train as the in-domain corpus and the first 500 of
Multi30k valid as its dev set, fine-tunes the shipped bundle with `xformer train --init-from`
(lr 3e-4, 100 warmup steps, one thread), then scores the shipped and the fine-tuned bundle with
`xformer evaluate` (beam 5) on Multi30k test2016 (the new domain) and Tatoeba test (the old one).
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
XFORMER = [sys.executable, "-m", "xformer_cli"]


def first_lines(path: Path, n: int) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return "".join(line for _, line in zip(range(n), f))


def scores(model: Path, data_dir: Path) -> dict[str, float]:
    done = subprocess.run(
        [*XFORMER, "evaluate", "-m", str(model), "-t", "multi30k/test2016", "-t", "tatoeba/test", "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {r["testset"]: r["bleu"] for r in map(json.loads, done.stdout.splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "finetune-bench")
    args = parser.parse_args()
    m30k = args.data_dir / "multi30k"
    args.out.mkdir(parents=True, exist_ok=True)
    for lang in ("de", "en"):
        (args.out / f"train.{lang}").write_text(first_lines(m30k / f"train.{lang}.gz", args.pairs), encoding="utf-8")
        (args.out / f"dev.{lang}").write_text(first_lines(m30k / f"valid.{lang}", 500), encoding="utf-8")
    run = args.out / "run"
    subprocess.run(
        [
            *XFORMER,
            "train",
            "--init-from",
            str(ROOT / "models" / "de-en-general"),
            "--src",
            str(args.out / "train.de"),
            "--tgt",
            str(args.out / "train.en"),
            "--valid-src",
            str(args.out / "dev.de"),
            "--valid-tgt",
            str(args.out / "dev.en"),
            "--lr",
            "3e-4",
            "--warmup",
            "100",
            "--max-steps",
            str(args.steps),
            "--valid-every",
            "200",
            "--save-every",
            "200",
            "--threads",
            "1",
            "--out",
            str(run),
        ],
        check=True,
    )
    before, after = scores(ROOT / "models" / "de-en-general", args.data_dir), scores(run / "bundle", args.data_dir)
    for testset in before:
        print(f"{testset}: shipped {before[testset]:.1f}, fine-tuned {after[testset]:.1f} BLEU (beam 5)")


if __name__ == "__main__":
    main()
