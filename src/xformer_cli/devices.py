"""Choosing the device a model runs on: shared by training and translation."""

from __future__ import annotations

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
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
