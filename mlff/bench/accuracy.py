"""``mlff bench accuracy``: test error per unit of training compute, mlff recipes next to MACE.

For each molecule, GFN2-xTB Langevin MD at 500 K (``mlff data generate md17``, seed ``--seed``) is
split once into train/validation/test files, and every contender trains on the same files under the
same wall-clock budget at the same thread count:

- each mlff variant (the base config, or ``--config``, with a variant's overrides from
  ``--variants``) is timed for a few training steps first, and then trains for as many steps as fit
  in the budget, so its cosine schedule and stage two run their whole course (``--steps N`` gives
  every variant N steps instead: a step budget, which other work on the machine cannot skew);
- MACE (``mace_train_peer.py`` in the MACE peer environment, when installed) is calibrated in epochs
  the same way and trained with ``mace_run_train``.

The table reports the training wall time actually taken (core-minutes = minutes x threads) next to
the test energy and force MAE, and each variant's force MAE over MACE's. A time budget is only fair
on an otherwise idle machine: each calibration's CPU time is compared with its wall time, and a run
whose calibration got less than ``CONTENDED`` of its threads' CPU (other work shared the cores, so its
steps or epochs were fewer than the budget allows) is named under the table. Results are cached per run
in the work folder (a finished run is not repeated), and all rows go to ``results.json``.

Variants file (YAML), each entry a partial training config merged into the base::

    base: {}
    wide: {model: {options: {channels: 48}}}
    bessel: {model: {options: {radial_basis: bessel}}}
    hot: {data: {extra_train: [ethanol_1500K.xyz]}}   # more training frames (the split stays the same)

A variant's ``data`` may only name ``extra_train`` files (the training config's ``data.extra_train``),
added to the split's training file; the validation and test files are the same for every contender.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
import yaml

from mlff.bench import peers
from mlff.bench.studies import in_processes, quiet_training, study_data
from mlff.config import from_dict
from mlff.data.dataset import make_splits
from mlff.data.formats import read_structures, write_structures
from mlff.errors import ConfigError
from mlff.fileio import atomic_write
from mlff.train.config import TrainConfig

DEFAULT_MOLECULES = ("ethanol", "malonaldehyde", "uracil")
RESULT = "result.json"
CONTENDED = 0.8  # calibration CPU time / (wall time x threads) below which a budget run is flagged


# ------------------------------------------------------------------------------------------- data
def split_files(workdir: Path, molecule: str, frames: int, val: int, test: int, seed: int) -> dict[str, Path]:
    """The molecule's generated frames as ``train``/``val``/``test`` files (written once, then reused)."""
    files = {name: workdir / f"{molecule}_s{seed}_{frames}_{name}.xyz" for name in ("train", "val", "test")}
    if not all(path.is_file() for path in files.values()):
        structures = read_structures(study_data(workdir, molecule, frames, seed=seed))
        splits = make_splits(len(structures), val, test, seed)
        for name, path in files.items():
            write_structures(path, [structures[i] for i in splits[name]])
    return files


# ------------------------------------------------------------------------------------------ configs
def merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, mappings recursively."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_variants(path: str | None) -> dict[str, dict]:
    if path is None:
        return {"mlff": {}}
    with open(path) as fh:
        variants = yaml.safe_load(fh)
    if not isinstance(variants, dict) or not variants or not all(isinstance(v or {}, dict) for v in variants.values()):
        raise ConfigError(f"{path}: expected a mapping of variant name -> partial training config")
    return {str(name): value or {} for name, value in variants.items()}


def base_config(path: str | None) -> dict:
    """The base training config as a plain mapping (mlff's defaults when ``path`` is None)."""
    if path is None:
        return asdict(TrainConfig())
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def variant_config(base: dict, overrides: dict, files: dict[str, Path], output: Path, name: str) -> TrainConfig:
    overrides = dict(overrides)
    extra = dict(overrides.pop("data", None) or {})
    extra_train = extra.pop("extra_train", [])  # the config's type check names anything but a list of files
    if extra:
        raise ConfigError(f"variant {name}: data may only give extra_train (the split is the benchmark's), "
                          f"got {', '.join(extra)}")
    data = {"train": [str(files["train"])], "val": [str(files["val"])], "test": [str(files["test"])],
            "extra_train": extra_train}
    keys = base.get("data", {}).get("keys")
    if keys:
        data["keys"] = keys
    cfg = merged(merged(base, overrides), {"output": str(output), "progress": False})
    cfg["data"] = data
    try:
        return from_dict(TrainConfig, cfg).check()
    except ConfigError as exc:
        raise ConfigError(f"variant {name}: {exc}") from exc


