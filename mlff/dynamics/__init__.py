"""MD and relaxation driver: YAML deck -> ASE dynamics/optimizers, logs, trajectories, plots, guard."""

from mlff.dynamics.deck import Deck, load_deck
from mlff.dynamics.runner import RunSummary, run_md, run_relax

__all__ = ["Deck", "RunSummary", "load_deck", "run_md", "run_relax"]
