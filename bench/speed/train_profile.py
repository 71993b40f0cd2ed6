"""Where a training step of the `small` model spends its time, and what the README's alternatives gain.

    python bench/speed/train_profile.py [--steps 25] [--rounds 2] [--threads 2]

The step is the trainer's own (`backward_accumulated`, clipping at 1, fused Adam) on synthetic
batches of 80 sentence pairs, 27 source and 26 target pieces, a fifth of them padded (about
2,000 target tokens). Prints, per round and in turn: the median step time and target tokens/s of
float32, bfloat16 autocast (where the CPU has it natively), one fused query/key/value product in
self-attention instead of three (float32), and `torch.compile` of the model (float32; compiling
is not timed); then torch.profiler's table of a float32 step, the ops by their own time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from xformer_cli.batching import Batch
from xformer_cli.devices import native_cpu_bf16
from xformer_cli.model import build_model
from xformer_cli.model.attention import fused_attention
from xformer_cli.model.config import preset
from xformer_cli.model.multi_head import MultiHeadAttention
from xformer_cli.training.distributed import Distributed
from xformer_cli.training.loss import backward_accumulated

B, S, T = 80, 27, 26


def synthetic_batch(generator: torch.Generator) -> Batch:
    src = torch.randint(4, 8000, (B, S), generator=generator)
    tgt = torch.randint(4, 8000, (B, T + 1), generator=generator)
    src[: B // 5, -5:] = 0
    tgt[: B // 5, -5:] = 0
    return Batch(src=src, tgt_in=tgt[:, :-1], tgt_out=tgt[:, 1:])


def fused_qkv_forward(
    self: MultiHeadAttention, query: torch.Tensor, key_value: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Self-attention with one (d_model, 3 d_model) product for queries, keys and values."""
    if query is not key_value:
        return self.attend(query, *self.project_kv(key_value), mask)
    weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
    bias = torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
    q, k, v = (self.split_heads(x) for x in F.linear(query, weight, bias).chunk(3, dim=-1))  # 3 x (B, h, T, d_k)
    out = fused_attention(q, k, v, mask, self.dropout if self.training else 0.0)
    return self.out_proj(out.transpose(1, 2).reshape(query.size(0), query.size(1), -1))  # (B, T, d_model)


def make_step(variant: str):
    """A model, its optimizer and one training step for `variant`."""
    torch.manual_seed(0)
    model = build_model(preset("small", vocab_size=8000, norm_position="pre"))
    if variant == "fused qkv":
        for module in model.modules():
            if isinstance(module, MultiHeadAttention):
                module.forward = fused_qkv_forward.__get__(module)
    runner = torch.compile(model) if variant == "torch.compile" else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), fused=True)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if variant == "bfloat16" else nullcontext

    def step(batch: Batch) -> int:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        tokens = backward_accumulated(runner, [batch], 0, 0.1, Distributed(), autocast).tokens
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return tokens

    return step


def time_variant(variant: str, steps: int) -> tuple[float, float]:
    """Median seconds per step after 5 warm-up steps, and target tokens/s at that median."""
    step, generator = make_step(variant), torch.Generator().manual_seed(1)
    times, tokens = [], 0
    for _ in range(steps + 5):
        batch = synthetic_batch(generator)
        started = time.perf_counter()
        tokens = step(batch)
        times.append(time.perf_counter() - started)
    median = statistics.median(times[5:])
    return median, tokens / median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = ["float32", *(["bfloat16"] if native_cpu_bf16() else []), "fused qkv", "torch.compile"]
    for r in range(1, args.rounds + 1):
        results = {v: time_variant(v, args.steps) for v in variants}
        base = results["float32"][1]
        print(
            f"round {r}: "
            + " | ".join(f"{v} {ms * 1000:.0f} ms, {tps:,.0f} tok/s ({tps / base:.2f}x)" for v, (ms, tps) in results.items()),
            flush=True,
        )

    from torch.profiler import ProfilerActivity, profile

    step, generator = make_step("float32"), torch.Generator().manual_seed(1)
    for _ in range(3):
        step(synthetic_batch(generator))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            step(synthetic_batch(generator))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
