"""Running under ``torchrun``: process-group setup and the few collectives the loops need.

The process group is created once per process, by the first loop that needs it, and destroyed
at interpreter exit. Loops never tear it down themselves: a study or a search grid runs a search
and then trains its result in the same processes, and a group destroyed and created again under
torchrun's store deadlocks (one rank finds the old rendezvous keys and goes on alone).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_destroy_at_exit)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over all processes (a no-op when not distributed)."""
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values)
    return values


def average_gradients(parameters, info: DistInfo) -> None:
    """Average the gradients of ``parameters`` across processes (for parameters outside DDP)."""
    if not info.enabled:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def _destroy_at_exit() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
