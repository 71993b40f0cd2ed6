"""Training throughput of the `small` preset on Multi30k (target tokens per second, peak memory).

    python bench/speed/train.py [--data-dir ../shared/data] [--steps 150] [--threads 2] [--no-bf16] [--spm-model M]

Same setup as the OpenNMT-py baseline on Multi30k: d_model 256, 3+3 layers, 4 heads, d_ff 1024,
dropout 0.1, a joint 8k SentencePiece BPE vocabulary, tied embeddings, label smoothing 0.1,
Adam (0.9, 0.98), inverse-sqrt warmup 400 to 1.56e-3, 2,048-token batches. Prints the median
tokens/s over the logged windows after the first (warm-up) one. bfloat16 autocast follows the
trainer's default (on where it pays: AVX512-BF16 without AMX); --no-bf16 keeps float32.
bench/peers/opennmt_train_vs_xformer.py runs this beside OpenNMT-py.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
from pathlib import Path

from xformer_cli.config import TrainConfig
from xformer_cli.model.config import preset
from xformer_cli.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--norm-position", default="post")
    parser.add_argument("--no-bf16", action="store_true", help="float32 even where the CPU has native bfloat16")
    parser.add_argument("--spm-model", default="", help="an existing SentencePiece model (default: train one on the data)")
    args = parser.parse_args()
    data = Path(args.data_dir) / "multi30k"
    config = TrainConfig(
        src=str(data / "train.de.gz"),
        tgt=str(data / "train.en.gz"),
        max_steps=args.steps,
        batch_tokens=2048,
        lr=1.56e-3,
        warmup=400,
        valid_every=0,
        save_every=10**9,
        log_every=10,
        threads=args.threads,
        bf16=not args.no_bf16,
        spm_model=args.spm_model,
    )
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(preset("small", vocab_size=8000, norm_position=args.norm_position), config, Path(tmp) / "run").run()
        records = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["tokens_per_s"] for r in records if "tokens_per_s" in r][1:]
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        json.dumps(
            {
                "tokens_per_s_median": statistics.median(speeds),
                "tokens_per_s_min": min(speeds),
                "tokens_per_s_max": max(speeds),
                "steps": args.steps,
                "threads": args.threads,
                "bf16": not args.no_bf16,
                "peak_rss_gib": round(peak_gib, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
