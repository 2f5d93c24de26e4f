"""Triton fused grid activations: coefficients -> sphere grid -> point-wise function -> coefficients.

* ``mlff::grid_silu``: SiLU at each point (the separable S2 activation);
* ``mlff::grid_mlp``: EquiformerV2's point-wise MLP, Linear, SiLU, Linear, SiLU, Linear (no biases).

One program takes one row (and, for SiLU, a block of channels) and loops over blocks of grid
points, so the grid values ``[..., G, C]`` never reach memory. The backward recomputes them, in
torch ops that are themselves differentiable (force training differentiates it once more); for
SiLU ``dx = to^T (silu'(to x) * (from^T dy))``. The grid matrices are constants (buffers), not
trained; the MLP's weights are trained and get gradients.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mlff.kernels.triton.common import count_launch, matmul


@triton.jit
def _grid_silu_kernel(x_ptr, to_ptr, from_ptr, out_ptr, coeffs, channels, points, BLOCK_K: tl.constexpr,
                      BLOCK_C: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    k = tl.arange(0, BLOCK_K)
    k_mask = k < coeffs
    mask = k_mask[:, None] & (c[None, :] < channels)
    x = tl.load(x_ptr + b * coeffs * channels + k[:, None] * channels + c[None, :], mask=mask, other=0.0)
    acc = tl.zeros((BLOCK_K, BLOCK_C), dtype=out_ptr.dtype.element_ty)
    for g in range(points):
        value = tl.sum(tl.load(to_ptr + g * coeffs + k, mask=k_mask, other=0.0)[:, None] * x, axis=0)
        value = value / (1.0 + tl.exp(-value))
        acc += tl.load(from_ptr + k * points + g, mask=k_mask, other=0.0)[:, None] * value[None, :]
    tl.store(out_ptr + b * coeffs * channels + k[:, None] * channels + c[None, :], acc, mask=mask)


@torch.library.custom_op("mlff::grid_silu", mutates_args=())
def grid_silu(x: torch.Tensor, to_grid: torch.Tensor, from_grid: torch.Tensor) -> torch.Tensor:
    points, coeffs = to_grid.shape
    rows = x.reshape(-1, coeffs, x.shape[-1]).contiguous()
    out = torch.empty_like(rows)
    if out.numel():
        channels = rows.shape[2]
        block_c = min(64, triton.next_power_of_2(channels))
        count_launch("grid_silu")
        _grid_silu_kernel[(rows.shape[0], triton.cdiv(channels, block_c))](
            rows, to_grid.contiguous(), from_grid.contiguous(), out, coeffs, channels, points,
            BLOCK_K=triton.next_power_of_2(coeffs), BLOCK_C=block_c)
    return out.view(x.shape)


@grid_silu.register_fake
def _(x, to_grid, from_grid):
    return torch.empty_like(x)


def _save(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _constant_grid(op: str, to_grid: torch.Tensor, from_grid: torch.Tensor) -> None:
    if to_grid.requires_grad or from_grid.requires_grad:
        raise RuntimeError(f"mlff::{op} treats the grid matrices as constants; they must not require grad")


def _silu_slope(value: torch.Tensor) -> torch.Tensor:
    sigmoid = torch.sigmoid(value)
    return sigmoid * (1 + value * (1 - sigmoid))


def _backward(ctx, grad):
    x, to_grid, from_grid = ctx.saved_tensors
    _constant_grid("grid_silu", to_grid, from_grid)
    return torch.matmul(to_grid.T, _silu_slope(torch.matmul(to_grid, x)) * torch.matmul(from_grid.T, grad)), None, None


grid_silu.register_autograd(_backward, setup_context=_save)


@triton.jit
def _grid_mlp_kernel(x_ptr, to_ptr, from_ptr, w1_ptr, w2_ptr, w3_ptr, out_ptr, coeffs, channels, points,
                     BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_G: tl.constexpr, USE_DOT: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    k = tl.arange(0, BLOCK_K)
    c = tl.arange(0, BLOCK_C)
    g = tl.arange(0, BLOCK_G)
    k_mask, c_mask = k < coeffs, c < channels
    x = tl.load(x_ptr + b * coeffs * channels + k[:, None] * channels + c[None, :],
                mask=k_mask[:, None] & c_mask[None, :], other=0.0)
    # the weights transposed, [in, out]: nn.Linear stores [out, in]
    w_mask = c_mask[:, None] & c_mask[None, :]
    w_at = c[None, :] * channels + c[:, None]
    w1 = tl.load(w1_ptr + w_at, mask=w_mask, other=0.0)
    w2 = tl.load(w2_ptr + w_at, mask=w_mask, other=0.0)
    w3 = tl.load(w3_ptr + w_at, mask=w_mask, other=0.0)
    acc = tl.zeros((BLOCK_K, BLOCK_C), dtype=out_ptr.dtype.element_ty)
    for g0 in range(0, points, BLOCK_G):
        p = g0 + g
        p_mask = p < points
        to = tl.load(to_ptr + p[:, None] * coeffs + k[None, :], mask=p_mask[:, None] & k_mask[None, :], other=0.0)
        h = matmul(to, x, USE_DOT)  # [BLOCK_G, BLOCK_C]: the values at these grid points
        h = matmul(h, w1, USE_DOT)
        h = h / (1.0 + tl.exp(-h))
        h = matmul(h, w2, USE_DOT)
        h = h / (1.0 + tl.exp(-h))
        h = matmul(h, w3, USE_DOT)
        back = tl.load(from_ptr + k[:, None] * points + p[None, :], mask=k_mask[:, None] & p_mask[None, :], other=0.0)
        acc += matmul(back, h, USE_DOT)
    tl.store(out_ptr + b * coeffs * channels + k[:, None] * channels + c[None, :], acc,
             mask=k_mask[:, None] & c_mask[None, :])


@torch.library.custom_op("mlff::grid_mlp", mutates_args=())
def grid_mlp(x: torch.Tensor, to_grid: torch.Tensor, from_grid: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor,
             w3: torch.Tensor) -> torch.Tensor:
    points, coeffs = to_grid.shape
    rows = x.reshape(-1, coeffs, x.shape[-1]).contiguous()
    out = torch.empty_like(rows)
    if out.numel():
        count_launch("grid_mlp")
        # tl.dot needs every dimension >= 16
        _grid_mlp_kernel[(rows.shape[0],)](
            rows, to_grid.contiguous(), from_grid.contiguous(), w1.contiguous(), w2.contiguous(), w3.contiguous(),
            out, coeffs, rows.shape[2], points, BLOCK_K=max(16, triton.next_power_of_2(coeffs)),
            BLOCK_C=max(16, triton.next_power_of_2(rows.shape[2])), BLOCK_G=16, USE_DOT=x.dtype != torch.float64)
    return out.view(x.shape)


@grid_mlp.register_fake
def _(x, to_grid, from_grid, w1, w2, w3):
    return torch.empty_like(x)


def _grid_mlp_backward(ctx, grad):
    x, to_grid, from_grid, w1, w2, w3 = ctx.saved_tensors
    _constant_grid("grid_mlp", to_grid, from_grid)
    v = torch.matmul(to_grid, x)  # recomputed: the forward kept no grid values
    a1 = torch.matmul(v, w1.T)
    h1 = torch.nn.functional.silu(a1)
    a2 = torch.matmul(h1, w2.T)
    h2 = torch.nn.functional.silu(a2)
    grad_o = torch.matmul(from_grid.T, grad)
    grad_a2 = torch.matmul(grad_o, w3) * _silu_slope(a2)
    grad_a1 = torch.matmul(grad_a2, w2) * _silu_slope(a1)
    grad_x = torch.matmul(to_grid.T, torch.matmul(grad_a1, w1))
    grad_w = [torch.einsum("...o,...i->oi", go, h) for go, h in ((grad_a1, v), (grad_a2, h1), (grad_o, h2))]
    return grad_x, None, None, *grad_w


grid_mlp.register_autograd(_grid_mlp_backward, setup_context=_save)
