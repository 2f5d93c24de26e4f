"""What the Triton ops share: launch counts (so tests can tell that Triton ran) and CSR grouping."""

from __future__ import annotations

import collections

import torch

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
