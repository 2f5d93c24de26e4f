"""``mpirun -np N mlff lammps in.lmp`` and ``mlff export lammps MODEL``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mlff.cli import Command
from mlff.runtime import LOW_MEMORY_HELP


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("deck", help="LAMMPS input in units metal with one `fix ID all external pf/callback 1 1` "
                                     "and `pair_style zero R` (R >= the model's cutoff)")
    parser.add_argument("--model", required=True, help="shipped potential name or checkpoint file")
    parser.add_argument("--elements", nargs="+", required=True, help="element of each LAMMPS atom type, type 1 first")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="default: as stored (float32)")
    parser.add_argument("--energy-every", type=int, default=10, help="steps between recorded total energies")
    parser.add_argument("--log", default="log.lammps")
    parser.add_argument("--plot", help="MD figure (default: the deck's name with .png; 'none' for no figure)")
    parser.add_argument("--low-memory", action="store_true", help=LOW_MEMORY_HELP)


def _run(args) -> int:
    from mlff.lammps.runner import run_deck

    run = run_deck(args.deck, args.model, args.elements, args.dtype, args.energy_every, args.log)
    summary = run.summary()
    if run.bridge.comm.Get_rank() == 0:
        s = summary
        print(f"mlff lammps: {s['atoms']} atoms on {s['ranks']} rank(s), {s['force_calls']} force calls, "
              f"{1000 * s['seconds_per_call']:.1f} ms per call (exchange {1000 * s['exchange_seconds_per_call']:.1f} ms), "
              f"peak RSS per rank {', '.join(f'{m:.0f}' for m in s['peak_rss_mib_per_rank'])} MiB")
        if "nve_drift_mev_atom_ps" in s:
            print(f"total energy: drift {s['nve_drift_mev_atom_ps']:+.5f} meV/atom/ps, peak-to-peak "
                  f"{s['etotal_ptp_mev_atom']:.4f} meV/atom ({run.energy_file})")
        print(json.dumps(summary))
    plot = args.plot or f"{Path(args.deck).stem}.png"
    if plot != "none" and run.plot(plot, f"mlff lammps {args.deck} · potential {args.model} · {summary['ranks']} rank(s)"):
        print(f"figure: {plot}")
    run.lmp.close()
    return 0


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="shipped potential name or checkpoint file")
    parser.add_argument("--elements", nargs="+", required=True, help="element of each LAMMPS atom type, type 1 first")
    parser.add_argument("-o", "--output", default="mlff-mliap.pt")
    parser.add_argument("--dtype", choices=["float32", "float64"])


def _export(args) -> int:
    import torch

    from mlff.calculator import load
    from mlff.fileio import atomic_write
    from mlff.lammps.mliap import MLFFUnified
    from mlff.lammps.types import SKIN

    unified = MLFFUnified(load(args.model, device="cpu", dtype=args.dtype), args.elements)
    with atomic_write(args.output, "wb") as fh:
        torch.save(unified, fh)
    print(f"wrote {args.output}: in LAMMPS (ML-IAP with Python; the file is a pickled object, so torch >= 2.6 "
          f"needs TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1):\n"
          f"  KOKKOS (ghost exchange):  newton on / pair_style mliap unified {args.output} 0\n"
          f"  otherwise:                newton on / pair_style mliap unified {args.output} 1 / "
          f"comm_modify cutoff {unified.halo + SKIN:g}  (receptive field {unified.halo:g} Å + {SKIN:g} Å skin)\n"
          f"  then:                     pair_coeff * * {' '.join(args.elements)}")
    return 0


COMMANDS = [
    Command(("lammps",), "run a LAMMPS deck with an mlff potential (fix external; mpirun -np N for MPI ranks)",
            _run_arguments, _run),
    Command(("export", "lammps"), "write an ML-IAP unified model file for pair_style mliap unified",
            _export_arguments, _export),
]
