"""What the Triton ops share: launch counts (so tests can tell that Triton ran), CSR grouping and
register-tile matmuls."""

from __future__ import annotations

import collections

import torch
import triton
import triton.language as tl

#: kernel launches per op since import (or since :func:`reset_launches`)
LAUNCHES: collections.Counter = collections.Counter()


def count_launch(name: str) -> None:
    LAUNCHES[name] += 1


def reset_launches() -> None:
    LAUNCHES.clear()


def csr(index: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Group the positions of ``index`` by value: ``(order, start)``.

    ``order`` lists the positions sorted by value (stably, so ties keep their order: the sums that
    walk it are deterministic); the positions with value ``n`` are ``order[start[n]:start[n+1]]``.
    """
    order = torch.sort(index, stable=True).indices
    start = torch.zeros(size + 1, dtype=torch.int64, device=index.device)
    torch.cumsum(torch.bincount(index, minlength=size), 0, out=start[1:])
    return order, start


@triton.jit
def matmul(a, b, USE_DOT: tl.constexpr):
    """``a @ b`` for register tiles: ``tl.dot`` (IEEE float32), or broadcast-and-sum for float64."""
    if USE_DOT:
        out = tl.dot(a, b, input_precision="ieee")
    else:
        out = tl.sum(a[:, :, None] * b[None, :, :], axis=1)
    return out
