"""Turn a per-atom energy network into energy, forces and stress.

``E = sum_i (scale * (eps_i - eps_iso[Z_i]) + E0[Z_i])``, where ``eps_iso[Z]`` is the network's
output for an isolated atom of species Z, so that an atom without neighbours contributes exactly
its reference energy ``E0`` (and zero force). A network with a pair repulsion (``repulsion`` in its
config, :mod:`mlff.nn.repulsion`) adds half of each close pair's ZBL energy to each of its atoms, in eV,
outside ``scale``. Forces are ``-dE/dr`` and stress is
``(1/V) dE/d(strain)`` for a symmetric strain applied to positions and cell, both by autograd; the
graph is kept (``create_graph``) only when training needs second derivatives.

Precision: the network runs in the model's dtype (float32 by default), but ``E0`` and ``scale``
stay float64 whatever ``.to()``/``.float()`` does, and the total energy is summed in float64, so
reference energies of thousands of eV are never rounded to float32 (about 1e-4 eV for O).
"""

from __future__ import annotations

import torch
from torch import nn

from mlff.data.graph import AtomicGraph
from mlff.errors import ConfigError
from mlff.kernels import segment_sum
from mlff.models.compiled import CompiledNetwork
from mlff.nn.chunking import chunked

#: edges per chunk of :meth:`EnergyModel.set_chunking`'s ``"auto"``, per device type: on the CPU a
#: chunk's transient memory (~1.4 GB for the small preset) next to the kept per-atom tensors
AUTO_CHUNK = {"cpu": 16384, "cuda": 65536}

_FLOAT64_BUFFERS = ("e0", "scale")

#: modules and parameters registered anywhere so far: a change of any network's parameter list
#: (a replaced submodule or parameter) bumps it, so cached parameter lists are gathered again
_registrations = [0]


def _count_registration(*args):
    _registrations[0] += 1


nn.modules.module.register_module_module_registration_hook(_count_registration)
nn.modules.module.register_module_parameter_registration_hook(_count_registration)


