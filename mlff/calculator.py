"""The ASE calculator: ``atoms.calc = MLFFCalculator("model.pt")``.

Properties: ``energy``, ``free_energy`` (equal to the energy), ``energies`` (per atom), ``forces``
and ``stress``. Forces and stress are the exact derivatives of the energy (autograd).

Stress policy: stress is defined only for cells periodic in all three directions. Asking for it on
anything else (a molecule, a slab with ``pbc=(True, True, False)``) raises
:class:`ase.calculators.calculator.PropertyNotImplementedError` with the reason, rather than
returning a number that depends on the vacuum.

The neighbour list is reused between calls with a Verlet skin (:class:`mlff.data.verlet.VerletList`);
the result is identical to a fresh build.

``neighbor_backend``: ``"auto"`` builds the list with matscipy on the CPU and with the torch cell
list on the model's GPU (:mod:`mlff.data.neighbors`); ``"matscipy"`` or ``"torch"`` forces one.

``compile=True`` runs the network through ``torch.compile`` with dynamic atom and edge counts
(:mod:`mlff.models.compiled`): the first call compiles (seconds to minutes), later calls reuse it
whatever the number of edges; ``calc.model.compilations`` counts the graphs compiled.

``chunk``: graphs of more than this many edges run in chunks recomputed in backward, so that memory
grows with the atoms, not with edges times layers (:meth:`mlff.models.energy_model.EnergyModel.set_chunking`;
``"auto"``, the default, picks a size per device; ``None`` never chunks).
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mlff.data.graph import AtomicGraph
from mlff.data.neighbors import check_backend
from mlff.data.validation import check_finite_positions, check_no_overlap, validate_atoms
from mlff.data.verlet import VerletList
from mlff.errors import ConfigError, StructureError
from mlff.kernels import active_backend, requested_backend, use_backend
from mlff.models.checkpoint import load_checkpoint
from mlff.models.energy_model import EnergyModel
from mlff.models.potentials import checkpoint_path
from mlff.runtime import resolve_device, resolve_dtype


def load(model: str | os.PathLike | EnergyModel, device="auto", dtype=None) -> EnergyModel:
    """An :class:`EnergyModel` from a checkpoint path, a shipped potential's name, or a model.

    ``device``: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; ``dtype``: ``"float32"``,
    ``"float64"`` or None (as stored). Anything else is a :class:`~mlff.errors.ConfigError`.
    """
    device, dtype = resolve_device(device), resolve_dtype(dtype)
    if isinstance(model, EnergyModel):
        model = model.to(device).eval()
        return model.to(dtype) if dtype is not None else model
    if not isinstance(model, (str, os.PathLike)):
        raise ConfigError(f"model must be a checkpoint path, a shipped potential's name or an EnergyModel, "
                          f"got {type(model).__name__}")
    return load_checkpoint(checkpoint_path(model), device=device, dtype=dtype)


class MLFFCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model, device: str = "auto", dtype: str | torch.dtype | None = None,
                 skin: float = 0.5, kernels: str | None = None, compile: bool = False,
                 neighbor_backend: str = "auto", chunk: int | str | None = "auto", **kwargs):
        super().__init__(**kwargs)
        if not skin >= 0:
            raise ConfigError(f"skin must be >= 0 Å, got {skin}")
        if not isinstance(compile, bool):
            raise ConfigError(f"compile must be true or false, got {compile!r}")
        self.model = load(model, device=device, dtype=dtype)
        if compile:  # an EnergyModel passed in is compiled in place
            self.model.set_compiled(True)
        self.model.set_chunking(chunk)
        self.device = next(iter(self.model.buffers())).device
        self.dtype = next(self.model.parameters()).dtype
        self.kernels = kernels or requested_backend()  # None: $MLFF_KERNELS, else auto
        with use_backend(self.kernels):
            active_backend(self.device)  # an unknown or unavailable backend fails here, not mid-run
        self.neighbors = VerletList(self.model.cutoff, skin=skin, backend=check_backend(neighbor_backend))

    def neighbor_list(self, atoms: Atoms, verlet: VerletList | None = None, where: str = ""):
        """The neighbour list of ``atoms`` from ``verlet`` (default: the calculator's own), with the
        structure validated before the list touches it.

        Every call checks that the positions are finite; whenever the list is rebuilt (new elements,
        cell or periodicity, or atoms moved by more than half the skin) the full
        :func:`~mlff.data.validation.validate_atoms` runs, including the model's species; between
        rebuilds the shortest edge is checked, so atoms cannot move into an overlap unnoticed.
        ``where`` names the structure in error messages (the batched driver's ``"structure 3"``).
        """
        verlet = self.neighbors if verlet is None else verlet
        prefix = f"{where}: " if where else ""
        check_finite_positions(atoms.positions, prefix=prefix)
        if verlet.needs_rebuild(atoms):
            validate_atoms(atoms, where=where, species=self.model.species)
        # on a GPU the list is built, kept and filtered there: only the positions go up each step
        nl = verlet(atoms, device=self.device)
        check_no_overlap(verlet.closest, prefix=prefix)  # atoms that moved together within the skin
        return nl

    def _graph(self, atoms: Atoms) -> AtomicGraph:
        return AtomicGraph.from_atoms(atoms, self.model.cutoff, dtype=self.dtype, device=self.device,
                                      labels=False, validate=False, neighbors=[self.neighbor_list(atoms)])

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        want_stress = "stress" in properties
        if want_stress and not all(self.atoms.pbc):
            raise PropertyNotImplementedError(
                f"stress needs a cell periodic in x, y and z; this structure has pbc={list(self.atoms.pbc)}"
            )
        with use_backend(self.kernels):
            out = self.model(self._graph(self.atoms), forces=True, stress=want_stress)
        self.results = _to_results(out, 0, slice(None))

    def reset(self):
        super().reset()
        self.neighbors = VerletList(self.model.cutoff, skin=self.neighbors.skin, backend=self.neighbors.backend)

    def batch(self, structures: Sequence[Atoms], stress: bool = False) -> list[dict]:
        """Evaluate many structures in one pass; one results dict per structure."""
        structures = list(structures)
        if not structures:
            raise StructureError("batch: no structures given")
        for k, atoms in enumerate(structures):
            validate_atoms(atoms, where=f"structure {k}", species=self.model.species)
        if stress and not all(all(a.pbc) for a in structures):
            raise PropertyNotImplementedError("stress needs every structure periodic in x, y and z")
        graph = AtomicGraph.from_atoms(structures, self.model.cutoff, dtype=self.dtype,
                                       device=self.device, labels=False, validate=False)
        with use_backend(self.kernels):
            out = self.model(graph, forces=True, stress=stress)
        ptr = graph.ptr.tolist()
        return [_to_results(out, k, slice(ptr[k], ptr[k + 1])) for k in range(graph.num_graphs)]


def _to_results(out: dict, k: int, atoms: slice) -> dict:
    energy = float(out["energy"][k])
    results = {
        "energy": energy,
        "free_energy": energy,
        "energies": out["energies"][atoms].double().cpu().numpy(),
        "forces": out["forces"][atoms].double().cpu().numpy(),
    }
    if "stress" in out:
        results["stress"] = full_3x3_to_voigt_6_stress(out["stress"][k].double().cpu().numpy())
    return results
