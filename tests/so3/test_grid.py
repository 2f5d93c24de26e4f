import pytest
import torch
from e3nn import o3

from mlff.so3.grid import SphereGrid
from mlff.so3.layout import truncated_index


@pytest.mark.parametrize("lmax, res", [(2, (6, 8)), (4, (18, 18)), (6, (14, 15))])
def test_matrices_equal_e3nn(lmax, res):
    grid = SphereGrid(lmax, *res).double()
    eye = torch.eye((lmax + 1) ** 2, dtype=torch.float64)
    to_ref = o3.ToS2Grid(lmax, res, normalization="component", dtype=torch.float64)(eye)  # [K, b, a]
    torch.testing.assert_close(grid.to_grid_mat, to_ref.reshape(len(eye), -1).T, atol=1e-12, rtol=1e-10)
    values = torch.randn(res[0] * res[1], 3, dtype=torch.float64)
    from_ref = o3.FromS2Grid(res, lmax, normalization="component", dtype=torch.float64)
    ref = from_ref(values.T.reshape(3, *res)).T
    # e3nn's quadrature weights carry single-precision error (its own round trip is off by ~5e-7);
    # ours are exact (see the round-trip test), so agreement is limited to e3nn's accuracy.
    torch.testing.assert_close(grid.from_grid(values), ref, atol=2e-6, rtol=0)


@pytest.mark.parametrize("lmax, mmax", [(4, 4), (4, 2), (6, 3)])
def test_round_trip_is_identity(lmax, mmax):
    index = truncated_index(lmax, mmax)
    grid = SphereGrid(lmax, 2 * (lmax + 1), 2 * (mmax + 1) + 1, index=index)
    k = len(index)
    x = torch.randn(7, k, 5, dtype=torch.float64)
    torch.testing.assert_close(grid.from_grid(grid.to_grid(x)), x, atol=1e-12, rtol=1e-12)


def test_too_coarse_grid_is_refused():
    with pytest.raises(ValueError, match="too coarse"):
        SphereGrid(6, 5)


def test_m_major_grid_is_a_permutation_of_the_l_major_one():
    from mlff.so3.layout import m_major_index

    lm = SphereGrid(4, 10, 7, index=truncated_index(4, 2))
    mm = SphereGrid(4, 10, 7, index=m_major_index(4, 2))
    perm = [truncated_index(4, 2).tolist().index(i) for i in m_major_index(4, 2).tolist()]
    torch.testing.assert_close(mm.to_grid_mat, lm.to_grid_mat[:, perm])
    assert mm.mmax == 2
