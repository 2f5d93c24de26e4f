"""Shared plumbing of the training studies (``mlff bench empp-study``, ``est-accuracy``): generated
MD17-style data files, one training run per variant (reused when already finished), and several
runs at once in separate processes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch
from ase import Atoms

from mlff.data.formats import write_structures
from mlff.data.generate import generate_md17
from mlff.train.config import DataConfig, SplitConfig, TrainConfig, load_config


def study_setup(args) -> tuple[TrainConfig, Path]:
    """The study's base training config (``--config``, with ``--epochs`` applied) and its work folder."""
    base = load_config(args.config)
    if args.epochs:
        base.epochs = args.epochs
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return base, workdir


def study_data(workdir: Path, molecule: str, frames: int, seed: int, labels: bool = True) -> Path:
    path = workdir / f"{molecule}_500K_{frames}_s{seed}{'' if labels else '_unlabelled'}.xyz"
    if not path.is_file():
        structures = generate_md17(molecule, frames, temperature=500, seed=seed, progress=False)
        if not labels:
            structures = [Atoms(a.numbers, a.positions) for a in structures]
        write_structures(path, structures)
    return path


@contextmanager
def quiet_training():
    """No training progress from the ``mlff.train`` loggers (warnings still show)."""
    logger = logging.getLogger("mlff.train")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def train_variant(base: TrainConfig, name: str, workdir: Path, threads: int | None = None, **changes) -> dict:
    """Train one variant (or reuse its finished result) and return its train/val/test errors."""
    cfg = TrainConfig(**{**vars(base), **changes, "output": str(workdir / name), "progress": False})
    metrics = workdir / name / "metrics.json"
    if not metrics.is_file():
        from mlff.train.run import train

        if threads:
            torch.set_num_threads(threads)
        start = time.perf_counter()
        with quiet_training():
            train(cfg.check())
        print(f"  {name}: trained in {time.perf_counter() - start:.0f} s", flush=True)
    return json.loads(metrics.read_text())["errors"]


def in_processes(calls: list[tuple], jobs: int) -> list:
    """``fn(*args, **kwargs)`` for each ``(fn, args, kwargs)`` of ``calls``, in order: inline when ``jobs``
    is 1, else ``jobs`` at a time in separate (spawned) processes.

    A worker that dies (killed, out of memory, or unable to start) raises ``BrokenProcessPool`` here; a
    ``multiprocessing.Pool`` would start a new worker and wait for the lost task forever. Stopping this
    process (SIGTERM, Ctrl-C), or any error, stops the workers too, and they stop what they started
    (:func:`mlff.bench.peers.run_script` takes its peer's process group along): a run left behind would
    otherwise go on for hours and store its result where a restarted benchmark reuses it."""
    if jobs <= 1:
        return [fn(*args, **kwargs) for fn, args, kwargs in calls]
    others = set(multiprocessing.active_children())
    with exit_on_sigterm():
        executor = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=exit_on_sigterm_always)
        try:
            futures = [executor.submit(fn, *args, **kwargs) for fn, args, kwargs in calls]
            results = [future.result() for future in futures]
        except BaseException:
            for worker in set(multiprocessing.active_children()) - others:
                worker.terminate()
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        executor.shutdown()  # idle workers leave on their own
        return results


def _exit(signum, frame):
    raise SystemExit(128 + signum)


def exit_on_sigterm_always() -> None:
    """SIGTERM raises ``SystemExit`` (so ``finally`` blocks and ``with`` exits run) in this process."""
    signal.signal(signal.SIGTERM, _exit)


@contextmanager
def exit_on_sigterm():
    """:func:`exit_on_sigterm_always` for the duration of the block (in the main thread, where signals land)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_all(base: TrainConfig, workdir: Path, runs: dict[str, dict], jobs: int) -> dict[str, dict]:
    """Run the named variants, ``jobs`` at a time in separate processes (inline when ``jobs`` is 1)."""
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    calls = [(train_variant, (base, name, workdir, threads), changes) for name, changes in runs.items()]
    return dict(zip(runs, in_processes(calls, jobs)))


def data_config(base: TrainConfig, files: list[str], split: dict) -> DataConfig:
    return DataConfig(train=files, keys=base.data.keys, split=SplitConfig(**split))
