"""`mlff bench smoothness`: the bond-scan residual measures the third derivative, and the command runs."""

import re

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.morse import MorsePotential

from mlff.bench.smoothness import bond_scan, bonds
from mlff.cli import main
from mlff.errors import ConfigError
from mlff.testing.structures import ethanol


def morse_third_derivative(r, epsilon=1.0, rho0=6.0, r0=1.0):
    """d³/dr³ of epsilon (exp(-2a(r - r0)) - 2 exp(-a(r - r0))), a = rho0 / r0."""
    a = rho0 / r0
    return epsilon * (-8 * a**3 * np.exp(-2 * a * (r - r0)) + 2 * a**3 * np.exp(-a * (r - r0)))


def test_residual_gives_the_third_derivative_of_a_morse_bond():
    """On a Morse dimer (ASE's calculator, inside its inner cutoff) the largest residual and where it
    sits give |E'''| within 1 % of the analytic value there, and it falls as h³."""
    dimer = Atoms("H2", positions=[[0, 0, 0], [0, 0, 1.0]])
    calc = MorsePotential(rcut1=3.0, rcut2=4.0)
    coarse = bond_scan(calc, dimer, 0, 1, -0.1, 0.3, 0.01)
    fine = bond_scan(calc, dimer, 0, 1, -0.1, 0.3, 0.005)
    residual, where = coarse.worst
    assert coarse.third_derivative == pytest.approx(abs(morse_third_derivative(1.0 + where)), rel=1e-2)
    assert 7.5 < residual / fine.worst[0] < 8.5  # h^3


def test_bonds_to_hydrogen_and_bad_bonds():
    atoms = molecule("CH3CH2OH")
    found = bonds(atoms, None)
    assert sorted(j for _, j in found) == [k for k in range(len(atoms)) if atoms.numbers[k] == 1]
    assert all(atoms.numbers[i] != 1 and atoms.get_distance(i, j) < 1.2 for i, j in found)
    assert bonds(atoms, ["0-3"]) == [(0, 3)]
    for bad in (["0-0"], ["0-99"], ["a-b"]):
        with pytest.raises(ConfigError, match="bond"):
            bonds(atoms, bad)


def test_command_prints_both_methods_and_the_ratio(capsys):
    atoms = ethanol()
    i, j = bonds(atoms, None)[0]
    assert main(["bench", "smoothness", "--potential", "ethanol-xtb", "--bonds", f"{i}-{j}",
                 "--start", "-0.05", "--stop", "0.1", "--step", "0.05"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\d+(\.\d+)?(e-?\d+)? meV\s+[+-]\d\.\d\dÅ\s+\S+ \|\s+\S+ meV\s+[+-]\d\.\d\dÅ\s+\S+ \| \d+\.\d\dx", out)
    assert "largest ratio" in out
