import pytest
import torch
from e3nn import o3

from mlff.so3.spherical_harmonics import spherical_harmonics


@pytest.mark.parametrize("lmax", [0, 1, 2, 4, 8, 10])
def test_equal_to_e3nn(lmax):
    torch.manual_seed(0)
    vec = torch.randn(200, 3, dtype=torch.float64) * 3
    # include the poles and the axes, where angle-based formulas break down
    axes = torch.cat([torch.eye(3), -torch.eye(3)]).double()
    vec = torch.cat([vec, axes])
    ref = o3.spherical_harmonics(list(range(lmax + 1)), vec, normalize=True, normalization="component")
    torch.testing.assert_close(spherical_harmonics(lmax, vec), ref, atol=1e-10, rtol=1e-10)


def test_gradients_finite_at_poles():
    vec = torch.tensor([[0.0, 1.0, 0.0], [0.0, -2.0, 0.0], [1e-9, 1.0, 0.0]], dtype=torch.float64,
                       requires_grad=True)
    spherical_harmonics(6, vec).pow(2).sum().backward()
    assert torch.isfinite(vec.grad).all()


def test_gradient_matches_finite_difference():
    torch.manual_seed(1)
    vec = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: spherical_harmonics(5, v), (vec,))
