#!/usr/bin/env python
"""Train a MACE model with MACE's own ``mace_run_train`` under a wall-clock budget, then test it.

Standalone: runs under the MACE peer environment's Python (``install_mace.sh DIR``) and imports
nothing from mlff. The model is the one ``mace_peer.py`` times (2 interaction layers, 64 channels,
max_L = 1, correlation 3, r_max 5 Å, 8 Bessel functions, float32), trained the way the MACE
documentation suggests for small molecules: batch 8 (``--batch-size``), lr 0.01 with AMSGrad and
ReduceLROnPlateau, EMA 0.99, energy weight 1 and forces 100, stage two (``--swa``: energy weight
1000, lr 1e-3) over the last quarter of the epochs, and E0s fitted by least squares on the training
set (``--E0s average``), like mlff's ``e0: fit``.

The budget is in seconds of wall time for the training run at ``--threads``. MACE counts in epochs,
so a calibration run of 2 epochs is timed first: the time between its two epoch-end log lines is
one epoch, and the real run gets ``floor(budget / epoch)`` epochs (at least 2). ``--epochs N``
skips the calibration. The calibration's CPU time over its wall time and threads
(``calibration_cpu_share``, about 1 on an idle machine) says whether other work slowed it.

The errors are those of the model MACE saves (the stage-two model when there is one), evaluated
here with ``MACECalculator`` on every frame of the train, validation and test files: energy MAE and
RMSE per atom (meV/atom) and force MAE and RMSE per component (meV/Å), as mlff reports them.

Prints exactly one line of JSON on stdout:
    {"what", "epochs", "epoch_seconds", "calibration_seconds", "calibration_cpu_share", "train_seconds",
     "parameters", "errors": {"train": {...}, "val": {...}, "test": {...}}}
Everything else goes to stderr. On failure: a message on stderr's last line and exit status 1.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import math
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from json_line import run_with_json_line  # noqa: E402 - sibling module (the script's folder)

WHAT = "MACE 2x64 L=1 corr 3, 5 A, float32, EMA 0.99, stage two over the last 25 %"
EPOCH_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) INFO: Epoch (\d+):")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("train", "valid", "test"):
        parser.add_argument(f"--{name}", required=True, help="extxyz file with energy and forces")
    parser.add_argument("--workdir", required=True, help="folder for MACE's files (created)")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training wall time")
    parser.add_argument("--epochs", type=int, help="train this many epochs instead (no calibration)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.budget <= 0 or args.threads < 1 or args.batch_size < 1 or (args.epochs is not None and args.epochs < 2):
        parser.error("--budget > 0, --threads >= 1, --batch-size >= 1 and --epochs >= 2 are required")
    return args


def relabel(source: str, target: Path) -> int:
    """Copy ``source`` to ``target`` with the labels under MACE's keys (REF_energy, REF_forces)."""
    import ase.io

    frames = ase.io.read(source, index=":")
    for atoms in frames:
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = None
        atoms.info = {"REF_energy": energy}
        atoms.arrays["REF_forces"] = forces
    ase.io.write(target, frames, format="extxyz")
    return len(frames)


def train_command(args, files: dict, workdir: Path, epochs: int) -> list[str]:
    return [
        sys.executable, "-m", "mace.cli.run_train",
        "--name", "mace", "--seed", str(args.seed), "--work_dir", str(workdir),
        "--train_file", str(files["train"]), "--valid_file", str(files["valid"]),
        "--energy_key", "REF_energy", "--forces_key", "REF_forces", "--E0s", "average",
        "--model", "MACE", "--num_interactions", "2", "--num_channels", "64", "--max_L", "1",
        "--correlation", "3", "--r_max", "5.0", "--num_radial_basis", "8", "--num_cutoff_basis", "5",
        "--max_ell", "3", "--MLP_irreps", "16x0e", "--radial_MLP", "[64, 64, 64]",
        "--default_dtype", "float32", "--device", "cpu",
        "--batch_size", str(args.batch_size), "--valid_batch_size", str(args.batch_size),
        "--lr", "0.01", "--amsgrad", "--ema", "--ema_decay", "0.99",
        "--energy_weight", "1.0", "--forces_weight", "100.0",
        "--swa", "--start_swa", str(max(1, math.ceil(0.75 * epochs))),
        "--max_num_epochs", str(epochs), "--patience", str(epochs + 1), "--eval_interval", "1",
        "--error_table", "PerAtomMAE", "--num_workers", "0", "--save_cpu",
    ]


