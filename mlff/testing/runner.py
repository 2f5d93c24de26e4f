"""Run every model check in one call: ``check_model(make_network)``.

``make_network(species, cutoff)`` builds the network to check (any module with the interface of
:class:`~mlff.models.equiformer_v2.EquiformerV2`: ``species``, ``cutoff``, and
``forward(species, vectors, edge_index) -> per-atom energies``). Its parameters are randomly
perturbed away from their initial values, so that norms, biases and embeddings are all far from
trivial, and it is wrapped in an :class:`~mlff.models.energy_model.EnergyModel` with reference
energies far from zero.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from mlff.kernels import use_backend
from mlff.models.energy_model import EnergyModel
from mlff.testing import checks
from mlff.testing.structures import CUTOFF, E0, SPECIES, SYSTEMS


@dataclass(frozen=True)
class Tolerances:
    """Bounds of the symmetry and smoothness checks. Models with grid nonlinearities alias, so
    rotations change their energy slightly; they set their measured levels here."""

    rotation_energy_rtol: float = 1e-10  # float64, relative
    rotation_force_atol: float = 1e-9  # float64, eV/Å
    float32_energy_rtol: float = 1e-6  # float32 round-off floors, used where larger than the above
    float32_force_atol: float = 2e-4  # eV/Å
    pull_steps: int = 400  # first resolution of the cutoff-crossing scan

    def rotation(self, dtype: torch.dtype) -> tuple[float, float]:
        if dtype == torch.float64:
            return self.rotation_energy_rtol, self.rotation_force_atol
        return max(self.rotation_energy_rtol, self.float32_energy_rtol), max(self.rotation_force_atol,
                                                                             self.float32_force_atol)

    def translation(self, dtype: torch.dtype) -> tuple[float, float]:
        """(energy eV, force eV/Å) bounds: exact up to round-off (summation order changes)."""
        return (1e-9, 1e-10) if dtype == torch.float64 else (1e-5, self.float32_force_atol)


def available_devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def perturbed_model(make_network, device: str = "cpu", seed: int = 0) -> EnergyModel:
    """The network of ``make_network(SPECIES, CUTOFF)`` with perturbed weights, in float64."""
    torch.manual_seed(seed)
    network = make_network(SPECIES, CUTOFF)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.2 * torch.randn_like(p) * (p.std() if p.numel() > 1 else 1.0))
    return EnergyModel(network, e0=E0, scale=1.3).double().to(device).eval()


def check_model(make_network, device: str = "cpu", backend: str = "auto",
                tolerances: Tolerances = Tolerances(), only: Iterable[str] | None = None) -> dict[str, object]:
    """Run every check on one model; return what each measured, or raise listing every failure.

    ``only`` restricts the run to the checks whose names start with one of the given prefixes
    (``["rotation", "forces"]``); the names are the keys of the returned report.
    """
    model = perturbed_model(make_network, device)
    model32 = copy.deepcopy(model).float()
    runs = {f"forces[{name}]": (checks.check_forces, model, make()) for name, make in SYSTEMS.items()}
    runs.update({
        "stress": (checks.check_stress, model),
        "second derivatives": (checks.check_second_derivatives, model),
        "extensive": (checks.check_extensive, model),
        "symmetric point": (checks.check_linear_near_symmetric_point, model),
        "deterministic": (checks.check_deterministic, model),
        "isolated atoms": (checks.check_isolated_atoms, model),
        "batch": (checks.check_batch, model),
        "unknown element": (checks.check_unknown_element, model),
        "float32": (checks.check_float32, model),
    })
    for name, make in SYSTEMS.items():
        runs[f"smoothness[{name}]"] = (checks.check_smoothness, model, make(), tolerances.pull_steps)
    for dtype, m in ((torch.float64, model), (torch.float32, model32)):
        kind = str(dtype).removeprefix("torch.")
        for seed in range(3):
            runs[f"rotation[{kind}, {seed}]"] = (checks.check_rotation, m, seed, *tolerances.rotation(dtype), dtype)
        runs[f"translation[{kind}]"] = (checks.check_translation_permutation_images, m,
                                        *tolerances.translation(dtype), dtype)
    if only is not None:
        prefixes = tuple(only)
        runs = {name: run for name, run in runs.items() if name.startswith(prefixes)}
        if not runs:
            raise ValueError(f"no check starts with {', '.join(prefixes)}")
    report, failures = {}, []
    with use_backend(backend):
        for name, (check, *args) in runs.items():
            try:
                report[name] = check(*args)
            except checks.ModelCheckError as exc:
                failures.append(f"{name}: {exc}")
    if failures:
        raise checks.ModelCheckError(f"{len(failures)} of {len(runs)} checks failed:\n" + "\n".join(failures))
    return report
