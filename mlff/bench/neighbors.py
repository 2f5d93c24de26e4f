"""Neighbour-list time versus number of atoms, for both backends and ASE's list as the peer.

Run: ``mlff bench neighbors`` (or ``python -m mlff.bench.neighbors``). Systems are fcc Cu supercells
(periodic) and Cu(111) slabs (periodic in x, y, open in z) with a 6 Å cutoff and no neighbour cap.
"""

from __future__ import annotations

import argparse

import torch
from ase.build import bulk, fcc111
from ase.neighborlist import neighbor_list as ase_neighbor_list

from mlff.bench.timing import best_time
from mlff.data.neighbors import neighbor_list


def _system(kind: str, n_target: int):
    if kind == "bulk":
        reps = max(1, round((n_target / 4) ** (1 / 3)))
        return bulk("Cu", "fcc", a=3.61, cubic=True) * (reps, reps, reps)
    side = max(2, round((n_target / 4) ** 0.5))
    return fcc111("Cu", (side, side, 4), vacuum=10.0)


def run(sizes, cutoff: float, kinds, devices, peer_max: int) -> list[dict]:
    rows = []
    for kind in kinds:
        for n_target in sizes:
            atoms = _system(kind, n_target)
            pos, cell, pbc = atoms.positions, atoms.cell.array, atoms.pbc
            row = {"system": kind, "atoms": len(atoms)}
            t_ms = best_time(lambda: neighbor_list(pos, cell, pbc, cutoff, backend="matscipy"), repeat=3)
            nl = neighbor_list(pos, cell, pbc, cutoff, backend="matscipy")
            row["edges"] = len(nl.receivers)
            row["matscipy_s"] = t_ms
            for device in devices:
                pos_t = torch.as_tensor(pos, device=device)
                sync = device.startswith("cuda")
                row[f"torch_{device}_s"] = best_time(
                    lambda: neighbor_list(pos_t, cell, pbc, cutoff, backend="torch"), repeat=3, sync=sync
                )
            if len(atoms) <= peer_max:
                row["ase_s"] = best_time(lambda: ase_neighbor_list("ijS", atoms, cutoff), repeat=3)
            rows.append(row)
            print(_format_row(row), flush=True)
    return rows


def _format_row(row: dict) -> str:
    parts = [f"{row['system']:>5} {row['atoms']:>7d} atoms {row['edges']:>9d} edges"]
    for key, value in row.items():
        if key.endswith("_s"):
            parts.append(f"{key[:-2]} {value * 1e3:9.2f} ms")
    if "ase_s" in row:
        parts.append(f"ase/matscipy {row['ase_s'] / row['matscipy_s']:5.1f}x")
    return " | ".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000, 100000])
    parser.add_argument("--cutoff", type=float, default=6.0)
    parser.add_argument("--systems", nargs="+", default=["bulk", "slab"], choices=["bulk", "slab"])
    parser.add_argument("--peer-max", type=int, default=10000, help="largest system timed with ASE's list")


def main(args: argparse.Namespace) -> int:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"neighbour lists, cutoff {args.cutoff} Å, best of 3; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; devices {devices}")
    run(args.sizes, args.cutoff, args.systems, devices, args.peer_max)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    raise SystemExit(main(p.parse_args()))
