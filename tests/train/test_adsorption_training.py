"""`data.adsorption` in a training config: the targets are adsorption energies, in memory or lazily."""

from __future__ import annotations

import pickle

import pytest
import yaml

from mlff.data.formats import read_structures, write_structures
from mlff.data.generate.oc20 import emt_gas_references, generate_oc20
from mlff.errors import DataError
from mlff.train.config import load_config
from mlff.train.data import load_training_data


@pytest.fixture(scope="module")
def co_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ads") / "co.xyz"
    write_structures(path, generate_oc20("Cu", "111", "CO", n_md=8, n_relax=0, interval=5, equilibration=5,
                                         size=(2, 2), layers=3, fixed_layers=1, seed=0, progress=False))
    return path


def cfg(tmp_path, path, lazy, references):
    data = {"train": [str(path)], "split": {"val": 2, "test": 2, "seed": 0}, "lazy": lazy,
            "adsorption": {"references": references}}
    file = tmp_path / "config.yaml"
    file.write_text(yaml.safe_dump({"data": data, "output": str(tmp_path / "run")}))
    return load_config(file)


@pytest.mark.parametrize("lazy", [False, True])
def test_training_targets_are_adsorption_energies(tmp_path, co_file, lazy):
    references = emt_gas_references()
    data = load_training_data(cfg(tmp_path, co_file, lazy, {k: references[k] for k in ("C", "O")}))
    totals = {round(a.positions.sum(), 8): a for a in read_structures(co_file)}
    for atoms in list(data.train) + list(data.test):
        total = totals[round(atoms.positions.sum(), 8)]
        expected = total.get_potential_energy() - total.info["slab_energy"] - references["C"] - references["O"]
        assert atoms.get_potential_energy() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("lazy", [False, True])
def test_a_missing_reference_names_the_file_frame_and_element(tmp_path, co_file, lazy):
    with pytest.raises(DataError, match=rf"frame \d+ of {co_file}: no gas-phase reference energy for adsorbate "
                                        r"element\(s\) C"):
        data = load_training_data(cfg(tmp_path, co_file, lazy, {"O": -1.0}))
        data.train[0]  # lazily read data fails when the frame is read


def test_lazy_adsorption_data_pickles_for_spawned_workers(tmp_path, co_file):
    references = emt_gas_references()
    data = load_training_data(cfg(tmp_path, co_file, True, {k: references[k] for k in ("C", "O")}))
    copy = pickle.loads(pickle.dumps(data.train))
    assert copy[0].get_potential_energy() == pytest.approx(data.train[0].get_potential_energy(), abs=1e-12)
