"""Fibonacci lattice, repulsion refinement and the least-squares sphere transform."""

import math

import pytest
import torch

from mlff.so3.fibonacci import SphereSampling, fibonacci_points, repel


def min_distance(p):
    return (torch.cdist(p, p) + 10 * torch.eye(len(p), dtype=p.dtype)).min().item()


def test_points_are_unit_and_near_equal_area():
    p = fibonacci_points(2000)
    assert torch.allclose(p.norm(dim=1), torch.ones(2000, dtype=torch.float64))
    # any cap of solid angle 2 pi (1 - cos a) holds about that share of the points
    for axis in torch.eye(3, dtype=torch.float64):
        for angle in (0.3, 1.0, 2.0):
            share = ((p @ axis) > math.cos(angle)).double().mean().item()
            assert share == pytest.approx((1 - math.cos(angle)) / 2, abs=0.01)
    assert torch.equal(fibonacci_points(50), fibonacci_points(50))


def test_repulsion_spreads_points_and_improves_the_quadrature():
    raw, refined = SphereSampling(4, 64), SphereSampling(4, 64, refine_steps=100)
    assert min_distance(refined.points) > 1.05 * min_distance(raw.points)
    assert refined.quadrature_error() < 0.5 * raw.quadrature_error()
    assert torch.allclose(refined.points.norm(dim=1), torch.ones(64, dtype=torch.float64))
    assert torch.equal(repel(fibonacci_points(30), 20), repel(fibonacci_points(30), 20))


@pytest.mark.parametrize("lmax", [1, 3, 6])
def test_least_squares_round_trip_is_exact(lmax):
    sampling = SphereSampling(lmax)
    assert sampling.n == max((2 * lmax) ** 2, (lmax + 1) ** 2)
    assert sampling.round_trip_error() < 1e-12
    x = torch.randn(5, (lmax + 1) ** 2, 4, dtype=torch.float64)
    assert torch.allclose(sampling.from_points(sampling.to_points(x)), x, atol=1e-12)


def test_too_few_points_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot resolve lmax=3"):
        SphereSampling(3, 10)
