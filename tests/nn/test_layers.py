"""Unit checks of the equivariant layers: each one commutes with rotations (or rolls)."""

import pytest
import torch
from e3nn import o3

from mlff.kernels import enveloped_softmax
from mlff.kernels.reference import pair_scales
from mlff.nn.activation import GateActivation, SeparableS2Activation
from mlff.nn.feed_forward import FeedForward
from mlff.nn.norm import EquivariantRMSNorm, SeparableLayerNorm
from mlff.nn.radial import BesselBasis, GaussianBasis, PolynomialEnvelope
from mlff.nn.so2_conv import SO2Convolution
from mlff.nn.so3_linear import SO3Linear
from mlff.so3.grid import SphereGrid
from mlff.so3.layout import degrees, m_major_index
from mlff.so3.rotation import WignerD

LMAX = 3


def rotate(x, rot, lmax=LMAX):
    return torch.einsum("ab,nbc->nac", WignerD(lmax)(rot[None])[0], x)


@pytest.fixture
def features():
    torch.manual_seed(0)
    return torch.randn(6, (LMAX + 1) ** 2, 5, dtype=torch.float64), o3.rand_matrix(dtype=torch.float64)


def test_envelope_is_smooth_at_the_cutoff():
    env = PolynomialEnvelope(3.0)
    r = torch.tensor([0.0, 1.5, 3.0 - 1e-7, 3.0, 4.0], dtype=torch.float64, requires_grad=True)
    u = env(r)
    assert u[0] == 1 and u[3] == 0 and u[4] == 0 and 0 < u[1] < 1
    (g,) = torch.autograd.grad(u.sum(), r, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), r)
    assert abs(g[2]) < 1e-10 and g[3] == 0 and abs(gg[2]) < 1e-5


@pytest.mark.parametrize("p", [3, 5, 8])
def test_envelope_is_the_expanded_polynomial_and_keeps_its_relative_accuracy_near_the_cutoff(p):
    x = torch.linspace(0.0, 1.0, 201, dtype=torch.float64)
    expanded = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    torch.testing.assert_close(PolynomialEnvelope(1.0, p)(x), expanded, rtol=0, atol=1e-13)
    # float32 at 1e-4 of the cutoff from it: u ~ 1e-11, to the relative precision that rounding r / cutoff
    # allows (the expanded form gave 1e-6 of noise there, often of the wrong sign)
    near = torch.tensor([5.0 - 5e-4, 5.0 - 1e-3, 4.99], dtype=torch.float32)
    exact = PolynomialEnvelope(5.0, p)(near.double())
    torch.testing.assert_close(PolynomialEnvelope(5.0, p)(near).double(), exact, rtol=1e-2, atol=0)


@pytest.mark.parametrize("basis", [GaussianBasis(5.0, 16), BesselBasis(5.0, 8)])
def test_radial_bases_shapes_and_finite(basis):
    out = basis(torch.linspace(0.1, 5.0, 7, dtype=torch.float64))
    assert out.shape == (7, basis.num) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "layer",
    [SO3Linear(5, 4, LMAX), SeparableLayerNorm(LMAX, 5), EquivariantRMSNorm(LMAX, 5)],
    ids=["linear", "layer_norm_sh", "rms_norm_sh"],
)
def test_layers_commute_with_rotations(layer, features):
    x, rot = features
    layer = layer.double()
    torch.testing.assert_close(layer(rotate(x, rot)), rotate(layer(x), rot), atol=1e-12, rtol=1e-12)


def test_gate_is_exactly_equivariant(features):
    x, rot = features
    gate = GateActivation(degrees(LMAX), 5)
    gates = torch.randn(6, LMAX * 5, dtype=torch.float64)
    torch.testing.assert_close(gate(gates, rotate(x, rot)), rotate(gate(gates, x), rot), atol=1e-12, rtol=0)


@pytest.mark.parametrize("activation", ["grid_mlp", "s2"])
def test_grid_nonlinearities_are_equivariant_up_to_aliasing(activation, features):
    x, rot = features
    torch.manual_seed(1)
    ffn = FeedForward(5, 8, 5, LMAX, activation=activation, grid_resolution=14).double()
    err = (ffn(rotate(x, rot)) - rotate(ffn(x), rot)).abs().max() / ffn(x).abs().max()
    assert 1e-14 < err < 1e-2  # aliasing is real but small; finer grids shrink it
    fine = FeedForward(5, 8, 5, LMAX, activation=activation, grid_resolution=30).double()
    fine.load_state_dict(ffn.state_dict())
    err_fine = (fine(rotate(x, rot)) - rotate(fine(x), rot)).abs().max() / fine(x).abs().max()
    assert err_fine < err


def test_so2_convolution_commutes_with_rolls_about_the_edge_axis():
    torch.manual_seed(0)
    lmax, mmax = 3, 2
    conv = SO2Convolution(4, 3, lmax, mmax, radial_channels=[6, 8], extra_channels=2).double()
    index = m_major_index(lmax, mmax)
    x = torch.randn(5, len(index), 4, dtype=torch.float64)
    feats = torch.randn(5, 6, dtype=torch.float64)
    angle = torch.tensor(0.731, dtype=torch.float64)
    c, s = torch.cos(angle), torch.sin(angle)
    roll = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)
    d = WignerD(lmax)(roll[None])[0][index][:, index]  # roll acts within the kept coefficients
    scales = pair_scales(conv.radial_scales(feats), lmax, mmax, len(index))  # what the producer applies
    y, extra = conv(x * scales)
    y_rolled, extra_rolled = conv(torch.einsum("ab,nbc->nac", d, x) * scales)
    torch.testing.assert_close(y_rolled, torch.einsum("ab,nbc->nac", d, y), atol=1e-12, rtol=0)
    torch.testing.assert_close(extra_rolled, extra, atol=1e-12, rtol=0)


def test_s2_activation_on_truncated_edge_coefficients_round_trips_linear_part():
    index = m_major_index(4, 2)
    grid = SphereGrid(4, 10, 7, index=index)
    act = SeparableS2Activation(grid)
    x = torch.randn(3, len(index), 2, dtype=torch.float64) * 1e-4  # SiLU(x) ~ x/2 when small
    out = act(torch.zeros(3, 2, dtype=torch.float64), x)
    torch.testing.assert_close(out[:, 1:], x[:, 1:] / 2, atol=1e-8, rtol=1e-3)


def test_enveloped_softmax():
    logits = torch.tensor([[1.0], [2.0], [0.5], [3.0]], dtype=torch.float64)
    index = torch.tensor([0, 0, 1, 1])
    ones = enveloped_softmax(logits, torch.ones(4, dtype=torch.float64), index, 3)
    torch.testing.assert_close(torch.zeros(3, 1, dtype=torch.float64).index_add_(0, index, ones)[:2],
                               torch.ones(2, 1, dtype=torch.float64))
    half = enveloped_softmax(logits, torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64), index, 3)
    assert half[1] == 0 and half[0] == 1  # a zero-weight edge takes no attention
