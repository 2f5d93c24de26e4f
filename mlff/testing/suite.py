"""The model test-suite as a pytest class: subclass it and say how to build the network.

::

    from mlff.testing import ModelSuite, Tolerances

    class TestMyModel(ModelSuite):
        tolerances = Tolerances(rotation_energy_rtol=1e-7, rotation_force_atol=1e-4)  # measured aliasing

        def make_network(self, species, cutoff):
            return MyNetwork(species=species, cutoff=cutoff)

pytest then runs every check of :mod:`mlff.testing.checks` on that model for each device this
machine has (CPU, and CUDA where present) and each kernel backend available there (Triton on the
CPU through its interpreter only with ``MLFF_SUITE_INTERPRETED=1``: it is very slow), in float64,
and the symmetry checks in float32 as well. Needs pytest (``pip install mlff[test]``).
"""

from __future__ import annotations

import copy
import os

import pytest
import torch

from mlff.kernels import available_backends, use_backend
from mlff.testing import checks
from mlff.testing.runner import Tolerances, available_devices, perturbed_model
from mlff.testing.structures import SYSTEMS


def _suite_backends(device: str) -> list[str]:
    """Kernel backends the suite runs on ``device``: all available, except Triton interpreted on the CPU
    (one energy + forces evaluation takes about a minute there) unless ``MLFF_SUITE_INTERPRETED=1``."""
    interpreted_ok = os.environ.get("MLFF_SUITE_INTERPRETED") == "1"
    return [b for b in available_backends(device) if device != "cpu" or b == "torch" or interpreted_ok]


_PLACEMENTS = [(device, backend) for device in available_devices() for backend in _suite_backends(device)]
_DTYPES = [pytest.param(torch.float64, id="float64"), pytest.param(torch.float32, id="float32")]


class ModelSuite:
    """Physical checks shared by all models. Subclasses define ``make_network(species, cutoff)``."""

    tolerances = Tolerances()

    def make_network(self, species: list[int], cutoff: float) -> torch.nn.Module:
        raise NotImplementedError

    @pytest.fixture(scope="class", params=_PLACEMENTS, ids=[f"{d}-{b}" for d, b in _PLACEMENTS])
    @classmethod
    def model(cls, request):
        device, backend = request.param
        with use_backend(backend):
            yield perturbed_model(cls().make_network, device)

    @pytest.fixture(scope="class")
    @classmethod
    def model32(cls, model):
        return copy.deepcopy(model).float()

    def _in(self, dtype, model, model32):
        return model if dtype == torch.float64 else model32

    # ------------------------------------------------------------------ derivatives
    @pytest.mark.parametrize("system", list(SYSTEMS))
    def test_forces_are_minus_energy_gradient(self, model, system):
        checks.check_forces(model, SYSTEMS[system]())

    def test_stress_is_strain_derivative(self, model):
        checks.check_stress(model)

    def test_force_loss_reaches_every_parameter(self, model):
        checks.check_second_derivatives(model)

    # ------------------------------------------------------------------ symmetry
    @pytest.mark.parametrize("dtype", _DTYPES)
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_rotation_invariance(self, model, model32, seed, dtype):
        energy, force = self.tolerances.rotation(dtype)
        checks.check_rotation(self._in(dtype, model, model32), seed, energy, force, dtype=dtype)

    @pytest.mark.parametrize("dtype", _DTYPES)
    def test_translation_permutation_and_image_shifts(self, model, model32, dtype):
        energy, force = self.tolerances.translation(dtype)
        checks.check_translation_permutation_images(self._in(dtype, model, model32), energy, force, dtype=dtype)

    def test_supercell_is_extensive_and_wrapping_is_irrelevant(self, model):
        checks.check_extensive(model)

    # ------------------------------------------------------------------ smoothness
    @pytest.mark.parametrize("system", list(SYSTEMS))
    def test_energy_is_smooth_when_atoms_cross_the_cutoff(self, model, system):
        checks.check_smoothness(model, SYSTEMS[system](), self.tolerances.pull_steps)

    def test_forces_are_linear_near_a_symmetric_point(self, model):
        checks.check_linear_near_symmetric_point(model)

    # ------------------------------------------------------------------ conventions
    def test_bitwise_deterministic(self, model):
        checks.check_deterministic(model)

    def test_isolated_atoms_give_reference_energy_and_zero_force(self, model):
        checks.check_isolated_atoms(model)

    def test_batch_equals_single_structures(self, model):
        checks.check_batch(model)

    def test_unknown_element_is_named(self, model):
        checks.check_unknown_element(model)

    def test_float32_agrees_with_float64(self, model):
        checks.check_float32(model)
        assert model.e0.dtype == torch.float64 and next(model.parameters()).dtype == torch.float64
