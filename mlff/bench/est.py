"""EST benchmarks: the paper's equivariance table and an accuracy/speed comparison with EquiformerV2.

``mlff bench est-equivariance`` (EST paper, Table 5): untrained EST networks with 1..6 blocks on
small organic molecules (``ase.collections.g2`` plus rattled MD17 geometries), float64, a random
rotation per molecule; the mean over molecules of the mean |F(Rx) - R F(x)| over atoms (eV/Å) and
of the relative energy change. Only the EST update blocks can break the symmetry (the message
block's gate and the energy head's gate are exactly equivariant), so the figures isolate the
sampling: the Fibonacci lattice without and with repulsion refinement, more points, and an
equiangular (e3nn-style) grid of about as many points.

``mlff bench est-accuracy`` trains EquiformerV2 and EST at their matched ``small`` presets on the
same generated MD17-style data and budget, and reports test energy/force MAE and ms per training
step (energy + force loss, backward), measured one model at a time before the trainings start.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from ase import Atoms
from ase.collections import g2

from mlff.bench.studies import data_config, run_all, study_data, study_setup
from mlff.bench.timing import best_time
from mlff.data.formats import read_structures
from mlff.data.generate import load_molecule
from mlff.data.generate.molecules import SHIPPED
from mlff.data.graph import AtomicGraph
from mlff.errors import ConfigError
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import PRESETS, build_network
from mlff.runtime import resolve_device
from mlff.so3.rotation import random_rotation
from mlff.train.config import LossConfig, ModelConfig
from mlff.train.loss import loss_terms

# EST Table 5 (QM9, untrained EST-only networks, 1..6 layers), as far as the extracted text keeps it
PAPER_TABLE5 = {
    "Fibonacci N1, no refinement": (0.0010, 0.0011, 0.0010, 0.0018, 0.0022, 0.004),
    "Fibonacci N1, refined": (0.0002, 0.0001, 0.0003, 0.0003, 0.0002, 0.0002),
    "Fibonacci N2 > N1": (0.0002, 0.0002, 0.0001, 0.0002, 0.0001, 0.0003),
    "e3nn grid": (0.0084, 0.1006, 0.0366, 0.0593, 0.0046, 0.0199),
}


# ------------------------------------------------------------------------------------- equivariance
def add_equivariance_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--molecules", type=int, default=1000, help="g2 molecules, then rattled MD17 geometries")
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--points", type=int, default=56, help="N1 (default: the EST code's (2L+1)(2L+2) for L=3)")
    parser.add_argument("--more-points", type=int, default=144, help="N2")
    parser.add_argument("--refine-steps", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=100, help="molecules per batched evaluation")


def benchmark_molecules(count: int, seed: int = 0) -> list[Atoms]:
    """``count`` small organic molecules: g2 entries first, then rattled MD17 geometries."""
    rng = np.random.default_rng(seed)
    molecules = [a for a in (g2[name] for name in g2.names) if len(a) > 1]
    shipped = [load_molecule(name)[0] for name in SHIPPED]
    while len(molecules) < count:
        atoms = shipped[len(molecules) % len(shipped)].copy()
        atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
        molecules.append(atoms)
    return molecules[:count]


def equivariance_error(model: EnergyModel, molecules: list[Atoms], chunk: int = 100, seed: int = 0):
    """Means over molecules of mean_i |F_i(Rx) - R F_i(x)| (eV/Å), of |E(Rx) - E(x)| per atom (meV),
    of mean_i |F_i(x)| (eV/Å) and of |E(x)| per atom (meV): the scales the errors compare with."""
    rng = np.random.default_rng(seed)
    force_errors, energy_errors, force_norms, energy_norms = [], [], [], []
    for start in range(0, len(molecules), chunk):
        batch = molecules[start:start + chunk]
        rotations = [random_rotation(rng) for _ in batch]
        rotated = []
        for atoms, rotation in zip(batch, rotations):
            copy = atoms.copy()
            copy.positions = atoms.positions @ rotation.T
            rotated.append(copy)
        outs = [model(AtomicGraph.from_atoms(group, model.cutoff, dtype=torch.float64)) for group in (batch, rotated)]
        ptr = np.cumsum([0] + [len(a) for a in batch])
        f0, f1 = (o["forces"].detach().numpy() for o in outs)
        e0, e1 = (o["energy"].detach().numpy() for o in outs)
        for k, rotation in enumerate(rotations):
            block = slice(ptr[k], ptr[k + 1])
            force_errors.append(np.linalg.norm(f1[block] - f0[block] @ rotation.T, axis=1).mean())
            energy_errors.append(1000 * abs(e1[k] - e0[k]) / len(batch[k]))
            force_norms.append(np.linalg.norm(f0[block], axis=1).mean())
            energy_norms.append(1000 * abs(e0[k]) / len(batch[k]))
    return tuple(float(np.mean(v)) for v in (force_errors, energy_errors, force_norms, energy_norms))


def equivariance(args: argparse.Namespace) -> int:
    molecules = benchmark_molecules(args.molecules)
    species = sorted({int(z) for a in molecules for z in a.numbers})
    variants = {
        f"Fibonacci {args.points}, no refinement": dict(sphere_points=args.points),
        f"Fibonacci {args.points}, refined ({args.refine_steps} steps)": dict(sphere_points=args.points,
                                                                             refine_steps=args.refine_steps),
        f"Fibonacci {args.more_points}, no refinement": dict(sphere_points=args.more_points),
        f"equiangular ~{args.points}": dict(sphere_points=args.points, sampling="equiangular"),
    }
    print(f"{len(molecules)} molecules ({sum(len(a) for a in molecules)} atoms), untrained EST small "
          "(gate head), float64: mean |F(Rx) - R F(x)| in eV/Å [mean |E(Rx) - E(x)| in meV/atom]")
    print(f"{'sampling':<40}" + "".join(f"{f'{n} layer' + ('s' if n > 1 else ''):>22}" for n in args.layers))
    results = {}
    for label, options in variants.items():
        row = []
        for layers in args.layers:
            torch.manual_seed(0)
            network = build_network("est", preset="small", species=species, num_layers=layers,
                                    ffn_activation="gate", **options)
            model = EnergyModel(network).double().eval()
            row.append(equivariance_error(model, molecules, args.chunk))
        results[label] = row
        print(f"{label:<40}" + "".join(f"{f:>11.1e} [{e:.0e}]".rjust(22) for f, e, _, _ in row), flush=True)
    first = results[next(iter(results))]
    print(f"{'scale: mean |F| eV/Å [|E| meV/atom]':<40}" + "".join(f"{n:>11.2f} [{m:.0f}]".rjust(22) for _, _, n, m in first))
    print("paper (QM9, its own units and point counts):")
    for label, row in PAPER_TABLE5.items():
        print(f"  {label:<38}" + "".join(f"{v:>22}" for v in row[: len(args.layers)]))
    return 0


# ------------------------------------------------------------------------------------------ accuracy
def add_accuracy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="base training config (YAML); model and data are set per run")
    parser.add_argument("--molecules", nargs="+", default=["aspirin", "malonaldehyde"])
    parser.add_argument("--models", nargs="+", default=["equiformer_v2", "est"])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--frames", type=int, default=700)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--device", default="auto", help="for the step timing (training uses the config's)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--workdir", default="est_study")


def step_time(name: str, preset: str, frames: list[Atoms], device: torch.device) -> tuple[int, float]:
    """Parameters and seconds per training step (energy + force loss, backward) on ``frames``."""
    torch.manual_seed(0)
    species = sorted({int(z) for a in frames for z in a.numbers})
    model = EnergyModel(build_network(name, preset=preset, species=species)).train().to(device)
    graph = AtomicGraph.from_atoms(frames, model.cutoff).to(device)
    params = list(model.parameters())

    def step():
        out = model(graph, forces=True, create_graph=True)
        return torch.autograd.grad(loss_terms(out, graph, LossConfig())["total"], params, allow_unused=True)

    return sum(p.numel() for p in params), best_time(step, repeat=3, min_time=1.0, sync=device.type == "cuda")


def accuracy(args: argparse.Namespace) -> int:
    base, workdir = study_setup(args)
    device = resolve_device(args.device)
    runs, rows = {}, []
    for molecule in args.molecules:
        path = study_data(workdir, molecule, args.frames, seed=0)
        data = data_config(base, [str(path)], {"val": args.val, "test": args.test, "seed": 0})
        batch = read_structures(path, index=slice(0, base.batch_size))
        for name in args.models:
            if args.preset not in PRESETS[name]:
                raise ConfigError(f"--preset {args.preset!r}: model {name} has no such preset; available: "
                                  f"{', '.join(PRESETS[name])}")
            params, seconds = step_time(name, args.preset, batch, device)
            run = f"{molecule}_{name}"
            runs[run] = {"data": data, "model": ModelConfig(name=name, preset=args.preset)}
            rows.append((molecule, name, params, seconds, run))
    errors = run_all(base, workdir, runs, args.jobs)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.preset} presets, batch {base.batch_size}, {base.epochs} epochs; step time on {where}")
    print(f"{'molecule':<14} {'model':<14} {'params':>9} {'ms/step':>8} {'E MAE':>8} {'F MAE':>8}")
    table = []
    for molecule, name, params, seconds, run in rows:
        test = errors[run]["test"]
        print(f"{molecule:<14} {name:<14} {params:>9} {seconds * 1e3:>8.1f} {test['energy_mae']:>8.3f} "
              f"{test['force_mae']:>8.2f}")
        table.append({"molecule": molecule, "model": name, "parameters": params, "ms_per_step": seconds * 1e3, **test})
    print("E MAE in meV/atom, F MAE in meV/Å on the held-out test frames.")
    with open(workdir / "results.json", "w") as fh:
        json.dump(table, fh, indent=2)
    return 0
