"""Make a bundle, with its model card, from one checkpoint of a run (e.g. to score a model at an
earlier budget), the way `xformer train` makes its final bundle.

    python scripts/checkpoint_to_bundle.py runs/de-en-small runs/de-en-small/checkpoints/step-0001000.safetensors OUT
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xformer_cli.training.checkpoint import load_checkpoint, model_state
from xformer_cli.training.final_bundle import run_info, write_run_bundle
from xformer_cli.training.run_folder import RunFolder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    info = run_info(RunFolder(args.run, main=False))  # reads only: no lock, nothing written
    model = info.build_model()
    tensors, meta = load_checkpoint(args.checkpoint)
    model.load_state_dict(model_state(tensors))
    write_run_bundle(
        args.out,
        args.out.name,
        model,
        info,
        training=f"{meta['step']} steps, {meta['elapsed'] / 60:.1f} minutes; weights: checkpoint {args.checkpoint.name} of {args.run}.",
        recipe="",
        scores=[],
        extra={"steps": meta["step"], "seconds": round(meta["elapsed"]), "weights": args.checkpoint.name},
    )
    print(f"{args.out}: step {meta['step']}, {meta['elapsed']:.0f} s of training")


if __name__ == "__main__":
    main()
