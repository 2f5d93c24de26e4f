"""Long NVE soak of the shipped ``ethanol-xtb`` potential: memory growth, speed and energy drift.

Run: ``mlff bench soak`` (or ``python -m mlff.bench.soak``). Ethanol (the MD17 geometry) with
``MLFFCalculator("ethanol-xtb")`` and ASE's velocity Verlet at 0.5 fs, from Maxwell-Boltzmann
velocities at 300 K (seeded) with centre-of-mass motion and rotation removed. After a short
warm-up, the process's resident set size (RSS, ``VmRSS`` in ``/proc/self/status``; the peak from
``getrusage`` where that file does not exist) is printed at the start, every ``--interval`` steps
and at the end, then the RSS growth, the speed in steps/s, and the NVE drift in meV/atom/ps (slope
of a linear fit of the total energy per atom against time) beside the drift quoted on the model
card: the checkpoint's stored metrics if they hold one, otherwise the potential's README.

A leak in the calculator (neighbour-list reuse, cached tensors, autograd graphs kept alive) shows
as steady RSS growth over 10^4-10^5 steps; the energies are kept in a preallocated array so the
benchmark's own bookkeeping does not grow.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from ase import units
from ase.md.velocitydistribution import Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet

from mlff.calculator import MLFFCalculator
from mlff.compat import thermalize_momenta
from mlff.data.generate.molecules import load_molecule
from mlff.errors import ConfigError
from mlff.models.checkpoint import read_checkpoint
from mlff.runtime import peak_rss_mib
from mlff.models.potentials import checkpoint_path

POTENTIAL = "ethanol-xtb"
MOLECULE = "ethanol"
TIMESTEP_FS = 0.5
TEMPERATURE_K = 300.0
_DRIFT = re.compile(r"drift[^\n]*?([+\-\u2212]?\d+(?:\.\d+)?(?:[eE][+\-]?\d+)?)\s*meV/atom/ps", re.IGNORECASE)


def rss_mib() -> tuple[float, str]:
    """The current resident set size in MiB and where it was read (``VmRSS``, or the peak RSS from
    ``getrusage`` where ``/proc`` is not available)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024, "VmRSS"
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10), "peak RSS (getrusage)"


def _find_drift(metrics, path: str = "") -> tuple[float, str] | None:
    """The first number stored under a key containing 'drift' in a (nested) metrics dict."""
    if not isinstance(metrics, dict):
        return None
    for key, value in metrics.items():
        where = f"{path}.{key}" if path else str(key)
        if "drift" in str(key).lower() and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), where
        found = _find_drift(value, where)
        if found is not None:
            return found
    return None


def card_drift(model: str = POTENTIAL) -> tuple[float | None, str]:
    """The NVE drift (meV/atom/ps) quoted for ``model`` and where it was found.

    Looked up in the checkpoint's stored metrics first (any key containing ``drift``), then in the
    README beside the checkpoint (the first ``drift ... <number> meV/atom/ps``). ``(None, reason)``
    if neither quotes one.
    """
    path = checkpoint_path(model)
    found = _find_drift(read_checkpoint(path).get("metrics", {}))
    if found is not None:
        return found[0], f"checkpoint metrics[{found[1]}]"
    readme = path.parent / "README.md"
    if readme.is_file():
        match = _DRIFT.search(readme.read_text(encoding="utf-8"))
        if match:
            return float(match.group(1).replace("\u2212", "-")), str(readme)
    return None, f"no drift quoted in {path}'s metrics or a README beside it"


def card_conditions(model: str = POTENTIAL) -> str:
    """How the card's NVE run was made, from the deck shipped beside the checkpoint (if any)."""
    folder = checkpoint_path(model).parent
    for deck in sorted(folder.glob("nve*.yaml")):
        try:
            md = (yaml.safe_load(deck.read_text(encoding="utf-8")) or {}).get("md", {})
            steps, dt = int(md["steps"]), float(md["timestep"])
            return f"{deck.name}: {steps} steps of {dt:g} fs ({steps * dt / 1000:g} ps) from {md['temperature']} K"
        except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
            continue
    return "conditions not recorded"


