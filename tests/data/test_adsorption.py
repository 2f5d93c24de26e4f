"""Adsorption-energy targets: OC20's referenced energies from generated EMT data."""

from __future__ import annotations

import pytest
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.optimize import BFGS

from mlff.data.adsorption import adsorption_energy, to_adsorption
from mlff.data.generate.oc20 import clean_slab_energy, emt_gas_references, generate_oc20
from mlff.data.labels import get_labels
from mlff.errors import DataError


@pytest.fixture(scope="module")
def relaxed_co():
    frames = generate_oc20("Cu", "111", "CO", n_md=0, n_relax=3, n_relax_paths=1, size=(2, 2), layers=3, fixed_layers=1,
                           seed=3, progress=False)
    return frames[-1]  # the end of the relaxation


def test_generated_frames_carry_the_relaxed_clean_slab_energy(relaxed_co):
    assert relaxed_co.info["slab_energy"] == clean_slab_energy("Cu", "111", size=(2, 2), layers=3, fixed_layers=1)
    # options as YAML gives them (a list) reach the same cached value
    assert relaxed_co.info["slab_energy"] == clean_slab_energy("Cu", 111, size=[2, 2], layers=3, fixed_layers=1)
    assert relaxed_co.info["slab_energy"] > 0  # EMT's zero is the bulk crystal: a slab costs its surface energy


def test_co_adsorption_energy_is_its_binding_energy_against_gas_phase_co(relaxed_co):
    gas = molecule("CO")
    gas.calc = EMT()
    BFGS(gas, logfile=None).run(fmax=0.01)
    references = emt_gas_references()
    assert references["C"] + references["O"] == pytest.approx(gas.get_potential_energy(), abs=1e-12)
    references.pop("H")  # the caller's own dict: the next call is whole again
    assert "H" in emt_gas_references()
    e_ads = adsorption_energy(relaxed_co, references)
    expected = relaxed_co.get_potential_energy() - relaxed_co.info["slab_energy"] - gas.get_potential_energy()
    assert e_ads == pytest.approx(expected, abs=1e-9) and e_ads < 0  # CO binds to Cu(111)
    converted = to_adsorption(references)(relaxed_co, "frame 0")
    assert converted.get_potential_energy() == pytest.approx(e_ads)
    assert converted.info["total_energy"] == relaxed_co.get_potential_energy()
    assert (get_labels(converted)["forces"] == get_labels(relaxed_co)["forces"]).all()


def test_what_is_missing_is_named(relaxed_co):
    with pytest.raises(DataError, match=r"frame 7: no gas-phase reference energy for adsorbate element\(s\) C "
                                        r"\(references given for O\)"):
        adsorption_energy(relaxed_co, {"O": -1.0}, where="frame 7")
    with pytest.raises(DataError, match=r"no clean-slab energy under info key 'E_slab'"):
        adsorption_energy(relaxed_co, emt_gas_references(), slab_energy_key="E_slab")
    bare = relaxed_co.copy()
    bare.calc = relaxed_co.calc
    bare.set_tags(0)
    with pytest.raises(DataError, match=r"no adsorbate atoms \(tag 2\)"):
        adsorption_energy(bare, emt_gas_references())
