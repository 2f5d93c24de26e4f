"""The labelling methods by name: the calculator each name gives is the one the generators used."""

from __future__ import annotations

import pytest
from ase.build import fcc111, molecule
from ase.calculators.emt import EMT

from mlff.data.generate.md17 import xtb_calculator
from mlff.data.generate.methods import reference_calculator
from mlff.errors import DataError


@pytest.mark.parametrize("name", ["EMT", "emt", " Emt "])
def test_emt_by_name(name):
    slab = fcc111("Cu", (2, 2, 3), vacuum=5.0)
    slab.calc = reference_calculator(name)
    expected = slab.copy()
    expected.calc = EMT()
    assert slab.get_potential_energy() == expected.get_potential_energy()


@pytest.mark.parametrize("name", ["GFN2-xTB", "xtb", "gfn2-xtb"])
def test_xtb_by_name(name):
    pytest.importorskip("tblite")
    water = molecule("H2O")
    water.calc = reference_calculator(name)
    expected = water.copy()
    expected.calc = xtb_calculator()
    assert water.get_potential_energy() == pytest.approx(expected.get_potential_energy(), abs=1e-8)


def test_an_unknown_method_is_named():
    with pytest.raises(DataError, match="unknown reference method 'DFT': use one of GFN2-xTB, EMT"):
        reference_calculator("DFT")
