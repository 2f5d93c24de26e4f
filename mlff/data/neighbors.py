"""O(N) neighbour lists with periodic, mixed and open boundaries.

Two backends return the same set of edges:

* ``"matscipy"`` (CPU): matscipy's C cell list.
* ``"torch"`` (any device, GPU for large systems): a vectorised cell list written in torch.

``backend="auto"`` picks torch when the positions live on a GPU and matscipy otherwise.

Conventions: an edge ``(j -> i)`` is returned as ``receivers[e] = i``,
``senders[e] = j`` and an integer cell shift ``S[e]`` such that the edge vector is
``r_ij = pos[j] - pos[i] + S[e] @ cell``. Both directions of every pair are present, there is no
cap on the number of neighbours, an atom sees its own periodic images when the cell is smaller than
the cutoff, and an isolated atom simply has no edges.

Directions that are not periodic may have a zero or arbitrary cell vector: the list is built in an
*effective cell* whose open directions are replaced by an orthonormal complement of the periodic
ones, stretched to enclose every atom. Shifts along open directions are always zero.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import torch

from mlff.errors import ConfigError


class NeighborList(NamedTuple):
    """Edges ``j -> i`` as torch tensors on the device of the input positions."""

    receivers: torch.Tensor  # [E] int64, the centre atom i
    senders: torch.Tensor  # [E] int64, the neighbour j
    shifts: torch.Tensor  # [E, 3] int64, integer cell shifts


def effective_cell(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A non-singular cell equal to ``cell`` along periodic directions that encloses all atoms.

    Returns ``(cell_eff, origin)``: the fractional coordinates of ``positions - origin`` in
    ``cell_eff`` lie in [0, 1) along every open direction. Periodic cell vectors are unchanged.
    """
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    periodic = np.flatnonzero(pbc)
    open_dirs = np.flatnonzero(~pbc)
    out = cell.copy()
    origin = np.zeros(3)
    if len(open_dirs) == 0:
        return out, origin
    # Orthonormal complement of the periodic vectors (QR of [periodic | identity]).
    basis = np.concatenate([cell[periodic].T, np.eye(3)], axis=1)
    q, _ = np.linalg.qr(basis)
    complement = q[:, len(periodic) : 3].T  # rows: unit vectors orthogonal to periodic ones
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    for k, normal in zip(open_dirs, complement):
        proj = positions @ normal if len(positions) else np.zeros(1)
        lo, hi = float(proj.min()), float(proj.max())
        out[k] = normal * (hi - lo + 2.0)
        origin += normal * (lo - 1.0)
    return out, origin


BACKENDS = ("auto", "matscipy", "torch")


def check_backend(name: str, option: str = "neighbor_backend") -> str:
    """``name`` if it is one of :data:`BACKENDS`, else a :class:`~mlff.errors.ConfigError` naming ``option``."""
    if name not in BACKENDS:
        raise ConfigError(f"{option} must be 'auto', 'matscipy' or 'torch', got {name!r}")
    return name


def neighbor_list(
    positions,
    cell,
    pbc,
    cutoff: float,
    backend: str = "auto",
) -> NeighborList:
    """All pairs closer than ``cutoff`` (strictly), including periodic images.

    ``positions`` is ``[N, 3]`` (numpy or torch), ``cell`` ``[3, 3]`` with cell vectors as rows,
    ``pbc`` three booleans. The result lives on the device of ``positions`` (CPU for numpy).
    """
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    if backend == "auto":
        on_gpu = isinstance(positions, torch.Tensor) and positions.device.type != "cpu"
        backend = "torch" if on_gpu else "matscipy"
    if backend == "matscipy":
        return _matscipy_list(positions, cell, pbc, cutoff)
    if backend == "torch":
        return _torch_cell_list(positions, cell, pbc, cutoff)
    raise ValueError(f"unknown neighbour-list backend {backend!r}; use 'matscipy', 'torch' or 'auto'")


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _matscipy_list(positions, cell, pbc, cutoff: float) -> NeighborList:
    from matscipy.neighbours import neighbour_list as _ms_neighbour_list

    device = positions.device if isinstance(positions, torch.Tensor) else torch.device("cpu")
    pos = _to_numpy(positions).astype(np.float64).reshape(-1, 3)
    pbc_np = _to_numpy(pbc).astype(bool).reshape(3)
    cell_eff, origin = effective_cell(pos, _to_numpy(cell), pbc_np)
    if len(pos) == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return NeighborList(empty, empty, torch.zeros(0, 3, dtype=torch.long, device=device))
    i, j, shifts = _ms_neighbour_list(
        "ijS", positions=pos - origin, cell=cell_eff, pbc=pbc_np, cutoff=float(cutoff)
    )
    to = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.long, device=device)  # noqa: E731
    return NeighborList(to(i), to(j), to(shifts))


