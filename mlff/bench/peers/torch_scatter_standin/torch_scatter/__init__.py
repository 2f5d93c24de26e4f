"""A small pure-PyTorch stand-in for the parts of ``torch_scatter`` that fairchem-core imports.

fairchem-core 1.10 imports ``scatter``, ``segment_coo``, ``segment_csr`` and
``torch_scatter.utils.broadcast`` at module level, so ``import fairchem.core`` fails without the
compiled ``torch-scatter`` package, which has no wheel for the torch in the peer venv. This module
implements those functions (and the ``scatter_*`` shorthands and ``scatter_max``/``scatter_min``
that torch_geometric reaches for once it sees a ``torch_scatter`` module) with
``Tensor.scatter_add_``/``Tensor.scatter_reduce_``, so they are differentiable wherever those are.
Semantics follow torch_scatter's documentation: output positions that receive nothing are 0 for
sum/mean/max/min and 1 for mul, ``mean`` of integer tensors floors, ``out=`` accumulates in place.

It is used only by the peer benchmark (``mlff/bench/peers/fairchem_peer.py``), never by mlff.
"""

from __future__ import annotations

import torch

from .utils import broadcast

__version__ = "0.0.0+mlff.standin"

__all__ = [
    "scatter",
    "scatter_sum",
    "scatter_add",
    "scatter_mul",
    "scatter_mean",
    "scatter_max",
    "scatter_min",
    "segment_coo",
    "segment_csr",
    "broadcast",
]

_SUM = ("sum", "add")
_MAX = ("max", "amax")
_MIN = ("min", "amin")


def _output_size(src: torch.Tensor, index: torch.Tensor, dim: int, dim_size: int | None) -> list[int]:
    size = list(src.shape)
    if dim_size is None:
        dim_size = int(index.max()) + 1 if index.numel() > 0 else 0
    size[dim] = int(dim_size)
    return size


def scatter(
    src: torch.Tensor,
    index: torch.Tensor,
    dim: int = -1,
    out: torch.Tensor | None = None,
    dim_size: int | None = None,
    reduce: str = "sum",
) -> torch.Tensor:
    """Reduce the entries of ``src`` that share an ``index`` value along ``dim``.

    ``index`` is 1-D (indexing ``src``'s dimension ``dim``) or has ``src``'s leading shape; it is
    broadcast to ``src``. ``reduce`` is one of sum/add, mean, mul, max, min.
    """
    if dim < 0:
        dim += src.dim()
    if not 0 <= dim < max(src.dim(), 1):
        raise IndexError(f"scatter: dim {dim} out of range for a {src.dim()}-D src")
    idx = broadcast(index, src, dim)
    if reduce in _SUM:
        if out is None:
            out = src.new_zeros(_output_size(src, index, dim, dim_size))
        return out.scatter_add_(dim, idx, src)
    if reduce == "mean":
        total = scatter(src, index, dim, out, dim_size, "sum")
        count = src.new_zeros(total.shape).scatter_add_(dim, idx, torch.ones_like(src)).clamp_(min=1)
        if out is not None:  # torch_scatter divides the given ``out`` in place
            return out.div_(count) if out.is_floating_point() else out.div_(count, rounding_mode="floor")
        return total / count if total.is_floating_point() else total.div(count, rounding_mode="floor")
    if reduce == "mul":
        if out is None:
            out = src.new_ones(_output_size(src, index, dim, dim_size))
        return out.scatter_reduce_(dim, idx, src, "prod", include_self=True)
    if reduce in _MAX or reduce in _MIN:
        how = "amax" if reduce in _MAX else "amin"
        if out is None:  # positions nothing is scattered to keep the zero they start with
            return src.new_zeros(_output_size(src, index, dim, dim_size)).scatter_reduce_(
                dim, idx, src, how, include_self=False)
        return out.scatter_reduce_(dim, idx, src, how, include_self=True)
    raise ValueError(f"scatter: unknown reduce {reduce!r} (sum, add, mean, mul, max, min)")


