"""Turn a finished run of the default recipe into the shipped bundle models/de-en-small/.

    python scripts/ship_model.py runs/de-en-small [--data-dir ../shared/data]

Stores the weights in float16 (loaded as float32), scores the model on Tatoeba test, Multi30k
test2016 and WMT newstest2014 with its default decoding through `xformer evaluate`, and writes
the model card with those scores, their sacreBLEU signatures and the commands that reproduce them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from xformer_cli.bundle import load_bundle, save_bundle
from xformer_cli.card import CardInfo, Score, render_card
from xformer_cli.config import to_dict
from xformer_cli.model.transformer import count_parameters

ROOT = Path(__file__).resolve().parents[1]
TESTSETS = {  # name -> needs --data-dir
    "tatoeba/test": False,
    "multi30k/test2016": True,
    "wmt14/full": True,
}
DATA = """- **Tatoeba** German–English sentence pairs (153,571 training pairs), from
  [tatoeba.org](https://tatoeba.org) via [manythings.org/anki](https://www.manythings.org/anki),
  released under **CC BY 2.0** (Tatoeba: CC BY 2.0 FR). Attribution: www.manythings.org/anki and
  tatoeba.org. The training, validation and test splits ship with xformer in
  `models/corpus/tatoeba/` (see its README for how they were made; no sentence is shared
  between splits, and pairs touching the public Tatoeba-Challenge test sets were removed).
- Nothing else: no Multi30k, no WMT data was used for training."""
NOTES = """
## Limits

Tatoeba is short, everyday sentences (about 7 words on average). The model translates such
sentences well and degrades on long, formal or domain-specific text: the newstest2014 score is
far lower because news is far from Tatoeba's domain, and Multi30k (image captions) is in between.
One English sentence often has several German translations in Tatoeba (du/Sie/ihr), so the
single-reference Tatoeba BLEU underestimates quality.
"""


def evaluate(model_dir: Path, testset: str, data_dir: str | None) -> dict:
    command = [sys.executable, "-m", "xformer_cli", "evaluate", "-m", str(model_dir), "-t", testset, "--json"]
    if data_dir:
        command += ["--data-dir", data_dir]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "de-en-small")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    bundle = load_bundle(args.run / "bundle")
    save_bundle(bundle, args.out, dtype=torch.float16)
    scores = []
    for testset, needs_data in TESTSETS.items():
        report = evaluate(args.out, testset, args.data_dir if needs_data else None)
        command = f"xformer evaluate -t {testset}" + (" --data-dir ../shared/data" if needs_data else "")
        print(f"{testset}: BLEU {report['bleu']:.2f} ({report['sentences_per_second']} sent/s)", file=sys.stderr)
        scores.append(Score(testset, "bleu", report["bleu"], report["signatures"]["bleu"], command))
    training = bundle.extra.get("training", {})
    decode = to_dict(bundle.decode)
    card = render_card(
        CardInfo(
            name="de-en-small",
            parameters=count_parameters(bundle.model),
            license="cc-by-2.0",
            datasets=["tatoeba"],
            data=DATA,
            training=(
                f"`xformer train` with the recipe below (the `small` preset, pre-norm LayerNorm, a joint 8,000-piece "
                f"SentencePiece BPE vocabulary with byte fallback, tied embeddings) on 2 CPU cores: "
                f"{training.get('steps', '?')} updates; bundled weights: {training.get('weights', '?')}. "
                f"Weights are stored in float16 and loaded as float32."
            ),
            decoding=(
                f"Beam search with beam size {decode['beam_size']}, length penalty {decode['length_penalty']} "
                f"(score = log P / length^alpha), output cap {decode['max_len_a']}·source pieces + {decode['max_len_b']}. "
                f"Scores below use these defaults."
            ),
            recipe=(ROOT / "models" / "de-en-small.toml").read_text(encoding="utf-8"),
            notes=NOTES,
            scores=scores,
        )
    )
    (args.out / "README.md").write_text(card, encoding="utf-8")
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out} ({size / 1e6:.1f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
