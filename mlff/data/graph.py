"""``AtomicGraph``: a batch of structures as tensors, built from ``ase.Atoms``.

One graph holds one or many structures of any sizes, periodic or not. Atoms of all structures are
concatenated; ``batch[n]`` says which structure atom ``n`` belongs to and ``ptr`` gives the atom
ranges. Edges follow the design's convention: ``edge_index[0]`` is the sender ``j``,
``edge_index[1]`` the receiver ``i`` and the edge vector is
``r_ij = pos[j] - pos[i] + shifts @ cell[batch[i]]`` (see :meth:`AtomicGraph.edge_vectors`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Iterable, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.constraints import FixAtoms

from mlff.data.labels import full_stress, get_labels
from mlff.data.neighbors import NeighborList, neighbor_list
from mlff.data.validation import validate_atoms


@dataclass
class AtomicGraph:
    """Tensors describing a batch of ``num_graphs`` structures and ``num_atoms`` atoms."""

    positions: torch.Tensor  # [N, 3] float
    numbers: torch.Tensor  # [N] int64 atomic numbers
    cell: torch.Tensor  # [B, 3, 3] float, cell vectors as rows (zeros for open directions allowed)
    pbc: torch.Tensor  # [B, 3] bool
    edge_index: torch.Tensor  # [2, E] int64: (sender j, receiver i)
    shifts: torch.Tensor  # [E, 3] int64 integer cell shifts
    batch: torch.Tensor  # [N] int64 structure index of each atom
    ptr: torch.Tensor  # [B + 1] int64 atom offsets
    cutoff: float
    # labels and per-atom metadata (None when absent)
    energy: torch.Tensor | None = None  # [B] eV
    forces: torch.Tensor | None = None  # [N, 3] eV/Å
    stress: torch.Tensor | None = None  # [B, 3, 3] eV/Å³ (ASE sign convention)
    atom_weights: torch.Tensor | None = None  # [N] float, weight of each atom's force in a loss
    fixed: torch.Tensor | None = None  # [N] bool, atoms held by FixAtoms
    tags: torch.Tensor | None = None  # [N] int64, ASE tags (slab layers, adsorbate = 2 in OC20)

    # ------------------------------------------------------------------ sizes
    @property
    def num_graphs(self) -> int:
        return self.ptr.numel() - 1

    @property
    def num_atoms(self) -> int:
        return self.positions.shape[0]

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]

    @property
    def atoms_per_graph(self) -> torch.Tensor:
        return self.ptr[1:] - self.ptr[:-1]

    # ------------------------------------------------------------------ geometry
    def edge_vectors(
        self, positions: torch.Tensor | None = None, cell: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``r_ij = pos[j] - pos[i] + S @ cell`` for every edge; differentiable in both inputs.

        Pass strained ``positions``/``cell`` to differentiate through them (forces, stress).
        """
        pos = self.positions if positions is None else positions
        cell = self.cell if cell is None else cell
        sender, receiver = self.edge_index
        offsets = torch.einsum("ek,ekc->ec", self.shifts.to(pos.dtype), cell[self.batch[receiver]])
        return pos[sender] - pos[receiver] + offsets

    # ------------------------------------------------------------------ conversion
    def to(self, device=None, dtype: torch.dtype | None = None) -> "AtomicGraph":
        """Move to ``device`` and cast floating tensors to ``dtype`` (integers stay integers)."""
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                if value.is_floating_point() and dtype is not None:
                    value = value.to(device=device, dtype=dtype)
                else:
                    value = value.to(device=device)
                changes[f.name] = value
        return replace(self, **changes)

    @property
    def device(self) -> torch.device:
        return self.positions.device

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_atoms(
        cls,
        atoms: Atoms | Sequence[Atoms],
        cutoff: float,
        dtype: torch.dtype | None = None,
        device=None,
        backend: str = "auto",
        labels: bool = True,
        validate: bool = True,
        neighbors: Sequence[NeighborList] | None = None,
    ) -> "AtomicGraph":
        """Build a graph (batch) from one structure or a sequence of structures.

        ``labels=True`` copies energy, forces and stress found in each structure's
        calculator results (see :mod:`mlff.data.labels`); a label is kept only if every structure
        has it, except stress, which is kept for fully periodic structures only (the stress of a
        slab or molecule depends on the arbitrary vacuum volume) and is NaN for the others of a
        batch where at least one has it. ``validate`` runs :func:`mlff.data.validation.validate_atoms` on each structure.
        ``neighbors`` (one list per structure) skips the neighbour search, e.g. when a caller
        reuses lists between MD steps.
        """
        if isinstance(atoms, Atoms):
            atoms = [atoms]
        dtype = dtype or torch.get_default_dtype()
        device = torch.device(device) if device is not None else torch.device("cpu")
        neighbors = neighbors if neighbors is not None else [None] * len(atoms)
        graphs = [
            _single_graph(a, cutoff, dtype, device, backend, labels, validate, index=k, nl=nl)
            for k, (a, nl) in enumerate(zip(atoms, neighbors))
        ]
        if not graphs:
            raise ValueError("cannot build a graph from an empty list of structures")
        return collate(graphs)


