#!/usr/bin/env python
"""Time a MACE model's energy + forces (conservative, autograd) on one structure.

Standalone: runs under the MACE peer environment's Python (``install_mace.sh DIR`` builds
``DIR/mace``) and imports nothing from mlff.  The model is built from MACE's own classes with
random weights (no checkpoint: nothing can be downloaded), with the options a typical
``mace_run_train --model MACE`` run would use:

    2 interaction layers, 64 channels, max_L = 1 (hidden irreps 64x0e + 64x1o),
    correlation 3, r_max 5 A, 8 Bessel radial functions, polynomial cutoff p = 5, max_ell 3,
    RealAgnosticInteractionBlock first / RealAgnosticResidualInteractionBlock after,
    MLP_irreps 16x0e, radial_MLP [64, 64, 64], gate silu, use_reduced_cg False,
    the structure's elements with zero atomic energies, avg_num_neighbors from the structure's graph,
    scale 1, shift 0 (no training forces to take an RMS from).

The input goes through MACE's own pipeline (config_from_atoms -> AtomicData.from_config with the
same 5 A neighbour list, periodic along the structure's periodic axes -> torch_geometric
DataLoader), as mace_run_train and the MACE ASE calculator do.  The timed call is
``model(batch, compute_force=True, training=False)`` alone: four warm-up calls (``--warmup N``;
the TorchScript-compiled e3nn code paths take about 4 calls to reach speed), then 3 rounds each
lasting at least ``--min-time`` seconds; a round's time is its mean per call, and the best round is
reported.  The batch is built once more, timed, and reported apart as ``batch_seconds``.

Prints exactly one line of JSON on stdout:
    {"seconds", "atoms", "edges", "what", "energy", "parameters", "batch_seconds"}
Everything else goes to stderr.  On failure: a message on stderr's last line and exit status 1.

``--config JSON`` is accepted (and must parse) so that callers can pass their own model's
hyper-parameters uniformly; this runner ignores it: the MACE model above is fixed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

from json_line import run_with_json_line  # noqa: E402 - sibling module (the script's folder)

WHAT = "MACE 2x64 L=1 corr 3, 5 A (autograd forces)"
R_MAX = 5.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--structure", required=True, help="extxyz file (anything ase.io.read reads)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds each of the 3 timed rounds lasts at least")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--warmup", type=int, default=4,
                        help="untimed calls before the rounds (e3nn's TorchScript code needs ~4 to settle)")
    parser.add_argument("--config", default=None, help="JSON hyper-parameters of the caller's model (ignored)")
    args = parser.parse_args(argv)
    if args.min_time < 0:
        parser.error("--min-time must be >= 0")
    if args.warmup < 1:
        parser.error("--warmup must be >= 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.config is not None:
        try:
            json.loads(args.config)
        except json.JSONDecodeError as error:
            parser.error(f"--config is not JSON: {error}")
    return args


def build_batch(atoms, z_table, torch_geometric, mace_data):
    """ase.Atoms -> MACE batch dict, the way mace_run_train / MACECalculator build it."""
    config = mace_data.config_from_atoms(atoms, key_specification=mace_data.KeySpecification())
    graph = mace_data.AtomicData.from_config(config, z_table=z_table, cutoff=R_MAX, heads=["Default"])
    loader = torch_geometric.dataloader.DataLoader(dataset=[graph], batch_size=1, shuffle=False, drop_last=False)
    return loader, next(iter(loader))


def build_model(z_table, avg_num_neighbors, modules, o3, np):
    """What mace_run_train builds for --model MACE with the options in the module docstring."""
    return modules.ScaleShiftMACE(
        r_max=R_MAX,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=2,
        num_elements=len(z_table),
        hidden_irreps=o3.Irreps("64x0e + 64x1o"),
        edge_irreps=None,
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(z_table)),
        apply_cutoff=True,
        avg_num_neighbors=avg_num_neighbors,
        atomic_numbers=z_table.zs,
        correlation=3,
        gate=modules.gate_dict["silu"],
        use_reduced_cg=False,
        use_so3=False,
        use_edge_irreps_first=False,
        pair_repulsion=False,
        distance_transform="None",
        atomic_inter_scale=1.0,
        atomic_inter_shift=[0.0],
        radial_MLP=[64, 64, 64],
        radial_type="bessel",
        heads=["Default"],
        embedding_specs=None,
        use_embedding_readout=False,
        use_last_readout_only=False,
        use_agnostic_product=False,
        cueq_config=None,
    )


def run(args: argparse.Namespace) -> dict:
    # mace first: its __init__ sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, without which the e3nn it
    # pins (0.4.4) fails to torch.load its constants.pt under torch >= 2.6 (weights_only default).
    importlib.import_module("mace")
    import ase.io
    import numpy as np
    import torch
    from e3nn import o3

    from mace import data as mace_data
    from mace import modules
    from mace.tools import torch_geometric
    from mace.tools.utils import AtomicNumberTable

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.set_default_dtype(getattr(torch, args.dtype))
    torch.manual_seed(0)

    atoms = ase.io.read(args.structure)
    if len(atoms) == 0:
        raise ValueError(f"{args.structure}: no atoms")
    z_table = AtomicNumberTable(sorted({int(z) for z in atoms.numbers}))

    # First build: for avg_num_neighbors (as mace_run_train computes it from its train loader).
    loader, _ = build_batch(atoms, z_table, torch_geometric, mace_data)
    avg_num_neighbors = modules.compute_avg_num_neighbors(loader)
    if not np.isfinite(avg_num_neighbors):  # no edges at all (e.g. one isolated atom)
        avg_num_neighbors = 1.0
    print(f"mace_peer: {len(atoms)} atoms, pbc {atoms.pbc.tolist()}, elements {z_table.zs}, "
          f"avg_num_neighbors {avg_num_neighbors:.3f}, dtype {args.dtype}, "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}", file=sys.stderr)

    model = build_model(z_table, avg_num_neighbors, modules, o3, np)
    model.eval()
    parameters = sum(p.numel() for p in model.parameters())

    # Second build, timed: ase.Atoms -> batch dict ready for the model.
    start = time.perf_counter()
    _, batch = build_batch(atoms, z_table, torch_geometric, mace_data)
    batch_dict = batch.to_dict()
    batch_seconds = time.perf_counter() - start
    edges = int(batch_dict["edge_index"].shape[1])

    def call():
        return model(batch_dict, compute_force=True, training=False)

    out = call()  # warm-up
    for _ in range(args.warmup - 1):
        call()
    energy = float(out["energy"].detach()[0])
    forces = out["forces"]
    if forces is None or tuple(forces.shape) != (len(atoms), 3) or not torch.isfinite(forces).all():
        raise RuntimeError(f"bad forces from the model: {None if forces is None else tuple(forces.shape)}")
    if not np.isfinite(energy):
        raise RuntimeError(f"non-finite energy {energy}")

    rounds = []
    for _ in range(3):
        calls = 0
        start = time.perf_counter()
        while True:
            call()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= args.min_time:
                break
        rounds.append(elapsed / calls)
        print(f"mace_peer: round {len(rounds)}: {calls} calls, {1e3 * rounds[-1]:.3f} ms/call", file=sys.stderr)

    return {
        "seconds": min(rounds),
        "atoms": len(atoms),
        "edges": edges,
        "what": WHAT,
        "energy": energy,
        "parameters": int(parameters),
        "batch_seconds": batch_seconds,
    }


def main(argv=None) -> int:
    return run_with_json_line(run, parse_args(argv), "mace_peer")


if __name__ == "__main__":
    sys.exit(main())
