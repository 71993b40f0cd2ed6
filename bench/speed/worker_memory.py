"""The worker processes' memory over many calls: does it level off (an allocator keeping the largest
batch's memory) or keep growing (a leak)?

    python bench/speed/worker_memory.py [--model models/de-en-general] [--calls 300] [--sentences 100 128] [--batch-size 64]

A Translator with 2 worker processes translates `--calls` random samples of Multi30k test2016
German (each of `--sentences` MIN MAX sentences, in batches of at most `--batch-size`), as the
server's lanes do; every 50 calls it prints each worker's RSS and private dirty memory (MB, from
/proc/PID/smaps_rollup).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch

from xformer_cli.decoding.translator import Translator
from xformer_cli.shipped import default_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for columns.py
from columns import DATA_DIR, cpu_name, test2016  # noqa: E402


def memory(pid: int) -> dict[str, int]:
    """RSS and private dirty memory of a process, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("Rss", "Private_Dirty"):
            found[key.lower()] = int(line.split()[1]) // 1024
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--sentences", type=int, nargs=2, default=[100, 128])
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(2)
    translator = Translator.load(args.model, device="cpu", workers=2)
    torch.set_num_threads(1)  # each worker's, as translate --workers 2 on 2 cores
    sources = test2016(args.data_dir)[0]
    config = translator.config(batch_size=args.batch_size)
    rng = random.Random(1)
    print(
        json.dumps(
            {"cpu": cpu_name(), "model": args.model, "calls": args.calls, "sentences": args.sentences, "batch_size": args.batch_size}
        )
    )
    with translator:
        for call in range(1, args.calls + 1):
            translator.translate_nbest(rng.sample(sources, rng.randint(*args.sentences)), config)
            if call % 50 == 0:
                workers = [memory(process.pid) for process, _ in translator._pool.workers]
                print(json.dumps({"call": call, "workers_mb": workers}), flush=True)


if __name__ == "__main__":
    main()
