"""Where a decoding step spends its time, and what the usual remedies gain.

    python bench/speed/decode_profile.py [--model models/de-en-general] [--sentences 100]
        [--threads 2] [--rounds 3] [--parts 123] [--parts 4]

Four measurements on Multi30k test2016, the shipped model unless told otherwise:

1. **The step, profiled.** Beam 5, one sentence at a time (the column furthest behind
   CTranslate2): torch.profiler's self time split into matrix products (addmm, mm, bmm,
   oneDNN linear) and everything else, and the number of operator calls per decoder step.
2. **Matrix products alone.** The decoder's own weights (every linear layer of every decoder
   layer, then the output projection), multiplied by M rows as a step does (M = 1, 5, 30, 150:
   greedy on one sentence, beam 5 on one, greedy on 30, beam 5 on 30), through PyTorch's default
   (`F.linear`: MKL on x86), oneDNN with the weight packed once (what `translate` uses for the
   output projection), and MKL's packed GEMM. Microseconds per step and GFLOP/s, in alternating
   rounds (medians).
3. **One query/key/value product** in the cached self-attention instead of three (the weights
   stacked once), end to end, alternating with the model as it is; outputs compared.
4. (`--parts 4`, minutes of compiling) `torch.compile(dynamic=True)` of the decoder step, its compile time and
   its speed against eager, alternating, outputs compared.
5. **Encoder keys and values made contiguous once.** `Decoder.init_state` keeps each layer's
   encoder keys and values as the views `split_heads` returns, which the attention products may
   copy at every step; the variant copies them once per batch. Alternating, outputs compared,
   with a sampling column as back-translation runs it.
6. **Every decoder linear layer on oneDNN with its weight packed once** (`translate` packs only
   the output projection): part 2's fastest backend for few rows, end to end, alternating,
   outputs compared.

It prints figures only; nothing here changes the product.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

import xformer_cli.decoding.search as search_module
from xformer_cli.decoding.translator import Translator
from xformer_cli.model.attention import fused_attention, scaled_dot_product_attention
from xformer_cli.model.multi_head import MultiHeadAttention
from xformer_cli.model.packed import PackedLinear

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for columns.py
from columns import DATA_DIR, cpu_name, test2016  # noqa: E402

MATMUL_OPS = {"aten::addmm", "aten::mm", "aten::bmm", "mkldnn::_linear_pointwise", "mkl::_mkl_linear"}


# (label, decoding options, sentences per batch)
COLUMNS = (
    ("beam 5, batch   1", {"beam_size": 5}, 1),
    ("beam 1, batch  30", {"beam_size": 1}, 30),
    ("beam 5, batch  30", {"beam_size": 5}, 30),
)
SAMPLED = ("sampled, batch 100", {"sample": True}, 100)  # as scripts/backtranslate.py translates


def sentences_per_s(translator: Translator, sentences: list[str], options: dict, batch: int) -> tuple[float, list[str]]:
    config = replace(translator.config(**options), batch_size=batch, batch_tokens=10**9)
    started = time.perf_counter()
    out = [n[0].text for n in translator.translate_nbest(sentences, config)]
    return len(sentences) / (time.perf_counter() - started), out


def profile_step(translator: Translator, sentences: list[str]) -> None:
    """Part 1: the self time of beam 5, batch 1, split into matrix products and the rest."""
    from torch.profiler import profile

    steps = 0
    step = search_module._step_log_probs

    def counted(*args):
        nonlocal steps
        steps += 1
        return step(*args)

    search_module._step_log_probs = counted
    try:
        with profile() as prof:
            sentences_per_s(translator, sentences, {"beam_size": 5}, 1)
    finally:
        search_module._step_log_probs = step
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    calls = sum(e.count for e in events if e.key.startswith("aten::") or e.key.startswith("mkldnn::"))
    print(f"1. beam 5, batch 1, {len(sentences)} sentences, {steps} decoder steps (profiled, so slower than real):")
    print(
        f"   {total / steps / 1e3:.2f} ms of operator self time a step; matrix products {100 * matmul / total:.0f}%,"
        f" everything else {100 * (total - matmul) / total:.0f}%; {calls / steps:.0f} operator calls a step (encoder included)"
    )
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]
    for e in top:
        print(
            f"   {e.key:28s} {100 * e.self_cpu_time_total / total:5.1f}%  {e.count / steps:6.1f} calls/step  "
            f"{e.self_cpu_time_total / e.count:8.1f} us/call"
        )


def matmul_alone(translator: Translator, rounds: int) -> None:
    """Part 2: the decoder's matrix products at M rows, three ways."""
    model = translator.model
    linears = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
    weights = [(m.weight.detach(), m.bias.detach() if m.bias is not None else None) for m in linears]
    weights.append((model.output_weight.detach(), None if model.output_bias is None else model.output_bias.detach()))
    flops_per_row = sum(2 * w.numel() for w, _ in weights)
    mib = sum(w.numel() for w, _ in weights) * 4 / 2**20
    print(f"2. the decoder's {len(weights)} matrix products of one step ({mib:.1f} MiB of float32 weights), us a step (GFLOP/s):")
    for rows in (1, 5, 30, 150):
        inputs = {w.size(1): torch.randn(rows, w.size(1)) for w, _ in weights}
        onednn = [(torch.ops.mkldnn._reorder_linear_weight(w, None), b) for w, b in weights]
        ways = {
            "F.linear (MKL)": lambda inputs=inputs: [F.linear(inputs[w.size(1)], w, b) for w, b in weights],
            "oneDNN packed": lambda inputs=inputs, onednn=onednn: [
                torch.ops.mkldnn._linear_pointwise(inputs[w0.size(1)], p, b, "none", [], "") for (p, b), (w0, _) in zip(onednn, weights)
            ],
        }
        if hasattr(torch.ops.mkl, "_mkl_linear") and torch.backends.mkl.is_available():
            mkl = [(torch.ops.mkl._mkl_reorder_linear_weight(w, rows), w, b) for w, b in weights]
            ways["MKL packed"] = lambda inputs=inputs, rows=rows, mkl=mkl: [
                torch.ops.mkl._mkl_linear(inputs[w.size(1)], p, w, b, rows) for p, w, b in mkl
            ]
        times: dict[str, list[float]] = {name: [] for name in ways}
        for f in ways.values():
            f()
        for _ in range(rounds):
            for name, f in ways.items():
                started, n = time.perf_counter(), 30
                for _ in range(n):
                    f()
                times[name].append((time.perf_counter() - started) / n * 1e6)
        cells = [
            f"{name} {statistics.median(t):8.0f} ({flops_per_row * rows / statistics.median(t) / 1e3:5.1f})" for name, t in times.items()
        ]
        print(f"   M={rows:3d}  " + "   ".join(cells))