def _torch_cell_list(positions, cell, pbc, cutoff: float) -> NeighborList:
    """Cell list in torch: bin atoms in fractional coordinates, visit neighbouring bins.

    Bins are at least ``cutoff`` thick along every direction, so an atom's neighbours lie within
    one bin (or, for cells thinner than the cutoff, within ``ceil(cutoff / thickness)`` periodic
    copies of the single bin). The stencil of bin offsets is visited one offset at a time, which
    bounds memory by ``N x (atoms per bin)`` instead of ``N x 27 x (atoms per bin)``.
    """
    pos = torch.as_tensor(positions)
    device, dtype = pos.device, (pos.dtype if pos.is_floating_point() else torch.float64)
    pos = pos.to(dtype).reshape(-1, 3)
    n = pos.shape[0]
    pbc_np = _to_numpy(pbc).astype(bool).reshape(3)
    cell_np, origin_np = effective_cell(_to_numpy(pos), _to_numpy(cell), pbc_np)
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if n == 0:
        return NeighborList(empty, empty, torch.zeros(0, 3, dtype=torch.long, device=device))

    inv_np = np.linalg.inv(cell_np)
    thickness = 1.0 / np.linalg.norm(inv_np, axis=0)  # distance between opposite cell faces
    nbins = np.maximum(1, np.floor(thickness / cutoff)).astype(np.int64)
    while nbins.prod() > max(8 * n, 27):  # dilute systems: fewer, larger bins (still >= cutoff)
        k = int(np.argmax(nbins))
        nbins[k] = max(1, nbins[k] // 2)
    reach = np.ceil(cutoff / (thickness / nbins) - 1e-12).astype(np.int64)
    reach = np.where(pbc_np, reach, np.minimum(reach, nbins))  # open: never more than the box

    cell_t = torch.as_tensor(cell_np, dtype=dtype, device=device)
    inv_t = torch.as_tensor(inv_np, dtype=dtype, device=device)
    pbc_t = torch.as_tensor(pbc_np, device=device)
    nb_t = torch.as_tensor(nbins, device=device)
    frac = (pos - torch.as_tensor(origin_np, dtype=dtype, device=device)) @ inv_t
    wrap = torch.where(pbc_t, torch.floor(frac), torch.zeros_like(frac))
    frac = frac - wrap
    wrap = wrap.long()
    bin3 = torch.minimum(torch.clamp(torch.floor(frac * nb_t).long(), min=0), nb_t - 1)
    strides = torch.as_tensor([nbins[1] * nbins[2], nbins[2], 1], device=device)
    lin = (bin3 * strides).sum(1)
    order = torch.argsort(lin, stable=True)
    counts = torch.bincount(lin, minlength=int(nbins.prod()))
    starts = torch.cumsum(counts, 0) - counts
    wrapped_pos = frac @ cell_t  # positions folded into the effective cell
    cutoff_sq = float(cutoff) ** 2
    atom = torch.arange(n, device=device)

    parts = []
    ranges = [range(-int(r), int(r) + 1) for r in reach]
    for offset in itertools.product(*ranges):
        target = bin3 + torch.as_tensor(offset, device=device)
        image = torch.where(pbc_t, torch.div(target, nb_t, rounding_mode="floor"), 0)
        target = target - image * nb_t
        inside = ((target >= 0) & (target < nb_t)).all(1)
        centre = atom[inside]
        tlin = (target[inside] * strides).sum(1)
        c = counts[tlin]
        total = int(c.sum())
        if total == 0:
            continue
        i = torch.repeat_interleave(centre, c)
        first = torch.repeat_interleave(starts[tlin], c)
        within = torch.arange(total, device=device) - torch.repeat_interleave(torch.cumsum(c, 0) - c, c)
        j = order[first + within]
        img = torch.repeat_interleave(image[inside], c, dim=0)
        vec = wrapped_pos[j] - wrapped_pos[i] + img.to(dtype) @ cell_t
        keep = (vec * vec).sum(1) < cutoff_sq
        keep &= ~((i == j) & (img == 0).all(1))
        i, j, img = i[keep], j[keep], img[keep]
        parts.append((i, j, img + wrap[i] - wrap[j]))
    if not parts:
        return NeighborList(empty, empty, torch.zeros(0, 3, dtype=torch.long, device=device))
    i = torch.cat([p[0] for p in parts])
    j = torch.cat([p[1] for p in parts])
    shifts = torch.cat([p[2] for p in parts])
    # Deterministic order independent of the stencil: by receiver, then sender, then shift.
    return sort_edges(NeighborList(i, j, shifts))


def sort_edges(nl: NeighborList) -> NeighborList:
    """The same edges in canonical order: by receiver, then sender, then shift."""
    key = torch.stack([nl.receivers, nl.senders, nl.shifts[:, 0], nl.shifts[:, 1], nl.shifts[:, 2]], 1)
    perm = _lexsort_rows(key)
    return NeighborList(nl.receivers[perm], nl.senders[perm], nl.shifts[perm])


def _lexsort_rows(key: torch.Tensor) -> torch.Tensor:
    """Permutation sorting the rows of an integer matrix lexicographically (stable)."""
    perm = torch.arange(key.shape[0], device=key.device)
    for col in range(key.shape[1] - 1, -1, -1):
        idx = torch.argsort(key[perm, col], stable=True)
        perm = perm[idx]
    return perm
