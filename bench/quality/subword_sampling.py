"""What subword sampling (`subword_alpha`) costs: longer segmentations, and BPE-dropout's speed.

    python bench/quality/subword_sampling.py [--model models/de-en-general] [--pairs 40000] [--alpha 0.1]

On the first --pairs pairs of the shipped Tatoeba training corpus (models/corpus/tatoeba), with
the bundle's tokenizer: pieces per sentence (German and English sides together, averaged over
all sentences) with the plain segmentation and with a BPE-dropout one at --alpha, and the
sentences per second of BPE-dropout on one core (the plain encoding it starts from included).
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

from xformer_cli.text.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "de-en-general"))
    parser.add_argument("--pairs", type=int, default=40_000)
    parser.add_argument("--alpha", type=float, default=0.1)
    args = parser.parse_args()
    tokenizer = Tokenizer.load(Path(args.model) / "spm.model")
    texts: list[str] = []
    for lang in ("de", "en"):
        with gzip.open(ROOT / "models" / "corpus" / "tatoeba" / f"train.{lang}.gz", "rt", encoding="utf-8") as f:
            texts.extend(line.rstrip("\n") for _, line in zip(range(args.pairs), f))
    plain = tokenizer.encode(texts)
    started = time.perf_counter()
    sampled = tokenizer.sample_encode(texts, args.alpha, seed=1)
    seconds = time.perf_counter() - started
    mean = lambda rows: sum(map(len, rows)) / len(rows)  # noqa: E731
    print(f"{len(texts):,} Tatoeba sentences ({args.pairs:,} pairs, both sides), {Path(args.model).name}'s tokenizer:")
    print(
        f"  pieces per sentence: plain {mean(plain):.2f}, "
        f"BPE-dropout alpha {args.alpha} {mean(sampled):.2f} ({mean(sampled) / mean(plain) - 1:+.0%})"
    )
    print(f"  BPE-dropout on one core: {len(texts) / seconds:,.0f} sentences/s")


if __name__ == "__main__":
    main()
