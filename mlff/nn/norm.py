"""Equivariant normalisations of l-major coefficient tensors ``[N, (lmax+1)^2, C]``."""

from __future__ import annotations

import torch
from torch import nn

from mlff.config import choose
from mlff.so3.layout import degrees


class _DegreeNorm(nn.Module):
    def __init__(self, lmax: int, channels: int, eps: float = 1e-5):
        super().__init__()
        self.lmax, self.channels, self.eps = lmax, channels, eps
        self.weight = nn.Parameter(torch.ones(lmax + 1, channels))
        deg = degrees(lmax)
        self.register_buffer("expand", deg, persistent=False)
        # 1/(2l+1) per coefficient: the mean over m within each degree ("component" normalisation)
        self.register_buffer("inv_dim", 1.0 / (2 * deg + 1).double(), persistent=False)

    def _rms(self, x: torch.Tensor, lmin: int) -> torch.Tensor:
        """``[N, 1]`` RMS of ``x`` holding degrees lmin..lmax, each degree weighted equally."""
        inv = self.inv_dim[lmin * lmin :].to(x.dtype)
        power = (x.pow(2) * inv[:, None]).sum(1).mean(-1, keepdim=True) / (self.lmax - lmin + 1)
        return torch.sqrt(power + self.eps)


class SeparableLayerNorm(_DegreeNorm):
    """EquiformerV2's separable layer norm.

    l = 0: an ordinary LayerNorm over channels (centred, affine weight and bias). l > 0: all
    degrees share one RMS (each degree's mean square averaged over its 2l+1 orders and the
    channels, then over the degrees) and keep their own per-channel weight.

    Defect (measured; still the default, kept for EquiformerV2 checkpoints and comparisons): where the l > 0 features
    vanish by symmetry (an atom of a perfect crystal), they are divided by ``sqrt(power + eps)``
    and behave like ``x / sqrt(x^2 + eps)``, so the energy is smooth only on a scale of about 1e-3 Å
    and the force constants there are off by orders of magnitude. :class:`EquivariantRMSNorm`
    (recommended) divides by the RMS of all degrees, scalars included, which does not vanish.
    """

    def __init__(self, lmax: int, channels: int, eps: float = 1e-5):
        super().__init__(lmax, channels, eps)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scalars = x[:, :1]
        centred = scalars - scalars.mean(-1, keepdim=True)
        var = centred.pow(2).mean(-1, keepdim=True)
        scalars = centred / torch.sqrt(var + self.eps) * self.weight[0] + self.bias
        if self.lmax == 0:
            return scalars
        rest = x[:, 1:]
        rest = rest / self._rms(rest, 1)[:, None] * self.weight.index_select(0, self.expand[1:])
        return torch.cat([scalars, rest], 1)


class EquivariantRMSNorm(_DegreeNorm):
    """RMS norm over all degrees (scalars centred first), per-degree channel weights, l = 0 bias."""

    def __init__(self, lmax: int, channels: int, eps: float = 1e-5):
        super().__init__(lmax, channels, eps)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scalars = x[:, :1] - x[:, :1].mean(-1, keepdim=True)
        x = torch.cat([scalars, x[:, 1:]], 1)
        out = x / self._rms(x, 0)[:, None] * self.weight.index_select(0, self.expand)
        return torch.cat([out[:, :1] + self.bias, out[:, 1:]], 1)


NORMS = {"layer_norm_sh": SeparableLayerNorm, "rms_norm_sh": EquivariantRMSNorm}


def equivariant_norm(kind: str, lmax: int, channels: int) -> nn.Module:
    """The normalisation named ``kind`` (a key of :data:`NORMS`)."""
    return choose(NORMS, kind, "norm")(lmax, channels)
