"""Make a bundle, with its model card, from one checkpoint of a run (e.g. to score a model at an
earlier budget), the way `xformer train` makes its final bundle; with `--average N`, from the mean
of that checkpoint and the N - 1 kept before it (a run stopped short of its last step).

    python scripts/checkpoint_to_bundle.py runs/de-en-small runs/de-en-small/checkpoints/step-0001000.safetensors OUT [--average 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xformer_cli.training.checkpoint import average_states, load_checkpoint, model_state
from xformer_cli.training.final_bundle import run_info, write_run_bundle
from xformer_cli.training.run_folder import RunFolder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--average", type=int, default=1, help="the mean of this many checkpoints, ending with CHECKPOINT")
    args = parser.parse_args()
    run = RunFolder(args.run, main=False)  # reads only: no lock, nothing written
    info = run_info(run)
    model = info.build_model()
    paths = [args.checkpoint]
    if args.average > 1:  # the checkpoint and those kept before it
        paths = [p for p in run.checkpoint_paths() if p.name <= args.checkpoint.name][-args.average :]
    loaded = [load_checkpoint(p) for p in paths]
    meta = loaded[-1][1]
    states = [model_state(tensors) for tensors, _ in loaded]
    model.load_state_dict(states[0] if len(states) == 1 else average_states(states))
    weights = paths[0].name if len(paths) == 1 else f"the mean of {', '.join(p.name for p in paths)}"
    write_run_bundle(
        args.out,
        args.out.name,
        model,
        info,
        training=f"{meta['step']} steps, {meta['elapsed'] / 60:.1f} minutes; weights: {weights} of {args.run}.",
        recipe="",
        scores=[],
        extra={"steps": meta["step"], "seconds": round(meta["elapsed"]), "weights": weights},
    )
    print(f"{args.out}: step {meta['step']}, {meta['elapsed']:.0f} s of training")


if __name__ == "__main__":
    main()
