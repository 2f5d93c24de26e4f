"""The YAML deck that describes an MD run or a relaxation (``mlff md deck.yaml``).

Example (``md/ethanol_nve.yaml``)::

    structure: {system: "md17:ethanol"}
    potential: {model: ethanol-xtb}
    md: {ensemble: nve, timestep: 0.5, steps: 2000, temperature: 300, seed: 0}
    output: {trajectory: ethanol_nve.xyz, interval: 10, log: ethanol_nve.log, plot: ethanol_nve.png}

Many structures run together (one model call per step for all of them) when the deck gives
``structures:``, a list of structure entries, each with an optional ``copies:`` count; outputs are
then written per structure (``run.xyz`` becomes ``run.0.xyz``, ``run.1.xyz``...). A batch runs
``nve`` or ``langevin`` MD, or a FIRE relaxation of the positions.

Units: fs, K, eV/Å; ``pressure`` in GPa. Unknown keys, wrong types and out-of-range values are
errors that name the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mlff.config import load_yaml
from mlff.errors import ConfigError
from mlff.models.registry import MODELS, model_config

Ensemble = Literal["nve", "langevin", "nose_hoover", "npt"]
Optimizer = Literal["BFGS", "FIRE", "LBFGS"]


@dataclass
class StructureSpec:
    system: str | None = None  # built-in: "md17:<molecule>" or "oc20:<adsorbate>/<metal>(<facet>)"
    file: str | None = None  # any file ase.io reads
    index: int = -1  # frame of ``file``
    builder: str | None = None  # an ase.build function: molecule, bulk, fcc111...
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    copies: int = 1  # in a batch ('structures'): this many independent replicas
    repeat: list[int] | None = None
    fix_bottom_layers: int = 0  # slabs built by ase.build: hold the lowest layers (FixAtoms)


@dataclass
class PotentialSpec:
    model: str | None = None  # checkpoint path or shipped potential name
    preset: str | None = None  # or: an untrained network of this preset (for testing the pipeline)...
    name: str = "equiformer_v2"  # ...of this registered model
    options: dict = field(default_factory=dict)  # ...with these overrides of the preset's config
    species: list[int] = field(default_factory=list)  # ...for these elements (default: the structure's)
    seed: int = 0
    device: str = "auto"
    dtype: Literal["float32", "float64"] | None = None
    skin: float = 0.5
    compile: bool = False  # torch.compile the network (MLFFCalculator's compile=True)
    chunk: int | Literal["auto"] | None = "auto"  # edges per chunk for large systems (MLFFCalculator's chunk)

    def __post_init__(self):
        if self.name not in MODELS:
            raise ConfigError(f"name {self.name!r} is not a registered model; one of {', '.join(map(repr, MODELS))}")
        if "species" in self.options:
            raise ConfigError("options.species: give the elements as potential.species")
        if self.options and self.model is not None:
            raise ConfigError("options: only for an untrained network ('preset'); a checkpoint has its own config")


@dataclass
class MDSpec:
    ensemble: Ensemble = "nve"
    timestep: float = 0.5
    steps: int = 1000
    temperature: float = 300.0  # thermostat target, and initial velocities unless initial_temperature is given
    initial_temperature: float | None = None  # Maxwell-Boltzmann velocities at this temperature
    friction: float = 0.01  # 1/fs, Langevin
    tdamp: float = 50.0  # fs, Nose-Hoover chain and NPT
    pressure: float = 0.0  # GPa, NPT
    pdamp: float = 500.0  # fs, NPT
    seed: int = 0


@dataclass
class RelaxSpec:
    optimizer: Optimizer = "BFGS"
    fmax: float = 0.05
    steps: int = 500
    cell: bool = False  # relax the cell too (FrechetCellFilter)


@dataclass
class OutputSpec:
    trajectory: str = "trajectory.xyz"
    interval: int = 10
    log: str = "run.log"
    log_interval: int = 10
    plot: str | None = "run.png"
    progress: bool = True


@dataclass
class GuardSpec:
    max_force: float = 50.0  # eV/Å
    min_distance: float = 0.4  # Å
    max_temperature: float = 5000.0  # K
    max_volume_ratio: float = 10.0  # a cell (NPT, cell relaxation) may grow or shrink by this factor at most


@dataclass
class Deck:
    structure: StructureSpec = field(default_factory=StructureSpec)
    structures: list[StructureSpec] = field(default_factory=list)  # a batch, run together (mlff.dynamics.batched)
    potential: PotentialSpec = field(default_factory=PotentialSpec)
    md: MDSpec | None = None
    relax: RelaxSpec | None = None
    output: OutputSpec = field(default_factory=OutputSpec)
    guard: GuardSpec = field(default_factory=GuardSpec)

    def check(self) -> "Deck":
        if (self.md is None) == (self.relax is None):
            raise ConfigError("a deck needs exactly one of 'md' or 'relax'")
        md, relax, out, guard = self.md, self.relax, self.output, self.guard
        if md:
            _positive("md.timestep", md.timestep)
            _at_least("md.steps", md.steps, 1)
            _at_least("md.temperature", md.temperature, 0)
            if md.initial_temperature is not None:
                _at_least("md.initial_temperature", md.initial_temperature, 0)
            _positive("md.friction", md.friction)
            _positive("md.tdamp", md.tdamp)
            _positive("md.pdamp", md.pdamp)
            if md.ensemble in ("nose_hoover", "npt"):
                # the chain (and barostat) masses are proportional to the temperature
                _positive(f"md.temperature (ensemble {md.ensemble})", md.temperature)
        if relax:
            _positive("relax.fmax", relax.fmax)
            _at_least("relax.steps", relax.steps, 1)
        _at_least("output.interval", out.interval, 1)
        _at_least("output.log_interval", out.log_interval, 1)
        _at_least("potential.skin", self.potential.skin, 0)
        _positive("guard.max_force", guard.max_force)
        _at_least("guard.min_distance", guard.min_distance, 0)
        _positive("guard.max_temperature", guard.max_temperature)
        _at_least("guard.max_volume_ratio", guard.max_volume_ratio, 1)
        if (self.potential.model is None) == (self.potential.preset is None):
            raise ConfigError("potential needs exactly one of 'model' (checkpoint or name) or 'preset'")
        if self.potential.preset is not None:  # the untrained network's options, checked before any run
            p = self.potential
            species = {"species": p.species} if p.species else {}
            model_config(p.name, p.preset, where="potential.options", **p.options, **species)
        if self.structures:
            self._check_batch()
        else:
            _one_source("structure", self.structure)
        return self

    def _check_batch(self) -> None:
        if any(v is not None for v in (self.structure.system, self.structure.file, self.structure.builder)):
            raise ConfigError("give either 'structure' or 'structures' (a batch), not both")
        for i, spec in enumerate(self.structures):
            _one_source(f"structures[{i}]", spec)
            _at_least(f"structures[{i}].copies", spec.copies, 1)
        if self.md and self.md.ensemble not in BATCH_ENSEMBLES:
            raise ConfigError(f"md.ensemble {self.md.ensemble!r}: a batch ('structures') runs "
                              f"{' or '.join(BATCH_ENSEMBLES)}")
        if self.relax and (self.relax.optimizer != "FIRE" or self.relax.cell):
            raise ConfigError("relax: a batch ('structures') relaxes positions with FIRE only "
                              f"(got optimizer {self.relax.optimizer!r}, cell {self.relax.cell})")


#: what the batched driver (mlff.dynamics.batched) runs
BATCH_ENSEMBLES = ("nve", "langevin")


def _one_source(key: str, spec: StructureSpec) -> None:
    if sum(s is not None for s in (spec.system, spec.file, spec.builder)) != 1:
        raise ConfigError(f"{key} needs exactly one of 'system', 'file' or 'builder'")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{key} must be > 0, got {value}")


def _at_least(key: str, value: float, low: float) -> None:
    if not value >= low:
        raise ConfigError(f"{key} must be >= {low}, got {value}")


def load_deck(path) -> Deck:
    deck = load_yaml(Deck, path)
    try:
        return deck.check()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
