"""``mlff data stats`` and ``mlff data split``: inspect a dataset and make reproducible splits."""

from __future__ import annotations

import argparse
import json

from mlff.cli import Command
from mlff.data.dataset import make_splits, save_splits, split_size
from mlff.data.formats import read_structures
from mlff.data.labels import LabelKeys
from mlff.data.statistics import compute_statistics
from mlff.errors import ConfigError
from mlff.fileio import atomic_write


def _keys(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="extxyz/xyz, .traj, .db or MD17-style .npz")
    parser.add_argument("--energy-key", default="energy")
    parser.add_argument("--forces-key", default="forces")
    parser.add_argument("--stress-key", default="stress")


def _read(args: argparse.Namespace, require=("energy",)):
    keys = LabelKeys(args.energy_key, args.forces_key, args.stress_key)
    return read_structures(args.file, keys=keys, require=require)


def _stats_arguments(parser: argparse.ArgumentParser) -> None:
    _keys(parser)
    parser.add_argument("--cutoff", type=float, default=5.0, help="Å, for the neighbour count (default: 5)")
    parser.add_argument("--json", help="also write the statistics to this JSON file")


def _stats(args: argparse.Namespace) -> int:
    stats = compute_statistics(_read(args), cutoff=args.cutoff)
    print(stats.format())
    if args.json:
        with atomic_write(args.json) as fh:
            json.dump(stats.to_dict(), fh, indent=2)
    return 0


def _split_arguments(parser: argparse.ArgumentParser) -> None:
    _keys(parser)
    size = "fraction in [0, 1) or whole count of frames (default: 0.1)"
    parser.add_argument("--val", type=_split_size, default=0.1, help=size)
    parser.add_argument("--test", type=_split_size, default=0.1, help=size)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", required=True, help="directory for train.idx, val.idx, test.idx")


def _split_size(text: str) -> int | float:
    try:
        return split_size(float(text), "the size")
    except (ValueError, ConfigError):
        message = f"expected a fraction in [0, 1) or a whole count of frames, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _split(args: argparse.Namespace) -> int:
    n = len(_read(args, require=()))
    splits = make_splits(n, args.val, args.test, args.seed)
    save_splits(args.output, splits)
    sizes = ", ".join(f"{name} {len(idx)}" for name, idx in splits.items())
    print(f"{n} frames split (seed {args.seed}): {sizes}; index files in {args.output}")
    return 0


COMMANDS = [
    Command(("data", "stats"), "dataset statistics: E0s, per-atom energy, force RMS, neighbours",
            _stats_arguments, _stats),
    Command(("data", "split"), "reproducible train/val/test split written as index files",
            _split_arguments, _split),
]
