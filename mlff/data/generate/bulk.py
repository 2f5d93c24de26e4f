"""Bulk fcc metal reference data under ASE's EMT: Langevin MD in randomly strained periodic cells.

Each of ``n_cells`` cells is the conventional fcc supercell at the EMT lattice constant, deformed
by a random symmetric strain (every component uniform in ``[-strain, strain]``), then sampled by
Langevin MD at fixed cell. The frames carry energy, forces and stress, so a potential trained on
them learns the equation of state and elastic response needed for NPT dynamics.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from mlff.data.generate.common import check_count, check_md_settings, langevin_frames, lookup, with_progress
from mlff.data.generate.oc20 import METALS, emt_lattice_constant
from mlff.errors import ConfigError

METHOD = "EMT"


def strained_cell(metal: str, repeat: tuple[int, int, int], strain: float, rng: np.random.Generator) -> Atoms:
    """The ``repeat`` supercell of the cubic fcc cell of ``metal`` under a random symmetric strain."""
    atoms = bulk(metal, "fcc", a=emt_lattice_constant(metal), cubic=True).repeat(repeat)
    eps = rng.uniform(-strain, strain, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return atoms


def iter_bulk(
    metal: str = "Cu",
    n_frames: int = 100,
    n_cells: int = 10,
    repeat: tuple[int, int, int] = (2, 2, 2),
    strain: float = 0.02,
    temperature: float = 500.0,
    timestep: float = 1.0,
    interval: int = 20,
    equilibration: int = 200,
    friction: float = 0.01,
    seed: int = 0,
    progress: bool = True,
) -> Iterator[Atoms]:
    """An iterator over ``n_frames`` labelled frames of bulk fcc ``metal``, spread over ``n_cells`` cells.

    Cell ``k`` is :func:`strained_cell` drawn from ``seed``; MD: Langevin at ``temperature`` K,
    ``timestep`` fs, ``friction`` 1/fs, a frame every ``interval`` steps after ``equilibration``
    steps. Frames have energy, forces and stress (eV/Å³, ASE sign convention).
    """
    metal = lookup("metal", metal, METALS)
    check_count("n_frames", n_frames)
    check_count("n_cells", n_cells)
    check_count("seed", seed, 0)
    check_count("repeat", min(repeat))
    check_md_settings(temperature, timestep, interval, equilibration, friction)
    if not 0 <= strain < 0.5:
        raise ConfigError(f"strain must be in [0, 0.5), got {strain}")
    n_cells = min(n_cells, n_frames)
    quotas = [n_frames // n_cells + (k < n_frames % n_cells) for k in range(n_cells)]
    name = f"{metal}(fcc bulk)"

    def cell_frames(k: int, quota: int) -> Iterator[Atoms]:
        rng = np.random.default_rng([seed, 2, k])
        atoms = strained_cell(metal, tuple(repeat), strain, rng)
        atoms.calc = EMT()
        info = {"method": METHOD, "system": name, "seed": seed, "cell_index": k}
        yield from langevin_frames(
            atoms, n_frames=quota, interval=interval, equilibration=equilibration, temperature=temperature,
            timestep=timestep, friction=friction, rng=rng, info=info, stress=True,
        )

    frames = itertools.chain.from_iterable(cell_frames(k, q) for k, q in enumerate(quotas))
    return with_progress(frames, n_frames, f"{name} {METHOD}", progress)
