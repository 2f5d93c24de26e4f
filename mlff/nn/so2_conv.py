"""SO(2) (eSCN) convolution on m-major edge-frame coefficients.

In the edge frame the edge points along the polar axis, so a full SO(3) tensor product with the
edge's harmonics reduces to independent linear maps per order m (eSCN): a real map on m = 0
and, for m > 0, a complex multiplication of the pair (x_{+m}, x_{-m}) that mixes degrees and
channels. Complex multiplication commutes with rotations about the edge axis, so the result does
not depend on how the edge frame is rolled about the edge.
"""

from __future__ import annotations

import torch
from torch import nn

from mlff.nn.radial import RadialMLP
from mlff.so3.layout import m_major_sizes, wigner_rows


class SO2Convolution(nn.Module):
    """Per-m linear maps with optional radial modulation and extra m = 0 (invariant) outputs.

    Input ``x [E, K_mmax, C_in]`` (m-major). If ``radial_channels`` is given, an MLP of the edge
    features produces one scale per (l, |m|) pair and input channel, shared by +m and -m, to be
    applied before the linear maps: :meth:`radial_scales` returns them in the layout the producer
    (:meth:`mlff.nn.edge_frame.Frame.rotate`'s ``scale``) applies while it rotates, so the rotated
    features are never written unscaled. ``forward`` returns ``(y [E, K_mmax, C_out], extra
    [E, extra_channels] or None)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        lmax: int,
        mmax: int,
        radial_channels: list[int] | None = None,
        extra_channels: int = 0,
    ):
        super().__init__()
        self.lmax, self.mmax = lmax, mmax
        self.cin, self.cout, self.extra = in_channels, out_channels, extra_channels
        self.sizes = m_major_sizes(lmax, mmax)
        self.fc0 = nn.Linear((lmax + 1) * in_channels, (lmax + 1) * out_channels + extra_channels)
        self.fcm = nn.ModuleList(
            nn.Linear((lmax + 1 - m) * in_channels, 2 * (lmax + 1 - m) * out_channels, bias=False)
            for m in range(1, mmax + 1)
        )
        for m, fc in enumerate(self.fcm, start=1):  # keep the output scale of a real linear map
            fc.weight.data.mul_(2**-0.5)
        self.radial = None
        if radial_channels is not None:
            self.num_pairs = wigner_rows(lmax, mmax).num_pairs
            self.radial = RadialMLP(list(radial_channels) + [self.num_pairs * in_channels])

    def radial_scales(self, edge_features: torch.Tensor) -> torch.Tensor:
        """The radial scales ``[E, num_pairs, C_in]`` (:func:`mlff.so3.layout.m_major_pairs` order)."""
        return self.radial(edge_features).view(-1, self.num_pairs, self.cin)

    def forward(self, x: torch.Tensor):
        e, rows0 = x.shape[0], self.sizes[0]
        out0 = self.fc0(x[:, :rows0].reshape(e, rows0 * self.cin))
        extra = out0[:, : self.extra] if self.extra else None
        outputs = [out0[:, self.extra :].view(e, self.lmax + 1, self.cout)]
        start = rows0
        for m, fc in enumerate(self.fcm, start=1):
            n = self.lmax + 1 - m
            pair = x[:, start : start + 2 * n].reshape(e, 2 * n * self.cin)  # [x_{+m} | x_{-m}], adjacent rows
            outputs.append((pair @ self.complex_weight(fc, n)).view(e, 2 * n, self.cout))  # [y_{+m} | y_{-m}]
            start += 2 * n
        return torch.cat(outputs, dim=1), extra

    def complex_weight(self, fc: nn.Linear, n: int) -> torch.Tensor:
        """The complex multiplication of order m as one real matrix: ``fc.weight`` stacks the real and the
        imaginary part ``[W_r; W_i]``, and ``[y_+, y_-] = [x_+, x_-] @ [[W_r^T, W_i^T], [-W_i^T, W_r^T]]``,
        i.e. ``y_+ = W_r x_+ - W_i x_-`` and ``y_- = W_i x_+ + W_r x_-`` (one GEMM per m)."""
        real, imag = fc.weight.view(2, n * self.cout, n * self.cin).transpose(1, 2)
        return torch.cat([torch.cat([real, imag], 1), torch.cat([-imag, real], 1)], 0)
