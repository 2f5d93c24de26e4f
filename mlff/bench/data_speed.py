"""``mlff bench data``: how fast each dataset format reads and how much memory it takes, eagerly and
lazily, and training throughput on lazily read data with and without DataLoader workers.

The frames are one 38-atom CO/Cu(111) EMT frame, rattled by 0.05 Å per frame, carrying that frame's
labels: this is a reading benchmark, the labels' physics does not matter. They are written to extxyz,
fairchem's ``.aselmdb`` and an OC20-style ``.lmdb`` of torch-geometric ``Data``. Every measurement runs
in a fresh process, so its peak RSS (``VmHWM``, :func:`mlff.runtime.peak_rss_mib`) is its own.
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlff.runtime import child_pids, peak_rss_mib

FORMATS = (".xyz", ".aselmdb", ".lmdb")


def write_frames(directory: Path, frames: int, seed: int = 0) -> dict[str, tuple[Path, float]]:
    """The frames in every format: ``{suffix: (path, seconds to write)}``, streamed (never all in memory)."""
    import ase.db
    import ase.io
    import lmdb
    import torch
    from ase.calculators.singlepoint import SinglePointCalculator
    from torch_geometric.data import Data

    from mlff.data.generate.oc20 import generate_oc20
    from mlff.data.labels import get_labels

    (base,) = generate_oc20("Cu", "111", "CO", n_md=1, n_relax=0, interval=10, equilibration=20, seed=seed,
                            progress=False)
    labels = get_labels(base)

    def rattled():  # the same frames for every format
        rng = np.random.default_rng(seed)
        for _ in range(frames):
            atoms = base.copy()
            atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
            atoms.info.update(energy=float(labels["energy"]))
            atoms.arrays["forces"] = labels["forces"]
            yield atoms

    out = {}
    start, path = time.perf_counter(), directory / "frames.xyz"
    with open(path, "w") as fh:
        for atoms in rattled():
            ase.io.write(fh, atoms, format="extxyz")
    out[".xyz"] = (path, time.perf_counter() - start)
    start, path = time.perf_counter(), directory / "frames.aselmdb"
    with ase.db.connect(str(path), type="aselmdb", use_lock_file=False) as db:
        for atoms in rattled():
            atoms.calc = SinglePointCalculator(atoms, energy=atoms.info.pop("energy"), forces=atoms.arrays.pop("forces"))
            db.write(atoms)
    out[".aselmdb"] = (path, time.perf_counter() - start)
    start, path = time.perf_counter(), directory / "frames.lmdb"
    env = lmdb.open(str(path), subdir=False, map_size=2**40, meminit=False, map_async=True)
    with env.begin(write=True) as txn:
        for k, atoms in enumerate(rattled()):
            data = Data(pos=torch.tensor(atoms.positions, dtype=torch.float32), cell=torch.tensor(atoms.cell.array)[None],
                        atomic_numbers=torch.tensor(atoms.numbers, dtype=torch.float32), natoms=len(atoms),
                        tags=torch.tensor(atoms.get_tags()), y=atoms.info["energy"],
                        force=torch.tensor(atoms.arrays["forces"], dtype=torch.float32), sid=k, fid=0)
            txn.put(f"{k}".encode("ascii"), pickle.dumps(data, protocol=-1))
        txn.put(b"length", pickle.dumps(frames, protocol=-1))
    env.close()
    out[".lmdb"] = (path, time.perf_counter() - start)
    return out


def read_child(path: str, mode: str) -> dict:
    """Read every frame of ``path`` eagerly (``read_structures``) or lazily (one at a time, dropped)."""
    from mlff.data.formats import read_structures
    from mlff.data.lazy import LazyStructures

    start = time.perf_counter()
    if mode == "eager":
        count = len(read_structures(path))
    else:
        frames = LazyStructures(path)
        count = sum(len(atoms) > 0 for atoms in frames)
    seconds = time.perf_counter() - start
    return {"frames": count, "seconds": seconds, "rss_mib": peak_rss_mib()}


def train_child(path: str, workers: int, steps: int, batch_size: int) -> dict:
    """Steps/s of training on ``path`` read lazily, batches built by ``workers`` DataLoader processes."""
    import torch

    from mlff.train.config import TrainConfig
    from mlff.train.data import build_model, load_training_data
    from mlff.train.trainer import Trainer
    from mlff.config import from_dict

    cfg = from_dict(TrainConfig, {
        "data": {"train": [path], "split": {"val": 10, "test": 10}, "lazy": True, "workers": workers},
        "model": {"preset": "small"}, "batch_size": batch_size, "epochs": 1, "progress": False,
        "output": tempfile.mkdtemp(prefix="mlff-bench-data-")}).check()
    torch.manual_seed(0)
    data = load_training_data(cfg)
    start = time.perf_counter()
    trainer = Trainer(cfg, data, build_model(cfg, data), torch.device("cpu"))
    setup = time.perf_counter() - start
    batches = trainer.epoch_batches(trainer.epoch_order(0))
    trainer.train_on(next(batches))  # warm-up (and the workers' start)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_on(next(batches))
    seconds = time.perf_counter() - start
    # the workers (and multiprocessing's resource tracker), alive until the batches end
    children = sum(peak_rss_mib(pid) for pid in child_pids())
    return {"steps_per_s": steps / seconds, "setup_s": setup, "rss_mib": peak_rss_mib(), "children_rss_mib": children}


def _child(call: str) -> dict:
    done = subprocess.run([sys.executable, "-c", f"import json, mlff.bench.data_speed as d; print(json.dumps(d.{call}))"],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{call} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        written = write_frames(Path(tmp), args.frames)
        print(f"mlff bench data: {args.frames} frames of 38 atoms (CO/Cu(111)); one process per row, peak RSS its own")
        print(f"  {'format':<9} {'MB':>7} {'write s':>8} | {'eager frames/s':>14} {'RSS MiB':>8} | "
              f"{'lazy frames/s':>13} {'RSS MiB':>8}")
        for suffix, (path, seconds) in written.items():
            row = {mode: _child(f"read_child({str(path)!r}, {mode!r})") for mode in ("eager", "lazy")}
            print(f"  {suffix:<9} {path.stat().st_size / 1e6:7.0f} {seconds:8.1f} | "
                  f"{row['eager']['frames'] / row['eager']['seconds']:14.0f} {row['eager']['rss_mib']:8.0f} | "
                  f"{row['lazy']['frames'] / row['lazy']['seconds']:13.0f} {row['lazy']['rss_mib']:8.0f}")
        small = Path(tmp) / "train"
        small.mkdir()
        path = write_frames(small, args.train_frames)[args.train_format][0]
        print(f"  training on {args.train_frames} frames of {args.train_format} read lazily (small preset, batch "
              f"{args.batch_size}, {args.steps} steps after one warm-up; set-up includes the statistics pass):")
        base = None
        for workers in args.workers:
            r = _child(f"train_child({str(path)!r}, {workers}, {args.steps}, {args.batch_size})")
            base = base or r["steps_per_s"]
            print(f"    workers {workers}: {r['steps_per_s']:.2f} steps/s ({r['steps_per_s'] / base:.2f}x), "
                  f"set-up {r['setup_s']:.1f} s, peak RSS {r['rss_mib']:.0f} MiB "
                  f"+ {r['children_rss_mib']:.0f} MiB in child processes")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader processes to compare")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed per worker count")
    parser.add_argument("--train-frames", type=int, default=2000, help="frames of the training throughput runs")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--train-format", choices=FORMATS, default=".aselmdb")
    parser.add_argument("--dir", help="where to write the frames (default: the system's temporary folder)")
