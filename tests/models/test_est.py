"""EST runs the shared model suite, plus checks of its sampling, attention and experts."""

import pytest
import torch

from mlff.models.est import EST, make_sampling
from mlff.nn.edge_frame import EdgeFrame
from mlff.nn.est_update import ESTUpdate
from mlff.nn.radial import GaussianBasis
from mlff.nn.spherical_message import SphericalMessage
from mlff.nn.spherical_attention import SphericalAttention, legendre_table
from mlff.so3.rotation import WignerD
from mlff.testing import Tolerances
from mlff.testing.suite import ModelSuite


def small(species, cutoff, **overrides):
    config = dict(
        species=species, cutoff=cutoff, num_layers=2, channels=16, lmax=3, mmax=2, heads=2,
        attn_hidden=16, alpha_channels=8, value_channels=8, ffn_hidden=16, edge_channels=16,
        num_basis=16, grid_resolution=16, avg_degree=8.0, expert_hidden=16, steerable_experts=1,
        spherical_experts=2, est_heads=2, sphere_points=144,
    )
    config.update(overrides)
    return EST(**config)


class TestEST(ModelSuite):
    """EST on the small preset's 144-point Fibonacci lattice. The point-wise nonlinearities alias,
    so rotations change the energy slightly: a measured property of EST, not exact symmetry. The
    largest force error seen over the suite's rotations was 5.5e-3 eV/Å (bound 1e-2); the energy
    stays within 1e-4 relative."""

    tolerances = Tolerances(rotation_energy_rtol=1e-4, rotation_force_atol=1e-2)

    def make_network(self, species, cutoff):
        return small(species, cutoff)


class TestESTSphericalMessage(ModelSuite):
    """EST with its own message block (spherical cross-attention per edge) as well as its update,
    at L=2 on 36 points to keep the suite fast (one attention per edge). The message aliases per
    edge direction, which costs far more symmetry than the update alone. Measured on the suite's
    model over its three rotations: energy 8e-8 to 6.6e-7 relative, forces up to 5.7e-2 eV/Å on the
    slab (largest force there 0.27 eV/Å: about 20 %) and 1e-2 eV/Å on ethanol; bounds 2e-6 and 0.1.
    That the error is aliasing, and shrinks with more points, is tested below
    (test_message_block_equivariance_improves_with_more_points). The energy is smooth but more
    curved: the cutoff scan refines more of its steps (the residual falls as steps^-3)."""

    tolerances = Tolerances(rotation_energy_rtol=2e-6, rotation_force_atol=0.1)

    def make_network(self, species, cutoff):
        return small(species, cutoff, message="spherical", lmax=2, sphere_points=36)


def test_default_point_count_resolves_twice_lmax():
    for lmax in range(1, 7):
        assert make_sampling(lmax, None).n >= (2 * lmax) ** 2
    with pytest.raises(ValueError, match="below"):
        make_sampling(3, 20)


def test_legendre_table_matches_closed_forms():
    x = torch.linspace(-1, 1, 11, dtype=torch.float64)
    table = legendre_table(x, 3)
    assert torch.allclose(table[2], 0.5 * (3 * x**2 - 1))
    assert torch.allclose(table[3], 0.5 * (5 * x**3 - 3 * x))


def test_attention_bias_depends_only_on_angles():
    """Rotating the point set leaves the relative-orientation bias (and so the attention) unchanged."""
    torch.manual_seed(0)
    sampling = make_sampling(3, None)
    rotation = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    a = SphericalAttention(8, sampling.points, heads=2)
    b = SphericalAttention(8, sampling.points @ rotation.T, heads=2)
    assert torch.allclose(a.legendre, b.legendre, atol=1e-6)


def test_cross_attention_reads_keys_and_values_from_the_context():
    torch.manual_seed(0)
    sampling = make_sampling(2, None)
    attention = SphericalAttention(8, sampling.points, heads=2).double()
    x = torch.randn(3, sampling.n, 8, dtype=torch.float64)
    y = torch.randn(3, sampling.n, 8, dtype=torch.float64)
    assert torch.allclose(attention(x, x), attention(x))
    assert not torch.allclose(attention(x, y), attention(x), atol=1e-3)
    # permuting the context's points permutes nothing in the output when the bias is off
    attention.orientation.data.zero_()
    perm = torch.randperm(sampling.n)
    assert torch.allclose(attention(x, y[:, perm]), attention(x, y), atol=1e-12)


