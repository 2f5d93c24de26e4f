"""The ASE calculator: ``atoms.calc = MLFFCalculator("model.pt")``.

Properties: ``energy``, ``free_energy`` (equal to the energy), ``energies`` (per atom), ``forces``
and ``stress``. Forces and stress are the exact derivatives of the energy (autograd).

Stress policy: stress is defined only for cells periodic in all three directions. Asking for it on
anything else (a molecule, a slab with ``pbc=(True, True, False)``) raises
:class:`ase.calculators.calculator.PropertyNotImplementedError` with the reason, rather than
returning a number that depends on the vacuum.

The neighbour list is reused between calls with a Verlet skin (:class:`mlff.data.verlet.VerletList`);
the result is identical to a fresh build.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mlff.data.graph import AtomicGraph
from mlff.data.verlet import VerletList
from mlff.errors import MLFFError
from mlff.models.checkpoint import load_checkpoint
from mlff.models.energy_model import EnergyModel

_DTYPES = {"float32": torch.float32, "float64": torch.float64, None: None}


def potentials_dir() -> Path:
    """Folder of shipped potentials (``$MLFF_POTENTIALS`` or ``potentials/`` beside the package)."""
    return Path(os.environ.get("MLFF_POTENTIALS", Path(__file__).resolve().parents[1] / "potentials"))


def resolve_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MLFFError(f"device {device} requested but CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise MLFFError(f"unsupported device {device}; use 'cpu', 'cuda' or 'auto'")
    return device


def load(model: str | os.PathLike | EnergyModel, device="auto", dtype=None) -> EnergyModel:
    """An :class:`EnergyModel` from a checkpoint path, a shipped potential's name, or a model."""
    device = resolve_device(device)
    dtype = _DTYPES[dtype] if isinstance(dtype, str) or dtype is None else dtype
    if isinstance(model, EnergyModel):
        model = model.to(device).eval()
        return model.to(dtype) if dtype is not None else model
    path = Path(model)
    if not path.exists() and (potentials_dir() / str(model) / "model.pt").is_file():
        path = potentials_dir() / str(model) / "model.pt"
    return load_checkpoint(path, device=device, dtype=dtype)


class MLFFCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model, device: str = "auto", dtype: str | torch.dtype | None = None,
                 skin: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.model = load(model, device=device, dtype=dtype)
        self.device = next(iter(self.model.buffers())).device
        self.dtype = next(self.model.parameters()).dtype
        self.neighbors = VerletList(self.model.cutoff, skin=skin)

    def _graph(self, atoms: Atoms) -> AtomicGraph:
        if not np.isfinite(atoms.positions).all():
            raise MLFFError("positions contain NaN or infinity")
        validate = self.neighbors.needs_rebuild(atoms)
        nl = self.neighbors(atoms)
        return AtomicGraph.from_atoms(atoms, self.model.cutoff, dtype=self.dtype, device=self.device,
                                      labels=False, validate=validate, neighbors=[nl])

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        want_stress = "stress" in properties
        if want_stress and not all(self.atoms.pbc):
            raise PropertyNotImplementedError(
                f"stress needs a cell periodic in x, y and z; this structure has pbc={list(self.atoms.pbc)}"
            )
        out = self.model(self._graph(self.atoms), forces=True, stress=want_stress)
        self.results = _to_results(out, 0, slice(None))

    def reset(self):
        super().reset()
        self.neighbors = VerletList(self.model.cutoff, skin=self.neighbors.skin)

    def batch(self, structures: Sequence[Atoms], stress: bool = False) -> list[dict]:
        """Evaluate many structures in one pass; one results dict per structure."""
        if stress and not all(all(a.pbc) for a in structures):
            raise PropertyNotImplementedError("stress needs every structure periodic in x, y and z")
        graph = AtomicGraph.from_atoms(list(structures), self.model.cutoff, dtype=self.dtype,
                                       device=self.device, labels=False)
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
