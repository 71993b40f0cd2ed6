"""Translation on the GPU: sentences/s greedy and beam 5, and BLEU against the same bundle on the CPU.

    python bench/speed/translate_gpu.py [--model DIR] [--src F --ref F]

Defaults to the shipped bundle and the shipped Tatoeba test split (2,477 sentences), so it
needs nothing outside the project.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from xformer_cli.decoding.translator import Translator
from xformer_cli.evaluation.metrics import corpus_bleu
from xformer_cli.shipped import default_model, models_dir


def timed(translator: Translator, lines: list[str], beam: int) -> tuple[list[str], float]:
    translator.translate(lines[:64], beam_size=beam)  # warm-up
    if translator.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    out = translator.translate(lines, beam_size=beam)
    if translator.device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--src", type=Path, default=models_dir() / "corpus" / "tatoeba" / "test.de")
    parser.add_argument("--ref", type=Path, default=models_dir() / "corpus" / "tatoeba" / "test.en")
    args = parser.parse_args()
    src = args.src.read_text(encoding="utf-8").splitlines()
    ref = args.ref.read_text(encoding="utf-8").splitlines()
    gpu, cpu = Translator.load(args.model, device="cuda"), Translator.load(args.model, device="cpu")
    print(f"{args.model} on {torch.cuda.get_device_name(0)}; {len(src)} sentences of {args.src.name}")
    for beam in (1, 5):
        gpu_out, seconds = timed(gpu, src, beam)
        cpu_out = cpu.translate(src, beam_size=beam)
        same = sum(a == b for a, b in zip(gpu_out, cpu_out))
        print(
            f"  beam {beam}: GPU {len(src) / seconds:,.0f} sentences/s; BLEU GPU {corpus_bleu(gpu_out, [ref]).score:.2f}, "
            f"CPU {corpus_bleu(cpu_out, [ref]).score:.2f}; identical translations {same}/{len(src)}"
        )


if __name__ == "__main__":
    main()
