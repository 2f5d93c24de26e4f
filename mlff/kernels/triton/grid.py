"""Triton fused grid activation: coefficients -> sphere grid -> SiLU -> coefficients.

One program takes a block of channels of one row and loops over the grid points, so the grid
values ``[..., G, C]`` never reach memory. The backward recomputes them:
``dx = to^T (silu'(to x) * (from^T dy))``, in torch ops that are themselves differentiable (force
training differentiates it once more). The grid matrices are constants (buffers), not trained.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mlff.kernels.triton.common import count_launch


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


def _backward(ctx, grad):
    x, to_grid, from_grid = ctx.saved_tensors
    if to_grid.requires_grad or from_grid.requires_grad:
        raise RuntimeError("mlff::grid_silu treats the grid matrices as constants; they must not require grad")
    value = torch.matmul(to_grid, x)
    sigmoid = torch.sigmoid(value)
    slope = sigmoid * (1 + value * (1 - sigmoid))
    return torch.matmul(to_grid.T, slope * torch.matmul(from_grid.T, grad)), None, None


grid_silu.register_autograd(_backward, setup_context=_save)
