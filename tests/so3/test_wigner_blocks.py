"""The block-sparse Wigner-D rows equal the dense rows of WignerD (and so e3nn's, which WignerD is tested against)."""

import numpy as np
import pytest
import torch

from mlff.so3.layout import m_major_index, wigner_rows
from mlff.so3.rotation import WignerBlocks, WignerD, random_rotation


@pytest.mark.parametrize("lmax,mmax", [(1, 0), (1, 1), (2, 1), (3, 2), (4, 2), (6, 3), (6, 6)])
def test_blocks_are_the_non_zero_entries_of_the_dense_rows(lmax, mmax):
    rotations = torch.tensor(np.stack([random_rotation(seed) for seed in range(4)]))
    dense = WignerD(lmax, rows=m_major_index(lmax, mmax))(rotations)
    blocks, layout = WignerBlocks(lmax, mmax)(rotations), wigner_rows(lmax, mmax)
    rebuilt = torch.zeros_like(dense)
    for l, position, offset in zip(layout.degree, layout.position, layout.offset):
        rebuilt[:, position, l * l : (l + 1) ** 2] = blocks[:, offset : offset + 2 * l + 1]
    torch.testing.assert_close(rebuilt, dense, rtol=0, atol=1e-13)
    assert layout.nnz == int((dense.abs() > 0).sum(dim=(1, 2)).max()), "only structural zeros are dropped"


def test_layout_sizes():
    layout = wigner_rows(4, 2)
    assert (layout.nnz, layout.num_rows) == (115, 19)  # of 19 x 25 = 475 dense entries
    assert sorted(layout.position) == list(range(19))
    with pytest.raises(ValueError, match="0 <= mmax <= lmax"):
        wigner_rows(2, 3)