def stacked_qkv(attention: MultiHeadAttention, query, cache, mask=None):
    """forward_cached with W^Q, W^K, W^V stacked into one product (weights stacked by `stack_qkv`)."""
    q, k, v = F.linear(query, attention.bench_qkv_weight, attention.bench_qkv_bias).split(attention.h * attention.d_k, dim=-1)
    k, v = attention.split_heads(k), attention.split_heads(v)  # (B, h, T_new, d_k)
    if "k" in cache:
        k = torch.cat([cache["k"], k], dim=2)
        v = torch.cat([cache["v"], v], dim=2)
    cache["k"], cache["v"] = k, v
    q = attention.split_heads(q)  # (B, h, T_new, d_k); self-attention has one query row per cache row
    if attention.fused:
        out = fused_attention(q, k, v, mask)
    else:
        out, _ = scaled_dot_product_attention(q, k, v, mask)
    return attention.out_proj(out.transpose(1, 2).reshape(query.size(0), query.size(1), -1))  # (B, T_new, d_model)


def stack_qkv(translator: Translator) -> list[MultiHeadAttention]:
    layers = [layer.self_attn for layer in translator.model.decoder.layers]
    for m in layers:
        m.bench_qkv_weight = torch.cat([m.q_proj.weight, m.k_proj.weight, m.v_proj.weight]).detach()
        m.bench_qkv_bias = torch.cat([m.q_proj.bias, m.k_proj.bias, m.v_proj.bias]).detach()
    return layers


