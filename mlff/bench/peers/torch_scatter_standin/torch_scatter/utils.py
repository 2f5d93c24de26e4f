"""``torch_scatter.utils.broadcast`` for the pure-PyTorch stand-in (see ``__init__.py``)."""

from __future__ import annotations

import torch


def broadcast(src: torch.Tensor, other: torch.Tensor, dim: int) -> torch.Tensor:
    """View ``src`` (an index) so that it lines up with ``other`` along ``dim`` and expand it to ``other``'s shape.

    A 1-D ``src`` indexes dimension ``dim`` of ``other``; a k-D ``src`` covers ``other``'s first k
    dimensions. Missing dimensions are added (leading ones before a 1-D ``src``, trailing ones after)
    and then expanded, so ``src`` can be used as the index of ``Tensor.scatter_add_`` and friends.
    """
    if dim < 0:
        dim += other.dim()
    if src.dim() == 1 and dim > 0:
        src = src.reshape((1,) * dim + (-1,))
    if src.dim() < other.dim():
        src = src.reshape(tuple(src.shape) + (1,) * (other.dim() - src.dim()))
    return src.expand(other.shape)