def main(args: argparse.Namespace) -> int:
    for name, least in (("steps", 1), ("interval", 1), ("warmup", 0), ("threads", 1)):
        value = getattr(args, name)
        if value is not None and value < least:
            raise ConfigError(f"--{name} must be at least {least}, got {value}")
    if args.threads:
        torch.set_num_threads(args.threads)
    atoms = load_molecule(MOLECULE)[0]
    n = len(atoms)
    atoms.calc = calc = MLFFCalculator(POTENTIAL)
    thermalize_momenta(atoms, temperature_K=TEMPERATURE_K, rng=np.random.default_rng(args.seed))
    Stationary(atoms)
    ZeroRotation(atoms)
    dyn = VelocityVerlet(atoms, timestep=TIMESTEP_FS * units.fs)
    steps, interval = args.steps, args.interval
    print(f"soak: {MOLECULE} ({n} atoms), {POTENTIAL} on {calc.device} ({str(calc.dtype).replace('torch.', '')}), "
          f"NVE velocity Verlet {TIMESTEP_FS:g} fs, {steps} steps ({steps * TIMESTEP_FS / 1000:g} ps) "
          f"after {args.warmup} warm-up steps")
    print(f"      Maxwell-Boltzmann {TEMPERATURE_K:g} K (seed {args.seed}), centre-of-mass motion and rotation "
          f"removed; torch {torch.__version__}, {torch.get_num_threads()} thread(s)", flush=True)
    dyn.run(args.warmup)

    total = np.empty(steps + 1)  # total energy (eV) after each step; preallocated so nothing grows
    gc.collect()
    rss_start, source = rss_mib()
    last_time, last_step = time.perf_counter(), 0
    start = last_time
    stopped = None
    for step, _ in enumerate(dyn.irun(steps)):
        total[step] = atoms.get_potential_energy() + atoms.get_kinetic_energy()
        if not np.isfinite(total[step]):
            stopped = f"total energy is {total[step]} at step {step}"
            break
        if step == 0:
            print(f"RSS start  step {0:7d}  {0:8.3f} ps  {rss_start:9.1f} MiB  ({source}, after warm-up)", flush=True)
        elif step % interval == 0 or step == steps:
            now = time.perf_counter()
            rss, _ = rss_mib()
            label = "RSS end  " if step == steps else "RSS      "
            print(f"{label}  step {step:7d}  {step * TIMESTEP_FS / 1000:8.3f} ps  {rss:9.1f} MiB  "
                  f"{rss - rss_start:+8.1f} MiB  {(step - last_step) / (now - last_time):7.1f} steps/s  "
                  f"T {atoms.get_temperature():5.0f} K", flush=True)
            last_time, last_step = now, step
    seconds = time.perf_counter() - start
    if stopped:
        print(f"stopped: {stopped}")
        return 3
    rss_end, _ = rss_mib()
    growth = rss_end - rss_start
    peak = peak_rss_mib()
    print(f"RSS growth: {growth:+.1f} MiB over {steps} steps ({1000 * growth / steps:+.3f} MiB per 1000 steps)"
          + f"; peak {peak:.1f} MiB")
    print(f"speed: {steps / seconds:.1f} steps/s ({seconds:.1f} s for {steps} steps, "
          f"{1000 * seconds / steps:.2f} ms/step)")
    time_ps = np.arange(steps + 1) * TIMESTEP_FS / 1000
    per_atom = total / n
    drift = float(np.polyfit(time_ps, per_atom, 1)[0] * 1000)
    band = float(np.ptp(per_atom) * 1000)
    print(f"NVE drift: {drift:+.3g} meV/atom/ps (linear fit of total energy per atom over {time_ps[-1]:g} ps); "
          f"total energy band {band:.3g} meV/atom peak-to-peak")
    quoted, where = card_drift(POTENTIAL)
    if quoted is None:
        print(f"model card: {where}")
    else:
        print(f"model card: {quoted:+.3g} meV/atom/ps ({where}; card run {card_conditions(POTENTIAL)})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "steps": steps, "warmup": args.warmup, "threads": torch.get_num_threads(), "seed": args.seed,
            "rss_start_mib": rss_start, "rss_end_mib": rss_end, "rss_growth_mib": growth, "rss_source": source,
            "peak_rss_mib": peak, "seconds": seconds, "steps_per_s": steps / seconds,
            "drift_mev_atom_ps": drift, "band_mev_atom": band, "card_drift_mev_atom_ps": quoted, "card_source": where,
        }, indent=2))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=100_000,
                        help="MD steps after the warm-up (default 100000 = 50 ps)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--interval", type=int, default=5000, help="print the RSS every this many steps")
    parser.add_argument("--warmup", type=int, default=200, help="steps run before the start RSS is taken")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial velocities")
    parser.add_argument("--json", help="also write the figures to this JSON file")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    raise SystemExit(main(p.parse_args()))
