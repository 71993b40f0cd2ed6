"""Decoding speed against CTranslate2, alternating on the same machine, same model, same sentences.

    pip install 'xformer-cli[ctranslate2]'   # in this venv, or give another venv's python with --ct2-python
    python bench/peers/ctranslate2_vs_xformer.py [--model models/de-en-general] [--rounds 2] [--threads 2]

Each round runs `bench/speed/translate.py` (xformer: greedy with batches of 30, beam 5 with
batches of 30, beam 5 one sentence at a time, each with `--workers 1` and `2`), then
`bench/peers/ctranslate2_translate.py` (the same bundle converted to CTranslate2 float32, the same
columns with inter_threads 1 and 2), each in a fresh process on the same threads, on Multi30k
test2016 (1,000 sentences). It prints every round's sentences/s and the ratio xformer /
CTranslate2 per column (above 1: xformer is faster), then the median ratio over the rounds, the
BLEU of both (a check that both decoded the same model alike) and the CPU's model name.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))  # bench/, for columns.py
from columns import COLUMNS, DATA_DIR, cpu_name  # noqa: E402


def run_json(command: list[str]) -> dict:
    """Run a benchmark script; its last output on stdout is one JSON object."""
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BENCH.parent / "models" / "de-en-general"))
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ct2-python", default=sys.executable, help="a python with xformer and ctranslate2 installed")
    args = parser.parse_args()
    model = str(Path(args.model).resolve())
    common = ["--model", model, "--data-dir", args.data_dir, "--threads", str(args.threads)]
    pairs = [(name, name) for name, _, _ in COLUMNS] + [(f"{name}_workers2", f"{name}_inter2") for name, _, _ in COLUMNS]
    ratios: dict[str, list[float]] = {ours: [] for ours, _ in pairs}
    print(f"{cpu_name()}, {args.threads} threads, {Path(model).name}, Multi30k test2016; sentences/s")
    for round_ in range(1, args.rounds + 1):
        ours = run_json([sys.executable, str(BENCH / "speed" / "translate.py"), "--no-cold-start", "--workers", "1", "2", *common])
        theirs = run_json([args.ct2_python, str(BENCH / "peers" / "ctranslate2_translate.py"), "--inter-threads", "1", "2", *common])
        for mine, other in pairs:
            a, b = ours[mine]["sentences_per_s"], theirs[other]["sentences_per_s"]
            ratios[mine].append(a / b)
            print(
                f"round {round_} {mine:24s} xformer {a:7.1f} (BLEU {ours[mine]['bleu']:5.2f})  "
                f"CTranslate2 {b:7.1f} (BLEU {theirs[other]['bleu']:5.2f})  ratio {a / b:.2f}",
                flush=True,
            )
    print("median ratio xformer / CTranslate2 (1 worker; 2 workers against inter_threads 2):")
    for mine, _ in pairs:
        print(f"  {mine:24s} {statistics.median(ratios[mine]):.2f}")


if __name__ == "__main__":
    main()
