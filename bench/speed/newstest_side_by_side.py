"""Two models on newstest2014 side by side: whole-process translation time and repeated words.

    python bench/speed/newstest_side_by_side.py --against runs/de-en-general-v1 [--model models/de-en-general] [--rounds 1]

The previous default model, de-en-general v1 (commit f4d7a88), unpacks into
runs/de-en-general-v1 with
`mkdir -p runs/de-en-general-v1 && git archive f4d7a88 models/de-en-general |
tar -x --strip-components=2 -C runs/de-en-general-v1`.

Each round runs `xformer translate -m MODEL -i newstest2014.de -o FILE` with the defaults for
each model in turn (loading included, as a user would time it), then prints the seconds of each
run and, for each model's last output and the references, how many of the 3,003 lines hold a
word repeated right after itself ("federal federal"; case-insensitive).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # for columns.py
from columns import repeated_word_lines  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "de-en-general"))
    parser.add_argument("--against", required=True, help="the model to compare with")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    source = args.data_dir / "wmt" / "newstest2014.de"
    models = {"model": args.model, "against": args.against}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(1, args.rounds + 1):
            for name, model in models.items():
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "xformer_cli", "translate", "-m", model, "-i", str(source), "-o", str(Path(tmp) / name)],
                    check=True,
                    capture_output=True,
                )
                print(f"round {round_}: {model}: {time.perf_counter() - started:.1f} s", flush=True)
        for name, model in models.items():
            lines = (Path(tmp) / name).read_text(encoding="utf-8").splitlines()
            print(f"{model}: {repeated_word_lines(lines)} of {len(lines)} lines repeat a word right after itself")
    references = (args.data_dir / "wmt" / "newstest2014.en").read_text(encoding="utf-8").splitlines()
    print(f"references: {repeated_word_lines(references)} of {len(references)}")


if __name__ == "__main__":
    main()
