"""A stand-in for LAMMPS ML-IAP's data object, built from an ASE structure.

It lays the structure out as one LAMMPS rank would: the atoms in the cell are owned ("local"),
periodic images within ``halo`` of an owned atom are ghosts, and the pair list holds every directed
pair closer than the cutoff whose centre atom ``i`` is owned (``ghost_neighbors=True``: ghost centres
too), with ``rij = x_j - x_i``. ``update_pair_forces`` accumulates as LAMMPS does (``f[i] += fij``,
``f[j] -= fij``, and the virial), and :meth:`MLIAPDataStandIn.owned_forces` sums ghost forces into
their owners as LAMMPS's reverse communication does with ``newton on``. With ``exchange=True`` it
has KOKKOS's ``forward_exchange``/``reverse_exchange``.
"""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms

from mlff.data.neighbors import neighbor_list


def ghost_layout(atoms: Atoms, halo: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions ``[n_total, 3]``, atomic numbers and the owner index of every atom (owned first)."""
    n = len(atoms)
    nl = neighbor_list(atoms.positions, np.asarray(atoms.cell), atoms.pbc, halo)
    shifts = nl.shifts.numpy()
    image = np.any(shifts != 0, axis=1)
    ghosts = np.unique(np.column_stack([nl.senders.numpy()[image], shifts[image]]), axis=0)
    owner = np.concatenate([np.arange(n), ghosts[:, 0]]).astype(np.int64)
    positions = np.concatenate([atoms.positions, atoms.positions[ghosts[:, 0]] + ghosts[:, 1:] @ np.asarray(atoms.cell)])
    return positions, atoms.numbers[owner], owner


class MLIAPDataStandIn:
    """The attributes of ML-IAP's data object that a unified model reads and writes."""

    def __init__(self, atoms: Atoms, elements: list[str], cutoff: float, halo: float, exchange: bool = False,
                 ghost_neighbors: bool = False):
        positions, numbers, self.owner = ghost_layout(atoms, halo)
        symbols = [Atoms(numbers=[z]).get_chemical_symbols()[0] for z in numbers]
        self.elems = np.array([elements.index(s) for s in symbols], dtype=np.int32)
        self.nlocal = self.nlistatoms = len(atoms)
        self.ntotal = len(positions)
        nl = neighbor_list(positions, np.zeros((3, 3)), [False] * 3, cutoff)
        i, j = nl.receivers.numpy(), nl.senders.numpy()
        keep = np.ones_like(i, dtype=bool) if ghost_neighbors else i < self.nlocal
        self.pair_i, self.pair_j = i[keep].astype(np.int32), j[keep].astype(np.int32)
        self.jelems = self.elems[self.pair_j]
        self.rij = positions[self.pair_j] - positions[self.pair_i]
        self.npairs = len(self.pair_i)
        self.natomneigh = self.ntotal if ghost_neighbors else self.nlocal
        self.f = np.zeros((self.ntotal, 3))
        self.virial = np.zeros((3, 3))
        self.eatoms = None
        self.energy = None
        if exchange:
            self.forward_exchange = self._forward_exchange
            self.reverse_exchange = self._reverse_exchange

    def update_pair_forces(self, fij: np.ndarray) -> None:
        if fij.shape != (self.npairs, 3) or fij.dtype != np.float64 or not fij.flags.c_contiguous:
            raise TypeError(f"fij must be C-contiguous float64 [{self.npairs}, 3], got {fij.dtype} {fij.shape}")
        np.add.at(self.f, self.pair_i, fij)
        np.add.at(self.f, self.pair_j, -fij)
        self.virial -= np.einsum("ea,eb->ab", self.rij, fij)  # sum_i x_i (x) f_i over the pair's two atoms

    def owned_forces(self) -> np.ndarray:
        forces = np.zeros((self.nlocal, 3))
        np.add.at(forces, self.owner, self.f)
        return forces

    def _forward_exchange(self, copy_from: torch.Tensor, copy_to: torch.Tensor, vec_len: int) -> None:
        assert copy_from.shape == (self.ntotal, vec_len)
        copy_to.copy_(copy_from.index_select(0, torch.as_tensor(self.owner)))

    def _reverse_exchange(self, copy_from: torch.Tensor, copy_to: torch.Tensor, vec_len: int) -> None:
        assert copy_from.shape == (self.ntotal, vec_len)
        copy_to.zero_().index_add_(0, torch.as_tensor(self.owner), copy_from)
