"""Milliseconds per energy + autograd-forces evaluation on this CPU, and parameter counts.

Run: ``mlff bench model`` (or ``python -m mlff.bench.model_speed``). Systems: ethanol and aspirin
with the small preset; a 32-atom fcc Cu cell and a 98-atom Cu(111) slab with CO with the 31M preset
(6 Å cutoff, no neighbour cap).

No peer figure is printed: a ratio must come from two timings taken in the same run on the same
machine, and peers are not timed here (the fast-MD benchmark runs MACE and fairchem side by side).
"""

from __future__ import annotations

import argparse

import torch
from mlff.bench.systems import NAMED
from mlff.bench.timing import best_time
from mlff.data import AtomicGraph
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network


def systems():
    return [(f"{name} {len(make())}", preset, make()) for name, (preset, make) in NAMED.items()]


def main(args: argparse.Namespace) -> int:
    torch.manual_seed(0)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    print(f"energy + forces, {args.dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    models = {}
    for name, preset, atoms in systems():
        if args.preset and preset not in args.preset:
            continue
        if preset not in models:
            network = build_network("equiformer_v2", preset=preset, species=[1, 6, 7, 8, 29])
            models[preset] = EnergyModel(network).to(dtype).eval()
            params = sum(p.numel() for p in network.parameters())
            print(f"preset {preset}: {params:,} parameters")
        model = models[preset]
        graph = AtomicGraph.from_atoms(atoms, model.cutoff, dtype=dtype)
        seconds = best_time(lambda: model(graph), repeat=args.repeat, min_time=0.5)
        with torch.no_grad():
            energy_only = best_time(lambda: model(graph, forces=False), repeat=args.repeat, min_time=0.5)
        line = (f"  {name:>14} atoms  {graph.num_edges:6d} edges  E+F {seconds * 1e3:9.1f} ms"
                f"  E only {energy_only * 1e3:9.1f} ms")
        print(line, flush=True)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--preset", nargs="*", choices=["small", "31m"], help="only these presets")
    parser.add_argument("--repeat", type=int, default=3)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    raise SystemExit(main(p.parse_args()))