def scatter_sum(src, index, dim=-1, out=None, dim_size=None):
    return scatter(src, index, dim, out, dim_size, "sum")


def scatter_add(src, index, dim=-1, out=None, dim_size=None):
    return scatter(src, index, dim, out, dim_size, "sum")


def scatter_mul(src, index, dim=-1, out=None, dim_size=None):
    return scatter(src, index, dim, out, dim_size, "mul")


def scatter_mean(src, index, dim=-1, out=None, dim_size=None):
    return scatter(src, index, dim, out, dim_size, "mean")


def _scatter_arg(src, index, dim, out, dim_size, how):
    if dim < 0:
        dim += src.dim()
    values = scatter(src, index, dim, out, dim_size, how)
    idx = broadcast(index, src, dim)
    n = src.size(dim)
    shape = [1] * src.dim()
    shape[dim] = n
    position = torch.arange(n, device=src.device).view(shape).expand_as(src)
    hit = src == values.gather(dim, idx)
    candidate = torch.where(hit, position, torch.full_like(position, n))
    # empty positions (and an ``out`` value that beat every src entry) get ``src.size(dim)``
    arg = torch.full(values.shape, n, dtype=torch.long, device=src.device)
    return values, arg.scatter_reduce_(dim, idx, candidate, "amin", include_self=True)


def scatter_max(src, index, dim=-1, out=None, dim_size=None):
    """(max values, position along ``dim`` of the first src entry that attains them)."""
    return _scatter_arg(src, index, dim, out, dim_size, "max")


def scatter_min(src, index, dim=-1, out=None, dim_size=None):
    """(min values, position along ``dim`` of the first src entry that attains them)."""
    return _scatter_arg(src, index, dim, out, dim_size, "min")


def segment_coo(
    src: torch.Tensor,
    index: torch.Tensor,
    out: torch.Tensor | None = None,
    dim_size: int | None = None,
    reduce: str = "sum",
) -> torch.Tensor:
    """Reduce ``src`` over the sorted ``index``, along ``src``'s dimension ``index.dim() - 1``."""
    if index.dim() > src.dim():
        raise ValueError("segment_coo: index has more dimensions than src")
    if tuple(index.shape[:-1]) != tuple(src.shape[: index.dim() - 1]):
        raise ValueError("segment_coo: index's leading shape must match src's")
    return scatter(src, index, index.dim() - 1, out, dim_size, reduce)


def segment_csr(
    src: torch.Tensor,
    indptr: torch.Tensor,
    out: torch.Tensor | None = None,
    reduce: str = "sum",
) -> torch.Tensor:
    """Reduce ``src`` over the segments ``indptr[i]:indptr[i + 1]`` of its dimension ``indptr.dim() - 1``."""
    dim = indptr.dim() - 1
    if dim < 0 or indptr.dim() > src.dim():
        raise ValueError("segment_csr: indptr must be at least 1-D and have no more dimensions than src")
    if dim > 0:  # leading batch dimensions: one 1-D problem per row
        if tuple(indptr.shape[:-1]) != tuple(src.shape[:dim]):
            raise ValueError("segment_csr: indptr's leading shape must match src's")
        rows = [segment_csr(src[i], indptr[i], None, reduce) for i in range(src.size(0))]
        result = torch.stack(rows) if rows else src.new_zeros((0,) + tuple(src.shape[1:]))
        return out.copy_(result) if out is not None else result
    indptr = indptr.long()
    segments = indptr.numel() - 1
    if segments <= 0:
        result = src.new_zeros((0,) + tuple(src.shape[1:]))
        return out.copy_(result) if out is not None else result
    start, stop = int(indptr[0]), int(indptr[-1])
    counts = indptr[1:] - indptr[:-1]
    if bool((counts < 0).any()) or stop > src.size(0):
        raise ValueError("segment_csr: indptr must be non-decreasing and within src")
    index = torch.repeat_interleave(torch.arange(segments, device=src.device), counts)
    part = src.narrow(0, start, stop - start)
    result = scatter(part, index, 0, None, segments, reduce)
    return out.copy_(result) if out is not None else result
