"""Pieces shared by the generators: labelled frames, Langevin sampling, progress, atomic writing."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator

import numpy as np
from ase import Atoms, units
from ase.io import write
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation
from tqdm import tqdm

from mlff.data.labels import set_labels
from mlff.errors import ConfigError, DataError
from mlff.compat import thermalize_momenta
from mlff.fileio import atomic_path



def labelled_frame(atoms: Atoms, info: dict, stress: bool = False) -> Atoms:
    """A bare copy of ``atoms`` (numbers, positions, cell, pbc, tags, fixed atoms) with labels.

    The labels are read from the calculator attached to ``atoms`` (cached results; no new
    calculation when it is up to date). Forces are the raw forces, also on fixed atoms
    (``apply_constraint=False``), as a training label should be. ``info`` becomes the frame's
    metadata.
    """
    frame = Atoms(
        numbers=atoms.numbers,
        positions=atoms.positions,
        cell=atoms.cell,
        pbc=atoms.pbc,
        tags=atoms.arrays.get("tags"),
        constraint=[c.copy() for c in atoms.constraints],
    )
    set_labels(
        frame,
        energy=atoms.get_potential_energy(),
        forces=atoms.get_forces(apply_constraint=False),
        stress=atoms.get_stress() if stress else None,
    )
    frame.info.update(info)
    return frame


def langevin_frames(
    atoms: Atoms,
    *,
    n_frames: int,
    interval: int,
    equilibration: int,
    temperature: float,
    timestep: float,
    friction: float,
    rng: np.random.Generator,
    info: dict,
    stress: bool = False,
    isolated: bool = False,
) -> Iterator[Atoms]:
    """Run Langevin MD on ``atoms`` (calculator attached) and yield ``n_frames`` labelled frames.

    Velocities start from a Maxwell–Boltzmann distribution at ``temperature`` (K) drawn from
    ``rng``; for an ``isolated`` molecule the centre-of-mass motion and rotation are removed. After
    ``equilibration`` steps a frame is kept every ``interval`` steps. ``timestep`` is in fs and
    ``friction`` in 1/fs. Each frame's ``info`` is ``info`` plus source, temperature and step.
    """
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    if isolated:
        Stationary(atoms)
        ZeroRotation(atoms)
    dyn = Langevin(
        atoms,
        timestep * units.fs,
        temperature_K=temperature,
        friction=friction / units.fs,
        fixcm=False,
        rng=rng,
    )
    for _ in dyn.irun(equilibration + n_frames * interval):
        sampled = dyn.nsteps - equilibration
        if sampled > 0 and sampled % interval == 0:
            meta = {**info, "source": "md", "temperature": float(temperature), "step": dyn.nsteps}
            yield labelled_frame(atoms, meta, stress=stress)


def with_progress(frames: Iterable[Atoms], total: int, desc: str, enabled: bool) -> Iterator[Atoms]:
    """Pass ``frames`` through, counting them on a tqdm bar on stderr unless ``enabled`` is false."""
    with tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, disable=not enabled, leave=False) as bar:
        for frame in frames:
            bar.update()
            yield frame


def write_frames(frames: Iterable[Atoms], path: str | os.PathLike) -> int:
    """Stream ``frames`` into an extxyz file at ``path``, atomically; return how many were written.

    Frames go to a temporary file next to ``path`` as they come, which replaces ``path`` only when
    the iterable is exhausted without an exception: a failure mid-generation leaves any existing
    file untouched.
    """
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for frame in frames:
            write(fh, frame, format="extxyz")
            count += 1
    return count


def check_md_settings(temperature, timestep, interval, equilibration, friction) -> None:
    """Raise :class:`ConfigError` for a non-physical or non-positive MD setting."""
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0 K, got {temperature}")
    if timestep <= 0:
        raise ConfigError(f"timestep must be > 0 fs, got {timestep}")
    if interval < 1:
        raise ConfigError(f"interval must be >= 1 step, got {interval}")
    if equilibration < 0:
        raise ConfigError(f"equilibration must be >= 0 steps, got {equilibration}")
    if friction < 0:
        raise ConfigError(f"friction must be >= 0 1/fs, got {friction}")


def check_count(name: str, value: int, minimum: int = 1) -> None:
    """Raise :class:`ConfigError` unless the integer ``value`` is at least ``minimum``."""
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")


def lookup(kind: str, value: str, table) -> str:
    """The key of ``table`` equal to ``value`` ignoring case, or a DataError listing the choices."""
    for key in table:
        if key.lower() == str(value).strip().lower():
            return key
    raise DataError(f"unknown {kind} {value!r}: use one of {', '.join(table)}")
