"""The local forward that engines splitting a structure over processes call: owned + ghost atoms in,
owned-atom energies and dE/d(edge vectors) out.

An engine such as LAMMPS gives each process the atoms it owns and copies ("ghosts") of the atoms
within a halo around them, with edges ``(sender j, receiver i)`` and vectors ``r_ij = x_j - x_i``
(ghosts are periodic images where needed, so no cell is involved). Two ways make the owned atoms'
energies exact:

* **exchange** (halo of one cutoff): the features are computed for the owned atoms only, and before
  every block the exchange gives each ghost its owner's (:meth:`EquiformerV2.features`). The owner
  computed them with its whole neighbourhood, so only edges into owned atoms are needed. In backward, the gradients of the ghost rows are summed
  into their owners, so every process must run its forward and backward at the same time.
* **thick halo** (no exchange): every atom within (blocks + 1) x cutoff of an owned atom is present
  with all its edges, and the features are computed redundantly.

Either way ``dE/dr_ij`` is the derivative of the *total* energy (over all processes), so forces follow
per edge (``F_i += dE/dr_ij``, ``F_j -= dE/dr_ij``, ghost forces go back to their owners) and the
virial is ``W = -sum_ij r_ij (x) dE/dr_ij``, summed over processes.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from mlff.models.energy_model import EnergyModel
from mlff.nn.chunking import chunked

Exchange = Callable[[torch.Tensor], torch.Tensor]


class LocalResult(NamedTuple):
    energies: torch.Tensor  # [n_owned] float64, with the reference energies E0
    edge_gradients: torch.Tensor  # [E, 3] float64: d(total energy)/d(r_ij)


def receptive_field(model: EnergyModel) -> float:
    """How far an atom's energy sees: (blocks + 1) x cutoff (the edge-degree embedding is one hop)."""
    return (len(model.network.blocks) + 1) * model.cutoff


def local_forward(model: EnergyModel, numbers: torch.Tensor, vectors: torch.Tensor, edge_index: torch.Tensor,
                  n_owned: int, exchange: Exchange | None) -> LocalResult:
    """Energies of the first ``n_owned`` of the atoms ``numbers`` and the gradient of the total energy
    with respect to every edge vector (see the module docstring for ``exchange``)."""
    network = model.network
    if exchange is not None and edge_index.shape[1] and int(edge_index[1].max()) >= n_owned:
        raise ValueError("with an exchange, every edge must go into an owned atom (receiver < n_owned)")
    species = network.species(numbers)
    dtype = next(network.parameters()).dtype
    vectors = vectors.detach().to(dtype).requires_grad_(True)
    # large graphs run in edge chunks, as in EnergyModel.forward (the backward recomputes them)
    with torch.enable_grad(), chunked(model.chunk_size(vectors.device)):
        eps = network(species, vectors, edge_index, exchange=exchange, n_owned=n_owned)[:n_owned]
        atom_energy = model.with_repulsion(model.atom_energies(eps, species[:n_owned]), species, vectors, edge_index)
        (grad,) = torch.autograd.grad(atom_energy.sum(), vectors, allow_unused=True)
    if grad is None:  # no edges
        grad = torch.zeros_like(vectors)
    energies = atom_energy.detach().double() + model.e0[numbers[:n_owned]]
    return LocalResult(energies, grad.detach().double())


def edge_forces(grad: torch.Tensor, edge_index: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """Per-atom forces ``[n_atoms, 3]`` from the edge gradients (ghost rows still to be returned)."""
    sender, receiver = edge_index
    forces = torch.zeros(n_atoms, 3, dtype=grad.dtype, device=grad.device)
    forces.index_add_(0, receiver, grad)
    forces.index_add_(0, sender, -grad)
    return forces


def edge_virial(grad: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """The virial ``W = -sum r (x) dE/dr`` (3 x 3, eV); ASE's stress is ``-W / V``."""
    return -torch.einsum("ea,eb->ab", vectors.to(grad.dtype), grad)