# -------------------------------------------------------------------------------------------- mlff
def step_seconds(cfg: TrainConfig, steps: int, warmup: int = 2) -> tuple[float, int, int, float]:
    """Mean seconds per training step of ``cfg`` (after ``warmup`` steps), parameters, batches per epoch,
    and the share of its threads' CPU time the timed steps got (about 1 on an idle machine)."""
    from mlff.runtime import resolve_device
    from mlff.train.data import build_model, load_training_data
    from mlff.train.trainer import Trainer

    torch.manual_seed(cfg.seed)
    data = load_training_data(cfg)
    trainer = Trainer(cfg, data, build_model(cfg, data), resolve_device(cfg.device))
    order = trainer.epoch_order(0) * (1 + (warmup + steps) * cfg.batch_size // len(trainer.train_set))
    batch = lambda k: order[k * cfg.batch_size:(k + 1) * cfg.batch_size]  # noqa: E731
    for k in range(warmup):
        trainer.train_step(batch(k))
    start, cpu = time.perf_counter(), time.process_time()
    for k in range(warmup, warmup + steps):
        trainer.train_step(batch(k))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    parameters = sum(p.numel() for p in trainer.model.parameters())
    return wall / steps, parameters, trainer.batches_per_epoch, cpu / (wall * torch.get_num_threads())


def cached(out: Path, compute) -> dict:
    """The result stored in ``out`` by an earlier run, else ``compute()``, stored there atomically."""
    path = out / RESULT
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    with atomic_write(path) as fh:
        json.dump(result, fh, indent=2)
    return result


def run_mlff(cfg: TrainConfig, budget: float, threads: int, calibration_steps: int, steps: int | None = None) -> dict:
    """Train ``cfg`` for as many steps as fit in ``budget`` seconds (or for ``steps``); the errors and
    what it cost."""
    def compute():
        from mlff.train.run import train

        torch.set_num_threads(threads)
        seconds, parameters, per_epoch, share = step_seconds(cfg, calibration_steps)
        cfg.max_steps = steps or max(1, int(budget / seconds))
        cfg.epochs = math.ceil(cfg.max_steps / per_epoch)
        start = time.perf_counter()
        with quiet_training():
            table = train(cfg)
        return {"parameters": parameters, "steps": cfg.max_steps, "epochs": cfg.epochs, "step_seconds": seconds,
                "calibration_cpu_share": None if steps else share, "train_seconds": time.perf_counter() - start,
                "threads": threads, "errors": table}

    return cached(Path(cfg.output), compute)


# -------------------------------------------------------------------------------------------- MACE
def run_mace(python: str, files: dict[str, Path], out: Path, budget: float, threads: int, batch_size: int,
             seed: int, timeout: float) -> dict:
    def compute():
        peer = peers.run_script(python, "mace_train_peer.py", [
            "--train", str(files["train"]), "--valid", str(files["val"]), "--test", str(files["test"]),
            "--workdir", str(out), "--budget", str(budget), "--threads", str(threads),
            "--batch-size", str(batch_size), "--seed", str(seed)], threads, timeout)
        return {"parameters": peer["parameters"], "steps": None, "epochs": peer["epochs"], "step_seconds": None,
                "calibration_cpu_share": peer["calibration_cpu_share"], "train_seconds": peer["train_seconds"],
                "threads": threads, "errors": peer["errors"], "what": peer["what"]}

    return cached(out, compute)


# -------------------------------------------------------------------------------------------- main
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="base training config (YAML); default: mlff's defaults (small preset)")
    parser.add_argument("--variants", help="YAML: variant name -> partial config merged into the base")
    parser.add_argument("--molecules", nargs="+", default=list(DEFAULT_MOLECULES))
    parser.add_argument("--frames", type=int, default=1300, help="generated frames per molecule")
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1, help="of the MD trajectory and the split")
    parser.add_argument("--budget", type=float, default=10.0, help="minutes of training wall time per run")
    parser.add_argument("--steps", type=int, help="a step budget for the mlff runs instead of --budget's time "
                        "(MACE, which counts epochs, keeps the time budget)")
    parser.add_argument("--threads", type=int, default=1, help="threads per run (core-minutes = minutes x threads)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--calibration-steps", type=int, default=10)
    parser.add_argument("--no-mace", action="store_true", help="leave MACE out even where it is installed")
    parser.add_argument("--mace-python", help="the Python of MACE's virtual environment")
    parser.add_argument("--mace-batch-size", type=int, help="MACE's batch size (default: the first variant's)")
    parser.add_argument("--peer-timeout", type=float, default=7200, help="seconds before a MACE run is abandoned")
    parser.add_argument("--workdir", default="accuracy_bench")


