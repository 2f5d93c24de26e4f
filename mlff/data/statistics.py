"""Dataset statistics: per-element reference energies (E0) and the scales a model is built with."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from mlff.data.labels import get_labels
from mlff.data.neighbors import neighbor_list
from mlff.errors import DataError

logger = logging.getLogger(__name__)


def fit_e0(structures: Iterable[Atoms], species: Sequence[int] | None = None) -> dict[int, float]:
    """Per-element energies ``E0[Z]`` minimising ``sum_s (E_s - sum_{i in s} E0[Z_i])**2``.

    Only structures with an energy label are used. ``species`` defaults to the elements of those
    structures; a listed element that never occurs gets 0. When compositions are linearly dependent
    (e.g. always 1:1) the minimum-norm solution is returned and a warning logged that names the
    elements whose E0s are not separately determined.
    """
    rows = [(_composition(a.numbers), labels["energy"]) for a in structures if "energy" in (labels := get_labels(a))]
    if not rows:
        raise DataError("no structure has an energy label; cannot fit per-element energies (E0)")
    return _fit_e0(np.array([c for c, _ in rows]), np.array([e for _, e in rows], dtype=np.float64), species)


def _composition(numbers) -> np.ndarray:
    """Atom counts per atomic number 0..118."""
    return np.bincount(np.asarray(numbers, dtype=int), minlength=len(chemical_symbols))


def _fit_e0(counts: np.ndarray, energies: np.ndarray, species: Sequence[int] | None) -> dict[int, float]:
    """:func:`fit_e0` from the compositions ``counts`` [structures, 119] and their energies."""
    present = [int(z) for z in np.flatnonzero(counts.sum(0))]
    species = present if species is None else sorted({int(z) for z in species})
    missing = sorted(set(present) - set(species))
    if missing:
        raise DataError(f"structures contain {_symbols(missing)}, not among species {_symbols(species)}")
    columns = counts[:, species].astype(np.float64)
    e0, _, rank, _ = np.linalg.lstsq(columns, energies, rcond=None)
    if rank < len(species):
        null_space = np.linalg.svd(columns)[2][rank:]  # E0 changes that leave every fitted energy alone
        free = [z for z, weights in zip(species, null_space.T) if np.abs(weights).max() > 1e-8]
        logger.warning(
            "the compositions of the structures determine only %d of %d E0s: those of %s are not separately "
            "determined (the elements always occur in the same ratio, or not at all), so the minimum-norm "
            "solution is used. The summed E0s of every composition in the data are still exact; these E0s on "
            "their own, and the sums for compositions in other ratios, are arbitrary.",
            rank, len(species), _symbols(free))
    return {z: float(e) for z, e in zip(species, e0)}


@dataclass
class DatasetStatistics:
    """Summary of a dataset; energy fields are None without energies, ``force_rms`` without forces."""

    species: list[int]  # sorted atomic numbers
    num_structures: int
    num_atoms: int  # total over all structures
    cutoff: float  # Å, the radius used for avg_num_neighbors
    avg_num_neighbors: float  # mean number of neighbours within the cutoff, per atom
    e0: dict[int, float]  # eV per element
    energy_per_atom_mean: float | None  # mean of (E - sum E0) / N, eV
    energy_per_atom_std: float | None  # population std of (E - sum E0) / N, eV
    raw_energy_per_atom_mean: float | None  # mean of E / N, eV
    force_rms: float | None  # sqrt(mean(F_ic**2)), eV/Å

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (E0 keys become strings); :meth:`from_dict` inverts it."""
        out = asdict(self)
        out["e0"] = {str(z): e for z, e in self.e0.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetStatistics":
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "e0": {int(z): float(e) for z, e in data["e0"].items()}})

    def format(self) -> str:
        """A two-column, human-readable table."""
        num = lambda x, fmt=".6f": "n/a" if x is None else format(x, fmt)  # noqa: E731
        rows = [
            ("structures", str(self.num_structures)),
            ("atoms", str(self.num_atoms)),
            ("species", ", ".join(f"{chemical_symbols[z]} ({z})" for z in self.species)),
            (f"neighbours per atom (r < {self.cutoff:g} Å)", num(self.avg_num_neighbors, ".3f")),
            ("energy per atom, raw mean (eV)", num(self.raw_energy_per_atom_mean)),
            ("energy per atom - E0, mean (eV)", num(self.energy_per_atom_mean)),
            ("energy per atom - E0, std (eV)", num(self.energy_per_atom_std)),
            ("force RMS (eV/Å)", num(self.force_rms)),
        ]
        rows += [(f"E0 {chemical_symbols[z]} (eV)", num(e)) for z, e in sorted(self.e0.items())]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)

    __str__ = format


def compute_statistics(
    structures: Iterable[Atoms], cutoff: float, e0: dict[int, float] | None = None,
    species: Sequence[int] | None = None,
) -> DatasetStatistics:
    """Statistics of ``structures`` in one pass over them (each is read once, none is kept, so a lazy
    dataset larger than memory works); ``e0`` is fitted as :func:`fit_e0` does (over ``species``) unless given."""
    counts, energies, labelled = [], [], []  # per structure: composition, energy (if any)
    force_sq, force_n, edges = 0.0, 0, 0
    for atoms in structures:
        found = get_labels(atoms)
        counts.append(_composition(atoms.numbers))
        labelled.append("energy" in found)
        energies.append(found.get("energy", np.nan))
        if "forces" in found:
            force_sq += float(np.sum(np.square(found["forces"])))
            force_n += found["forces"].size
        edges += len(neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff).receivers)
    if not counts:
        raise DataError("cannot compute statistics of an empty dataset")
    counts, energies, labelled = np.array(counts), np.array(energies, dtype=np.float64), np.array(labelled)
    with_energy = bool(labelled.any())
    if e0 is None:
        e0 = _fit_e0(counts[labelled], energies[labelled], species) if with_energy else {}
    missing = sorted(set(np.flatnonzero(counts[labelled].sum(0)).tolist()) - set(e0))
    if missing:
        raise DataError(f"e0 has no reference energy for {_symbols(missing)}")
    n_atoms = counts.sum(1)
    reference = np.zeros(counts.shape[1])
    reference[list(e0)] = list(e0.values())
    raw = (energies / n_atoms)[labelled]
    shifted = ((energies - counts @ reference) / n_atoms)[labelled]
    return DatasetStatistics(
        species=[int(z) for z in np.flatnonzero(counts.sum(0))],
        num_structures=len(counts),
        num_atoms=int(n_atoms.sum()),
        cutoff=float(cutoff),
        avg_num_neighbors=edges / int(n_atoms.sum()),
        e0={int(z): float(e) for z, e in sorted(e0.items())},
        energy_per_atom_mean=float(shifted.mean()) if with_energy else None,
        energy_per_atom_std=float(shifted.std()) if with_energy else None,
        raw_energy_per_atom_mean=float(raw.mean()) if with_energy else None,
        force_rms=float(np.sqrt(force_sq / force_n)) if force_n else None,
    )


def _symbols(numbers: Iterable[int]) -> str:
    return ", ".join(f"{chemical_symbols[z]} ({z})" for z in numbers)
