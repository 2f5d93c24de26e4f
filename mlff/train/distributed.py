"""Data-parallel training under ``torchrun`` (NCCL on GPUs, gloo on CPUs).

Every rank holds the same model (same seed, same updates). Each optimisation step splits the global
batch across ranks (``indices[rank::world]``), each rank back-propagates its share, and gradients
are averaged before clipping and the optimizer step: flattened into buckets of up to 25 MB (one
dtype and device each), one all-reduce per bucket. With equal shares this is the same update as
one process on the whole batch. Only rank 0 writes files and logs.
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


def computed_once(compute):
    """``compute()`` run on rank 0 only and its (picklable) result sent to every rank; just ``compute()``
    without a process group. For passes over the data that every rank needs the result of."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return compute()
    box = [None]
    if dist.get_rank() == 0:
        try:
            box = [(True, compute())]
        except Exception as exc:  # noqa: BLE001 - every rank raises it, instead of waiting for rank 0
            box = [(False, exc)]
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value


BUCKET_BYTES = 25 * 2**20


def average_gradients(parameters, world: int, bucket_bytes: int = BUCKET_BYTES) -> None:
    """Average the gradients over the ``world`` ranks, which must all have gradients for the same parameters."""
    if world == 1:
        return
    for bucket in _buckets([p.grad for p in parameters if p.grad is not None], bucket_bytes):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(world)
        for grad, part in zip(bucket, flat.split([g.numel() for g in bucket])):
            grad.copy_(part.view_as(grad))


def _buckets(tensors: list[torch.Tensor], limit: int) -> list[list[torch.Tensor]]:
    """``tensors`` grouped by dtype and device, in order, into runs of at most ``limit`` bytes (or one tensor)."""
    runs: dict[tuple, list[list[torch.Tensor]]] = {}
    sizes: dict[tuple, int] = {}  # bytes in the last run of each group
    for t in tensors:
        key, nbytes = (t.dtype, t.device), t.numel() * t.element_size()
        if key not in runs or sizes[key] + nbytes > limit:
            runs.setdefault(key, []).append([])
            sizes[key] = 0
        runs[key][-1].append(t)
        sizes[key] += nbytes
    return [run for group in runs.values() for run in group]


def teardown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
