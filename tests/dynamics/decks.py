"""Decks for the driver tests: a YAML writer, a tiny untrained network, and a box of atoms."""

from pathlib import Path

import ase.io
import yaml
from ase.build import bulk

# A tiny EquiformerV2 (about 10 ms per force call for 32 atoms on one CPU core): MD for thousands of
# steps stays cheap. Untrained, so its energy is a smooth random function of the positions.
TINY = {"num_layers": 1, "channels": 8, "lmax": 1, "mmax": 1, "heads": 1, "attn_hidden": 8, "alpha_channels": 4,
        "value_channels": 4, "ffn_hidden": 8, "edge_channels": 8, "num_basis": 8, "ffn_activation": "gate",
        "grid_resolution": 6, "cutoff": 4.0}


def write_deck(tmp_path, **sections) -> Path:
    """A deck in ``tmp_path``: ethanol, an untrained small network, quiet output; ``sections`` are
    merged into (mappings) or replace (anything else) the defaults."""
    base = {
        "structure": {"system": "md17:ethanol"},
        "potential": {"preset": "small", "species": [1, 6, 8], "dtype": "float64"},
        "output": {"trajectory": str(tmp_path / "traj.xyz"), "interval": 5, "log": str(tmp_path / "run.log"),
                   "log_interval": 5, "plot": str(tmp_path / "run.png"), "progress": False},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / "deck.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def fcc_box(tmp_path, symbol: str, a: float, rattle: float = 0.1, seed: int = 0) -> str:
    """2x2x2 conventional fcc cells (32 atoms) of lattice constant ``a``, rattled by ``rattle`` Å
    (off the lattice, whose symmetric sites are a special case for equivariant networks), as a file."""
    atoms = bulk(symbol, "fcc", a=a, cubic=True) * (2, 2, 2)
    atoms.rattle(rattle, seed=seed)
    path = tmp_path / f"{symbol}_fcc_{a}.xyz"
    ase.io.write(path, atoms)
    return str(path)