def alternate(name: str, translator: Translator, sentences: list[str], rounds: int, switch, columns=COLUMNS) -> None:
    """Eager against a variant (switch(True) turns it on), alternating, per column."""
    for label, options, batch in columns:
        speeds: dict[bool, list[float]] = {False: [], True: []}
        outputs: dict[bool, list[str]] = {}
        for _ in range(rounds):
            for on in (False, True):
                switch(on)
                speed, outputs[on] = sentences_per_s(translator, sentences, options, batch)
                speeds[on].append(speed)
        switch(False)
        a, b = statistics.median(speeds[False]), statistics.median(speeds[True])
        print(f"   {label}: as is {a:7.2f}, {name} {b:7.2f} sentences/s ({b / a:.2f}x); same output: {outputs[False] == outputs[True]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(Path(__file__).resolve().parents[2] / "models" / "de-en-general"))
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--parts", default="12356", help="which measurements to run, e.g. 12356 or 4 (4: torch.compile, minutes of compiling)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    translator = Translator.load(args.model, device="cpu")
    sentences = test2016(args.data_dir)[0][: args.sentences]
    print(f"{cpu_name()}, {args.threads} threads, {Path(args.model).name}, torch {torch.__version__}")
    sentences_per_s(translator, sentences[:10], {"beam_size": 5}, 1)  # warm-up
    if "1" in args.parts:
        profile_step(translator, sentences[:20])
    if "2" in args.parts:
        matmul_alone(translator, args.rounds)
    if "3" in args.parts:
        print("3. one stacked query/key/value product in cached self-attention:")
        layers = stack_qkv(translator)

        def qkv(on: bool) -> None:
            for m in layers:
                if on:
                    m.forward_cached = lambda query, cache, mask=None, m=m: stacked_qkv(m, query, cache, mask)
                else:
                    m.__dict__.pop("forward_cached", None)

        alternate("stacked", translator, sentences, args.rounds, qkv)

    if "4" in args.parts:
        model = translator.model
        step = search_module._step_log_probs
        torch._dynamo.config.recompile_limit = 64  # the first step (empty cache) and each new batch shape compile anew
        compiled = torch.compile(lambda tokens, state: model.decode(tokens, state, incremental=True), dynamic=True)

        def compiled_step(model, project, tokens, state):
            return project(compiled(tokens, state)[:, -1]).float().log_softmax(dim=-1)

        search_module._step_log_probs = compiled_step
        started = time.perf_counter()
        for _, options, batch in COLUMNS:
            sentences_per_s(translator, sentences[:40], options, batch)  # compiles what these shapes need
        print(
            f"4. torch.compile(dynamic=True) of the decoder step: {time.perf_counter() - started:.0f} s to compile "
            "(and run 3 x 40 sentences)"
        )
        search_module._step_log_probs = step

        def compiled_on(on: bool) -> None:
            search_module._step_log_probs = compiled_step if on else step

        alternate("compiled", translator, sentences, args.rounds, compiled_on)

    if "5" in args.parts:
        print("5. encoder keys and values made contiguous once per batch (not left as views):")
        decoder = translator.model.decoder
        views_state = decoder.init_state

        def contiguous_state(memory, memory_mask):
            state = views_state(memory, memory_mask)
            state.encoder_kv = [(k.contiguous(), v.contiguous()) for k, v in state.encoder_kv]  # each (B, h, S, d_k)
            return state

        def contiguous(on: bool) -> None:
            if on:
                decoder.init_state = contiguous_state
            else:
                decoder.__dict__.pop("init_state", None)

        alternate("contiguous", translator, sentences, args.rounds, contiguous, COLUMNS + (SAMPLED,))

    if "6" in args.parts:
        print("6. every decoder linear layer on oneDNN, its weight packed once:")
        linears = [m for m in translator.model.decoder.modules() if isinstance(m, torch.nn.Linear)]
        packed = [PackedLinear(m.weight, m.bias) for m in linears]

        def pack(on: bool) -> None:
            for m, fast in zip(linears, packed):
                if on:
                    m.forward = fast
                else:
                    m.__dict__.pop("forward", None)

        alternate("packed", translator, sentences, args.rounds, pack)


if __name__ == "__main__":
    main()
