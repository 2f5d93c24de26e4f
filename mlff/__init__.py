"""mlff: machine-learned force fields with conservative EquiformerV2 and EST potentials."""

__version__ = "0.1.0"
