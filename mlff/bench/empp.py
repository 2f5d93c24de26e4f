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
from pathlib import Path

import torch
from ase import Atoms

from mlff.bench.timing import best_time
from mlff.calculator import resolve_device
from mlff.data.formats import write_structures
from mlff.data.generate import generate_md17
from mlff.data.graph import AtomicGraph
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network
from mlff.train.config import EMPPConfig, LossConfig, TrainConfig, load_config
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
    parser.add_argument("--weight", type=float, default=1.0, help="w_EMPP")
    parser.add_argument("--sphere-points", type=int, default=2500)
    parser.add_argument("--pretrain-frames", type=int, default=0,
                        help="also pre-train on this many unlabelled frames, then fine-tune on --finetune-frames")
    parser.add_argument("--finetune-frames", type=int, default=200)
    parser.add_argument("--epochs", type=int, help="override the config's epochs (the same for every run)")
    parser.add_argument("--workdir", default="empp_study")


def _data(workdir: Path, molecule: str, frames: int, seed: int, labels: bool = True) -> Path:
    path = workdir / f"{molecule}_500K_{frames}_s{seed}{'' if labels else '_unlabelled'}.xyz"
    if not path.is_file():
        structures = generate_md17(molecule, frames, temperature=500, seed=seed, progress=False)
        if not labels:
            structures = [Atoms(a.numbers, a.positions) for a in structures]
        write_structures(path, structures)
    return path


def _run(base: TrainConfig, name: str, workdir: Path, **changes) -> dict:
    cfg = TrainConfig(**{**vars(base), **changes, "output": str(workdir / name), "progress": False})
    metrics = workdir / name / "metrics.json"
    if not metrics.is_file():
        from mlff.train.run import train

        train(cfg.check(), log=lambda *_: None)
    return json.loads(metrics.read_text())["errors"]


def study(args: argparse.Namespace) -> int:
    base = load_config(args.config)
    if args.epochs:
        base.epochs = args.epochs
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for molecule in args.molecules:
        data = _data(workdir, molecule, args.frames, seed=0)
        split = {"val": args.val, "test": args.test, "seed": 0}
        for n in args.masks:
            empp = EMPPConfig(masks=n, weight=args.weight, sphere_points=args.sphere_points) if n else None
            errors = _run(base, f"{molecule}_masks{n}", workdir, empp=empp,
                          data=_data_config(base, [str(data)], split))
            rows.append((molecule, f"{n} mask" + ("s" if n != 1 else "") if n else "no EMPP", errors["test"]))
        if args.pretrain_frames:
            unlabelled = _data(workdir, molecule, args.pretrain_frames, seed=1, labels=False)
            small = {"val": args.val, "test": args.test, "seed": 0}
            n_small = args.finetune_frames + args.val + args.test
            labelled = _data(workdir, molecule, n_small, seed=2)
            _run(base, f"{molecule}_pretrain", workdir,
                 empp=EMPPConfig(masks=max(args.masks), pretrain=True, sphere_points=args.sphere_points),
                 data=_data_config(base, [str(unlabelled)], {"val": args.val, "test": 0, "seed": 0}))
            for init, label in ((None, "small set, from scratch"), (str(workdir / f"{molecule}_pretrain" / "model.pt"),
                                                                      "small set, EMPP pre-trained")):
                errors = _run(base, f"{molecule}_finetune_{'pre' if init else 'scratch'}", workdir, init_from=init,
                              data=_data_config(base, [str(labelled)], small))
                rows.append((molecule, label, errors["test"]))
    _print_table(rows)
    with open(workdir / "results.json", "w") as fh:
        json.dump([{"molecule": m, "variant": v, **e} for m, v, e in rows], fh, indent=2)
    return 0


def _data_config(base: TrainConfig, files: list[str], split: dict):
    from mlff.train.config import DataConfig, SplitConfig

    return DataConfig(train=files, keys=base.data.keys, split=SplitConfig(**split))


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
        masks = {"1 mask": 1, "3 masks": 2}.get(variant)
        if masks and molecule in PAPER:
            (pe, pf), (me, mf) = PAPER[molecule][0], PAPER[molecule][masks]
            paper = f"{100 * (me / pe - 1):+.0f}% / {100 * (mf / pf - 1):+.0f}%"
        print(f"{molecule:<14} {variant:<28} {e['energy_mae']:>8.3f} {e['force_mae']:>8.2f} {de:>+6.1f}% {df:>+6.1f}%   {paper}")
    print("E MAE in meV/atom, F MAE in meV/Å on the held-out test frames; d = change vs the baseline row above.")

