"""The PyTorch reference of every hot op: plain differentiable torch, the oracle for the kernels.

Signatures are those of :mod:`mlff.kernels` (the dispatch point); see there for what each op means.
The rotations take the block-sparse Wigner-D of :class:`mlff.so3.layout.WignerRows` (that is what
the edge frame computes) and multiply with the dense rows rebuilt from it: one batched matmul per
call, whose output is already m-major. One small matmul per degree does 2-4x fewer flops but then
needs its rows permuted to m-major, and on the CPU that copy costs more than the flops saved
(``mlff bench kernels``: 2496 edges, 31m shapes, one thread: dense 28.7 ms; per-degree 13.8 ms + the
permutation 24 ms). The Triton kernels use the blocks directly and write each row in place.
"""

from __future__ import annotations

import functools

import torch

from mlff.so3.layout import wigner_rows
from mlff.so3.spherical_harmonics import spherical_harmonics as _harmonics


@functools.lru_cache(maxsize=None)
def _dense_targets(lmax: int, mmax: int, device: torch.device) -> torch.Tensor:
    """For each stored entry, its flat place ``position * (lmax+1)^2 + column`` in the dense rows."""
    layout, k = wigner_rows(lmax, mmax), (lmax + 1) ** 2
    targets = [p * k + l * l + j for l, p in zip(layout.degree, layout.position) for j in range(2 * l + 1)]
    return torch.tensor(targets, device=device)


def dense_rows(d: torch.Tensor, lmax: int, mmax: int, rows: int) -> torch.Tensor:
    """The first ``rows`` m-major rows of the dense Wigner-D, ``[E, rows, (lmax+1)^2]``, from the blocks."""
    layout, k = wigner_rows(lmax, mmax), (lmax + 1) ** 2
    layout.check_rows(rows)
    dense = d.new_zeros(d.shape[0], layout.num_rows * k).index_copy(1, _dense_targets(lmax, mmax, d.device), d)
    return dense.view(-1, layout.num_rows, k)[:, :rows]


def _cached_dense_rows(d, lmax: int, mmax: int, rows: int, cache: dict | None) -> torch.Tensor:
    """:func:`dense_rows`, built once per ``cache`` (one edge frame) and grad mode."""
    if cache is None:
        return dense_rows(d, lmax, mmax, rows)
    key = ("dense_rows", torch.is_grad_enabled())
    if key not in cache:
        cache[key] = dense_rows(d, lmax, mmax, wigner_rows(lmax, mmax).num_rows)
    return cache[key][:, :rows]


def _pairs(lmax: int, mmax: int, device: torch.device) -> torch.Tensor:
    # made per call, not cached: the Triton ops' backward runs these under fake tensors when traced
    layout = wigner_rows(lmax, mmax)
    pair_of_position = dict(zip(layout.position, layout.pair))
    return torch.tensor([pair_of_position[p] for p in range(layout.num_rows)], device=device)


def pair_scales(scale: torch.Tensor, lmax: int, mmax: int, rows: int) -> torch.Tensor:
    """Per-pair scales ``[E, num_pairs, W]`` -> per m-major row ``[E, rows, W]`` (+m and -m share one)."""
    return scale.index_select(1, _pairs(lmax, mmax, scale.device)[:rows])


def pair_sum(t: torch.Tensor, lmax: int, mmax: int) -> torch.Tensor:
    """The adjoint of :func:`pair_scales`: ``[E, rows, W]`` summed into ``[E, num_pairs, W]``."""
    pairs = _pairs(lmax, mmax, t.device)
    return t.new_zeros(t.shape[0], wigner_rows(lmax, mmax).num_pairs, t.shape[2]).index_add(1, pairs[: t.shape[1]], t)


def group_weights(weight: torch.Tensor, width: int) -> torch.Tensor:
    """Per-group weights ``[E, G]`` -> per channel ``[E, 1, width]`` (G equal, contiguous channel groups)."""
    return weight.repeat_interleave(width // weight.shape[1], dim=1)[:, None, :]


def group_sum(t: torch.Tensor, groups: int) -> torch.Tensor:
    """The adjoint of :func:`group_weights`: ``[E, rows, width]`` summed into ``[E, groups]``."""
    return t.sum(1).view(t.shape[0], groups, t.shape[2] // groups).sum(-1)


def rotate(d, x, index, lmax: int, mmax: int, rows: int, cache: dict | None = None,
           scale: torch.Tensor | None = None) -> torch.Tensor:
    y = torch.bmm(_cached_dense_rows(d, lmax, mmax, rows, cache), torch.cat([x[i] for i in index], dim=-1))
    return y if scale is None else y * pair_scales(scale, lmax, mmax, rows)


def rotate_back(d, y, index, num_nodes: int, lmax: int, mmax: int, cache: dict | None = None,
                weight: torch.Tensor | None = None) -> torch.Tensor:
    dense = _cached_dense_rows(d, lmax, mmax, y.shape[1], cache)
    if weight is not None:
        y = y * group_weights(weight, y.shape[2])
    per_edge = torch.bmm(dense.transpose(1, 2), y)  # [E, (lmax+1)^2, S*C]
    channels = per_edge.shape[2] // index.shape[0]
    out = per_edge.new_zeros(num_nodes, per_edge.shape[1], channels)
    for s, i in enumerate(index):
        out.index_add_(0, i, per_edge[..., s * channels : (s + 1) * channels])
    return out


def segment_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    return src.new_zeros((size, *src.shape[1:])).index_add_(0, index, src)


def enveloped_softmax(logits, weight, index, size: int) -> torch.Tensor:
    exponent = logits - softmax_shift(logits, weight, index, size)[index]
    # a zero-weight edge is left out of the shift, so its exponent is capped at 0 (no overflow into 0 * inf)
    exponent = torch.where(weight[:, None] > 0, exponent, exponent.clamp_max(0.0))
    numerator = weight[:, None] * torch.exp(exponent)
    denominator = segment_sum(numerator, index, size)
    denominator = torch.where(denominator == 0, torch.ones_like(denominator), denominator)  # all weights 0: p = 0
    return numerator / denominator[index]


def softmax_shift(logits, weight, index, size: int) -> torch.Tensor:
    """Per receiver, the largest ``a_e + log w_e`` over its edges (the largest ``a_e`` where every weight is 0),
    a constant for autograd: after this shift the denominator is at least 1 wherever a weight is positive.
    (Shifting by the largest logit alone lets the denominator underflow when that edge's weight is tiny, an
    edge near the cutoff, and its derivatives overflow in float32.)"""
    def amax(values):
        out = torch.full((size, values.shape[1]), -torch.inf, dtype=values.dtype, device=values.device)
        return out.scatter_reduce(0, index[:, None].expand_as(values), values, "amax", include_self=True)

    logits, weight = logits.detach(), weight.detach()
    shift = amax(logits + torch.log(weight)[:, None])
    return torch.where(torch.isfinite(shift), shift, amax(logits))


def grid_silu(x, to_grid, from_grid) -> torch.Tensor:
    return torch.matmul(from_grid, torch.nn.functional.silu(torch.matmul(to_grid, x)))


def grid_mlp(x, to_grid, from_grid, w1, w2, w3) -> torch.Tensor:
    silu = torch.nn.functional.silu
    hidden = silu(torch.matmul(silu(torch.matmul(torch.matmul(to_grid, x), w1.T)), w2.T))
    return torch.matmul(from_grid, torch.matmul(hidden, w3.T))


def spherical_harmonics(u, lmax: int) -> torch.Tensor:
    return _harmonics(lmax, u, normalize=False)
