"""The model test-suite: the physical checks any energy model, device or kernel backend must pass.

* :func:`check_model` runs every check in one call and returns what each measured;
* :class:`ModelSuite` (``mlff.testing.suite``, needs pytest) runs them as pytest tests;
* :mod:`mlff.testing.checks` holds the checks themselves.

Checked: forces and stress equal finite differences of the energy; a force loss reaches every
parameter (second derivatives); rotation, translation, permutation and lattice-shift invariance in
float64 and float32; smoothness when atoms cross the cutoff; forces linear near a symmetric configuration; supercell extensivity; bitwise
determinism; isolated atoms; batching; unknown elements; float32 against float64.
"""

from mlff.testing.checks import ModelCheckError
from mlff.testing.runner import Tolerances, check_model, perturbed_model

__all__ = ["ModelCheckError", "Tolerances", "check_model", "perturbed_model"]


def __getattr__(name):
    if name == "ModelSuite":  # imports pytest, so only on request
        from mlff.testing.suite import ModelSuite

        return ModelSuite
    raise AttributeError(f"module 'mlff.testing' has no attribute {name!r}")
