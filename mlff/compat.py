"""Differences between the library versions mlff supports, bridged in one place."""

try:  # ase >= 3.29
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # ase < 3.29: the same Maxwell-Boltzmann draw under its old name
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

__all__ = ["thermalize_momenta"]
