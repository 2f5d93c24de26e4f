"""The YAML deck that describes an MD run or a relaxation (``mlff md deck.yaml``).

Example (``md/ethanol_nve.yaml``)::

    structure: {system: "md17:ethanol"}
    potential: {model: ethanol-xtb}
    md: {ensemble: nve, timestep: 0.5, steps: 2000, temperature: 300, seed: 0}
    output: {trajectory: ethanol_nve.xyz, interval: 10, log: ethanol_nve.log, plot: ethanol_nve.png}

Units: fs, K, eV/Å; ``pressure`` in GPa. Unknown keys are errors that name the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlff.config import load_yaml
from mlff.errors import ConfigError

ENSEMBLES = ("nve", "langevin", "nose_hoover", "npt")
OPTIMIZERS = ("BFGS", "FIRE", "LBFGS")


@dataclass
class StructureSpec:
    system: str | None = None  # built-in: "md17:<molecule>" or "oc20:<adsorbate>/<metal>(<facet>)"
    file: str | None = None  # any file ase.io reads
    index: int = -1  # frame of ``file``
    builder: str | None = None  # an ase.build function: molecule, bulk, fcc111...
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    repeat: list[int] | None = None
    fix_bottom_layers: int = 0  # slabs built by ase.build: hold the lowest layers (FixAtoms)


@dataclass
class PotentialSpec:
    model: str | None = None  # checkpoint path or shipped potential name
    preset: str | None = None  # or: an untrained network of this preset (for testing the pipeline)
    species: list[int] = field(default_factory=list)
    seed: int = 0
    device: str = "auto"
    dtype: str | None = None  # float32 | float64
    skin: float = 0.5


@dataclass
class MDSpec:
    ensemble: str = "nve"
    timestep: float = 0.5
    steps: int = 1000
    temperature: float = 300.0  # initial velocities and thermostat target
    friction: float = 0.01  # 1/fs, Langevin
    tdamp: float = 50.0  # fs, Nose-Hoover chain and NPT
    pressure: float = 0.0  # GPa, NPT
    pdamp: float = 500.0  # fs, NPT
    seed: int = 0


@dataclass
class RelaxSpec:
    optimizer: str = "BFGS"
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


@dataclass
class Deck:
    structure: StructureSpec = field(default_factory=StructureSpec)
    potential: PotentialSpec = field(default_factory=PotentialSpec)
    md: MDSpec | None = None
    relax: RelaxSpec | None = None
    output: OutputSpec = field(default_factory=OutputSpec)
    guard: GuardSpec = field(default_factory=GuardSpec)

    def check(self) -> "Deck":
        if (self.md is None) == (self.relax is None):
            raise ConfigError("a deck needs exactly one of 'md' or 'relax'")
        if self.md and self.md.ensemble not in ENSEMBLES:
            raise ConfigError(f"md.ensemble {self.md.ensemble!r} is not one of {', '.join(ENSEMBLES)}")
        if self.relax and self.relax.optimizer not in OPTIMIZERS:
            raise ConfigError(f"relax.optimizer {self.relax.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.md and (self.md.steps < 1 or self.md.timestep <= 0):
            raise ConfigError("md.steps must be >= 1 and md.timestep > 0")
        if self.output.interval < 1 or self.output.log_interval < 1:
            raise ConfigError("output.interval and output.log_interval must be >= 1")
        if (self.potential.model is None) == (self.potential.preset is None):
            raise ConfigError("potential needs exactly one of 'model' (checkpoint or name) or 'preset'")
        specs = [self.structure.system, self.structure.file, self.structure.builder]
        if sum(s is not None for s in specs) != 1:
            raise ConfigError("structure needs exactly one of 'system', 'file' or 'builder'")
        return self


def load_deck(path) -> Deck:
    return load_yaml(Deck, path).check()
