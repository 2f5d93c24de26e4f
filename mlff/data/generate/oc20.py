"""OC20-style reference data: an adsorbate on an fcc(111)/(100) slab under ASE's EMT.

Frames come from two samplers: Langevin MD of the whole system, and relaxation paths (the freshly
built structure, or the adsorbate on each site in turn and lifted, rattled with a seeded rng, relaxed
with an ASE optimizer, frames kept along the way).
Tags follow OC20: 0 fixed sub-surface slab atoms, 1 free surface atoms, 2 adsorbate atoms.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator

import numpy as np
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc100, fcc111
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.data import atomic_numbers, reference_states
from ase.optimize import BFGS, FIRE, LBFGS
from scipy.optimize import brentq

from mlff.data.generate.common import (
    check_count,
    check_md_settings,
    labelled_frame,
    langevin_frames,
    lookup,
    with_progress,
)
from mlff.errors import ConfigError

METHOD = "EMT"
METALS = ("Ag", "Al", "Au", "Cu", "Ni", "Pd", "Pt")
FACETS = {"111": (fcc111, ("ontop", "bridge", "fcc", "hcp")), "100": (fcc100, ("ontop", "bridge", "hollow"))}
OPTIMIZERS = {"BFGS": BFGS, "LBFGS": LBFGS, "FIRE": FIRE}
# Adsorbate: symbols, positions (Å, binding atom at the origin, the rest above it), preferred site.
ADSORBATES = {
    "H": ("H", [(0, 0, 0)], "hollow"),
    "C": ("C", [(0, 0, 0)], "hollow"),
    "N": ("N", [(0, 0, 0)], "hollow"),
    "O": ("O", [(0, 0, 0)], "hollow"),
    "CO": ("CO", [(0, 0, 0), (0, 0, 1.15)], "ontop"),
    "CH": ("CH", [(0, 0, 0), (0, 0, 1.09)], "hollow"),
    "CH2": ("CH2", [(0, 0, 0), (0.89, 0, 0.63), (-0.89, 0, 0.63)], "hollow"),
    "CH3": ("CH3", [(0, 0, 0), (1.03, 0, 0.36), (-0.51, 0.89, 0.36), (-0.51, -0.89, 0.36)], "ontop"),
    "NH": ("NH", [(0, 0, 0), (0, 0, 1.02)], "hollow"),
    "NH2": ("NH2", [(0, 0, 0), (0.83, 0, 0.59), (-0.83, 0, 0.59)], "hollow"),
    "OH": ("OH", [(0, 0, 0), (0, 0, 0.97)], "hollow"),
    "OOH": ("O2H", [(0, 0, 0), (1.0, 0, 1.0), (1.0, 0.9, 1.35)], "ontop"),
    "H2O": ("OH2", [(0, 0, 0), (0.76, 0, 0.59), (-0.76, 0, 0.59)], "ontop"),
}
HEIGHTS = {"ontop": 1.9, "bridge": 1.6, "fcc": 1.2, "hcp": 1.2, "hollow": 1.2}  # Å above the surface


def facet_key(facet) -> str:
    """The key of :data:`FACETS` that ``facet`` names ("111", "fcc111", 111, ...), or a DataError."""
    return lookup("facet", str(facet).lower().removeprefix("fcc"), FACETS)


@functools.cache
def emt_lattice_constant(metal: str) -> float:
    """The fcc lattice constant (Å) at which EMT's bulk stress vanishes (found by root search)."""

    def pressure(a: float) -> float:
        atoms = bulk(metal, "fcc", a=a)
        atoms.calc = EMT()
        return float(atoms.get_stress()[0])

    guess = reference_states[atomic_numbers[metal]]["a"]  # ASE's experimental lattice constant
    return brentq(pressure, 0.9 * guess, 1.1 * guess, xtol=1e-10)


