"""``mlff data generate md17 | oc20 | relaxations | bulk``: reference data written to extxyz, with a progress bar."""

from __future__ import annotations

import argparse
import time

from mlff.cli import Command
from mlff.data.generate.bulk import iter_bulk
from mlff.data.generate.common import check_count, write_frames
from mlff.data.generate.md17 import iter_md17
from mlff.data.generate.molecules import MOLECULES
from mlff.data.generate.oc20 import ADSORBATES, FACETS, METALS, OPTIMIZERS, iter_oc20
from mlff.data.generate.relaxations import iter_relaxations
from mlff.errors import ConfigError


def _common_options(parser: argparse.ArgumentParser, timestep: float, equilibration: int) -> None:
    """Options shared by both generators: output, seed, progress and the Langevin MD settings."""
    parser.add_argument("-o", "--output", required=True, help="extxyz file to write (atomically)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: 0)")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    md = parser.add_argument_group("Langevin MD")
    md.add_argument("--temperature", type=float, default=500.0, help="K (default: 500)")
    md.add_argument("--timestep", type=float, default=timestep, help=f"fs (default: {timestep:g})")
    md.add_argument("--interval", type=int, default=20, help="MD steps between saved frames (default: 20)")
    md.add_argument("--equilibration", type=int, default=equilibration,
                    help=f"MD steps discarded before the first frame (default: {equilibration})")
    md.add_argument("--friction", type=float, default=0.01, help="1/fs (default: 0.01)")


def _md17_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--molecule", required=True,
                        help=f"{', '.join(MOLECULES)}, any ase.build.molecule name, or an xyz file")
    parser.add_argument("--frames", type=int, default=100, help="frames to write (default: 100)")
    parser.add_argument("--rattle", type=float, default=0.0,
                        help="displace each frame by a Gaussian of this many Å per coordinate and label that "
                             "instead (default: 0, plain MD frames)")
    _common_options(parser, timestep=0.5, equilibration=1000)


def _oc20_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metal", default="Cu", help=f"{', '.join(METALS)} (default: Cu)")
    parser.add_argument("--facet", default="111", help=f"{' or '.join(FACETS)} (default: 111)")
    parser.add_argument("--adsorbate", default="CO", help=f"{', '.join(ADSORBATES)} (default: CO)")
    parser.add_argument("--site", help="ontop, bridge, fcc or hcp (111), hollow (100); "
                                       "default: the adsorbate's usual site")
    parser.add_argument("--frames", type=int, default=100, help="MD + relaxation frames (default: 100)")
    parser.add_argument("--relax-fraction", type=float, default=0.5,
                        help="share of the frames taken from relaxation paths (default: 0.5)")
    slab = parser.add_argument_group("slab")
    slab.add_argument("--size", type=int, nargs=2, default=(3, 3), metavar=("NX", "NY"),
                      help="surface repeats (default: 3 3)")
    slab.add_argument("--layers", type=int, default=4, help="metal layers (default: 4)")
    slab.add_argument("--fixed-layers", type=int, default=2, help="bottom layers held fixed (default: 2)")
    slab.add_argument("--vacuum", type=float, default=10.0, help="Å on each side (default: 10)")
    relax = parser.add_argument_group("relaxation paths")
    relax.add_argument("--relax-paths", type=int, default=5, help="rattled relaxations (default: 5)")
    relax.add_argument("--rattle", type=float, default=0.1, help="Gaussian rattle in Å (default: 0.1)")
    relax.add_argument("--relax-sites", default="built", choices=("built", "all"),
                       help="start every path from the built site, or from each site of the facet in turn "
                            "(default: built)")
    relax.add_argument("--lift", type=float, default=0.0,
                       help="raise the adsorbate of each start by up to this, Å (default: 0)")
    relax.add_argument("--optimizer", default="LBFGS", choices=tuple(OPTIMIZERS), help="(default: LBFGS)")
    relax.add_argument("--fmax", type=float, default=0.05, help="convergence in eV/Å (default: 0.05)")
    relax.add_argument("--max-relax-steps", type=int, default=300, help="per path (default: 300)")
    _common_options(parser, timestep=1.0, equilibration=500)


def _bulk_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metal", default="Cu", help=f"{', '.join(METALS)} (default: Cu)")
    parser.add_argument("--frames", type=int, default=100, help="frames to write (default: 100)")
    parser.add_argument("--cells", type=int, default=10, help="randomly strained cells (default: 10)")
    parser.add_argument("--repeat", type=int, nargs=3, default=(2, 2, 2), metavar=("NX", "NY", "NZ"),
                        help="repeats of the cubic fcc cell (default: 2 2 2)")
    parser.add_argument("--strain", type=float, default=0.02,
                        help="largest strain component, uniform in [-s, s] (default: 0.02)")
    _common_options(parser, timestep=1.0, equilibration=200)


