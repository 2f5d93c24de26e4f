"""MD17-style reference data: Langevin MD of one molecule under GFN2-xTB (tblite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase import Atoms

from mlff.data.generate.common import check_count, check_md_settings, langevin_frames, with_progress
from mlff.data.generate.molecules import load_molecule

METHOD = "GFN2-xTB"


def xtb_calculator():
    """A quiet tblite GFN2-xTB calculator."""
    from tblite.ase import TBLite

    return TBLite(method=METHOD, verbosity=0)


def iter_md17(
    molecule: str | Path,
    n_frames: int,
    temperature: float = 500.0,
    timestep: float = 0.5,
    interval: int = 20,
    equilibration: int = 1000,
    friction: float = 0.01,
    seed: int = 0,
    progress: bool = True,
) -> Iterator[Atoms]:
    """An iterator over ``n_frames`` labelled frames of ``molecule`` from Langevin MD under GFN2-xTB.

    ``molecule`` is anything :func:`~mlff.data.generate.molecules.load_molecule` accepts.
    Velocities start Maxwell–Boltzmann at ``temperature`` (K); the first ``equilibration`` steps of
    ``timestep`` fs are discarded, then a frame is kept every ``interval`` steps. ``friction`` is the
    Langevin coupling in 1/fs. All randomness comes from ``seed``: equal arguments give equal frames.
    Each frame carries energy (eV) and forces (eV/Å) and ``info`` with method, system, seed, source,
    temperature and step.
    """
    check_count("n_frames", n_frames)
    check_count("seed", seed, 0)
    check_md_settings(temperature, timestep, interval, equilibration, friction)
    atoms, name = load_molecule(molecule)
    atoms.calc = xtb_calculator()
    frames = langevin_frames(
        atoms,
        n_frames=n_frames,
        interval=interval,
        equilibration=equilibration,
        temperature=temperature,
        timestep=timestep,
        friction=friction,
        rng=np.random.default_rng(seed),
        info={"method": METHOD, "system": name, "seed": seed},
        isolated=True,
    )
    return with_progress(frames, n_frames, f"{name} {METHOD}", progress)


def generate_md17(molecule: str | Path, n_frames: int, **kwargs) -> list[Atoms]:
    """All frames of :func:`iter_md17` as a list (same arguments)."""
    return list(iter_md17(molecule, n_frames, **kwargs))
