"""``mlff bench ...``: the benchmarks (speed is measured here, never in tests)."""

from __future__ import annotations

from mlff.bench import (accuracy, data_speed, empp, est, kernels, kfold, lammps_speed, md_speed, model_speed, neighbors,
                        smoothness, soak, symmetry)
from mlff.cli import Command

COMMANDS = [
    Command(("bench", "neighbors"), "neighbour-list time vs number of atoms (matscipy, torch, ASE)",
            neighbors.add_arguments, neighbors.main),
    Command(("bench", "model"), "ms per energy+forces evaluation and parameter counts of the presets",
            model_speed.add_arguments, model_speed.main),
    Command(("bench", "md"), "E+F and MD steps/s vs atoms (eager, compiled), slope, memory; MACE and fairchem in the same run",
            md_speed.add_arguments, md_speed.main),
    Command(("bench", "kernels"), "each hot op and the model per kernel implementation: ms, GB/s, speed-ups",
            kernels.add_arguments, kernels.main),
    Command(("bench", "symmetry"), "rotation-invariance errors of the presets in float64 and float32",
            symmetry.add_arguments, symmetry.main),
    Command(("bench", "empp-cost"), "time of a training step with 0..n EMPP masks (ratio to the plain step)",
            empp.add_cost_arguments, empp.cost),
    Command(("bench", "empp-study"), "train with and without EMPP (and EMPP pre-training) on generated MD17-style data",
            empp.add_study_arguments, empp.study),
    Command(("bench", "est-equivariance"), "rotation errors of untrained EST networks vs sampling and depth (EST Table 5)",
            est.add_equivariance_arguments, est.equivariance),
    Command(("bench", "accuracy"), "test E/F MAE per core-minute of training: mlff recipes and MACE on the same split and budget",
            accuracy.add_arguments, accuracy.main),
    Command(("bench", "est-accuracy"), "EST vs EquiformerV2 at matched presets: test MAE and ms per training step",
            est.add_accuracy_arguments, est.accuracy),
    Command(("bench", "est-kfold"), "k-fold symmetric stars: can one layer tell two orientations apart (EST Table 4)",
            kfold.add_arguments, kfold.main),
    Command(("bench", "smoothness"), "bond scans: path residual and third derivative of a potential next to its reference (xTB, EMT)",
            smoothness.add_arguments, smoothness.main),
    Command(("bench", "lammps"), "mlff lammps on bulk Cu of several sizes, 1 and 2 MPI ranks: s per call, exchange, efficiency, RSS",
            lammps_speed.add_arguments, lammps_speed.main),
    Command(("bench", "data"), "frames/s and peak RSS of extxyz, .aselmdb and OC20 .lmdb, eager and lazy; training with workers",
            data_speed.add_arguments, data_speed.main),
    Command(("bench", "soak"), "long NVE MD of ethanol-xtb: RSS growth, steps/s and energy drift vs the model card",
            soak.add_arguments, soak.main),
]
