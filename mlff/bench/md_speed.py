"""``mlff bench md``: energy + forces and MD steps/s against the number of atoms, with peers in the same run.

For each preset and periodic Cu cell size (until one evaluation takes longer than ``--max-seconds``),
eager and compiled (:mod:`mlff.models.compiled`):

* **model**: ms per energy + forces of the model on a graph built beforehand;
* **calculator**: ms per ``MLFFCalculator`` call while the atoms move a little between calls, as in
  MD (neighbour list with skin, conversions, the model); ``nl %`` is the part outside the model;
* **MD**: velocity-Verlet steps/s through ASE with that calculator;
* peak resident memory of the process so far (CPU) or peak allocated memory (CUDA);
* the log-log slope of the model time against the number of atoms.

Large cells run in edge chunks recomputed in backward (``--chunk``, default ``auto``:
:mod:`mlff.nn.chunking`), which is what lets them fit. Where one evaluation takes longer than 20 s,
the model and the calculator are timed once and MD is not run.

The named systems (``--systems``: ethanol, aspirin, cu32, cu-slab-co) are timed the same way, and
next to them the peers that are installed (:mod:`mlff.bench.peers`: MACE and fairchem's
EquiformerV2, each in its own virtual environment, run as a subprocess on the same structure with
the same number of threads). A ratio printed here comes from two timings of this run.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from ase import units
from ase.md.verlet import VelocityVerlet

from mlff.bench import peers
from mlff.bench.systems import NAMED, copper
from mlff.bench.timing import best_time
from mlff.calculator import MLFFCalculator
from mlff.data import AtomicGraph
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network
from mlff.runtime import peak_rss_mib


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mib()


def available_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free / 2**20
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_model(preset: str, species: list[int], device, dtype) -> EnergyModel:
    torch.manual_seed(0)
    return EnergyModel(build_network("equiformer_v2", preset=preset, species=species)).to(device, dtype).eval()


def measure(model: EnergyModel, atoms, compiled: bool, min_time: float, sync: bool, chunk="auto",
            single_above: float = 20.0) -> dict:
    """Times of one system: first call (compiles), model, calculator and MD; graph size. When one model
    evaluation after the first takes more than ``single_above`` seconds, the model and the calculator
    are timed once each and MD is skipped (``md`` is NaN): at that size a step is a long computation,
    not a rate."""
    atoms = atoms.copy()
    rng = np.random.default_rng(0)
    atoms.positions += rng.normal(scale=0.02, size=atoms.positions.shape)
    calc = MLFFCalculator(model.set_compiled(compiled), skin=0.5, chunk=chunk)
    start = time.perf_counter()
    calc.get_forces(atoms)
    first = time.perf_counter() - start
    graph = AtomicGraph.from_atoms(atoms, model.cutoff, dtype=calc.dtype, device=calc.device)
    model_time = best_time(lambda: model(graph), repeat=1, min_time=0.0, sync=sync)
    single = model_time > single_above
    repeat, min_time = (1, 0.0) if single else (3, min_time)
    if not single:
        model_time = best_time(lambda: model(graph), repeat=repeat, min_time=min_time, sync=sync)
    edges, graph = graph.num_edges, None  # the graph's memory is free before the calculator runs

    def moved_call():
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        calc.get_forces(atoms)

    calc_time = best_time(moved_call, repeat=repeat, min_time=min_time, sync=sync)
    md_rate = float("nan")
    if not single:
        atoms.calc = calc
        dyn = VelocityVerlet(atoms, 0.5 * units.fs)
        steps = max(3, int(min_time / calc_time))
        start = time.perf_counter()
        dyn.run(steps)
        md_rate = steps / (time.perf_counter() - start)
    return dict(atoms=len(atoms), edges=edges, first=first, model=model_time, calc=calc_time, md=md_rate,
                compilations=model.compilations)


def _line(label: str, r: dict, memory: float) -> str:
    share = max(0.0, 1 - r["model"] / r["calc"])
    return (f"  {label:<22} {r['atoms']:7d} atoms {r['edges']:9d} edges | model {r['model'] * 1e3:10.2f} ms"
            f" | calculator {r['calc'] * 1e3:10.2f} ms (nl {share:4.0%}) | MD {r['md']:8.2f} steps/s"
            f" | first call {r['first']:6.1f} s | graphs compiled {r['compilations']} | peak {memory:8.0f} MiB")


def _memory_needed(points, baseline: float, atoms: int) -> float:
    """MiB a run of ``atoms`` atoms will need: what the largest size so far added to ``baseline``
    (the peak before the first size), scaled linearly."""
    if not points:
        return 0.0
    largest = max(points, key=lambda p: p[0])
    return baseline + max(largest[2] - baseline, 0.0) * atoms / largest[0]


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(time) against log(atoms) over the points with >= 1000 atoms (or all)."""
    big = [p for p in points if p[0] >= 1000]
    use = big if len(big) >= 2 else points
    if len(use) < 2:
        return None
    x, y = np.log([p[0] for p in use]), np.log([p[1] for p in use])
    return float(np.polyfit(x, y, 1)[0])


