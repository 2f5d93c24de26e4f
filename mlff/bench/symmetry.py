"""Rotation-invariance errors of the presets in float64 and float32 (untrained, random weights).

Run: ``mlff bench symmetry``. For each preset and dtype: the largest relative energy change and
the largest force error (eV/Å) over random rotations of an ethanol molecule and a periodic
Cu(111)+CO slab. The only approximation in EquiformerV2 is the aliasing of the sphere-grid MLP in
the feed-forward network; ``--grid`` overrides the grid resolution to show how it shrinks.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from ase.build import molecule

from mlff.data import AtomicGraph
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network
from mlff.so3.rotation import random_rotation
from mlff.testing.structures import co_on_cu111


def _systems():
    mol = molecule("CH3CH2OH")
    mol.rattle(0.05, seed=1)
    slab = co_on_cu111(a=3.61)
    return {"ethanol": mol, "Cu(111)+CO": slab}


def rotation_errors(model: EnergyModel, atoms, dtype, n_rotations: int, seed: int = 0):
    def run(a):
        out = model(AtomicGraph.from_atoms(a, model.cutoff, dtype=dtype))
        return float(out["energy"][0]), out["forces"].double().numpy()

    e0, f0 = run(atoms)
    rng = np.random.default_rng(seed)
    e_err, f_err = 0.0, 0.0
    for _ in range(n_rotations):
        rot = random_rotation(rng)
        turned = atoms.copy()
        turned.positions = atoms.positions @ rot.T
        turned.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
        e, f = run(turned)
        e_err = max(e_err, abs(e - e0) / abs(e0))
        f_err = max(f_err, float(np.abs(f - f0 @ rot.T).max()))
    return e_err, f_err, float(np.abs(f0).max())


def main(args: argparse.Namespace) -> int:
    print("max over random rotations: |dE|/|E| and max |F(Rx) - R F(x)| (eV/Å); untrained weights")
    for preset in args.presets:
        overrides = {"grid_resolution": args.grid} if args.grid else {}
        torch.manual_seed(0)
        network = build_network("equiformer_v2", preset=preset, species=[1, 6, 8, 29], **overrides)
        for dtype in (torch.float64, torch.float32):
            model = EnergyModel(network).to(dtype).eval()
            grid = f"grid {network.config.grid_resolution:>2}" if network.config.uses_grid else "no grid"
            for name, atoms in _systems().items():
                e_err, f_err, f_max = rotation_errors(model, atoms, dtype, args.rotations)
                print(f"  {preset:>5} {grid} {str(dtype)[6:]:>7} {name:>11}: "
                      f"energy {e_err:.1e}  forces {f_err:.1e} (max |F| {f_max:.2f})", flush=True)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", nargs="+", default=["small", "31m"])
    parser.add_argument("--rotations", type=int, default=5)
    parser.add_argument("--grid", type=int, help="override the sphere-grid resolution")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    raise SystemExit(main(p.parse_args()))
