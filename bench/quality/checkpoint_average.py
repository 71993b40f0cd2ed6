"""The best checkpoint of a run against the mean of its last N, scored on the run's validation set.

    python bench/quality/checkpoint_average.py runs/de-en-general [--last 5]

Bundles both (as `xformer train --average-last N` and the default would) into a temporary
folder and scores each with `xformer evaluate` and the run's decoding defaults (beam 5 for the
shipped model). This is how the shipped model's weights were chosen (README, "The shipped model").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from xformer_cli.bundles.bundle import Bundle, save_bundle
from xformer_cli.training.final_bundle import final_weights, run_info
from xformer_cli.training.run_folder import RunFolder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--last", type=int, default=5)
    args = parser.parse_args()
    folder = RunFolder(args.run, main=False)  # reads only
    info = run_info(folder)
    with tempfile.TemporaryDirectory() as tmp:
        for average in (0, args.last):
            weights, which = final_weights(folder, average, {}, 0)
            model = info.build_model()
            model.load_state_dict(weights)
            out = save_bundle(Bundle(model.eval(), info.tokenizer, info.decode), Path(tmp) / f"average-{average}")
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "xformer_cli",
                    "evaluate",
                    "-m",
                    str(out),
                    "--src",
                    info.train.valid_src,
                    "--ref",
                    info.train.valid_tgt,
                    "--json",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            print(f"{which}: valid BLEU {json.loads(done.stdout)['bleu']:.2f}", flush=True)


if __name__ == "__main__":
    main()
