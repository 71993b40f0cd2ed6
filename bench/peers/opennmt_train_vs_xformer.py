"""Training speed against OpenNMT-py 3.5.1, alternating on the same machine, same data, same model.

    # OpenNMT-py in a venv of its own (see bench/peers/opennmt_translate.py for the install), then:
    python bench/peers/opennmt_train_vs_xformer.py --onmt-python ../onmt-venv/bin/python [--rounds 2] [--steps 100]

The `small` configuration of bench/speed/train.py on both sides: d_model 256, 3+3 pre-norm layers,
4 heads, d_ff 1024, dropout 0.1, tied embeddings, label smoothing 0.1, Adam (0.9, 0.98), warmup
400 to a peak of 1.56e-3 (OpenNMT-py's noam schedule with learning_rate 0.5 peaks there), gradient
clipping at 1, 2,048-token batches (both count padded tokens), Multi30k train cut into pieces by
one SentencePiece model. Each round runs OpenNMT-py, then xformer in float32, then xformer with
its default precision (bfloat16 autocast on AVX512-BF16 without AMX, float32 elsewhere),
each in a fresh process on the same threads. The figure is target tokens per second: the median
over the report intervals of 10 steps after the first (warm-up) one, as each tool logs them.
OpenNMT-py keeps its default float32 on the CPU and feeds batches from its main process
(num_workers 0: on 2 cores, loader processes compete with training for the same cores).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import sentencepiece

ROOT = Path(__file__).resolve().parents[2]
ONMT_STEP = re.compile(r"Step\s+(\d+)/\s*\d+;.*?(\d+)/\s*(\d+) tok/s;")
ONMT_CONFIG = """\
data:
  multi30k:
    path_src: {src}
    path_tgt: {tgt}
src_vocab: {vocab}
tgt_vocab: {vocab}
share_vocab: true
src_vocab_size: 8000
tgt_vocab_size: 8000
save_model: {out}/model
save_checkpoint_steps: 1000000
train_steps: {steps}
valid_steps: 1000000
report_every: 10
seed: 1
num_workers: 0
batch_type: tokens
batch_size: 2048
normalization: tokens
accum_count: [1]
optim: adam
adam_beta1: 0.9
adam_beta2: 0.98
decay_method: noam
learning_rate: 0.5
warmup_steps: 400
max_grad_norm: 1.0
label_smoothing: 0.1
param_init: 0.0
param_init_glorot: true
encoder_type: transformer
decoder_type: transformer
enc_layers: 3
dec_layers: 3
heads: 4
hidden_size: 256
word_vec_size: 256
transformer_ff: 1024
dropout: [0.1]
attention_dropout: [0.0]
position_encoding: true
share_embeddings: true
share_decoder_embeddings: true
model_dtype: fp32
"""


def write_pieces(spm: sentencepiece.SentencePieceProcessor, source: Path, target: Path) -> None:
    with gzip.open(source, "rt", encoding="utf-8") as lines, target.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(" ".join(spm.encode(line.strip(), out_type=str)) + "\n")


def write_vocab(spm: sentencepiece.SentencePieceProcessor, path: Path) -> None:
    """OpenNMT-py's vocabulary file (piece, count): the SentencePiece pieces without its specials."""
    pieces = [spm.id_to_piece(i) for i in range(spm.get_piece_size()) if not (spm.is_control(i) or spm.is_unknown(i))]
    path.write_text("".join(f"{p}\t{len(pieces) - i}\n" for i, p in enumerate(pieces)), encoding="utf-8")


def median_after_warmup(speeds: list[float]) -> float:
    return statistics.median(speeds[1:] if len(speeds) > 1 else speeds)


def run_opennmt(python: str, config: Path, env: dict[str, str]) -> tuple[float, int]:
    """Median target tokens/s and the model's parameter count, from OpenNMT-py's log."""
    done = subprocess.run([python, "-m", "onmt.bin.train", "-config", str(config)], env=env, capture_output=True, text=True)
    log = done.stdout + done.stderr
    if done.returncode != 0:
        sys.exit(f"OpenNMT-py failed:\n{log[-3000:]}")
    parameters = re.search(r"number of parameters: (\d+)", log)
    return median_after_warmup([float(m.group(3)) for m in ONMT_STEP.finditer(log)]), int(parameters.group(1)) if parameters else 0


def run_xformer(args: argparse.Namespace, env: dict[str, str], bf16: bool) -> dict:
    command = [
        sys.executable,
        str(ROOT / "bench" / "speed" / "train.py"),
        "--data-dir",
        args.data_dir,
        "--steps",
        str(args.steps),
        "--threads",
        str(args.threads),
        "--norm-position",
        "pre",
        "--spm-model",
        args.spm_model,
    ]
    done = subprocess.run(command + ([] if bf16 else ["--no-bf16"]), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"xformer failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from xformer_cli.devices import native_cpu_bf16
    from xformer_cli.shipped import default_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onmt-python", required=True, help="the Python of a venv with OpenNMT-py 3.5.1")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--spm-model", default=str(Path(default_model()) / "spm.model"))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    native = native_cpu_bf16()
    print(f"CPU native bfloat16: {'yes' if native else 'no'}; {args.threads} threads, {args.steps} steps per run", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spm = sentencepiece.SentencePieceProcessor(model_file=args.spm_model)
        data = Path(args.data_dir) / "multi30k"
        write_pieces(spm, data / "train.de.gz", folder / "train.de.sp")
        write_pieces(spm, data / "train.en.gz", folder / "train.en.sp")
        write_vocab(spm, folder / "vocab.txt")
        config = folder / "onmt.yaml"
        config.write_text(
            ONMT_CONFIG.format(
                src=folder / "train.de.sp", tgt=folder / "train.en.sp", vocab=folder / "vocab.txt", out=folder, steps=args.steps
            ),
            encoding="utf-8",
        )
        rounds = []
        for r in range(1, args.rounds + 1):
            onmt, parameters = run_opennmt(args.onmt_python, config, env)
            if r == 1:
                print(f"OpenNMT-py model: {parameters:,} parameters", flush=True)
            fp32 = run_xformer(args, env, bf16=False)["tokens_per_s_median"]
            default = run_xformer(args, env, bf16=True)["tokens_per_s_median"] if native else fp32
            rounds.append((onmt, fp32, default))
            print(
                f"round {r}: OpenNMT-py {onmt:,.0f} | xformer float32 {fp32:,.0f} ({fp32 / onmt:.2f}x) | "
                f"xformer default{' (bfloat16)' if native else ''} {default:,.0f} ({default / onmt:.2f}x) target tokens/s",
                flush=True,
            )
    print(
        json.dumps(
            {
                "native_bf16": native,
                "rounds": [dict(zip(("opennmt", "xformer_fp32", "xformer_default"), row)) for row in rounds],
                "ratio_fp32": round(statistics.median(f / o for o, f, _ in rounds), 2),
                "ratio_default": round(statistics.median(d / o for o, _, d in rounds), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