@pytest.mark.parametrize("points, refine, bound", [(56, 0, 3e-2), (56, 100, 3e-2), (400, 0, 5e-3)])
def test_update_block_equivariance_improves_with_more_points(points, refine, bound):
    """||U(D x) - D U(x)|| / ||U(x)|| for one EST update block: small, and smaller with more points."""
    torch.manual_seed(0)
    lmax, c = 3, 8
    update = ESTUpdate(c, 16, lmax, make_sampling(lmax, points, refine), heads=2).double()
    x = torch.randn(20, (lmax + 1) ** 2, c, dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    rotation = rotation * torch.linalg.det(rotation)
    d = WignerD(lmax)(rotation[None])[0]
    error = (update(d @ x) - d @ update(x)).norm() / update(x).norm()
    assert error < bound, f"{error:.2e}"


def test_update_block_is_exactly_equivariant_with_steerable_experts_only():
    torch.manual_seed(0)
    lmax, c = 3, 8
    update = ESTUpdate(c, 16, lmax, make_sampling(lmax, None), steerable_experts=2, spherical_experts=0).double()
    x = torch.randn(5, (lmax + 1) ** 2, c, dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    rotation = rotation * torch.linalg.det(rotation)
    d = WignerD(lmax)(rotation[None])[0]
    assert torch.allclose(update(d @ x), d @ update(x), atol=1e-12)


def test_gate_weights_are_a_dense_softmax_over_the_experts():
    torch.manual_seed(0)
    update = ESTUpdate(8, 16, 2, make_sampling(2, None), steerable_experts=2, spherical_experts=3).double()
    h = torch.randn(4, 9, 8, dtype=torch.float64)
    weights = update.expert_weights(h)
    assert weights.shape == (4, 5) and (weights > 0).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(4, dtype=torch.float64))
    # it depends on the l = 0 features only (so it is invariant)
    changed = h.clone()
    changed[:, 1:] = torch.randn_like(changed[:, 1:])
    torch.testing.assert_close(update.expert_weights(changed), weights)


@pytest.mark.parametrize("chosen", range(4))
def test_update_is_the_gated_mixture_of_its_experts(chosen):
    """Gate saturated on one expert: the block's output is that expert's alone; gate flat: the mean."""
    torch.manual_seed(0)
    update = ESTUpdate(8, 16, 2, make_sampling(2, None), steerable_experts=2, spherical_experts=2).double()
    h = torch.randn(5, 9, 8, dtype=torch.float64)
    a = (lambda g: g + update.attention(g))(update.sampling.to_points(h))
    experts = [expert(h) for expert in update.steerable]
    experts += [update.sampling.from_points(expert(a)) for expert in update.spherical]
    last = update.gate[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        torch.testing.assert_close(update(h), sum(experts) / 4)
        last.bias[chosen] = 60.0  # softmax weight 1 - 3e-26
        torch.testing.assert_close(update(h), experts[chosen])


@pytest.mark.parametrize("points, bound", [(30, 3e-2), (400, 3e-4)])  # seen: 1.2e-2, 1.0e-4
def test_message_block_equivariance_improves_with_more_points(points, bound):
    """||M(D x, R r) - D M(x, r)|| / ||M(x, r)|| for EST's spherical message block on a random graph."""
    torch.manual_seed(0)
    lmax, c, n = 2, 8, 6
    message = SphericalMessage(c, lmax, 2, make_sampling(lmax, points), heads=2, edge_channels=8, num_basis=8).double()
    frame, basis = EdgeFrame(lmax, lmax), GaussianBasis(4.0, 8)
    pairs = [(j, i) for i in range(n) for j in range(n) if i != j]
    edge_index = torch.tensor(pairs).T  # every ordered pair: (sender, receiver)
    positions = torch.randn(n, 3, dtype=torch.float64)
    species = torch.tensor([0, 1, 0, 1, 1, 0])
    x = torch.randn(n, (lmax + 1) ** 2, c, dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    rotation = rotation * torch.linalg.det(rotation)
    d = WignerD(lmax)(rotation[None])[0]

    def run(features, pos):
        vectors = pos[edge_index[0]] - pos[edge_index[1]]
        lengths = vectors.norm(dim=1)
        return message(features, species, frame(vectors), basis(lengths), torch.ones_like(lengths), edge_index)

    out = run(x, positions)
    error = (run(d @ x, positions @ rotation.T) - d @ out).norm() / out.norm()
    assert error < bound, f"{error:.2e}"
