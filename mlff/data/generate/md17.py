"""MD17-style reference data: Langevin MD of one molecule under GFN2-xTB (tblite)."""

from __future__ import annotations

import contextlib
import ctypes
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase import Atoms

from mlff.data.generate.common import (check_count, check_md_settings, labelled_frame, langevin_frames,
                                       with_progress)
from mlff.data.generate.molecules import load_molecule
from mlff.errors import ConfigError

METHOD = "GFN2-xTB"
# tblite's default (1.0) leaves ~3e-4 eV/Å in forces that depend on the previous MD step's
# wavefunction (the SCF restart); 0.01 brings that below 1e-5 eV/Å for ~20% more time per step.
XTB_ACCURACY = 0.01


def xtb_calculator():
    """A quiet tblite GFN2-xTB calculator with tight SCF convergence (``XTB_ACCURACY``)."""
    from tblite.ase import TBLite

    return TBLite(method=METHOD, accuracy=XTB_ACCURACY, verbosity=0)


@contextlib.contextmanager
def serial_openmp():
    """Run tblite's OpenMP runtime on one thread inside the block; restore the thread count after.

    With several threads tblite's reductions differ in the last bits from run to run, and MD
    amplifies that into different trajectories; one thread makes runs repeat bit for bit. It costs
    little for molecules of MD17's size (aspirin: ~15% on an idle 2-core machine) and is far faster
    on a busy machine, where waiting OpenMP threads spin. The runtime is the one tblite's library
    links, found by looking the OpenMP symbols up through that library; a build without OpenMP is
    serial already.
    """
    from tblite import _libtblite

    try:
        runtime = ctypes.CDLL(_libtblite.__file__)
        get_threads, set_threads = runtime.omp_get_max_threads, runtime.omp_set_num_threads
    except (OSError, AttributeError):
        yield
        return
    previous = get_threads()
    set_threads(1)
    try:
        yield
    finally:
        set_threads(previous)


def _serial(frames: Iterator[Atoms]) -> Iterator[Atoms]:
    with serial_openmp():
        yield from frames


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
    rattle: float = 0.0,
) -> Iterator[Atoms]:
    """An iterator over ``n_frames`` labelled frames of ``molecule`` from Langevin MD under GFN2-xTB.

    ``molecule`` is anything :func:`~mlff.data.generate.molecules.load_molecule` accepts.
    Velocities start Maxwell–Boltzmann at ``temperature`` (K); the first ``equilibration`` steps of
    ``timestep`` fs are discarded, then a frame is kept every ``interval`` steps. ``friction`` is the
    Langevin coupling in 1/fs. All randomness comes from ``seed``: equal arguments give equal frames.
    Each frame carries energy (eV) and forces (eV/Å) and ``info`` with method, system, seed, source,
    temperature and step.

    ``rattle`` > 0 displaces every kept frame by a Gaussian of that many Å per coordinate and labels the
    displaced structure instead (``info["rattle"]``): bonds compressed and stretched beyond what MD at
    ``temperature`` visits, so that a model sees the repulsive wall (mlff bench smoothness).
    """
    if not (rattle >= 0 and math.isfinite(rattle)):
        raise ConfigError(f"rattle must be a finite number >= 0 Å, got {rattle}")
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
    if rattle:
        frames = _rattled(frames, rattle, np.random.default_rng([seed, 1]))
    return with_progress(_serial(frames), n_frames, f"{name} {METHOD}", progress)


def _rattled(frames: Iterator[Atoms], rattle: float, rng: np.random.Generator) -> Iterator[Atoms]:
    """Each frame displaced by a Gaussian of ``rattle`` Å per coordinate and labelled again with xTB."""
    calc = xtb_calculator()
    for frame in frames:
        atoms = frame.copy()
        atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
        atoms.calc = calc
        yield labelled_frame(atoms, {**frame.info, "rattle": rattle})


def generate_md17(molecule: str | Path, n_frames: int, **kwargs) -> list[Atoms]:
    """All frames of :func:`iter_md17` as a list (same arguments)."""
    return list(iter_md17(molecule, n_frames, **kwargs))