def _relaxations_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metals", nargs="+", default=["Cu"], help=f"of {', '.join(METALS)} (default: Cu)")
    parser.add_argument("--adsorbates", nargs="+", default=["CO"], help=f"of {', '.join(ADSORBATES)} (default: CO)")
    parser.add_argument("--per-system", type=int, default=2, help="relaxations per metal and adsorbate (default: 2)")
    parser.add_argument("--facet", default="111", help=f"{' or '.join(FACETS)} (default: 111)")
    parser.add_argument("--rattle", type=float, default=0.1, help="Gaussian rattle of free atoms, Å (default: 0.1)")
    parser.add_argument("--lift", type=float, default=0.5, help="adsorbate lifted by up to this, Å (default: 0.5)")
    parser.add_argument("--optimizer", default="LBFGS", choices=tuple(OPTIMIZERS), help="(default: LBFGS)")
    parser.add_argument("--fmax", type=float, default=0.02, help="reference convergence, eV/Å (default: 0.02)")
    parser.add_argument("--max-steps", type=int, default=500, help="per relaxation (default: 500)")
    parser.add_argument("-o", "--output", required=True, help="extxyz file to write (atomically)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: 0)")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def _run_relaxations(args: argparse.Namespace) -> int:
    frames = iter_relaxations(args.metals, args.adsorbates, args.per_system, facet=args.facet, rattle=args.rattle,
                              lift=args.lift, optimizer=args.optimizer, fmax=args.fmax, max_steps=args.max_steps,
                              seed=args.seed, progress=not args.no_progress)
    return _write(frames, args.output)


def _md_settings(args: argparse.Namespace) -> dict:
    return dict(temperature=args.temperature, timestep=args.timestep, interval=args.interval,
                equilibration=args.equilibration, friction=args.friction, seed=args.seed,
                progress=not args.no_progress)


def _write(frames, path: str) -> int:
    """Write ``frames`` to ``path`` and print a one-line summary with the rate."""
    start = time.perf_counter()
    count = write_frames(frames, path)
    seconds = time.perf_counter() - start
    print(f"wrote {count} frames to {path} in {seconds:.1f} s ({count / seconds:.2f} frames/s)")
    return 0


def _run_md17(args: argparse.Namespace) -> int:
    return _write(iter_md17(args.molecule, args.frames, rattle=args.rattle, **_md_settings(args)), args.output)


def _run_oc20(args: argparse.Namespace) -> int:
    check_count("--frames", args.frames)
    if not 0 <= args.relax_fraction <= 1:
        raise ConfigError(f"--relax-fraction must be in [0, 1], got {args.relax_fraction}")
    n_relax = round(args.frames * args.relax_fraction)
    frames = iter_oc20(
        args.metal, args.facet, args.adsorbate, n_md=args.frames - n_relax, n_relax=n_relax,
        n_relax_paths=args.relax_paths, rattle=args.rattle, optimizer=args.optimizer, fmax=args.fmax,
        max_relax_steps=args.max_relax_steps, relax_sites=args.relax_sites, lift=args.lift, site=args.site,
        size=tuple(args.size), layers=args.layers, fixed_layers=args.fixed_layers, vacuum=args.vacuum,
        **_md_settings(args),
    )
    return _write(frames, args.output)


def _run_bulk(args: argparse.Namespace) -> int:
    frames = iter_bulk(args.metal, args.frames, n_cells=args.cells, repeat=tuple(args.repeat), strain=args.strain,
                       **_md_settings(args))
    return _write(frames, args.output)


COMMANDS = [
    Command(("data", "generate", "md17"), "MD17-style: Langevin MD of a molecule under GFN2-xTB (tblite)",
            _md17_arguments, _run_md17),
    Command(("data", "generate", "oc20"), "OC20-style: adsorbate on an fcc slab under EMT, MD + relaxations",
            _oc20_arguments, _run_oc20),
    Command(("data", "generate", "relaxations"), "IS2RS/IS2RE references: adsorbates on fcc slabs relaxed under EMT "
            "(initial and relaxed frames)", _relaxations_arguments, _run_relaxations),
    Command(("data", "generate", "bulk"), "bulk fcc metal under EMT: Langevin MD in randomly strained cells",
            _bulk_arguments, _run_bulk),
]