def bench_scaling(args, device, dtype, sync: bool) -> None:
    for preset in args.presets:
        model = make_model(preset, [29], device, dtype)
        for mode in args.modes:
            print(f"\n{preset} preset, {mode}, periodic fcc Cu", flush=True)
            points, baseline = [], peak_memory_mib(device)
            for target in args.atoms:
                atoms = copper(target)
                need = _memory_needed(points, baseline, len(atoms))
                if points and need > 0.8 * available_memory_mib(device):
                    print(f"  (stopping before {len(atoms)} atoms: it would need about {need / 1024:.0f} GiB, "
                          f"{available_memory_mib(device) / 1024:.0f} GiB are free)")
                    break
                r = measure(model, atoms, mode == "compiled", args.min_time, sync, args.chunk)
                peak = peak_memory_mib(device)
                points.append((r["atoms"], r["model"], peak))
                print(_line(f"Cu {r['atoms']}", r, peak), flush=True)
                if r["model"] > args.max_seconds:
                    print(f"  (stopping: one evaluation took more than {args.max_seconds} s)")
                    break
            fit = slope([p[:2] for p in points])
            if fit is not None:
                print(f"  log-log slope of the model time: {fit:.3f} ({'>= 1000 atoms' if points[-1][0] >= 1000 and sum(p[0] >= 1000 for p in points) >= 2 else 'all sizes'})")


def bench_systems(args, device, dtype, sync: bool) -> None:
    available = peers.available(args)
    print(f"\nnamed systems; peers: {', '.join(available) or 'none installed (see mlff.bench.peers)'}")
    for name in args.systems:
        preset, make = NAMED[name]
        atoms = make()
        model = make_model(preset, sorted(set(atoms.numbers.tolist())), device, dtype)
        ours = {}
        for mode in args.modes:
            r = measure(model, atoms, mode == "compiled", args.min_time, sync, args.chunk)
            ours[mode] = r["model"]
            print(_line(f"{name} {preset} {mode}", r, peak_memory_mib(device)), flush=True)
        for peer in available:
            try:
                result = peers.run(peer, args, atoms, preset)
            except peers.PeerError as error:
                print(f"  {name} {peer}: failed: {error}")
                continue
            if preset in peers.COMPARABLE[peer]:
                ratios = "mlff faster by: " + ", ".join(f"{mode} {result['seconds'] / t:.2f}x" for mode, t in ours.items())
            else:
                ratios = f"(no ratio: not the model to set against the {preset} preset)"
            print(f"  {name + ' ' + peer:<22} {result['atoms']:7d} atoms {result['edges']:9d} edges | "
                  f"{result['what']}: {result['seconds'] * 1e3:10.2f} ms | {ratios}", flush=True)


def bench_replicas(args, device, dtype, sync: bool) -> None:
    """Ethanol replicas: NVE steps of ``--replicas`` structures through the batched driver (one model call
    per step for all) against the same structures stepped one at a time through ASE, in atom-steps/s."""
    from mlff.compat import thermalize_momenta
    from mlff.dynamics.batched import run_md

    preset, make = NAMED["ethanol"]
    base = make()
    model = make_model(preset, sorted(set(base.numbers.tolist())), device, dtype)
    for mode in args.modes:
        calc = MLFFCalculator(model.set_compiled(mode == "compiled"), skin=0.5, chunk=args.chunk)
        replicas = []
        for k in range(args.replicas):
            atoms = base.copy()
            thermalize_momenta(atoms, temperature_K=300.0, rng=np.random.default_rng(k))
            replicas.append(atoms)
        run_md([a.copy() for a in replicas], calc, timestep=0.5, steps=1)  # warm-up: compiles for this size
        steps = 5
        start = time.perf_counter()
        run_md(replicas, calc, timestep=0.5, steps=steps)
        batched = steps * args.replicas * len(base) / (time.perf_counter() - start)
        single_atoms = replicas[0].copy()
        single_atoms.calc = calc
        dyn = VelocityVerlet(single_atoms, 0.5 * units.fs)
        dyn.run(2)
        start = time.perf_counter()
        dyn.run(steps * 4)
        alone = steps * 4 * len(base) / (time.perf_counter() - start)
        print(f"  ethanol x {args.replicas} {preset} {mode}: batched {batched:10.0f} atom-steps/s | one at a time "
              f"{alone:10.0f} atom-steps/s | batched / one at a time {batched / alone:.2f}x", flush=True)


def main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    sync = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if sync else f"CPU, {torch.get_num_threads()} threads"
    print(f"mlff bench md: {name}, {args.dtype}, torch {torch.__version__}, edge chunks: {args.chunk}")
    if args.systems:
        bench_systems(args, device, dtype, sync)
    if args.replicas:
        print(f"\nbatched driver, {args.replicas} ethanol replicas, NVE 0.5 fs")
        bench_replicas(args, device, dtype, sync)
    if args.atoms:
        bench_scaling(args, device, dtype, sync)
    return 0


def _chunk(text: str):
    return None if text == "none" else "auto" if text == "auto" else int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu or cuda (default: cuda where present)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, help="torch threads (peers get the same)")
    parser.add_argument("--presets", nargs="+", choices=["small", "31m"], default=["small", "31m"],
                        help="presets of the scaling part")
    parser.add_argument("--atoms", type=int, nargs="*", default=[10, 100, 1000, 10000, 100000],
                        help="Cu cell sizes of the scaling part (none: skip it)")
    parser.add_argument("--systems", nargs="*", choices=list(NAMED), default=list(NAMED),
                        help="named systems, timed with their preset and the peers (none: skip them)")
    parser.add_argument("--replicas", type=int, default=0,
                        help="also time the batched driver on this many ethanol replicas against one at a time")
    parser.add_argument("--modes", nargs="+", choices=["eager", "compiled"], default=["eager", "compiled"])
    parser.add_argument("--chunk", type=_chunk, default="auto",
                        help="edges per chunk for large systems: a number, auto (default) or none (mlff.nn.chunking)")
    parser.add_argument("--max-seconds", type=float, default=10.0,
                        help="stop growing the cell once one evaluation takes longer than this")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds each timing runs for, at least")
    peers.add_arguments(parser)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    raise SystemExit(main(p.parse_args()))
