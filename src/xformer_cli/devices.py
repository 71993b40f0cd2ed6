"""Choosing the device a model runs on: shared by training and translation."""

from __future__ import annotations

import os

import torch

from xformer_cli.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available")
    return device


def native_cpu_bf16() -> bool:
    """True where the CPU computes in bfloat16 natively (x86 AVX512-BF16 or AMX tiles). Elsewhere
    PyTorch would emulate bfloat16 through float32 conversions: slower, so autocast stays off."""
    return _cpu_has("_is_avx512_bf16_supported") or _cpu_has("_is_amx_tile_supported")


def _cpu_has(check: str) -> bool:
    """The answer of one of torch.cpu's feature checks (False where this torch lacks it)."""
    return bool(getattr(getattr(torch, "cpu", None), check, lambda: False)())


def cpu_bf16_pays() -> bool:
    """True where bfloat16 autocast trains faster than float32 on this CPU, by a table of CPU
    features from measurements: AVX512-BF16 without AMX (AMD EPYC Zen 4: about 1.6× the float32
    step). With AMX (Intel Sapphire Rapids) bfloat16 autocast ran at 0.65–0.72× float32 when
    measured (each new batch shape builds new oneDNN kernels, dear for AMX), and
    without native bfloat16 it is emulated, slower still: float32 there."""
    return _cpu_has("_is_avx512_bf16_supported") and not _cpu_has("_is_amx_tile_supported")


def bound_kernel_caches(capacity: int = 8) -> None:
    """Keep at most `capacity` compiled matrix-product kernels in each of PyTorch's two CPU caches:
    oneDNN's own (ONEDNN_PRIMITIVE_CACHE_CAPACITY) and ideep's, PyTorch's layer over oneDNN
    (LRU_CACHE_CAPACITY). Each builds a kernel per input shape and keeps up to 1,024; in bfloat16
    a kernel holds its own converted buffers, so training on batches of ever-new shapes grew the
    process by 0.7-0.95 GiB over 150 Multi30k updates (peak RSS 1.6-1.9 GiB with either cache
    unbounded, 0.9 with both at 8, 1.0 in float32; bench/speed/train.py).
    Both are read when the first kernel is built, so call this before; a value already in the environment wins."""
    for name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
        os.environ.setdefault(name, str(capacity))
