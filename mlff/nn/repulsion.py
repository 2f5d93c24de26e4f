"""A short-range pair repulsion that keeps atoms apart where no training data reaches.

A learned energy has no reason to rise when two atoms come closer than any pair in its data: the
co-cu111-emt potential, scanned along the C–O bond, is 1 eV above the bound molecule at 0.5 Å where
EMT is 10.7 eV above, and an NVE run that brought C and O together collapsed them. This term adds
the screened nuclear repulsion of Ziegler, Biersack and Littmark (ZBL),

``V(r) = k Zi Zj / r * phi(r / a)``,  ``a = 0.46850 / (Zi^0.23 + Zj^0.23)`` Å,

multiplied by the polynomial envelope :class:`~mlff.nn.radial.PolynomialEnvelope` on ``r / r_in``
with ``r_in = factor * (R_i + R_j)`` (ASE's covalent radii). It is exactly zero, with its first and
second derivatives, from ``r_in`` on, so with ``factor`` below the closest pair of the data
(about 0.61 of the covalent-radius sum in the slab data) the network fits the data alone and the
term only acts inside the hole. Each pair's energy is split evenly between its two atoms.
"""

from __future__ import annotations

import torch
from ase.data import covalent_radii
from ase.units import Bohr, Hartree
from torch import nn

from mlff.nn.radial import PolynomialEnvelope

#: e^2 / (4 pi eps0) in eV Å
COULOMB = Hartree * Bohr
#: the ZBL universal screening function: sum of c exp(-d x)
ZBL_C = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_D = (3.19980, 0.94229, 0.40290, 0.20162)
ZBL_LENGTH = 0.46850  # Å (0.8854 Bohr)


def zbl_energy(zi: torch.Tensor, zj: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The unswitched ZBL pair energy (eV) of atomic numbers ``zi``, ``zj`` at distances ``r`` (Å)."""
    zi, zj = zi.to(r.dtype), zj.to(r.dtype)
    x = r * (zi ** 0.23 + zj ** 0.23) / ZBL_LENGTH
    phi = sum(c * torch.exp(-d * x) for c, d in zip(ZBL_C, ZBL_D))
    return COULOMB * zi * zj / r * phi


def repulsion_reach(species: list[int], factor: float) -> float:
    """The largest distance (Å) at which any pair of ``species`` feels the term with this ``factor``."""
    return 2 * float(factor) * max(float(covalent_radii[int(z)]) for z in species)


class PairRepulsion(nn.Module):
    """ZBL times a smooth switch that ends at ``factor`` times the covalent-radius sum (see the module
    docstring). ``forward`` gives per-atom energies from the edges into each atom."""

    def __init__(self, species: list[int], factor: float, exponent: int = 5):
        super().__init__()
        self.factor = float(factor)
        self.reach = repulsion_reach(species, factor)  # Å: the largest distance any pair feels it
        z = torch.tensor(sorted(species), dtype=torch.long)
        self.register_buffer("numbers", z, persistent=False)
        self.register_buffer("radii", torch.as_tensor(covalent_radii[z.numpy()], dtype=torch.float64),
                             persistent=False)
        self.switch = PolynomialEnvelope(1.0, exponent)

    def forward(self, species: torch.Tensor, lengths: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Per-atom energies ``[N]`` (eV) for species indices ``[N]``: half of ``V`` over the edges into
        each atom (a graph holds each pair as two edges)."""
        sender, receiver = edge_index
        inner = self.factor * (self.radii[species[sender]] + self.radii[species[receiver]]).to(lengths.dtype)
        near = lengths < inner  # the rest contribute exactly zero; skipping them keeps r -> 0 edges out
        r = lengths[near]
        pair = zbl_energy(self.numbers[species[sender[near]]], self.numbers[species[receiver[near]]], r)
        pair = pair * self.switch(r / inner[near])
        out = lengths.new_zeros(species.shape[0])
        return out.index_add(0, receiver[near], 0.5 * pair)