def build_slab(
    metal: str = "Cu",
    facet: str = "111",
    adsorbate: str = "CO",
    site: str | None = None,
    size: tuple[int, int] = (3, 3),
    layers: int = 4,
    fixed_layers: int = 2,
    vacuum: float = 10.0,
) -> tuple[Atoms, str]:
    """An adsorbate on a metal slab, ready for EMT; returns ``(atoms, name)``, e.g. ``"CO/Cu(111)"``.

    The slab is ``size[0] x size[1] x layers`` at the EMT lattice constant with ``vacuum`` Å on both
    sides along z, pbc ``(True, True, False)``, the bottom ``fixed_layers`` held by ``FixAtoms``.
    ``site`` defaults to the adsorbate's preferred site (``fcc`` stands for ``hollow`` on (111)).
    """
    metal = lookup("metal", metal, METALS)
    facet = facet_key(facet)
    builder, sites = FACETS[facet]
    adsorbate = lookup("adsorbate", adsorbate, ADSORBATES)
    formula, positions, preferred = ADSORBATES[adsorbate]
    if site is None:
        site = preferred if preferred in sites else "fcc"
    site = lookup(f"site on fcc({facet})", site, sites)
    check_count("layers", layers, 2)
    check_count("size", min(size))
    if not 0 <= fixed_layers < layers:
        raise ConfigError(f"fixed_layers must be in [0, {layers - 1}] for {layers} layers: {fixed_layers}")
    if vacuum <= 0:
        raise ConfigError(f"vacuum must be > 0 Å, got {vacuum}")

    slab = builder(metal, size=(*size, layers), a=emt_lattice_constant(metal), vacuum=vacuum)
    fixed = slab.get_tags() > layers - fixed_layers  # ase tags layers 1 (top) .. layers (bottom)
    n_slab = len(slab)
    add_adsorbate(slab, Atoms(formula, positions=positions), HEIGHTS[site], position=site, mol_index=0)
    slab.center(vacuum=vacuum, axis=2)
    tags = np.full(len(slab), 2)
    tags[:n_slab] = np.where(fixed, 0, 1)
    slab.set_tags(tags)
    slab.set_constraint(FixAtoms(indices=np.flatnonzero(fixed)))
    slab.info.clear()
    return slab, f"{adsorbate}/{metal}({facet})"


def clean_slab_energy(metal: str = "Cu", facet: str = "111", size: tuple[int, int] = (3, 3), layers: int = 4,
                      fixed_layers: int = 2, vacuum: float = 10.0, site=None) -> float:
    """EMT energy (eV) of the clean slab of :func:`build_slab` relaxed to 0.01 eV/Å: the slab term of an
    adsorption energy (``site`` is accepted and ignored, so the same options serve both). Computed once
    per slab and process."""
    return _clean_slab_energy(metal, str(facet), tuple(int(n) for n in size), int(layers), int(fixed_layers),
                              float(vacuum))


@functools.cache
def _clean_slab_energy(metal: str, facet: str, size: tuple[int, int], layers: int, fixed_layers: int,
                       vacuum: float) -> float:
    metal = lookup("metal", metal, METALS)
    facet = facet_key(facet)
    slab = FACETS[facet][0](metal, size=(*size, layers), a=emt_lattice_constant(metal), vacuum=vacuum)
    slab.set_constraint(FixAtoms(mask=slab.get_tags() > layers - fixed_layers))
    slab.calc = EMT()
    BFGS(slab, logfile=None).run(fmax=0.01, steps=500)
    return float(slab.get_potential_energy())


def emt_gas_references() -> dict[str, float]:
    """Per-element gas-phase references under EMT, built the way OC20 builds its from DFT: H from H2,
    O from H2O - H2, C from CO - O, N from N2 / 2 (each molecule relaxed to 0.01 eV/Å). A new dict each
    call (computed once per process)."""
    return dict(_emt_gas_references())


@functools.cache
def _emt_gas_references() -> dict[str, float]:
    from ase.build import molecule

    def energy(name: str) -> float:
        atoms = molecule(name)
        atoms.calc = EMT()
        BFGS(atoms, logfile=None).run(fmax=0.01, steps=500)
        return float(atoms.get_potential_energy())

    h = energy("H2") / 2
    o = energy("H2O") - 2 * h
    return {"H": h, "O": o, "C": energy("CO") - o, "N": energy("N2") / 2}


def relax_path(atoms: Atoms, optimizer: str, fmax: float, max_steps: int, info: dict) -> list[Atoms]:
    """Relax ``atoms`` (calculator attached) in place; return a labelled frame for every step."""
    opt = OPTIMIZERS[optimizer](atoms, logfile=None)
    steps = opt.irun(fmax=fmax, steps=max_steps)
    return [labelled_frame(atoms, {**info, "step": opt.nsteps}, stress=True) for _ in steps]


def _evenly(frames: list[Atoms], k: int) -> list[Atoms]:
    """``k`` frames spread evenly from first to last (all of them when there are fewer)."""
    if len(frames) <= k:
        return frames
    return [frames[i] for i in np.linspace(0, len(frames) - 1, k).round().astype(int)]


def relaxation_start(slab_options: dict, site: str | None, lift: float, rattle: float,
                     rng: np.random.Generator) -> Atoms:
    """:func:`build_slab` ``(**slab_options)`` with the adsorbate at ``site`` (None: the built one), lifted
    by a uniform draw in [0, ``lift``] Å, and every free atom rattled by a Gaussian of ``rattle`` Å: the
    start of a relaxation path (:func:`iter_oc20`) and of a reference relaxation
    (:func:`mlff.data.generate.relaxations.iter_relaxations`)."""
    atoms, _ = build_slab(**{**slab_options, **({"site": site} if site else {})})
    # no draw without a lift, so that the rattle of a seeded path is what it was before lifts existed
    atoms.positions[atoms.get_tags() == 2, 2] += rng.uniform(0, lift) if lift else 0.0
    atoms.rattle(stdev=rattle, rng=rng)
    return atoms