def _single_graph(
    atoms: Atoms, cutoff, dtype, device, backend, labels, validate, index, nl=None
) -> AtomicGraph:
    if validate:
        validate_atoms(atoms, where=f"structure {index}")
    as_t = lambda x, dt=dtype: torch.as_tensor(np.asarray(x), dtype=dt, device=device)  # noqa: E731
    positions = as_t(atoms.positions)
    if nl is None:
        nl = neighbor_list(positions, atoms.cell.array, atoms.pbc, cutoff, backend=backend)
    n = len(atoms)
    fixed = np.zeros(n, dtype=bool)
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            fixed[constraint.get_indices()] = True
    graph = AtomicGraph(
        positions=positions,
        numbers=as_t(atoms.numbers, torch.long),
        cell=as_t(atoms.cell.array)[None],
        pbc=as_t(atoms.pbc, torch.bool)[None],
        edge_index=torch.stack([nl.senders, nl.receivers]).to(device),
        shifts=nl.shifts.to(device),
        batch=torch.zeros(n, dtype=torch.long, device=device),
        ptr=torch.tensor([0, n], dtype=torch.long, device=device),
        cutoff=float(cutoff),
        fixed=as_t(fixed, torch.bool),
        tags=as_t(atoms.get_tags(), torch.long),
    )
    if "weights" in atoms.arrays:
        graph.atom_weights = as_t(atoms.arrays["weights"])
    if labels:
        found = get_labels(atoms)
        if "energy" in found:
            graph.energy = as_t([found["energy"]])
        if "forces" in found:
            graph.forces = as_t(found["forces"])
        if "stress" in found and atoms.pbc.all():
            graph.stress = as_t(full_stress(found["stress"]))[None]
    return graph


def collate(graphs: Iterable[AtomicGraph]) -> AtomicGraph:
    """Concatenate graphs into one batch (atom and edge indices are offset accordingly).

    Optional tensors (labels, weights...) are kept only if every graph has them; stress is kept
    if any graph has it, NaN for the structures without (see :meth:`AtomicGraph.from_atoms`).
    """
    graphs = list(graphs)
    if len(graphs) == 1:
        return graphs[0]
    cutoffs = {g.cutoff for g in graphs}
    if len(cutoffs) != 1:
        raise ValueError(f"cannot batch graphs built with different cutoffs {sorted(cutoffs)}")
    atom_offsets = np.cumsum([0] + [g.num_atoms for g in graphs])
    graph_offsets = np.cumsum([0] + [g.num_graphs for g in graphs])
    device = graphs[0].device
    cat = lambda name: torch.cat([getattr(g, name) for g in graphs])  # noqa: E731
    out = AtomicGraph(
        positions=cat("positions"),
        numbers=cat("numbers"),
        cell=cat("cell"),
        pbc=cat("pbc"),
        edge_index=torch.cat([g.edge_index + int(o) for g, o in zip(graphs, atom_offsets)], 1),
        shifts=cat("shifts"),
        batch=torch.cat([g.batch + int(o) for g, o in zip(graphs, graph_offsets)]),
        ptr=torch.cat(
            [torch.zeros(1, dtype=torch.long, device=device)]
            + [g.ptr[1:] + int(o) for g, o in zip(graphs, atom_offsets)]
        ),
        cutoff=cutoffs.pop(),
    )
    for name in ("energy", "forces", "stress", "atom_weights", "fixed", "tags"):
        if all(getattr(g, name) is not None for g in graphs):
            setattr(out, name, cat(name))
    if out.stress is None and any(g.stress is not None for g in graphs):
        like = next(g.stress for g in graphs if g.stress is not None)
        out.stress = torch.cat([g.stress if g.stress is not None else like.new_full((g.num_graphs, 3, 3), float("nan"))
                                for g in graphs])
    return out
