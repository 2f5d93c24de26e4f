"""The training configuration (``mlff train config.yaml``), mapped onto dataclasses.

Example::

    data: {train: [ethanol.xyz], split: {val: 0.1, test: 0.1, seed: 0}}
    model: {name: equiformer_v2, preset: small}
    loss: {kind: mae, stage_two_fraction: 0.75}  # weights: DEFAULT_WEIGHTS[kind]
    optim: {lr: 0.003, schedule: cosine, warmup_steps: 100, ema_decay: 0.99}
    epochs: 50
    batch_size: 4
    output: runs/ethanol

Choices (``loss.kind``, ``optim.schedule``, ``dtype``, ``val_metric``) are checked when the file is
read; relations between fields in :meth:`TrainConfig.check` and ``__post_init__``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mlff.config import load_yaml
from mlff.data.dataset import split_size
from mlff.data.labels import LabelKeys
from mlff.errors import ConfigError
from mlff.models.registry import model_config

ValMetric = Literal["loss", "energy_mae", "energy_rmse", "force_mae", "force_rmse", "stress_mae", "stress_rmse"]


@dataclass
class SplitConfig:
    val: float = 0.1  # fraction in [0, 1) or a whole count of structures
    test: float = 0.1
    seed: int = 0

    def __post_init__(self):
        split_size(self.val, "val")
        split_size(self.test, "test")


@dataclass
class AdsorptionConfig:
    """Train on adsorption energies, E - E_slab - sum of gas-phase references of the adsorbate's atoms
    (tag 2), instead of total energies (:mod:`mlff.data.adsorption`)."""

    references: dict = field(default_factory=dict)  # element symbol -> eV
    slab_energy_key: str = "slab_energy"  # info key of the clean slab's energy in each frame


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)  # files; split into train/val/test unless val is given
    val: list[str] | None = None
    test: list[str] | None = None
    # files added to the training part only, after the split of ``train`` (e.g. hot or rattled frames
    # that should not enter validation or test)
    extra_train: list[str] = field(default_factory=list)
    keys: LabelKeys = field(default_factory=LabelKeys)
    split: SplitConfig = field(default_factory=SplitConfig)
    # read frames on demand instead of all at once (extxyz, .traj, .aselmdb, .lmdb): for data larger
    # than memory; graphs are then built per use, not cached
    lazy: bool = False
    workers: int = 0  # DataLoader processes that read and build the training batches (0: the training process)
    adsorption: AdsorptionConfig | None = None  # None: total energies


@dataclass
class ModelConfig:
    name: str = "equiformer_v2"
    preset: str | None = "small"
    options: dict = field(default_factory=dict)  # overrides of the preset


# Default weights per loss kind, (energy, forces, stage-two energy, stage-two forces): each term is the
# mean penalty of per-atom energies (eV) or force components (eV/Å). MSE: forces x30 beat x10 (12.3 vs
# 13.9 meV/Å test force MAE on ethanol, same budget). MAE: the same balance of gradients at a trained
# model's errors (about 1e-4 eV/atom and 1e-2 eV/Å); with the small preset it beat MSE on malonaldehyde
# (7.8 vs 8.5 meV/Å test force MAE, 24 core-minutes; README, Measured: accuracy).
DEFAULT_WEIGHTS = {"mse": (1000.0, 30.0, 3000.0, 30.0), "huber": (1000.0, 30.0, 3000.0, 30.0),
                   "mae": (1.0, 2.0, 3.0, 2.0)}


@dataclass
class LossConfig:
    """Defaults: the best of ``mlff bench accuracy``'s ablations (README, Measured: accuracy). Weights
    left unset take :data:`DEFAULT_WEIGHTS` of the loss ``kind``."""

    kind: Literal["mse", "mae", "huber"] = "mae"
    huber_delta: float = 0.01
    energy_weight: float | None = None  # on the per-atom energy (eV); forces in eV/Å
    forces_weight: float | None = None
    stress_weight: float = 0.0
    stage_two_fraction: float | None = 0.75  # the last 25 % of steps use the weights below (None: off)
    stage_two_energy_weight: float | None = None
    stage_two_forces_weight: float | None = None
    # "free": leave the forces of atoms held by FixAtoms out of the loss (fairchem's train_on_free_atoms;
    # OC20 scores free atoms only); "all": every atom with a force label (the fixed atoms' raw forces
    # are physical labels too)
    forces_on: Literal["all", "free"] = "all"

    def __post_init__(self):
        names = ("energy_weight", "forces_weight", "stage_two_energy_weight", "stage_two_forces_weight")
        for name, default in zip(names, DEFAULT_WEIGHTS[self.kind]):
            if getattr(self, name) is None:
                setattr(self, name, default)
        for name in (*names, "stress_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass
class OptimConfig:
    lr: float = 3e-3
    weight_decay: float = 0.0
    schedule: Literal["cosine", "plateau", "constant"] = "cosine"
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    clip_grad: float | None = 10.0
    ema_decay: float | None = 0.99


@dataclass
class EMPPConfig:
    """Equivariant masked position prediction (:mod:`mlff.train.empp`); defaults follow the paper."""

    masks: int = 1  # atoms masked per structure, each in its own copy (3 did better than 1 in the study)
    # w_EMPP. The paper uses 1 (QM9) and 50 (MD17) next to L1 losses of normalised labels; next to
    # mlff's MSE loss (eV, eV/Å, forces x10) 1 swamps the force term and costs 9-13 % force MAE, while
    # 0.1 with 3 masks was the best of 0.01/0.1/1 (mlff bench empp-study, see the README). That study
    # used loss kind mse; next to the MAE loss (the default since) it has not been repeated.
    weight: float = 0.1
    pretrain: bool = False  # label-free: EMPP is the only loss and data need no labels
    encode_energy: bool = True  # tell the masked copy its energy label (when the data has one)
    encode_forces: bool = True  # ...and the masked atom's force label
    bins: int = 128  # radius bins from r_min to the cutoff
    r_min: float = 0.9  # Å
    sigma: float = 0.5  # Å, width of the radius target
    tau: float = 0.1  # temperature of the predicted distributions
    target_tau: float = 0.1  # temperature of the direction target (see the module docs)
    sphere_points: int = 10_000  # Fibonacci points for the direction distribution (paper: ~100x100)
    hidden_channels: int = 64
    out_channels: int = 32


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    empp: EMPPConfig | None = None  # auxiliary loss or pre-training
    init_from: str | None = None  # start from the network weights of this checkpoint (fine-tuning)
    e0: dict | str = "fit"  # "fit" (least squares on the train set) or {Z: eV}
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 4  # 4 beat 8 in the same time (12.9 vs 13.9 meV/Å on ethanol)
    val_every: int = 1  # epochs
    checkpoint_every: int = 100  # steps
    device: str = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    # what picks best.pt and drives the plateau schedule: the training loss (see mlff.train.trainer)
    # or one of the validation errors
    val_metric: ValMetric = "loss"
    seed: int = 0
    output: str = "run"
    progress: bool = True

    def check(self) -> "TrainConfig":
        if not self.data.train:
            raise ConfigError("data.train must list at least one file")
        model_config(self.model.name, self.model.preset, where="model.options", **self.model.options)
        if self.data.workers < 0:
            raise ConfigError(f"data.workers must be >= 0, got {self.data.workers}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be >= 1")
        if self.empp is not None:
            e = self.empp
            if e.masks < 1 or e.weight < 0 or e.bins < 2 or e.sphere_points < 4:
                raise ConfigError("empp: masks >= 1, weight >= 0, bins >= 2 and sphere_points >= 4 are required")
            if min(e.sigma, e.tau, e.target_tau, e.r_min) <= 0:
                raise ConfigError("empp: sigma, tau, target_tau and r_min must be > 0")
        if self.val_metric.startswith("stress") and not self.loss.stress_weight > 0:
            raise ConfigError(f"val_metric {self.val_metric} needs stress in the loss (loss.stress_weight > 0)")
        if self.empp is not None and self.empp.pretrain and self.val_metric != "loss":
            raise ConfigError(f"val_metric {self.val_metric}: EMPP pre-training has no labels; only 'loss' applies")
        if isinstance(self.e0, str) and self.e0 != "fit":
            raise ConfigError(f"e0 must be 'fit' or a mapping {{Z: energy}}, got {self.e0!r}")
        return self


def load_config(path) -> TrainConfig:
    config = load_yaml(TrainConfig, path)
    try:
        return config.check()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
