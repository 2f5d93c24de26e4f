"""Data and model set-up for training: read files, split, fit E0 and scales, build the network."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ase import Atoms
from ase.data import chemical_symbols

from mlff.data.dataset import make_splits, save_splits
from mlff.data.formats import read_structures
from mlff.data.adsorption import to_adsorption
from mlff.data.lazy import Concat, LazyStructures, Mapped, Subset
from mlff.data.statistics import compute_statistics
from mlff.errors import ConfigError
from mlff.models.checkpoint import load_checkpoint
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network
from mlff.train.config import TrainConfig
from mlff.train.distributed import computed_once

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    train: Sequence[Atoms]  # lists, or lazy sequences (data.lazy)
    val: Sequence[Atoms]
    test: Sequence[Atoms]
    metadata: dict = field(default_factory=dict)
    validated: bool = False  # every frame already passed validate_atoms where it was read


def load_training_data(cfg: TrainConfig) -> TrainingData:
    d = cfg.data
    require = () if cfg.empp is not None and cfg.empp.pretrain else ("energy",)  # pre-training needs no labels
    transform = None if d.adsorption is None else to_adsorption(d.adsorption.references, d.adsorption.slab_energy_key)

    def read(files):
        if d.lazy:  # frames stay on disk and are read when used
            parts = [LazyStructures(f, keys=d.keys, require=require) for f in files]
            return Concat([p if transform is None else Mapped(p, transform) for p in parts])
        frames = []
        for f in files:
            part = read_structures(f, keys=d.keys, require=require)
            frames += part if transform is None else [transform(a, f"frame {k} of {f}") for k, a in enumerate(part)]
        return frames

    train = read(d.train)
    if d.val is None:
        splits = make_splits(len(train), d.split.val, d.split.test, d.split.seed)
        save_splits(Path(cfg.output) / "splits", splits)
        val, test, train = (Subset(train, splits[name]) for name in ("val", "test", "train"))
        if not d.lazy:
            val, test, train = list(val), list(test), list(train)
    else:
        val, test = read(d.val), read(d.test or [])
    if d.extra_train:
        extra = read(d.extra_train)
        train = Concat([train, extra]) if d.lazy else train + extra
    metadata = {"train_files": list(d.train), "extra_train_files": list(d.extra_train), "val_files": d.val,
                "test_files": d.test, "split": vars(d.split), "n_train": len(train), "n_val": len(val),
                "n_test": len(test), "seed": cfg.seed}
    return TrainingData(train, val, test, metadata, validated=True)  # the readers validate every frame


def build_model(cfg: TrainConfig, data: TrainingData, species: list[int] | None = None) -> EnergyModel:
    """The network of the config, with E0 fitted on the training set and scales from its statistics.

    With ``init_from`` the network (architecture and weights) comes from that checkpoint, e.g. an
    EMPP pre-training run, and only E0 and the scale are fitted anew.
    """
    options = dict(cfg.model.options)
    cutoff = build_network(cfg.model.name, preset=cfg.model.preset, species=[1], **options).cutoff
    pretrain = cfg.empp is not None and cfg.empp.pretrain
    given = {int(z): float(v) for z, v in cfg.e0.items()} if isinstance(cfg.e0, dict) else None
    if pretrain:  # labels are not used: the energy head waits for fine-tuning, with E0 = 0
        given = dict.fromkeys(range(1, len(chemical_symbols)), 0.0)
    # one pass over the training set (on rank 0 under torchrun): species, E0 (fitted unless given), scales,
    # neighbours per atom
    stats = computed_once(lambda: compute_statistics(data.train, cutoff=cutoff, e0=given, species=species))
    species = species or stats.species
    e0 = {z: stats.e0.get(z, 0.0) for z in species} if given is None else {z: given[z] for z in species if z in given}
    stats = replace(stats, e0=e0)
    options.setdefault("avg_degree", max(stats.avg_num_neighbors, 1.0))
    network = build_network(cfg.model.name, preset=cfg.model.preset, species=species, **options)
    if cfg.init_from:
        network = pretrained_network(cfg.init_from, species)
        data.metadata["init_from"] = str(cfg.init_from)
    warn_if_repulsion_reaches_data(network, stats)
    scale = stats.force_rms or stats.energy_per_atom_std or 1.0
    data.metadata["statistics"] = stats.to_dict()
    return EnergyModel(network, e0=e0, scale=scale)


def warn_if_repulsion_reaches_data(network, stats) -> None:
    """The pair repulsion is meant to act where the data has no pairs; say so when it reaches some."""
    factor = getattr(getattr(network, "config", None), "repulsion", 0.0)
    reached = {pair: ratio for pair, ratio in stats.closest_ratios().items() if ratio < factor}
    if reached:
        listed = ", ".join(f"{pair} at {stats.closest_pairs[pair]:.3f} Å ({ratio:.3f})" for pair, ratio in reached.items())
        logger.warning("the pair repulsion (repulsion: %g of the covalent-radius sum) acts on training pairs: %s; "
                       "the network has to learn to cancel it there", factor, listed)


def pretrained_network(path, species: list[int]):
    """The network stored in checkpoint ``path``; every species in ``species`` must be known to it."""
    network = load_checkpoint(path).network
    missing = sorted(set(species) - set(network.species.species))
    if missing:
        raise ConfigError(f"init_from {path}: the checkpoint's network does not know element(s) "
                          f"{', '.join(chemical_symbols[z] for z in missing)} of the training data")
    return network.train()
