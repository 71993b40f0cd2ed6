"""Training speed on one GPU: target tokens/s and model FLOPs utilization (MFU) of a preset.

    python bench/speed/train_gpu.py [--preset base] [--steps 50] [--batch-tokens 16384] [--vocab 32000] [--compile]

The step is the trainer's own (`backward_accumulated`, gradient clipping, fused Adam) under bf16
autocast with TF32 matrix products, on synthetic batches of real shapes: sentences of 16 to 64
pieces, bucketed so a batch holds one length and no padding. MFU counts the matrix products of
the forward pass (projections, feed-forward, attention scores and values, output projection)
times 3 for forward and backward, against the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import time

import torch

from xformer_cli.batching import collate
from xformer_cli.model import build_model
from xformer_cli.model.config import ModelConfig, preset
from xformer_cli.training.distributed import Distributed
from xformer_cli.training.loss import backward_accumulated

PEAK_BF16 = {"H100 SXM": 989.4e12, "H100 80GB HBM3": 989.4e12, "H100 PCIe": 756.0e12, "H200": 989.4e12, "A100": 312.0e12}
LENGTHS = (16, 24, 32, 48, 64)


def step_flops(c: ModelConfig, rows: int, length: int) -> float:
    """Forward and backward FLOPs of one batch of `rows` pairs of `length` pieces each side."""
    d, f, v, n = c.d_model, c.d_ff, c.vocab_size, rows * length
    encoder = c.n_encoder_layers * n * (2 * (4 * d * d + 2 * d * f) + 4 * length * d)
    decoder = c.n_decoder_layers * n * (2 * (8 * d * d + 2 * d * f) + 8 * length * d)  # self + cross attention
    output = n * 2 * d * v
    return 3.0 * (encoder + decoder + output)


def peak_flops(name: str) -> float | None:
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--compile", action="store_true", help="also time the model under torch.compile")
    args = parser.parse_args()

    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    c = preset(args.preset, vocab_size=args.vocab)
    g = torch.Generator().manual_seed(0)
    batches = []
    for length in LENGTHS:
        rows = args.batch_tokens // length
        ids = torch.randint(4, c.vocab_size, (2, rows, length - 1), generator=g).tolist()  # EOS / BOS make `length`
        batches.append((collate(ids[0], ids[1], c.pad_id, c.bos_id, c.eos_id), rows, length))
    gpu_batches = [(b.to(device), rows, length) for b, rows, length in batches]
    name = torch.cuda.get_device_name(0)
    peak = peak_flops(name)
    for compiled in (False, True) if args.compile else (False,):
        torch.manual_seed(0)
        model = build_model(c).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, fused=True)
        runner = torch.compile(model) if compiled else model
        flops, tokens = 0.0, 0
        for step in range(args.warmup_steps + args.steps):
            if step == args.warmup_steps:
                torch.cuda.synchronize()
                started = time.perf_counter()
                flops, tokens = 0.0, 0
            batch, rows, length = gpu_batches[step % len(gpu_batches)]
            optimizer.zero_grad(set_to_none=True)
            n = backward_accumulated(
                runner, [batch], c.pad_id, 0.1, Distributed(), lambda: torch.autocast("cuda", dtype=torch.bfloat16)
            ).tokens
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            flops += step_flops(c, rows, length)
            tokens += n
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        mfu = f", MFU {flops / seconds / peak:.1%} of {peak / 1e12:.0f} TFLOP/s bf16" if peak else ""
        print(
            f"{args.preset}{' compiled' if compiled else ''} on {name}: {tokens / seconds:,.0f} target tokens/s, "
            f"{flops / seconds / 1e12:.0f} TFLOP/s{mfu} ({args.steps} steps of {args.batch_tokens} tokens, vocab {c.vocab_size})"
        )


if __name__ == "__main__":
    main()
