"""Triton producer/consumer of the edge frame: gather + block-sparse rotation, and its adjoints.

Three ``torch.library`` ops close under differentiation, so every order of derivative runs on
them (forces need the first, force training the second):

* ``mlff::rotate(D, x, index, scale)``, the producer:
  ``y[e, p, s*C + c] = scale[e, pair_p, s*C + c] sum_j D[e, row p, j] x[index[s, e], l_p^2 + j, c]``
  (gather the sender/receiver features, rotate them into the edge frame, m-major, and apply the
  radial scales; without ``scale``, no scaling);
* ``mlff::rotate_back(D, y, index, N, weight)``, the consumer: weight each edge's channel groups,
  rotate back and sum into the nodes; unweighted, the adjoint of ``rotate`` in ``x``;
* ``mlff::rotation_grad(g, x, index)``: the adjoint of unscaled ``rotate`` in ``D``:
  ``sum_{s,c} g[e, p, s*C + c] x[...]``.

Unscaled and unweighted, ``rotate``'s backward is ``(rotation_grad, rotate_back)``, ``rotate_back``'s
is ``(rotation_grad, rotate)`` and ``rotation_grad``'s is ``(rotate, rotate_back)``: all three are
linear in each argument. The scale and the weight enter the backward through elementwise torch (and
the gradient with respect to them through one more unscaled ``rotate``), so the algebra still closes
and every order of derivative runs on these ops. The consumer sums into nodes deterministically:
each node's program walks its edges in a fixed (stably sorted) order, with no atomics.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch
import triton
import triton.language as tl

from mlff.kernels.reference import group_sum, group_weights, pair_scales, pair_sum
from mlff.kernels.triton.common import count_launch, csr, matmul
from mlff.so3.layout import wigner_rows


@functools.lru_cache(maxsize=None)
def _rows_table(lmax: int, mmax: int, device: torch.device) -> torch.Tensor:
    """``[5, rows]`` int32 on ``device``: m-major position, first column, width, flat offset and (l, |m|)
    pair per stored row."""
    layout = wigner_rows(lmax, mmax)
    table = [layout.position, [l * l for l in layout.degree], [2 * l + 1 for l in layout.degree], layout.offset,
             layout.pair]
    return torch.tensor(table, dtype=torch.int32, device=device)


def _blocks(k: int, c: int, rows: int) -> tuple[int, int, int]:
    # tl.dot needs every dimension >= 16
    return (max(16, triton.next_power_of_2(k)), max(16, min(64, triton.next_power_of_2(max(c, 1)))),
            max(16, triton.next_power_of_2(rows)))


@triton.jit
def _row_tile(table_ptr, d_ptr, e, nnz, num_rows, rows_used, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
              LOAD: tl.constexpr):
    """Edge e's Wigner-D rows as a dense ``[BLOCK_R, BLOCK_K]`` tile (zero outside each row's degree;
    not loaded unless ``LOAD``), the rows' m-major positions, which rows are among the first
    ``rows_used``, which tile entries are stored, and where."""
    r = tl.arange(0, BLOCK_R)
    k = tl.arange(0, BLOCK_K)
    valid = r < num_rows
    position = tl.load(table_ptr + r, mask=valid, other=0)
    first = tl.load(table_ptr + num_rows + r, mask=valid, other=0)
    width = tl.load(table_ptr + 2 * num_rows + r, mask=valid, other=0)
    offset = tl.load(table_ptr + 3 * num_rows + r, mask=valid, other=0)
    used = valid & (position < rows_used)
    in_row = used[:, None] & (k[None, :] >= first[:, None]) & (k[None, :] < first[:, None] + width[:, None])
    entry = e * nnz + offset[:, None] + k[None, :] - first[:, None]
    if LOAD:
        d = tl.load(d_ptr + entry, mask=in_row, other=0.0)
    else:
        d = tl.zeros((BLOCK_R, BLOCK_K), dtype=d_ptr.dtype.element_ty)
    return d, position, used, in_row, entry


@triton.jit
def _rotate_kernel(d_ptr, x_ptr, index_ptr, scale_ptr, y_ptr, table_ptr, num_edges, channels, coeffs, nnz,
                   num_rows, num_pairs, rows_out, width_out, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
                   BLOCK_C: tl.constexpr, USE_DOT: tl.constexpr, HAS_SCALE: tl.constexpr):
    e = tl.program_id(0).to(tl.int64)
    s = tl.program_id(1).to(tl.int64)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    k = tl.arange(0, BLOCK_K)
    c_mask = c < channels
    d, position, used, _, _ = _row_tile(table_ptr, d_ptr, e, nnz, num_rows, rows_out, BLOCK_R, BLOCK_K, True)
    node = tl.load(index_ptr + s * num_edges + e).to(tl.int64)
    x = tl.load(x_ptr + node * coeffs * channels + k[:, None] * channels + c[None, :],
                mask=(k[:, None] < coeffs) & c_mask[None, :], other=0.0)
    y = matmul(d, x, USE_DOT)
    if HAS_SCALE:
        pair = tl.load(table_ptr + 4 * num_rows + tl.arange(0, BLOCK_R), mask=used, other=0)
        y *= tl.load(scale_ptr + e * num_pairs * width_out + pair[:, None] * width_out + s * channels + c[None, :],
                     mask=used[:, None] & c_mask[None, :], other=0.0)
    tl.store(y_ptr + e * rows_out * width_out + position[:, None] * width_out + s * channels + c[None, :], y,
             mask=used[:, None] & c_mask[None, :])


@triton.jit
def _rotate_back_kernel(d_ptr, y_ptr, weight_ptr, order_ptr, start_ptr, x_ptr, table_ptr, num_edges, channels,
                        coeffs, nnz, num_rows, rows_in, width_in, groups, BLOCK_R: tl.constexpr,
                        BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr, USE_DOT: tl.constexpr,
                        HAS_WEIGHT: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    k = tl.arange(0, BLOCK_K)
    c_mask = c < channels
    acc = tl.zeros((BLOCK_K, BLOCK_C), dtype=x_ptr.dtype.element_ty)
    for q in range(tl.load(start_ptr + n), tl.load(start_ptr + n + 1)):
        pair = tl.load(order_ptr + q).to(tl.int64)  # s * E + e
        s = pair // num_edges
        e = pair - s * num_edges
        d, position, used, _, _ = _row_tile(table_ptr, d_ptr, e, nnz, num_rows, rows_in, BLOCK_R, BLOCK_K, True)
        y = tl.load(y_ptr + e * rows_in * width_in + position[:, None] * width_in + s * channels + c[None, :],
                    mask=used[:, None] & c_mask[None, :], other=0.0)
        if HAS_WEIGHT:
            group = (s * channels + c) // (width_in // groups)
            y *= tl.load(weight_ptr + e * groups + group, mask=c_mask, other=0.0)[None, :]
        acc += matmul(tl.trans(d), y, USE_DOT)
    tl.store(x_ptr + n * coeffs * channels + k[:, None] * channels + c[None, :], acc,
             mask=(k[:, None] < coeffs) & c_mask[None, :])


@triton.jit
def _rotation_grad_kernel(g_ptr, x_ptr, index_ptr, out_ptr, table_ptr, num_edges, num_sets, channels, coeffs, nnz,
                          num_rows, rows_in, width_in, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
                          BLOCK_C: tl.constexpr, USE_DOT: tl.constexpr):
    e = tl.program_id(0).to(tl.int64)
    k = tl.arange(0, BLOCK_K)
    cc = tl.arange(0, BLOCK_C)
    _, position, used, _, _ = _row_tile(table_ptr, out_ptr, e, nnz, num_rows, rows_in, BLOCK_R, BLOCK_K, False)
    acc = tl.zeros((BLOCK_R, BLOCK_K), dtype=out_ptr.dtype.element_ty)
    for s in range(num_sets):
        node = tl.load(index_ptr + s * num_edges + e).to(tl.int64)
        for c0 in range(0, channels, BLOCK_C):
            c = c0 + cc
            c_mask = c < channels
            x = tl.load(x_ptr + node * coeffs * channels + k[:, None] * channels + c[None, :],
                        mask=(k[:, None] < coeffs) & c_mask[None, :], other=0.0)
            g = tl.load(g_ptr + e * rows_in * width_in + position[:, None] * width_in + s * channels + c[None, :],
                        mask=used[:, None] & c_mask[None, :], other=0.0)
            acc += matmul(g, tl.trans(x), USE_DOT)
    # every stored entry is written: rows beyond rows_in get zeros
    _, _, _, in_row, entry = _row_tile(table_ptr, out_ptr, e, nnz, num_rows, num_rows, BLOCK_R, BLOCK_K, False)
    tl.store(out_ptr + entry, acc, mask=in_row)


def _use_dot(t: torch.Tensor) -> bool:
    """``tl.dot`` for float32 (and half types); float64 tiles multiply by broadcast-and-sum."""
    return t.dtype != torch.float64


def _check(lmax: int, mmax: int, rows: int, d_width: int | None = None) -> int:
    layout = wigner_rows(lmax, mmax)
    layout.check_rows(rows)
    if d_width is not None and d_width != layout.nnz:
        raise ValueError(f"D has {d_width} entries per edge; lmax={lmax}, mmax={mmax} stores {layout.nnz}")
    return layout.num_rows


@torch.library.custom_op("mlff::rotate", mutates_args=())
def rotate(d: torch.Tensor, x: torch.Tensor, index: torch.Tensor, lmax: int, mmax: int, rows: int,
           scale: Optional[torch.Tensor]) -> torch.Tensor:
    num_rows = _check(lmax, mmax, rows, d.shape[1])
    d, x, index = d.contiguous(), x.contiguous(), index.contiguous()
    has_scale = scale is not None
    scale = scale.contiguous() if has_scale else d  # d: a placeholder the kernel never reads
    num_sets, num_edges = index.shape
    coeffs, channels = x.shape[1], x.shape[2]
    y = x.new_empty(num_edges, rows, num_sets * channels)
    if y.numel():
        block_k, block_c, block_r = _blocks(coeffs, channels, num_rows)
        grid = (num_edges, num_sets, triton.cdiv(channels, block_c))
        count_launch("rotate")
        _rotate_kernel[grid](d, x, index, scale, y, _rows_table(lmax, mmax, x.device), num_edges, channels,
                             coeffs, d.shape[1], num_rows, wigner_rows(lmax, mmax).num_pairs, rows,
                             num_sets * channels, BLOCK_R=block_r, BLOCK_K=block_k, BLOCK_C=block_c,
                             USE_DOT=_use_dot(x), HAS_SCALE=has_scale)
    return y


@rotate.register_fake
def _(d, x, index, lmax, mmax, rows, scale):
    return x.new_empty(index.shape[1], rows, index.shape[0] * x.shape[2])


@torch.library.custom_op("mlff::rotate_back", mutates_args=())
def rotate_back(d: torch.Tensor, y: torch.Tensor, index: torch.Tensor, num_nodes: int, lmax: int,
                mmax: int, weight: Optional[torch.Tensor]) -> torch.Tensor:
    num_rows = _check(lmax, mmax, y.shape[1], d.shape[1])
    d, y, index = d.contiguous(), y.contiguous(), index.contiguous()
    has_weight = weight is not None
    weight = weight.contiguous() if has_weight else d  # d: a placeholder the kernel never reads
    num_sets, num_edges = index.shape
    coeffs, channels = (lmax + 1) ** 2, y.shape[2] // num_sets
    x = y.new_zeros(num_nodes, coeffs, channels)
    if x.numel() and num_edges:
        order, start = csr(index.flatten(), num_nodes)
        block_k, block_c, block_r = _blocks(coeffs, channels, num_rows)
        count_launch("rotate_back")
        _rotate_back_kernel[(num_nodes, triton.cdiv(channels, block_c))](
            d, y, weight, order, start, x, _rows_table(lmax, mmax, y.device), num_edges, channels, coeffs,
            d.shape[1], num_rows, y.shape[1], y.shape[2], weight.shape[1] if has_weight else 1, BLOCK_R=block_r,
            BLOCK_K=block_k, BLOCK_C=block_c, USE_DOT=_use_dot(y), HAS_WEIGHT=has_weight)
    return x


@rotate_back.register_fake
def _(d, y, index, num_nodes, lmax, mmax, weight):
    return y.new_empty(num_nodes, (lmax + 1) ** 2, y.shape[2] // index.shape[0])


@torch.library.custom_op("mlff::rotation_grad", mutates_args=())
def rotation_grad(g: torch.Tensor, x: torch.Tensor, index: torch.Tensor, lmax: int, mmax: int) -> torch.Tensor:
    num_rows = _check(lmax, mmax, g.shape[1])
    g, x, index = g.contiguous(), x.contiguous(), index.contiguous()
    num_sets, num_edges = index.shape
    nnz = wigner_rows(lmax, mmax).nnz
    out = g.new_empty(num_edges, nnz)
    if out.numel():
        block_k, block_c, block_r = _blocks(x.shape[1], x.shape[2], num_rows)
        count_launch("rotation_grad")
        _rotation_grad_kernel[(num_edges,)](
            g, x, index, out, _rows_table(lmax, mmax, x.device), num_edges, num_sets, x.shape[2], x.shape[1], nnz,
            num_rows, g.shape[1], g.shape[2], BLOCK_R=block_r, BLOCK_K=block_k, BLOCK_C=block_c,
            USE_DOT=_use_dot(g))
    return out


@rotation_grad.register_fake
def _(g, x, index, lmax, mmax):
    return g.new_empty(index.shape[1], wigner_rows(lmax, mmax).nnz)


def _save(ctx, inputs, output):
    ctx.save_for_backward(*[t for t in inputs if isinstance(t, torch.Tensor) or t is None])
    ctx.ints = [v for v in inputs if isinstance(v, int)]


def _rotate_backward(ctx, grad):
    d, x, index, scale = ctx.saved_tensors
    lmax, mmax, rows = ctx.ints
    needs = ctx.needs_input_grad
    g = grad if scale is None else grad * pair_scales(scale, lmax, mmax, rows)
    grad_d = rotation_grad(g, x, index, lmax, mmax) if needs[0] else None
    grad_x = rotate_back(d, g, index, x.shape[0], lmax, mmax, None) if needs[1] else None
    grad_scale = None
    if scale is not None and needs[6]:
        grad_scale = pair_sum(grad * rotate(d, x, index, lmax, mmax, rows, None), lmax, mmax)
    return grad_d, grad_x, None, None, None, None, grad_scale


def _rotate_back_backward(ctx, grad):
    d, y, index, weight = ctx.saved_tensors
    _, lmax, mmax = ctx.ints
    needs = ctx.needs_input_grad
    weights = None if weight is None else group_weights(weight, y.shape[2])
    grad_d = rotation_grad(y if weight is None else y * weights, grad, index, lmax, mmax) if needs[0] else None
    grad_y = grad_weight = None
    if needs[1] or (weight is not None and needs[6]):
        back = rotate(d, grad, index, lmax, mmax, y.shape[1], None)
        grad_y = back if weight is None else back * weights
        grad_weight = None if weight is None else group_sum(back * y, weight.shape[1])
    return grad_d, grad_y, None, None, None, None, grad_weight


def _rotation_grad_backward(ctx, grad):
    g, x, index = ctx.saved_tensors
    lmax, mmax = ctx.ints
    grad_g = rotate(grad, x, index, lmax, mmax, g.shape[1], None) if ctx.needs_input_grad[0] else None
    grad_x = rotate_back(grad, g, index, x.shape[0], lmax, mmax, None) if ctx.needs_input_grad[1] else None
    return grad_g, grad_x, None, None, None


rotate.register_autograd(_rotate_backward, setup_context=_save)
rotate_back.register_autograd(_rotate_back_backward, setup_context=_save)
rotation_grad.register_autograd(_rotation_grad_backward, setup_context=_save)
