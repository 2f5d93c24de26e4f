"""EMPP benchmarks: the cost of n masks per training step, and the accuracy study of the paper's Table 2.

``mlff bench empp-cost`` times one optimisation step (energy + force loss with the force graph,
backward) without EMPP and with 1..n masks, all on the same batch of GFN2-xTB frames, and prints
the ratios to the plain step (the paper's code pays a full extra pass per mask: n + 1).

``mlff bench empp-study`` trains the same preset on the same generated MD17-style data with the same
budget without EMPP, with 1 and with 3 masks, and (optionally) pre-trains with EMPP on unlabelled
frames before fine-tuning on a small labelled set; it prints test energy/force MAE and the
relative change, next to the paper's numbers for Equiformer on MD17.
"""

from __future__ import annotations

import argparse
import json

import torch

from mlff.bench.studies import data_config, run_all, study_data, study_setup
from mlff.bench.timing import best_time
from mlff.data.generate import generate_md17
from mlff.data.graph import AtomicGraph
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network
from mlff.runtime import resolve_device
from mlff.train.config import EMPPConfig, LossConfig
from mlff.train.empp import EMPP
from mlff.train.loss import loss_terms

# EMPP Table 2 (Equiformer on MD17; energy meV / force meV/Å): baseline, 1 mask, 3 masks.
PAPER = {
    "aspirin": ((5.3, 6.6), (5.1, 6.4), (5.0, 6.2)),
    "ethanol": ((2.2, 2.9), (2.2, 2.7), (2.0, 2.6)),
    "malonaldehyde": ((3.2, 5.4), (3.0, 5.2), (3.0, 5.0)),
}


# ---------------------------------------------------------------------------------------------- cost
def add_cost_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--molecule", default="ethanol")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--masks", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--sphere-points", type=int, default=10_000)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")


def cost(args: argparse.Namespace) -> int:
    torch.manual_seed(0)
    frames = generate_md17(args.molecule, args.batch, temperature=500, interval=10, equilibration=100,
                           seed=0, progress=False)
    species = sorted({int(z) for a in frames for z in a.numbers})
    device = resolve_device(args.device)
    model = EnergyModel(build_network(preset=args.preset, species=species)).train().to(device)
    graph = AtomicGraph.from_atoms(frames, model.cutoff).to(device)
    cfg = model.network.config
    sync = device.type == "cuda"

    def step(empp: EMPP | None):
        params = list(model.parameters()) + (list(empp.parameters()) if empp else [])
        out = model(graph, forces=True, create_graph=True)
        loss = loss_terms(out, graph, LossConfig())["total"]
        if empp is not None:
            loss = loss + empp(model, graph, torch.Generator().manual_seed(0))["loss"]
        return torch.autograd.grad(loss, params, allow_unused=True)

    plain = best_time(lambda: step(None), repeat=3, min_time=1.0, sync=sync)
    where = torch.cuda.get_device_name(device) if sync else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.molecule} x{args.batch}, {args.preset} preset, {where}, {args.sphere_points} sphere points")
    print(f"{'masks':>6} {'ms/step':>9} {'ratio':>7} {'(n+1)':>6}")
    print(f"{0:>6} {plain * 1e3:>9.1f} {1.0:>7.2f} {1:>6}")
    for n in args.masks:
        empp = EMPP(EMPPConfig(masks=n, sphere_points=args.sphere_points), cfg.channels, cfg.lmax,
                    model.cutoff).to(device)
        t = best_time(lambda: step(empp), repeat=3, min_time=1.0, sync=sync)
        print(f"{n:>6} {t * 1e3:>9.1f} {t / plain:>7.2f} {n + 1:>6}")
    return 0


