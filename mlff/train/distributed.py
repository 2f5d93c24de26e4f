"""Data-parallel training under ``torchrun`` (NCCL on GPUs, gloo on CPUs).

Every rank holds the same model (same seed, same updates). Each optimisation step splits the global
batch across ranks (``indices[rank::world]``), each rank back-propagates its share, and gradients
are averaged with an all-reduce before clipping and the optimizer step. With equal shares this is
the same update as one process on the whole batch. Only rank 0 writes files and logs.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def setup() -> tuple[int, int, torch.device | None]:
    """Initialise the process group if launched by torchrun; returns (rank, world, device or None)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, None
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    rank = dist.get_rank()
    device = None
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return rank, world, device


def average_gradients(parameters, world: int) -> None:
    if world == 1:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


def teardown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
