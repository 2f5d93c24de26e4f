"""``mlff train config.yaml [--resume]`` and ``mlff eval model.pt data.xyz``."""

from __future__ import annotations

import argparse

from mlff.cli import Command


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="training config (YAML)")
    parser.add_argument("--resume", action="store_true", help="continue from <output>/train_state.pt")


def _train(args) -> int:
    from mlff.train.config import load_config
    from mlff.train.run import train

    train(load_config(args.config), resume=args.resume, command=f"mlff train {args.config}")
    return 0


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="checkpoint or shipped potential name")
    parser.add_argument("data", nargs="+", help="labelled structure files")
    parser.add_argument("--energy-key", default="energy")
    parser.add_argument("--forces-key", default="forces")
    parser.add_argument("--parity", help="prefix for parity PNGs (e.g. out/parity)")
    parser.add_argument("--oc20", action="store_true",
                        help="also OC20's S2EF metrics: energy MAE (eV), force MAE and cosine over free atoms, EFwT")
    relax = parser.add_argument_group("IS2RS/IS2RE: relax each 'initial' frame, compare with its 'relaxed' "
                                      "(files from mlff data generate relaxations)")
    relax.add_argument("--relax", action="store_true", help="relax the initial structures and score them")
    relax.add_argument("--fmax", type=float, default=0.05, help="eV/Å (default: 0.05)")
    relax.add_argument("--relax-steps", type=int, default=300, help="FIRE steps at most (default: 300)")
    relax.add_argument("--one-at-a-time", action="store_true",
                       help="relax with ASE's FIRE one structure at a time instead of all in one batch")
    relax.add_argument("--check-method", action="store_true",
                       help="also relax with the method that labelled the data (its frames' info 'method': EMT or "
                            "GFN2-xTB) by the same FIRE, score against that, and evaluate it at the model's end "
                            "points (energy error, forces, spurious minima)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])


def _eval(args) -> int:
    import torch

    from mlff.calculator import load
    from mlff.data.formats import read_structures
    from mlff.data.labels import LabelKeys
    from mlff.data.validation import check_species
    from mlff.train.evaluation import evaluate, evaluate_s2ef, format_metrics, format_s2ef
    from mlff.train.plots import parity_plots

    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    model = load(args.model, device=args.device, dtype=dtype)
    device = next(model.buffers()).device
    keys = LabelKeys(args.energy_key, args.forces_key)
    for path in args.data:
        # S2EF needs forces on every frame: a frame without them is named (file, frame, key) here
        structures = read_structures(path, keys=keys, require=("energy", "forces") if args.oc20 else ("energy",))
        for k, atoms in enumerate(structures):  # before any graph is built
            check_species(atoms.numbers, model.species, f"frame {k} of {path}: ")
        print(f"{path} ({len(structures)} structures): {format_metrics(evaluate(model, structures, 16, device, dtype))}")
        if args.oc20:
            print(f"  {format_s2ef(evaluate_s2ef(model, structures, 16, device, dtype))}")
        if args.relax:
            from mlff.calculator import MLFFCalculator
            from mlff.data.generate.relaxations import labelling_method, relaxation_pairs
            from mlff.train.relaxation_eval import evaluate_relaxations, format_relaxations, optimizer_note

            pairs = relaxation_pairs(structures, where=str(path))
            method = labelling_method(pairs, str(path)) if args.check_method else None
            metrics = evaluate_relaxations(MLFFCalculator(model), pairs, args.fmax, args.relax_steps,
                                           batched=not args.one_at_a_time, method=method)
            print(f"  {format_relaxations(metrics, 'one at a time' if args.one_at_a_time else 'batched')}")
            note = optimizer_note(pairs, args.fmax)
            if note and not args.check_method:
                print(f"  ({note})")
        if args.parity:
            parity_plots(model, structures, args.parity, device, dtype, split=str(path),
                         caption=f"mlff eval {args.model} {path}")
    return 0


COMMANDS = [
    Command(("train",), "train a potential from a YAML config", _train_arguments, _train),
    Command(("eval",), "energy/force errors of a model on labelled data, with parity plots", _eval_arguments, _eval),
]