# ---------------------------------------------------------------------------------------------- study
def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="base training config (YAML); data and empp are set per run")
    parser.add_argument("--molecules", nargs="+", default=["aspirin", "malonaldehyde"])
    parser.add_argument("--frames", type=int, default=1200, help="labelled frames generated per molecule")
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--masks", type=int, nargs="+", default=[0, 1, 3])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.1],
                        help="w_EMPP values (each with every mask count)")
    parser.add_argument("--sphere-points", type=int, default=2500)
    parser.add_argument("--pretrain-frames", type=int, default=0,
                        help="also pre-train on this many unlabelled frames, then fine-tune on --finetune-frames")
    parser.add_argument("--finetune-frames", type=int, default=200)
    parser.add_argument("--epochs", type=int, help="override the config's epochs (the same for every run)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="training runs at once (separate processes; on a GPU small models are launch-bound, "
                             "so several runs share it well)")
    parser.add_argument("--workdir", default="empp_study")


def _variant(n: int, weight: float, several_weights: bool) -> str:
    if not n:
        return "no EMPP"
    return f"{n} mask{'s' if n != 1 else ''}" + (f", w={weight:g}" if several_weights else "")


def study(args: argparse.Namespace) -> int:
    base, workdir = study_setup(args)
    several = len(args.weights) > 1
    supervised, finetune, rows = {}, {}, []  # rows: (molecule, variant, run name)
    for molecule in args.molecules:
        data = data_config(base, [str(study_data(workdir, molecule, args.frames, seed=0))],
                           {"val": args.val, "test": args.test, "seed": 0})
        for n in args.masks:
            for weight in args.weights if n else [0.0]:
                name = f"{molecule}_masks{n}" + (f"_w{weight:g}" if n and several else "")
                supervised[name] = {"data": data, "empp": EMPPConfig(masks=n, weight=weight,
                                                                    sphere_points=args.sphere_points) if n else None}
                rows.append((molecule, _variant(n, weight, several), name))
        if args.pretrain_frames:
            unlabelled = study_data(workdir, molecule, args.pretrain_frames, seed=1, labels=False)
            labelled = study_data(workdir, molecule, args.finetune_frames + args.val + args.test, seed=2)
            supervised[f"{molecule}_pretrain"] = {
                "empp": EMPPConfig(masks=max(args.masks), pretrain=True, sphere_points=args.sphere_points),
                "data": data_config(base, [str(unlabelled)], {"val": args.val, "test": 0, "seed": 0})}
            small = data_config(base, [str(labelled)], {"val": args.val, "test": args.test, "seed": 0})
            finetune[f"{molecule}_finetune_scratch"] = {"data": small}
            finetune[f"{molecule}_finetune_pre"] = {"data": small,
                                                    "init_from": str(workdir / f"{molecule}_pretrain" / "model.pt")}
            rows += [(molecule, "small set, from scratch", f"{molecule}_finetune_scratch"),
                     (molecule, "small set, EMPP pre-trained", f"{molecule}_finetune_pre")]
    errors = run_all(base, workdir, supervised, args.jobs)
    errors.update(run_all(base, workdir, finetune, args.jobs))
    table = [(molecule, variant, errors[name]["test"]) for molecule, variant, name in rows]
    _print_table(table)
    with open(workdir / "results.json", "w") as fh:
        json.dump([{"molecule": m, "variant": v, **e} for m, v, e in table], fh, indent=2)
    return 0


def _print_table(rows) -> None:
    print(f"{'molecule':<14} {'variant':<28} {'E MAE':>8} {'F MAE':>8} {'dE':>7} {'dF':>7}   paper dE / dF")
    baseline = {}
    for molecule, variant, e in rows:
        if variant == "no EMPP" or variant.endswith("from scratch"):
            baseline[molecule] = e
        b = baseline.get(molecule, e)
        de = 100 * (e["energy_mae"] / b["energy_mae"] - 1)
        df = 100 * (e["force_mae"] / b["force_mae"] - 1)
        paper = ""
        masks = {"1 mask": 1, "3 masks": 2}.get(variant.split(",")[0])
        if masks and molecule in PAPER:
            (pe, pf), (me, mf) = PAPER[molecule][0], PAPER[molecule][masks]
            paper = f"{100 * (me / pe - 1):+.0f}% / {100 * (mf / pf - 1):+.0f}%"
        print(f"{molecule:<14} {variant:<28} {e['energy_mae']:>8.3f} {e['force_mae']:>8.2f} {de:>+6.1f}% {df:>+6.1f}%   {paper}")
    print("E MAE in meV/atom, F MAE in meV/Å on the held-out test frames; d = change vs the baseline row above.")
