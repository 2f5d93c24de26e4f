"""Build the starting structure of a deck: a file, an ``ase.build`` call, or a built-in system."""

from __future__ import annotations

import re

import ase.build
import ase.io
import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from mlff.data.generate.molecules import load_molecule
from mlff.data.generate.oc20 import build_slab
from mlff.dynamics.deck import StructureSpec
from mlff.errors import ConfigError

_OC20 = re.compile(r"^oc20:(?P<ads>[A-Za-z0-9]+)/(?P<metal>[A-Z][a-z]?)\((?P<facet>\d{3})\)$")


def build_structure(spec: StructureSpec) -> Atoms:
    if spec.system is not None:
        atoms = _builtin(spec.system)
    elif spec.file is not None:
        try:
            atoms = ase.io.read(spec.file, index=spec.index)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ConfigError(f"structure.file {spec.file}: cannot read it ({exc})") from exc
    else:
        function = getattr(ase.build, spec.builder, None)
        if function is None or not callable(function):
            raise ConfigError(f"structure.builder {spec.builder!r} is not a function of ase.build")
        try:
            atoms = function(*spec.args, **spec.kwargs)
        except Exception as exc:
            raise ConfigError(f"structure.builder {spec.builder}: {exc}") from exc
    if spec.repeat:
        atoms = atoms * tuple(spec.repeat)
    if spec.fix_bottom_layers:
        _fix_bottom(atoms, spec.fix_bottom_layers)
    return atoms


def _builtin(name: str) -> Atoms:
    if name.startswith("md17:"):
        return load_molecule(name[5:])[0]
    match = _OC20.match(name)
    if match:
        return build_slab(metal=match["metal"], facet=match["facet"], adsorbate=match["ads"])[0]
    raise ConfigError(f"structure.system {name!r}: use 'md17:<molecule>' or 'oc20:<adsorbate>/<metal>(<facet>)', "
                      "e.g. 'md17:ethanol' or 'oc20:CO/Cu(111)'")


def _fix_bottom(atoms: Atoms, layers: int) -> None:
    z = np.round(atoms.positions[:, 2], 2)
    levels = np.unique(z[atoms.numbers == np.bincount(atoms.numbers).argmax()])
    if layers > len(levels):
        raise ConfigError(f"structure.fix_bottom_layers={layers} but the slab has {len(levels)} layers")
    fixed = np.flatnonzero(z <= levels[layers - 1])
    atoms.set_constraint([*atoms.constraints, FixAtoms(indices=fixed)])
