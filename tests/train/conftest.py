"""A small real GFN2-xTB ethanol data set for the training tests."""

import pytest

from mlff.data.formats import write_structures
from mlff.data.generate import generate_md17


@pytest.fixture(scope="session")
def xtb_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ethanol.xyz"
    frames = generate_md17("ethanol", 40, temperature=500, interval=10, equilibration=100, seed=3, progress=False)
    write_structures(path, frames)
    return path