def check(args: argparse.Namespace) -> None:
    if args.steps is not None and args.steps < 1:
        raise ConfigError("--steps must be >= 1")
    if args.budget <= 0 or args.threads < 1 or args.jobs < 1 or args.calibration_steps < 1:
        raise ConfigError("--budget > 0, --threads >= 1, --jobs >= 1 and --calibration-steps >= 1 are required")
    if args.val < 1 or args.test < 1 or args.frames <= args.val + args.test:
        raise ConfigError(f"--frames {args.frames} must exceed --val {args.val} + --test {args.test} (both >= 1)")


def main(args: argparse.Namespace) -> int:
    check(args)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    base, variants = base_config(args.config), load_variants(args.variants)
    budget = 60 * args.budget
    mace = None if args.no_mace else peers.python_of("mace", args)
    if mace is None and not args.no_mace:
        print("MACE is not installed (bash mlff/bench/peers/install_mace.sh .peers, or --mace-python): left out")
    tasks = []
    for molecule in args.molecules:
        files = split_files(workdir, molecule, args.frames, args.val, args.test, args.seed)
        tag = f"{molecule}_{args.steps}steps" if args.steps else f"{molecule}_{args.budget:g}min_{args.threads}t"
        configs = {name: variant_config(base, overrides, files, workdir / f"{tag}_{name}", name)
                   for name, overrides in variants.items()}
        for name, cfg in configs.items():
            tasks.append((molecule, name, run_mlff, (cfg, budget, args.threads, args.calibration_steps, args.steps)))
        if mace is not None:  # at the first variant's batch size unless told
            batch_size = args.mace_batch_size or next(iter(configs.values())).batch_size
            tasks.append((molecule, "MACE", run_mace, (str(mace), files, workdir / f"{tag}_MACE", budget,
                                                       args.threads, batch_size, args.seed, args.peer_timeout)))
    results = run_tasks(tasks, args.jobs)
    report(results, args)
    with atomic_write(workdir / "results.json") as fh:
        json.dump(results, fh, indent=2)
    return 0


def run_tasks(tasks: list, jobs: int) -> list[dict]:
    outs = in_processes([(fn, fn_args, {}) for _, _, fn, fn_args in tasks], jobs)
    return [{"molecule": molecule, "run": name, **out} for (molecule, name, _, _), out in zip(tasks, outs)]


def report(results: list[dict], args: argparse.Namespace) -> None:
    what = f"{args.steps} steps per mlff run, MACE {args.budget:g} min" if args.steps else f"{args.budget:g} min"
    print(f"budget {what} of training per run at {args.threads} thread(s); "
          f"{args.frames - args.val - args.test} train / {args.val} val / {args.test} test frames, xTB 500 K, seed {args.seed}")
    print(f"{'molecule':<14} {'run':<16} {'params':>8} {'steps':>6} {'epochs':>6} {'core-min':>8} "
          f"{'E MAE':>7} {'F MAE':>7} {'val F':>7} {'train F':>7} {'F/MACE':>7}")
    mace = {r["molecule"]: r["errors"]["test"]["force_mae"] for r in results if r["run"] == "MACE"}
    for r in results:
        test = r["errors"]["test"]
        core_min = r["train_seconds"] * r["threads"] / 60
        ratio = f"{test['force_mae'] / mace[r['molecule']]:.2f}" if r["molecule"] in mace else "-"
        print(f"{r['molecule']:<14} {r['run']:<16} {r['parameters']:>8} {r['steps'] or '-':>6} {r['epochs']:>6} "
              f"{core_min:>8.1f} {test['energy_mae']:>7.2f} {test['force_mae']:>7.1f} "
              f"{r['errors']['val']['force_mae']:>7.1f} {r['errors']['train']['force_mae']:>7.1f} {ratio:>7}")
    print("E MAE in meV/atom, F MAE in meV/Å (test frames unless named); core-min: training wall time x threads, "
          "evaluation included")
    for r in contended(results):
        print(f"warning: {r['molecule']} {r['run']}: its calibration got {100 * r['calibration_cpu_share']:.0f} % of "
              f"its {r['threads']} thread(s)' CPU time (other work shared the cores), so its budget bought fewer "
              f"{'epochs' if r['steps'] is None else 'steps'} than it allows; rerun it on an idle machine (delete its "
              "folder) or compare at a step budget (--steps)")


def contended(results: list[dict]) -> list[dict]:
    """The budget runs whose calibration got less than ``CONTENDED`` of their threads' CPU time."""
    return [r for r in results if (r.get("calibration_cpu_share") or 1.0) < CONTENDED]
