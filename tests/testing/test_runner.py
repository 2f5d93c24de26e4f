"""``check_model``: one call checks any model, and it does catch a model that breaks the physics."""

import pytest
import torch

from mlff.models.equiformer_v2 import EquiformerV2
from mlff.testing import ModelCheckError, check_model


def tiny(species, cutoff):
    return EquiformerV2(species=species, cutoff=cutoff, num_layers=1, channels=8, lmax=2, mmax=1, heads=2,
                        attn_hidden=8, alpha_channels=4, value_channels=4, ffn_hidden=8, edge_channels=8,
                        num_basis=8, ffn_activation="gate", norm="rms_norm_sh", avg_degree=6.0)


class FacesNorth(torch.nn.Module):
    """A network whose energy depends on which way the edges point (a broken symmetry)."""

    def __init__(self, network):
        super().__init__()
        self.network, self.species, self.cutoff = network, network.species, network.cutoff

    def forward(self, species, vectors, edge_index):
        eps = self.network(species, vectors, edge_index)
        envelope = self.network.envelope(torch.linalg.vector_norm(vectors, dim=1))
        return eps.index_add(0, edge_index[1], 1e-2 * vectors[:, 2] ** 2 * envelope)


def test_a_sound_model_passes_every_check_and_reports_what_was_measured():
    report = check_model(tiny)
    assert {"forces[ethanol]", "stress", "smoothness[slab_with_co]", "rotation[float32, 2]", "float32"} <= set(report)
    assert report["forces[ethanol]"] < 1e-6 and report["rotation[float64, 0]"][0] < 1e-10


def test_a_model_that_breaks_rotation_symmetry_fails_and_is_named():
    with pytest.raises(ModelCheckError) as failure:
        check_model(lambda species, cutoff: FacesNorth(tiny(species, cutoff)), only=["rotation", "forces"])
    message = str(failure.value)
    assert "6 of 8 checks failed" in message and "rotation[float64, 0]: energy changed" in message
    assert "forces[" not in message  # still conservative: only the symmetry is broken


def test_only_must_name_a_check():
    with pytest.raises(ValueError, match="no check starts with"):
        check_model(tiny, only=["nothing"])