class EnergyModel(nn.Module):
    def __init__(self, network: nn.Module, e0: dict[int, float] | None = None, scale: float = 1.0):
        super().__init__()
        self.network = network
        self.cutoff = network.cutoff
        table = torch.zeros(119, dtype=torch.float64)
        for z, value in (e0 or {}).items():
            table[int(z)] = float(value)
        self.register_buffer("e0", table)
        self.register_buffer("scale", torch.tensor(float(scale), dtype=torch.float64))
        self._isolated: tuple | None = None  # (key, energies): see isolated_energies
        self._parameters_seen: tuple | None = None  # (registration count, the network's parameters)
        self._compiled: CompiledNetwork | None = None  # see set_compiled
        self.chunk: int | str | None = "auto"  # see set_chunking

    def set_chunking(self, size: int | str | None = "auto") -> EnergyModel:
        """Inference on graphs of more than ``size`` edges runs in chunks of about ``size`` edges,
        recomputed in backward (:mod:`mlff.nn.chunking`): memory grows with the atoms rather than with
        edges times layers, for one more forward of the edge layers. ``"auto"`` (the default) is
        :data:`AUTO_CHUNK` for the device; ``None`` never chunks. Training never chunks."""
        if not (size is None or size == "auto" or (isinstance(size, int) and not isinstance(size, bool) and size >= 1)):
            raise ConfigError(f"chunk must be a positive number of edges, 'auto' or None, got {size!r}")
        self.chunk = size
        return self

    def chunk_size(self, device: torch.device) -> int | None:
        """Edges per chunk on ``device`` (None: no chunks); see :meth:`set_chunking`."""
        return AUTO_CHUNK.get(torch.device(device).type) if self.chunk == "auto" else self.chunk

    def set_compiled(self, enabled: bool = True) -> EnergyModel:
        """Evaluate energies, forces and stress through ``torch.compile`` (inference only: training,
        which differentiates twice, stays eager). See :mod:`mlff.models.compiled`."""
        self._compiled = CompiledNetwork(self.network) if enabled else None
        return self

    @property
    def compilations(self) -> int:
        """Graphs compiled so far by :meth:`set_compiled`'s network (0 when not compiled)."""
        return self._compiled.compilations if self._compiled is not None else 0

    def _apply(self, fn, recurse=True):
        """Move E0 and scale with the model, but never change their float64 dtype."""
        kept = {name: getattr(self, name) for name in _FLOAT64_BUFFERS}
        super()._apply(fn, recurse)
        for name, value in kept.items():
            setattr(self, name, value.to(device=getattr(self, name).device))
        return self

    @property
    def species(self) -> list[int]:
        return self.network.species.species

    def e0_dict(self) -> dict[int, float]:
        return {z: float(self.e0[z]) for z in self.species}

    def isolated_energies(self, dtype: torch.dtype, device, differentiable: bool = False) -> torch.Tensor:
        """Network output for an isolated atom of each species, ``[num_species]``.

        ``differentiable=True`` (training: the loss needs its gradient with respect to the
        parameters) computes it afresh in the autograd graph. Otherwise it is computed once without
        a graph and cached; the cache key holds every parameter's storage and version counter, so
        any change of the weights (an optimizer step, ``load_state_dict``, ``.to()``) recomputes it.
        The parameter list itself is gathered again only after a module or parameter was registered
        anywhere (walking the module tree on every call cost about 1 ms, a tenth of a small
        molecule's evaluation).
        """
        if differentiable:
            return self._isolated_network_output(dtype, device)
        if self._parameters_seen is None or self._parameters_seen[0] != _registrations[0]:
            self._parameters_seen = (_registrations[0], list(self.network.parameters()))
        key = (dtype, torch.device(device), tuple((p.data_ptr(), p._version) for p in self._parameters_seen[1]))
        if self._isolated is None or self._isolated[0] != key:
            with torch.no_grad():
                self._isolated = (key, self._isolated_network_output(dtype, device))
        return self._isolated[1]

    def _isolated_network_output(self, dtype, device) -> torch.Tensor:
        species = torch.arange(len(self.network.species), device=device)
        vectors = torch.zeros(0, 3, dtype=dtype, device=device)
        edges = torch.zeros(2, 0, dtype=torch.long, device=device)
        return self.network(species, vectors, edges)

    def atom_energies(self, eps: torch.Tensor, species: torch.Tensor, differentiable: bool = False) -> torch.Tensor:
        """The network's per-atom outputs as energies without E0: ``scale * (eps - eps_iso[species])``."""
        eps = eps - self.isolated_energies(eps.dtype, eps.device, differentiable=differentiable)[species]
        return self.scale.to(eps.dtype) * eps

    def with_repulsion(self, atom_energy: torch.Tensor, species: torch.Tensor, vectors: torch.Tensor,
                       edge_index: torch.Tensor) -> torch.Tensor:
        """``atom_energy`` (of the first atoms) plus the network's pair repulsion, when it has one
        (:mod:`mlff.nn.repulsion`; eV, not multiplied by ``scale``)."""
        repulsion = getattr(self.network, "repulsion", None)
        if repulsion is None:
            return atom_energy
        pairs = repulsion(species, torch.linalg.vector_norm(vectors, dim=1), edge_index)
        return atom_energy + pairs[: atom_energy.shape[0]].to(atom_energy.dtype)

    def forward(
        self,
        graph: AtomicGraph,
        forces: bool = True,
        stress: bool = False,
        create_graph: bool | None = None,
    ) -> dict[str, torch.Tensor]:
        """Energies (float64 per structure), per-atom energies, and optionally forces and stress.

        Gradients are switched on only when forces or stress are asked for; an energy-only call
        under ``torch.no_grad()`` builds no autograd graph.
        """
        create_graph = self.training if create_graph is None else create_graph
        species = self.network.species(graph.numbers)
        positions, cell = graph.positions, graph.cell
        inputs = []
        chunk = None if create_graph else self.chunk_size(positions.device)
        # the backward recomputes chunks, so it runs under the same setting as the forward
        with torch.set_grad_enabled(forces or stress or torch.is_grad_enabled()), chunked(chunk):
            if forces or stress:
                positions = positions.detach().requires_grad_(True)
                inputs.append(positions)
            if stress:
                strain = torch.zeros_like(cell).requires_grad_(True)
                sym = 0.5 * (strain + strain.transpose(1, 2))
                positions = positions + torch.einsum("ni,nij->nj", positions, sym[graph.batch])
                cell = cell + torch.bmm(cell, sym)
                inputs.append(strain)
            vectors = graph.edge_vectors(positions, cell)
            network = self._compiled if self._compiled is not None and not create_graph else self.network
            eps = network(species, vectors, graph.edge_index)
            atom_energy = self.atom_energies(eps, species, differentiable=create_graph)
            atom_energy = self.with_repulsion(atom_energy, species, vectors, graph.edge_index)
            energy = segment_sum(atom_energy, graph.batch, graph.num_graphs)
            out = {}
            if inputs:
                grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph)
        reference = self.e0[graph.numbers]
        out["energies"] = atom_energy + reference.to(atom_energy.dtype)
        out["energy"] = energy.double() + segment_sum(reference, graph.batch, graph.num_graphs)
        if forces:
            out["forces"] = -grads[0]
        if stress:
            # Stress is defined for fully periodic cells only; elsewhere it is NaN (and NaN-free in backward).
            periodic = graph.pbc.all(1)[:, None, None]
            volume = torch.linalg.det(graph.cell).abs()[:, None, None]
            volume = torch.where(periodic, volume, torch.ones_like(volume))
            out["stress"] = torch.where(periodic, grads[-1] / volume, torch.full_like(grads[-1], float("nan")))
        if not create_graph:
            out = {key: value.detach() for key, value in out.items()}
        return out