def _relax_frames(slab_options, sites, lift, n_frames, n_paths, rattle, optimizer, fmax, max_steps, seed, info):
    """``n_frames`` frames from rattled relaxation paths (path ``k`` from ``sites[k % len(sites)]``); short
    paths leave their share to later ones."""
    path = 0
    while n_frames > 0:
        quota = math.ceil(n_frames / max(n_paths - path, 1))
        site = sites[path % len(sites)]
        atoms = relaxation_start(slab_options, site, lift, rattle, np.random.default_rng([seed, 1, path]))
        atoms.calc = EMT()
        meta = {**info, "source": "relax", "path": path, **({"site": site} if site else {})}
        kept = _evenly(relax_path(atoms, optimizer, fmax, max_steps, meta), quota)
        yield from kept
        n_frames -= len(kept)
        path += 1


def iter_oc20(
    metal: str = "Cu",
    facet: str = "111",
    adsorbate: str = "CO",
    n_md: int = 50,
    n_relax: int = 50,
    n_relax_paths: int = 5,
    temperature: float = 500.0,
    timestep: float = 1.0,
    interval: int = 20,
    equilibration: int = 500,
    friction: float = 0.01,
    rattle: float = 0.1,
    optimizer: str = "LBFGS",
    fmax: float = 0.05,
    max_relax_steps: int = 300,
    relax_sites: str = "built",
    lift: float = 0.0,
    seed: int = 0,
    progress: bool = True,
    **slab_options,
) -> Iterator[Atoms]:
    """An iterator over ``n_md`` MD frames followed by ``n_relax`` relaxation-path frames.

    The system is :func:`build_slab` ``(metal, facet, adsorbate, **slab_options)`` under EMT. MD:
    Langevin at ``temperature`` K, ``timestep`` fs, ``friction`` 1/fs, a frame every ``interval``
    steps after ``equilibration`` steps. Relaxation: ``n_relax_paths`` paths, each from the built
    structure with free atoms rattled by a Gaussian of ``rattle`` Å, relaxed with ``optimizer`` to
    ``fmax`` eV/Å (at most ``max_relax_steps`` steps), frames spread evenly along each path. With
    ``relax_sites="all"`` the paths start from the facet's sites in turn (ontop, bridge, fcc, hcp on
    (111)) instead of the built one, and ``lift`` > 0 raises the adsorbate of each start by a uniform draw
    in [0, ``lift``] Å: relaxations from the starts a user gives, not only near the minimum. Every
    frame has energy, forces (raw, fixed atoms included) and stress; all randomness comes from
    ``seed``. Arguments are checked at call time; the sampling runs as the iterator is consumed.
    """
    check_count("n_md", n_md, 0)
    check_count("n_relax", n_relax, 0)
    check_count("n_md + n_relax", n_md + n_relax)
    check_count("n_relax_paths", n_relax_paths, 1 if n_relax else 0)
    check_count("seed", seed, 0)
    check_count("max_relax_steps", max_relax_steps)
    check_md_settings(temperature, timestep, interval, equilibration, friction)
    optimizer = lookup("optimizer", optimizer, OPTIMIZERS)
    if rattle < 0 or lift < 0 or fmax <= 0:
        raise ConfigError(f"rattle and lift must be >= 0 Å and fmax > 0 eV/Å, got {rattle}, {lift} and {fmax}")
    relax_sites = lookup("relax_sites", relax_sites, ("built", "all"))
    slab, name = build_slab(metal, facet, adsorbate, **slab_options)
    # the clean slab's energy, for adsorption-energy targets (mlff.data.adsorption)
    info = {"method": METHOD, "system": name, "seed": seed,
            "slab_energy": clean_slab_energy(metal, facet, **slab_options)}
    md = ()
    if n_md:
        atoms = slab.copy()
        atoms.calc = EMT()
        md = langevin_frames(
            atoms,
            n_frames=n_md,
            interval=interval,
            equilibration=equilibration,
            temperature=temperature,
            timestep=timestep,
            friction=friction,
            rng=np.random.default_rng([seed, 0]),
            info=info,
            stress=True,
        )
    slab_options = {**slab_options, "metal": metal, "facet": facet, "adsorbate": adsorbate}
    sites = (None,)  # the built site
    if relax_sites == "all":
        sites = FACETS[facet_key(facet)][1]
    relax = _relax_frames(slab_options, sites, lift, n_relax, n_relax_paths, rattle, optimizer, fmax,
                          max_relax_steps, seed, info)
    return with_progress(itertools.chain(md, relax), n_md + n_relax, f"{name} {METHOD}", progress)


def generate_oc20(*args, **kwargs) -> list[Atoms]:
    """All frames of :func:`iter_oc20` as a list (same arguments)."""
    return list(iter_oc20(*args, **kwargs))
