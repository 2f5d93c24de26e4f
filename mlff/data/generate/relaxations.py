"""Reference relaxations for OC20's IS2RS/IS2RE tasks: adsorbates on fcc slabs, relaxed under EMT.

Each relaxation starts from :func:`~mlff.data.generate.oc20.build_slab` with the adsorbate on a site
drawn at random (``site`` in the frames' info), lifted by up to ``lift`` Å, and every free atom rattled
by ``rattle`` Å (:func:`~mlff.data.generate.oc20.relaxation_start`); it is relaxed with an ASE
optimizer to ``fmax``. It gives two labelled frames with the same ``relax_id``: ``stage: initial`` and
``stage: relaxed`` (with the ``optimizer``, its ``fmax``, ``steps`` and ``converged``), so one file
holds the initial structures and their references. :func:`relaxation_pairs` reads them back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.emt import EMT

from mlff.data.generate.common import check_count, labelled_frame, lookup, with_progress
from mlff.data.generate.oc20 import FACETS, METHOD, OPTIMIZERS, build_slab, facet_key, relaxation_start
from mlff.errors import ConfigError, DataError


def iter_relaxations(
    metals: Sequence[str] = ("Cu",),
    adsorbates: Sequence[str] = ("CO",),
    per_system: int = 2,
    facet: str = "111",
    rattle: float = 0.1,
    lift: float = 0.5,
    optimizer: str = "LBFGS",
    fmax: float = 0.02,
    max_steps: int = 500,
    seed: int = 0,
    progress: bool = True,
    **slab_options,
) -> Iterator[Atoms]:
    """``per_system`` relaxations of every adsorbate on every metal (2 frames each, see the module
    docstring); all randomness comes from ``seed``."""
    check_count("per_system", per_system)
    check_count("max_steps", max_steps)
    check_count("seed", seed, 0)
    if rattle < 0 or lift < 0 or fmax <= 0:
        raise ConfigError(f"rattle and lift must be >= 0 Å and fmax > 0 eV/Å, got {rattle}, {lift} and {fmax}")
    optimizer = lookup("optimizer", optimizer, OPTIMIZERS)
    _, sites = FACETS[facet_key(facet)]
    systems = list(itertools.product(metals, adsorbates, range(per_system)))
    # every name checked before the first relaxation
    names = {(metal, adsorbate): build_slab(metal, facet, adsorbate, **slab_options)[1]
             for metal, adsorbate, _ in systems}

    def relaxations():
        for relax_id, (metal, adsorbate, _) in enumerate(systems):
            rng = np.random.default_rng([seed, relax_id])
            site = str(rng.choice(sites))
            options = {**slab_options, "metal": metal, "facet": facet, "adsorbate": adsorbate}
            atoms = relaxation_start(options, site, lift, rattle, rng)
            atoms.calc = EMT()
            info = {"method": METHOD, "system": names[metal, adsorbate], "site": site, "relax_id": relax_id,
                    "seed": seed}
            yield labelled_frame(atoms, {**info, "stage": "initial"}, stress=False)
            opt = OPTIMIZERS[optimizer](atoms, logfile=None)
            converged = bool(opt.run(fmax=fmax, steps=max_steps))
            yield labelled_frame(atoms, {**info, "stage": "relaxed", "steps": opt.nsteps, "converged": converged,
                                         "optimizer": optimizer, "fmax": fmax})

    return with_progress(relaxations(), 2 * len(systems), f"relaxations {METHOD}", progress)


def relaxation_pairs(structures: Sequence[Atoms], where: str = "the data") -> list[tuple[Atoms, Atoms]]:
    """``(initial, relaxed)`` for every ``relax_id`` in ``structures`` (frames with ``stage`` in their
    info), in order of first appearance; a DataError names a missing stage, a duplicate or a mismatch."""
    stages: dict[int, dict[str, Atoms]] = {}
    for k, atoms in enumerate(structures):
        relax_id, stage = atoms.info.get("relax_id"), atoms.info.get("stage")
        if relax_id is None or stage not in ("initial", "relaxed"):
            raise DataError(f"frame {k} of {where}: a relaxation frame needs info 'relax_id' and 'stage' "
                            f"('initial' or 'relaxed'), got {relax_id!r} and {stage!r}")
        pair = stages.setdefault(int(relax_id), {})
        if stage in pair:
            raise DataError(f"frame {k} of {where}: relaxation {relax_id} has a second {stage!r} frame")
        pair[stage] = atoms
    pairs = []
    for relax_id, pair in stages.items():
        missing = {"initial", "relaxed"} - set(pair)
        if missing:
            raise DataError(f"{where}: relaxation {relax_id} has no {missing.pop()!r} frame")
        if not np.array_equal(pair["initial"].numbers, pair["relaxed"].numbers):
            raise DataError(f"{where}: relaxation {relax_id}: the initial and relaxed frames have different atoms")
        pairs.append((pair["initial"], pair["relaxed"]))
    return pairs


def labelling_method(pairs: Sequence[tuple[Atoms, Atoms]], where: str = "the data") -> str:
    """The one ``info['method']`` that labelled every frame of ``pairs``; a DataError if it is missing or mixed."""
    methods = {atoms.info.get("method") for pair in pairs for atoms in pair}
    if len(methods) != 1 or None in methods:
        raise DataError(f"{where}: the relaxation frames need one labelling method in info 'method', "
                        f"got {sorted(map(str, methods))}")
    return methods.pop()
