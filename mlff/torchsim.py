"""An mlff potential as a TorchSim model: ``MLFFModel("ethanol-xtb")`` for ``torch_sim.integrate``/``optimize``.

TorchSim (``pip install torch-sim-atomistic``) steps many systems at once on one device and calls
its model with the whole batch (a ``SimState``). :class:`MLFFModel` implements its
``ModelInterface``: the neighbour lists are built per system on the state's device (the torch cell
list on a GPU, matscipy on the CPU; :mod:`mlff.data.neighbors`), the systems go through the model as
one graph, and it returns energies ``[n_systems]`` (eV), forces ``[n_atoms, 3]`` (eV/Å) and, when
asked, stress ``[n_systems, 3, 3]`` (eV/Å³, ASE's sign, as TorchSim's other models). Forces and
stress are autograd derivatives of the energy, as everywhere in mlff.

TorchSim's cells are column vectors; mlff's are rows (``state.row_vector_cell``). TorchSim has one
``pbc`` flag for every direction of every system.
"""

from __future__ import annotations

import torch

from mlff.calculator import load
from mlff.data.graph import AtomicGraph, collate
from mlff.data.neighbors import check_backend, neighbor_list
from mlff.data.validation import check_finite_positions
from mlff.errors import StructureError

try:
    import torch_sim as ts
    from torch_sim.models.interface import ModelInterface
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("mlff.torchsim needs TorchSim: pip install torch-sim-atomistic") from error


class MLFFModel(ModelInterface):
    """A TorchSim model from an mlff checkpoint path, shipped potential's name or ``EnergyModel``.

    ``device``/``dtype`` as :class:`~mlff.calculator.MLFFCalculator`'s; ``chunk`` as
    :meth:`mlff.models.energy_model.EnergyModel.set_chunking`; ``compute_stress`` turns the stress on.
    """

    def __init__(self, model, device: str | torch.device = "auto", dtype: str | torch.dtype | None = None,
                 compute_stress: bool = False, neighbor_backend: str = "auto", chunk: int | str | None = "auto"):
        super().__init__()
        self.model = load(model, device=device, dtype=dtype).set_chunking(chunk)
        self._device = next(iter(self.model.buffers())).device
        self._dtype = next(self.model.parameters()).dtype
        self._compute_stress = bool(compute_stress)
        self._compute_forces = True
        self._memory_scales_with = "n_atoms_x_density"  # a radial cutoff: edges grow with the density
        self.neighbor_backend = check_backend(neighbor_backend)

    @property
    def compute_stress(self) -> bool:
        return self._compute_stress

    @compute_stress.setter
    def compute_stress(self, value: bool) -> None:
        self._compute_stress = bool(value)

    def graph(self, state: ts.SimState) -> AtomicGraph:
        """The state's systems as one mlff graph, in the model's dtype, on its device."""
        positions = state.positions.to(self._device, self._dtype)
        if not bool(torch.isfinite(positions).all()):  # the message names the atom (unknown elements: the model's)
            check_finite_positions(positions.detach().cpu().numpy())
        numbers = state.atomic_numbers.to(self._device)
        cells = state.row_vector_cell.to(self._device, self._dtype)
        pbc_flags = [bool(state.pbc)] * 3
        pbc = torch.tensor(pbc_flags, device=self._device)
        system = state.system_idx.to(self._device)
        if bool((system[1:] < system[:-1]).any()):
            raise StructureError("system_idx must be sorted: each system's atoms together, in order")
        counts = torch.bincount(system, minlength=cells.shape[0]).tolist()
        graphs, start = [], 0
        for k, n in enumerate(counts):
            pos = positions[start:start + n]
            nl = neighbor_list(pos, cells[k], pbc_flags, self.model.cutoff, backend=self.neighbor_backend)
            graphs.append(AtomicGraph(
                positions=pos, numbers=numbers[start:start + n], cell=cells[k][None], pbc=pbc[None],
                edge_index=torch.stack([nl.senders, nl.receivers]).to(self._device), shifts=nl.shifts.to(self._device),
                batch=torch.zeros(n, dtype=torch.long, device=self._device),
                ptr=torch.tensor([0, n], dtype=torch.long, device=self._device), cutoff=self.model.cutoff))
            start += n
        return collate(graphs)

    def forward(self, state: ts.SimState | dict, **kwargs) -> dict[str, torch.Tensor]:
        if isinstance(state, dict):
            state = ts.SimState(**state, masses=torch.ones_like(state["positions"][:, 0]))
        out = self.model(self.graph(state), forces=True, stress=self._compute_stress)
        results = {"energy": out["energy"].to(self._dtype), "forces": out["forces"]}
        if self._compute_stress:
            results["stress"] = out["stress"]
        return results