def run_training(args, files: dict, workdir: Path, epochs: int) -> tuple[float, float]:
    """Run ``mace_run_train``; return its wall time and CPU time. Its output goes to ``workdir/train.out``."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    start, cpu = time.perf_counter(), child_cpu_seconds()
    with open(workdir / "train.out", "w") as out:
        done = subprocess.run(train_command(args, files, workdir, epochs), stdout=out, stderr=subprocess.STDOUT,
                              env=env, cwd=workdir)
    seconds, cpu = time.perf_counter() - start, child_cpu_seconds() - cpu
    if done.returncode != 0:
        tail = (workdir / "train.out").read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"mace_run_train failed (exit {done.returncode}): {' | '.join(tail)}")
    return seconds, cpu


def child_cpu_seconds() -> float:
    """User + system CPU time of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def epoch_seconds(workdir: Path, fallback: float) -> float:
    """Seconds between the last two epoch-end lines of MACE's log (``fallback`` if there are fewer)."""
    stamps = []
    for log in sorted((workdir / "logs").glob("*.log")):
        for line in log.read_text().splitlines():
            match = EPOCH_LINE.match(line)
            if match:
                stamps.append(datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f"))
    if len(stamps) < 2:
        return fallback
    return (stamps[-1] - stamps[-2]).total_seconds()


def errors(model_path: Path, path: Path) -> dict:
    import ase.io
    import numpy as np
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=str(model_path), device="cpu", default_dtype="float32")
    de, df = [], []
    for atoms in ase.io.read(path, index=":"):
        ref_e, ref_f = atoms.info["REF_energy"], atoms.arrays["REF_forces"]
        atoms.calc = calc
        de.append((atoms.get_potential_energy() - ref_e) / len(atoms))
        df.append((atoms.get_forces() - ref_f).ravel())
    de, df = np.asarray(de) * 1e3, np.concatenate(df) * 1e3
    return {"energy_mae": float(np.abs(de).mean()), "energy_rmse": float(np.sqrt((de ** 2).mean())),
            "force_mae": float(np.abs(df).mean()), "force_rmse": float(np.sqrt((df ** 2).mean()))}


def run(args: argparse.Namespace) -> dict:
    importlib.import_module("mace")  # sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD before e3nn loads
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    files = {name: work / f"{name}.xyz" for name in ("train", "valid", "test")}
    counts = {name: relabel(getattr(args, name), files[name]) for name in files}
    print(f"mace_train_peer: {counts} frames, {args.threads} threads", file=sys.stderr)

    calibration, per_epoch, epochs, share = 0.0, None, args.epochs, None
    if epochs is None:
        calibration, cpu = run_training(args, files, work / "calibration", 2)
        share = cpu / (calibration * args.threads)
        per_epoch = epoch_seconds(work / "calibration", calibration / 2)
        epochs = max(2, int(args.budget // per_epoch))
        print(f"mace_train_peer: {per_epoch:.1f} s per epoch -> {epochs} epochs", file=sys.stderr)
    seconds, _ = run_training(args, files, work / "run", epochs)
    models = work / "run"
    model_path = models / "mace_stagetwo.model"
    if not model_path.is_file():
        model_path = models / "mace.model"
    parameters = sum(p.numel() for p in torch.load(model_path, map_location="cpu", weights_only=False).parameters())
    table = {split: errors(model_path, files[name]) for split, name in
             (("train", "train"), ("val", "valid"), ("test", "test"))}
    return {"what": WHAT, "epochs": epochs, "epoch_seconds": per_epoch, "calibration_seconds": calibration,
            "calibration_cpu_share": share, "train_seconds": seconds, "parameters": int(parameters), "errors": table}


def main(argv=None) -> int:
    return run_with_json_line(run, parse_args(argv), "mace_train_peer")


if __name__ == "__main__":
    sys.exit(main())
