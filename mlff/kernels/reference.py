"""The PyTorch reference of every hot op: plain differentiable torch, the oracle for the kernels.

Signatures are those of :mod:`mlff.kernels` (the dispatch point); see there for what each op means.
The rotations work on the block-sparse Wigner-D layout of :class:`mlff.so3.layout.WignerRows`: one
small batched matmul per degree instead of one dense ``[K_mmax, (lmax+1)^2]`` product per edge.
"""

from __future__ import annotations

import torch

from mlff.so3.layout import wigner_rows


def _degree_blocks(d: torch.Tensor, lmax: int, mmax: int, rows: int):
    """Yield ``(l, D_l [E, kept, 2l+1])``: the stored rows of degree l among the first ``rows``."""
    layout = wigner_rows(lmax, mmax)
    for l, count in enumerate(layout.kept(rows)):
        _, start = layout.degree_start(l)
        yield l, d[:, start : start + count * (2 * l + 1)].view(-1, count, 2 * l + 1)


def _check_rows(lmax: int, mmax: int, rows: int) -> None:
    total = wigner_rows(lmax, mmax).num_rows
    if not lmax + 1 <= rows <= total:
        raise ValueError(f"rows must be between lmax + 1 = {lmax + 1} (the m = 0 rows) and {total}, got {rows}")


def rotate(d, x, index, lmax: int, mmax: int, rows: int) -> torch.Tensor:
    _check_rows(lmax, mmax, rows)
    gathered = torch.cat([x[i] for i in index], dim=-1)  # [E, (lmax+1)^2, S*C]
    parts = [torch.bmm(dl, gathered[:, l * l : (l + 1) ** 2]) for l, dl in _degree_blocks(d, lmax, mmax, rows)]
    stored = torch.cat(parts, dim=1)  # rows in stored order
    order = torch.tensor(wigner_rows(lmax, mmax).stored_order(rows), device=x.device)
    return stored.new_empty(stored.shape).index_copy_(1, order, stored)


def rotate_back(d, y, index, num_nodes: int, lmax: int, mmax: int) -> torch.Tensor:
    rows = y.shape[1]
    _check_rows(lmax, mmax, rows)
    order = torch.tensor(wigner_rows(lmax, mmax).stored_order(rows), device=y.device)
    stored = y.index_select(1, order)
    parts, start = [], 0
    for l, dl in _degree_blocks(d, lmax, mmax, rows):
        parts.append(torch.bmm(dl.transpose(1, 2), stored[:, start : start + dl.shape[1]]))
        start += dl.shape[1]
    per_edge = torch.cat(parts, dim=1)  # [E, (lmax+1)^2, S*C]
    channels = per_edge.shape[2] // index.shape[0]
    out = per_edge.new_zeros(num_nodes, per_edge.shape[1], channels)
    for s, i in enumerate(index):
        out = out.index_add(0, i, per_edge[..., s * channels : (s + 1) * channels])
    return out


def segment_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    return src.new_zeros((size, *src.shape[1:])).index_add(0, index, src)


def enveloped_softmax(logits, weight, index, size: int) -> torch.Tensor:
    shift = torch.full((size, logits.shape[1]), -torch.inf, dtype=logits.dtype, device=logits.device)
    shift = shift.scatter_reduce(0, index[:, None].expand_as(logits), logits.detach(), "amax", include_self=True)
    numerator = weight[:, None] * torch.exp(logits - shift[index])
    denominator = segment_sum(numerator, index, size).clamp_min(torch.finfo(logits.dtype).tiny)
    return numerator / denominator[index]


def grid_silu(x, to_grid, from_grid) -> torch.Tensor:
    return torch.matmul(from_grid, torch.nn.functional.silu(torch.matmul(to_grid, x)))
