"""Data and model set-up for training: read files, split, fit E0 and scales, build the network."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ase import Atoms
from ase.data import chemical_symbols

from mlff.data.dataset import make_splits, save_splits
from mlff.data.formats import read_structures
from mlff.data.statistics import compute_statistics, fit_e0
from mlff.errors import ConfigError
from mlff.models.checkpoint import load_checkpoint
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network
from mlff.train.config import TrainConfig


@dataclass
class TrainingData:
    train: list[Atoms]
    val: list[Atoms]
    test: list[Atoms]
    metadata: dict = field(default_factory=dict)


def load_training_data(cfg: TrainConfig) -> TrainingData:
    d = cfg.data
    require = () if cfg.empp is not None and cfg.empp.pretrain else ("energy",)  # pre-training needs no labels
    read = lambda files: [a for f in files for a in read_structures(f, keys=d.keys, require=require)]  # noqa: E731
    train = read(d.train)
    if d.val is None:
        splits = make_splits(len(train), d.split.val, d.split.test, d.split.seed)
        save_splits(Path(cfg.output) / "splits", splits)
        val, test = [train[i] for i in splits["val"]], [train[i] for i in splits["test"]]
        train = [train[i] for i in splits["train"]]
    else:
        val, test = read(d.val), read(d.test or [])
    metadata = {"train_files": list(d.train), "val_files": d.val, "test_files": d.test, "split": vars(d.split),
                "n_train": len(train), "n_val": len(val), "n_test": len(test), "seed": cfg.seed}
    return TrainingData(train, val, test, metadata)


def build_model(cfg: TrainConfig, data: TrainingData, species: list[int] | None = None) -> EnergyModel:
    """The network of the config, with E0 fitted on the training set and scales from its statistics.

    With ``init_from`` the network (architecture and weights) comes from that checkpoint, e.g. an
    EMPP pre-training run, and only E0 and the scale are fitted anew.
    """
    species = species or sorted({int(z) for a in data.train for z in a.numbers})
    options = dict(cfg.model.options)
    probe = build_network(cfg.model.name, preset=cfg.model.preset, species=species, **options)
    if cfg.empp is not None and cfg.empp.pretrain:
        e0 = {z: 0.0 for z in species}  # labels are not used: the energy head waits for fine-tuning
    elif isinstance(cfg.e0, dict):
        e0 = {int(z): float(v) for z, v in cfg.e0.items()}
    else:
        e0 = fit_e0(data.train, species)
    stats = compute_statistics(data.train, cutoff=probe.cutoff, e0=e0)
    options.setdefault("avg_degree", max(stats.avg_num_neighbors, 1.0))
    network = build_network(cfg.model.name, preset=cfg.model.preset, species=species, **options)
    if cfg.init_from:
        network = pretrained_network(cfg.init_from, species)
        data.metadata["init_from"] = str(cfg.init_from)
    scale = stats.force_rms or stats.energy_per_atom_std or 1.0
    data.metadata["statistics"] = stats.to_dict()
    return EnergyModel(network, e0=e0, scale=scale)


def pretrained_network(path, species: list[int]):
    """The network stored in checkpoint ``path``; every species in ``species`` must be known to it."""
    network = load_checkpoint(path).network
    missing = sorted(set(species) - set(network.species.species))
    if missing:
        raise ConfigError(f"init_from {path}: the checkpoint's network does not know element(s) "
                          f"{', '.join(chemical_symbols[z] for z in missing)} of the training data")
    return network.train()
