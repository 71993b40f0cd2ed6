"""Make a bundle from one checkpoint of a run (e.g. to score a model at an earlier budget).

    python scripts/checkpoint_to_bundle.py runs/de-en-small runs/de-en-small/checkpoints/step-0001000.safetensors OUT
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from xformer_cli.bundle import Bundle, save_bundle
from xformer_cli.checkpoint import load_checkpoint, model_state
from xformer_cli.config import ModelConfig, from_dict
from xformer_cli.model.transformer import build_model
from xformer_cli.tokenizer import Tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    tokenizer = Tokenizer.load(args.run / "spm.model")
    config = from_dict(ModelConfig, json.loads((args.run / "run.json").read_text())["model"], "run.json")
    model = build_model(replace(config, vocab_size=tokenizer.vocab_size))
    tensors, meta = load_checkpoint(args.checkpoint)
    model.load_state_dict(model_state(tensors))
    save_bundle(Bundle(model.eval(), tokenizer, extra={"training": {"steps": meta["step"], "weights": args.checkpoint.name}}), args.out)
    print(f"{args.out}: step {meta['step']}, {meta['elapsed']:.0f} s of training")


if __name__ == "__main__":
    main()
