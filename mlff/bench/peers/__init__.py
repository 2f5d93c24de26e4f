"""Peers timed side by side with mlff: each in its own virtual environment, run as a subprocess.

MACE pins an older e3nn and fairchem-core 1.10 (the last release with EquiformerV2) pins torch 2.4,
so neither can share mlff's environment. ``install_mace.sh DIR`` and ``install_fairchem.sh DIR``
build ``DIR/mace`` and ``DIR/fairchem`` (torch 2.13 CPU in both; fairchem without its pins, with a
small pure-PyTorch stand-in for ``torch_scatter``). A runner script per peer (``mace_peer.py``,
``fairchem_peer.py``, which import nothing from mlff; the MACE runners share ``json_line.py``) reads
the structure from an extxyz file, builds the peer's model, times energy + forces and prints one JSON line. ``mace_train_peer.py``
trains MACE with ``mace_run_train`` on given train/validation/test files under a wall-clock budget
and reports its errors (``mlff bench accuracy``).

The benchmarks find a peer's Python from ``--mace-python`` / ``--fairchem-python``, else
``$MLFF_MACE_PYTHON`` / ``$MLFF_FAIRCHEM_PYTHON``, else ``.peers/<peer>/bin/python`` under the
current directory. A peer that is not installed is left out, and the benchmark says so.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import ase.io

from mlff.models.registry import PRESETS

HERE = Path(__file__).resolve().parent
PEERS = ("mace", "fairchem")
#: the presets each peer is a fair comparison for: fairchem's EquiformerV2 gets the preset's own
#: hyper-parameters; the MACE (2 layers, 64 channels, L = 1) is the one of accuracy similar to ``small``
COMPARABLE = {"mace": {"small"}, "fairchem": {"small", "31m"}}


class PeerError(RuntimeError):
    """A peer runner failed; the message says how."""


def python_of(peer: str, args: argparse.Namespace) -> Path | None:
    given = getattr(args, f"{peer}_python", None) or os.environ.get(f"MLFF_{peer.upper()}_PYTHON")
    path = Path(given) if given else Path.cwd() / ".peers" / peer / "bin" / "python"
    return path if path.exists() else None


def available(args: argparse.Namespace) -> list[str]:
    """The peers asked for (``--peers``) whose Python exists."""
    return [peer for peer in args.peers if python_of(peer, args) is not None]


def run(peer: str, args: argparse.Namespace, atoms, preset: str) -> dict:
    """Time ``peer`` on ``atoms`` (our ``preset``'s hyper-parameters where the peer takes them)."""
    threads = args.threads or __import__("torch").get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        structure = Path(tmp) / "structure.xyz"
        ase.io.write(structure, atoms, format="extxyz")
        return run_script(python_of(peer, args), f"{peer}_peer.py",
                          ["--structure", str(structure), "--config", json.dumps(PRESETS["equiformer_v2"][preset]),
                           "--min-time", str(args.min_time), "--dtype", args.dtype, "--threads", str(threads)],
                          threads, args.peer_timeout)


def run_script(python, script: str, arguments: list[str], threads: int, timeout: float) -> dict:
    """Run the runner ``script`` of this folder under the peer's ``python`` on ``threads`` OpenMP threads;
    its one JSON line, or a :class:`PeerError` with the last line of its stderr.

    The runner gets a process group of its own; on a timeout, or when this process is stopped while it
    runs, the whole group is killed, with whatever the runner started (``mace_run_train``)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with subprocess.Popen([str(python), str(HERE / script), *arguments], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, start_new_session=True) as runner:
        try:
            stdout, stderr = runner.communicate(timeout=timeout)
        except BaseException:  # the timeout, SIGTERM (as SystemExit), Ctrl-C
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
            raise
    if runner.returncode != 0:
        tail = stderr.strip().splitlines()[-1:] or ["no message"]
        raise PeerError(f"{script}: exit status {runner.returncode}: {tail[0]}")
    try:
        return json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as error:
        raise PeerError(f"{script}: no JSON result on stdout ({error})") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peers", nargs="*", choices=PEERS, default=list(PEERS), help="peers to time (if installed)")
    for peer in PEERS:
        parser.add_argument(f"--{peer}-python", help=f"the Python of {peer}'s virtual environment")
    parser.add_argument("--peer-timeout", type=float, default=1800, help="seconds before a peer run is abandoned")


if __name__ == "__main__":  # python -m mlff.bench.peers: which peers are installed
    ns = argparse.Namespace(peers=list(PEERS), mace_python=None, fairchem_python=None)
    print({peer: str(python_of(peer, ns)) for peer in PEERS}, file=sys.stdout)
