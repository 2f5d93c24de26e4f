"""Dataset statistics: per-element reference energies (E0) and the scales a model is built with."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols, covalent_radii

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
    groups = EnergiesByComposition()
    for atoms in structures:
        if "energy" in (labels := get_labels(atoms)):
            groups.add(atoms.numbers, labels["energy"])
    return groups.fit_e0(species)


class EnergiesByComposition:
    """Energies summarised per distinct composition: how many structures, their mean energy and the sum
    of squared deviations from it (Welford). The least-squares E0 fit and the spread of the energies
    about it need nothing more, so memory grows with the number of compositions, not of structures."""

    def __init__(self):
        self._groups: dict[tuple, list] = {}  # ((Z, count), ...) -> [structures, mean energy, squared deviations]

    def add(self, numbers, energy: float) -> None:
        energy = float(energy)  # averaged in float64 whatever the label's type
        elements, counts = np.unique(np.asarray(numbers, dtype=int), return_counts=True)
        group = self._groups.setdefault(tuple(zip(elements.tolist(), counts.tolist())), [0, 0.0, 0.0])
        group[0] += 1
        step = energy - group[1]
        group[1] += step / group[0]
        group[2] += step * (energy - group[1])

    def __len__(self) -> int:
        """The number of structures added."""
        return sum(group[0] for group in self._groups.values())

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Compositions [groups, 119], structures, mean energies and squared deviations per group."""
        counts = np.zeros((len(self._groups), len(chemical_symbols)))
        for row, composition in enumerate(self._groups):
            for z, k in composition:
                counts[row, z] = k
        n, mean, squares = np.array(list(self._groups.values()), dtype=np.float64).reshape(-1, 3).T
        return counts, n, mean, squares

    def fit_e0(self, species: Sequence[int] | None = None) -> dict[int, float]:
        """:func:`fit_e0` over the energies added."""
        if not self._groups:
            raise DataError("no structure has an energy label; cannot fit per-element energies (E0)")
        counts, n, mean, _ = self._arrays()
        present = [int(z) for z in np.flatnonzero(counts.sum(0))]
        species = present if species is None else sorted({int(z) for z in species})
        missing = sorted(set(present) - set(species))
        if missing:
            raise DataError(f"structures contain {_symbols(missing)}, not among species {_symbols(species)}")
        # sum_s (E_s - c.E0)^2 = sum_g n_g (mean_g - c_g.E0)^2 + a constant: rows weighted by sqrt(n_g)
        weight = np.sqrt(n)
        columns = counts[:, species] * weight[:, None]
        e0, _, rank, _ = np.linalg.lstsq(columns, mean * weight, rcond=None)
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

    def per_atom(self, e0: dict[int, float]) -> tuple[float, float, float]:
        """Mean and population std of ``(E - sum E0) / N``, and the mean of ``E / N`` (eV)."""
        counts, n, mean, squares = self._arrays()
        missing = sorted(set(np.flatnonzero(counts.sum(0)).tolist()) - set(e0))
        if missing:
            raise DataError(f"e0 has no reference energy for {_symbols(missing)}")
        reference = np.zeros(counts.shape[1])
        reference[list(e0)] = list(e0.values())
        atoms = counts.sum(1)
        shifted = (mean - counts @ reference) / atoms  # per group; within a group it spreads as E / N
        shifted_mean = float(np.sum(n * shifted) / n.sum())
        spread = np.sum(squares / atoms**2 + n * (shifted - shifted_mean) ** 2) / n.sum()
        return shifted_mean, float(np.sqrt(spread)), float(np.sum(n * mean / atoms) / n.sum())


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
    # the closest distance of each element pair within the cutoff, Å, keyed "C-O" (lighter element first)
    closest_pairs: dict[str, float] = field(default_factory=dict)

    def closest_ratios(self) -> dict[str, float]:
        """Each pair's closest distance over its covalent-radius sum (what ``repulsion`` is given in)."""
        out = {}
        for pair, distance in self.closest_pairs.items():
            a, b = pair.split("-")
            out[pair] = distance / (covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]])
        return out

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
        ratios = self.closest_ratios()
        rows += [(f"closest {pair} (Å)", f"{d:.3f}  ({ratios[pair]:.3f} of the covalent radii)")
                 for pair, d in self.closest_pairs.items()]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)

    __str__ = format


def compute_statistics(
    structures: Iterable[Atoms], cutoff: float, e0: dict[int, float] | None = None,
    species: Sequence[int] | None = None,
) -> DatasetStatistics:
    """Statistics of ``structures`` in one pass over them (each is read once, none is kept, so a lazy
    dataset larger than memory works); ``e0`` is fitted as :func:`fit_e0` does (over ``species``) unless given."""
    energies = EnergiesByComposition()
    present: set[int] = set()
    n_structures, n_atoms, force_sq, force_n, edges = 0, 0, 0.0, 0, 0
    closest = np.full((len(chemical_symbols), len(chemical_symbols)), np.inf)
    for atoms in structures:
        found = get_labels(atoms)
        n_structures += 1
        n_atoms += len(atoms)
        present.update(np.unique(atoms.numbers).tolist())
        if "energy" in found:
            energies.add(atoms.numbers, found["energy"])
        if "forces" in found:
            force_sq += float(np.sum(np.square(found["forces"])))
            force_n += found["forces"].size
        pairs = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
        edges += len(pairs.receivers)
        i, j = pairs.receivers.numpy(), pairs.senders.numpy()
        distances = np.linalg.norm(atoms.positions[j] - atoms.positions[i] + pairs.shifts.numpy() @ atoms.cell.array, axis=1)
        zi, zj = atoms.numbers[i], atoms.numbers[j]
        np.minimum.at(closest, (np.minimum(zi, zj), np.maximum(zi, zj)), distances)
    if not n_structures:
        raise DataError("cannot compute statistics of an empty dataset")
    with_energy = len(energies) > 0
    if e0 is None:
        e0 = energies.fit_e0(species) if with_energy else {}
    mean, std, raw = energies.per_atom(e0) if with_energy else (None, None, None)
    return DatasetStatistics(
        species=sorted(int(z) for z in present),
        num_structures=n_structures,
        num_atoms=n_atoms,
        cutoff=float(cutoff),
        avg_num_neighbors=edges / n_atoms,
        e0={int(z): float(e) for z, e in sorted(e0.items())},
        energy_per_atom_mean=mean,
        energy_per_atom_std=std,
        raw_energy_per_atom_mean=raw,
        force_rms=float(np.sqrt(force_sq / force_n)) if force_n else None,
        closest_pairs={f"{chemical_symbols[a]}-{chemical_symbols[b]}": float(closest[a, b])
                       for a, b in zip(*np.nonzero(np.isfinite(closest)))},
    )


def _symbols(numbers: Iterable[int]) -> str:
    return ", ".join(f"{chemical_symbols[z]} ({z})" for z in numbers)
