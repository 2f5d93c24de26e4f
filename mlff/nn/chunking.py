"""Edge and atom work in chunks, recomputed in backward: inference memory for large systems.

Forces are a backward pass, so a plain forward keeps every intermediate of every layer until the
forces are done: about 22 000 floats per edge for the small preset and 380 000 for the 31m one, most
of it inside the graph attention, and some 40 000 floats per atom in each sphere-grid MLP. Under
:func:`chunked` the edge-wise layers run over chunks of about ``size`` edges that hold every incoming
edge of their receivers (:func:`edge_chunks`; so the attention's softmax is complete within a chunk
and each chunk returns finished per-atom sums), and the grid MLPs over chunks of ``size //
NODE_SHARE`` atoms. Each chunk runs through :func:`torch.utils.checkpoint.checkpoint` when gradients
are on: what it returns is kept, its intermediates are recomputed when the backward reaches it. That
trades one more forward of those layers for memory that grows with the atoms, not with the edges
times the layers. The results are the same computation, summed in a different order.

The size is a setting of the running code, like the kernel backend (:func:`mlff.kernels.use_backend`):
``None`` (the default) runs everything at once without recomputation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch.utils.checkpoint import checkpoint

_size: int | None = None


@contextlib.contextmanager
def chunked(size: int | None) -> Iterator[None]:
    """Run the enclosed code in chunks of at most ``size`` edges or atoms (``None``: no chunks)."""
    global _size
    if size is not None and not int(size) >= 1:
        raise ValueError(f"chunk size must be a positive number of edges or atoms, got {size}")
    previous, _size = _size, None if size is None else int(size)
    try:
        yield
    finally:
        _size = previous


def chunk_size() -> int | None:
    """The chunk size in effect (``None``: no chunks)."""
    return _size


#: atoms per chunk = edges per chunk // NODE_SHARE: the grid MLPs keep some 40 000 floats per atom,
#: about what four edges keep in one graph attention
NODE_SHARE = 4


def slices(length: int, per_chunk: int | None = None) -> list[slice]:
    """The slices of ``length`` rows to run one at a time, ``per_chunk`` rows each (default: the chunk
    size in effect); a single slice when not chunking."""
    per_chunk = _size if per_chunk is None else per_chunk
    if per_chunk is None or length <= per_chunk:
        return [slice(0, length)]
    return [slice(start, min(start + per_chunk, length)) for start in range(0, length, per_chunk)]


def _run(fn: Callable, *args):
    """``fn(*args)``, checkpointed when gradients are on."""
    return checkpoint(fn, *args, use_reentrant=False) if torch.is_grad_enabled() else fn(*args)


class EdgeChunk(NamedTuple):
    """Some edges (a slice, or an index tensor) and the atoms whose sums they make: ``count`` atoms from
    ``first`` on. Each edge's receiver is among those atoms, and so are all the incoming edges of each."""

    edges: slice | torch.Tensor
    first: int
    count: int

    def receivers(self, receiver: torch.Tensor) -> torch.Tensor:
        """The receivers of the chunk's edges, numbered from its first atom."""
        return receiver[self.edges] - self.first if self.first else receiver[self.edges]


def edge_chunks(receiver: torch.Tensor, num_nodes: int) -> list[EdgeChunk]:
    """The chunks of the edges, of about the chunk size in effect (one chunk when not chunking).

    Every atom's incoming edges lie in one chunk, so a softmax over them is complete within it (an
    atom with more edges than the chunk size gets a larger chunk). With the edges sorted by receiver,
    as every graph of :mod:`mlff.data` has them, the chunks are slices and own consecutive, disjoint
    ranges of atoms that together cover all of them, so each chunk's result has rows for its own
    atoms only. Otherwise they are index sets, and each result has a row for every atom.
    """
    num_edges = receiver.shape[0]
    if _size is None or num_edges <= _size:
        return [EdgeChunk(slice(None), 0, num_nodes)]
    order = None
    if not bool((receiver[1:] >= receiver[:-1]).all()):
        order = torch.argsort(receiver, stable=True)
        receiver = receiver[order]
    targets = torch.arange(_size, num_edges, _size, device=receiver.device)
    starts = torch.searchsorted(receiver, receiver[targets])  # where the receiver at each target begins
    bounds = [0, *sorted(set(starts.tolist()) - {0}), num_edges]
    if order is not None:
        return [EdgeChunk(order[a:b], 0, num_nodes) for a, b in zip(bounds[:-1], bounds[1:])]
    atoms = [0, *receiver[bounds[1:-1]].tolist(), num_nodes]
    return [EdgeChunk(slice(a, b), lo, hi - lo) for a, b, lo, hi in zip(bounds[:-1], bounds[1:], atoms[:-1], atoms[1:])]


def over_edge_chunks(fn: Callable, frame, receiver: torch.Tensor, num_nodes: int, *args) -> torch.Tensor:
    """Per-atom results ``[num_nodes, ...]`` of ``fn(sub_frame, chunk, *args)`` over the
    :func:`edge_chunks`: ``fn`` returns rows for the chunk's ``count`` atoms from its ``first``
    (:meth:`EdgeChunk.receivers` numbers them), taking its own part of its per-edge tensors with
    ``chunk.edges``; ``sub_frame`` is the chunk's frames (:meth:`mlff.nn.edge_frame.Frame.narrow`).
    The results are concatenated (chunks owning atom ranges) or summed as they come (index-set
    chunks); neither keeps anything for its backward. Each call is checkpointed when gradients are on
    and there is more than one chunk."""
    chunks = edge_chunks(receiver, num_nodes)
    if len(chunks) == 1:
        return fn(frame, chunks[0], *args)
    if chunks[0].count < num_nodes:
        return torch.cat([_run(fn, frame.narrow(c.edges), c, *args) for c in chunks])
    total = None
    for chunk in chunks:
        part = _run(fn, frame.narrow(chunk.edges), chunk, *args)
        total = part if total is None else total + part
    return total


def map_edge_rows(fn: Callable, x: torch.Tensor, *args) -> torch.Tensor:
    """``fn(x, *args)`` for an edge-wise ``fn`` (row ``e`` of the result depends on row ``e`` of ``x``
    only), over chunks of at most the chunk size rows, concatenated; see :func:`_map_rows`."""
    return _map_rows(fn, x, args, _size)


def map_node_chunks(fn: Callable, x: torch.Tensor, *args) -> torch.Tensor:
    """``fn(x, *args)`` for an atom-wise ``fn``, over chunks of at most chunk size // ``NODE_SHARE``
    rows, concatenated; see :func:`_map_rows`."""
    return _map_rows(fn, x, args, None if _size is None else max(1, _size // NODE_SHARE))


def _map_rows(fn: Callable, x: torch.Tensor, args: tuple, per_chunk: int | None) -> torch.Tensor:
    """``fn(x, *args)`` as it is when not chunking (or ``x`` fits one chunk); otherwise over chunks of
    ``per_chunk`` rows, each checkpointed when gradients are on, concatenated."""
    parts = slices(x.shape[0], per_chunk)
    if len(parts) == 1:
        return fn(x, *args)
    return torch.cat([_run(fn, x[rows], *args) for rows in parts])
