"""The process group of a data-parallel run (torchrun), and the device (and autocast) each
process trains with.

Without torchrun there is one process and every method here is a no-op.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from xformer_cli.devices import bound_kernel_caches, cpu_bf16_pays, resolve_device


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every process gets here (nothing to wait for in a single process)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def all_sum(self, value: int) -> int:
        """The sum of `value` over all processes."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        total = torch.tensor([value], dtype=torch.long)
        dist.all_reduce(total)
        return int(total)

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true in any process."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        value = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def share(self, value: Any) -> Any:
        """Rank 0's `value` (any picklable object), in every process; the others wait for it."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def setup_distributed(device: torch.device) -> Distributed:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): gloo on the CPU; on
    GPUs NCCL for CUDA tensors (the gradients) and gloo for the few CPU values (token counts,
    stop flags, shared objects)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size())


def training_device(device_name: str, threads: int, bf16: bool) -> tuple[torch.device, Distributed]:
    """The device this process trains on and its place in the process group: under torchrun on
    GPUs, process LOCAL_RANK takes GPU LOCAL_RANK. `threads` > 0 sets torch's CPU threads; `bf16`
    is the training's setting, for what its precision needs of the device."""
    device = resolve_device(device_name)
    if threads > 0:
        torch.set_num_threads(threads)
    if device.type == "cpu" and half_precision(device, bf16) is not None:
        bound_kernel_caches()  # before the first matrix product builds a kernel
    if device.type == "cuda":  # TF32 matrix products where autocast leaves float32 (Ampere and later)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device, setup_distributed(device)


def half_precision(device: torch.device, bf16: bool) -> torch.dtype | None:
    """The autocast type when `bf16` is on. CUDA: bfloat16 where the GPU has it, else float16
    (which needs a gradient scaler). CPU: bfloat16 only where it measured faster than float32
    (`cpu_bf16_pays`: AVX512-BF16 without AMX). None otherwise, or with `bf16` off: float32 throughout."""
    if not bf16:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_bf16_pays():
        return torch.bfloat16
    return None


def autocast(device: torch.device, bf16: bool) -> AbstractContextManager:
    """Autocast to `half_precision(device, bf16)`, or nothing."""
    dtype = half_precision(device, bf16)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
