"""``mlff md deck.yaml``, ``mlff relax deck.yaml`` and ``mlff info model.pt``."""

from __future__ import annotations

import argparse
import json

from mlff.cli import Command
from mlff.errors import ConfigError
from mlff.runtime import LOW_MEMORY_HELP


def _deck_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("deck", help="YAML deck (see md/ for examples)")
    parser.add_argument("--steps", type=int, help="override md.steps or relax.steps")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--low-memory", action="store_true", help=LOW_MEMORY_HELP)


def _load(args, kind: str):
    from mlff.dynamics.deck import load_deck

    deck = load_deck(args.deck)
    section = getattr(deck, kind)
    if section is None:
        other = "relax" if kind == "md" else "md"
        raise ConfigError(f"{args.deck} describes an {other!r} run; use 'mlff {other} {args.deck}'")
    if args.steps is not None:
        section.steps = args.steps
    if args.no_progress:
        deck.output.progress = False
    return deck.check()


def _md(args) -> int:
    from mlff.dynamics.runner import run_md

    return _run(_load(args, "md"), run_md, f"mlff md {args.deck}")


def _relax(args) -> int:
    from mlff.dynamics.runner import run_relax

    return _run(_load(args, "relax"), run_relax, f"mlff relax {args.deck}")


def _run(deck, run_one, command: str) -> int:
    """One structure through ASE (``structure``), or a batch in one graph per step (``structures``)."""
    if deck.structures:
        from mlff.dynamics.batch_runner import run_batch

        print(run_batch(deck, command).format())
        return 0
    summary = run_one(deck, command)
    print(summary.format())
    return 3 if summary.stopped else 0


def _info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="checkpoint file or shipped potential name")


def _info(args) -> int:
    from ase.data import chemical_symbols

    from mlff.models.checkpoint import read_checkpoint
    from mlff.models.potentials import checkpoint_path

    payload = read_checkpoint(checkpoint_path(args.model))
    params = sum(v.numel() for k, v in payload["state_dict"].items())
    stored = payload["stored_format_version"]
    note = "" if stored == payload["format_version"] else f", migrated to v{payload['format_version']} on reading"
    print(f"model        {payload['model']['name']} (format v{stored}{note})")
    print(f"species      {', '.join(chemical_symbols[z] for z in payload['species'])}")
    print(f"cutoff       {payload['cutoff']} Å")
    print(f"parameters   {params:,} (weights and buffers)")
    print(f"E0 (eV)      {', '.join(f'{chemical_symbols[int(z)]} {e:.4f}' for z, e in payload['e0'].items())}")
    print(f"config       {json.dumps(payload['model']['config'])}")
    for key in ("metadata", "metrics"):
        if payload.get(key):
            print(f"{key:<12} {json.dumps(payload[key], indent=2, default=str)}")
    return 0


COMMANDS = [
    Command(("md",), "run molecular dynamics from a YAML deck (one structure, or a batch: 'structures')",
            _deck_arguments, _md),
    Command(("relax",), "relax a structure (positions, optionally the cell) or a batch from a YAML deck",
            _deck_arguments, _relax),
    Command(("info",), "print a model's card: species, cutoff, parameters, data, metrics", _info_arguments, _info),
]
