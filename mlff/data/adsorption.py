"""Adsorption energies as training targets, OC20's referenced energies:

``E_ads = E_system - E_slab - sum over the adsorbate's atoms of the gas-phase reference of its element``

The adsorbate is the atoms tagged 2 (OC20's convention); ``E_slab`` is the clean slab's energy, read
from each frame's ``info`` under ``slab_energy_key`` (the ``oc20`` generator writes ``slab_energy``);
the references are per element (eV), e.g. :func:`mlff.data.generate.oc20.emt_gas_references` for EMT
data. Forces and stress are unchanged: the subtracted terms do not depend on the positions.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from ase import Atoms

from mlff.data.labels import get_labels, set_labels
from mlff.errors import DataError

ADSORBATE_TAG = 2


def adsorption_energy(atoms: Atoms, references: Mapping[str, float], slab_energy_key: str = "slab_energy",
                      where: str = "structure") -> float:
    """The adsorption energy of ``atoms`` (which must carry an energy label); DataError naming what is missing."""
    labels = get_labels(atoms)
    if "energy" not in labels:
        raise DataError(f"{where}: no energy label to turn into an adsorption energy")
    if slab_energy_key not in atoms.info:
        raise DataError(f"{where}: no clean-slab energy under info key {slab_energy_key!r} "
                        f"(info has: {', '.join(sorted(atoms.info)) or 'nothing'})")
    adsorbate = atoms.get_tags() == ADSORBATE_TAG
    if not adsorbate.any():
        raise DataError(f"{where}: no adsorbate atoms (tag {ADSORBATE_TAG}); tags are {sorted(set(atoms.get_tags()))}")
    symbols = np.array(atoms.get_chemical_symbols())[adsorbate]
    missing = sorted(set(symbols) - set(references))
    if missing:
        raise DataError(f"{where}: no gas-phase reference energy for adsorbate element(s) {', '.join(missing)} "
                        f"(references given for {', '.join(sorted(references)) or 'none'})")
    return float(labels["energy"] - float(atoms.info[slab_energy_key]) - sum(references[s] for s in symbols))


class to_adsorption:  # noqa: N801 - used like a function; a class so that spawned DataLoader workers can pickle it
    """A transform ``(atoms, where) -> atoms`` whose energy label becomes the adsorption energy (a copy:
    the total energy stays in ``info['total_energy']``)."""

    def __init__(self, references: Mapping[str, float], slab_energy_key: str = "slab_energy"):
        self.references, self.slab_energy_key = dict(references), slab_energy_key

    def __call__(self, atoms: Atoms, where: str) -> Atoms:
        energy = adsorption_energy(atoms, self.references, self.slab_energy_key, where)
        labels = get_labels(atoms)
        out = atoms.copy()
        out.info["total_energy"] = float(labels["energy"])
        return set_labels(out, **{**labels, "energy": energy})
