"""Triton segment ops over edges grouped by receiver: sum, gather and the enveloped softmax.

Sums are deterministic: each receiver's program adds its edges in a fixed (stably sorted) order,
with no atomics. ``segment_sum`` and ``gather`` are each other's adjoint, so both differentiate to
any order. The softmax op returns ``q_e = exp(a_e) / sum_{e' -> i} w_e' exp(a_e')`` (the enveloped
softmax is ``w_e q_e``); its backward is written with ``segment_sum``, ``gather`` and elementwise
torch, so it is itself differentiable.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mlff.kernels.triton.common import count_launch, csr


@triton.jit
def _segment_sum_kernel(src_ptr, order_ptr, start_ptr, out_ptr, features, BLOCK: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    f = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = f < features
    acc = tl.zeros((BLOCK,), dtype=out_ptr.dtype.element_ty)
    for q in range(tl.load(start_ptr + n), tl.load(start_ptr + n + 1)):
        e = tl.load(order_ptr + q).to(tl.int64)
        acc += tl.load(src_ptr + e * features + f, mask=mask, other=0.0)
    tl.store(out_ptr + n * features + f, acc, mask=mask)


@triton.jit
def _softmax_kernel(logits_ptr, weight_ptr, order_ptr, start_ptr, out_ptr, heads, tiny, BLOCK_H: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    h = tl.arange(0, BLOCK_H)
    mask = h < heads
    begin = tl.load(start_ptr + n)
    end = tl.load(start_ptr + n + 1)
    shift = tl.full((BLOCK_H,), float("-inf"), dtype=out_ptr.dtype.element_ty)
    for q in range(begin, end):
        e = tl.load(order_ptr + q).to(tl.int64)
        shift = tl.maximum(shift, tl.load(logits_ptr + e * heads + h, mask=mask, other=0.0))
    total = tl.zeros((BLOCK_H,), dtype=out_ptr.dtype.element_ty)
    for q in range(begin, end):
        e = tl.load(order_ptr + q).to(tl.int64)
        a = tl.load(logits_ptr + e * heads + h, mask=mask, other=0.0)
        total += tl.load(weight_ptr + e) * tl.exp(a - shift)
    total = tl.maximum(total, tiny)
    for q in range(begin, end):
        e = tl.load(order_ptr + q).to(tl.int64)
        a = tl.load(logits_ptr + e * heads + h, mask=mask, other=0.0)
        tl.store(out_ptr + e * heads + h, tl.exp(a - shift) / total, mask=mask)


@torch.library.custom_op("mlff::segment_sum", mutates_args=())
def segment_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    src = src.contiguous()
    out = src.new_zeros((size, *src.shape[1:]))
    features = src[0].numel() if src.shape[0] else 0
    if out.numel() and src.shape[0]:
        order, start = csr(index, size)
        block = min(1024, triton.next_power_of_2(features))
        count_launch("segment_sum")
        _segment_sum_kernel[(size, triton.cdiv(features, block))](src, order, start, out, features, BLOCK=block)
    return out


@segment_sum.register_fake
def _(src, index, size):
    return src.new_empty((size, *src.shape[1:]))


@torch.library.custom_op("mlff::gather", mutates_args=())
def gather(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return src.index_select(0, index)


@gather.register_fake
def _(src, index):
    return src.new_empty((index.shape[0], *src.shape[1:]))


@torch.library.custom_op("mlff::segment_softmax", mutates_args=())
def segment_softmax(logits: torch.Tensor, weight: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    logits, weight = logits.contiguous(), weight.contiguous()
    out = torch.empty_like(logits)
    if out.numel():
        order, start = csr(index, size)
        count_launch("segment_softmax")
        _softmax_kernel[(size,)](logits, weight, order, start, out, logits.shape[1], torch.finfo(logits.dtype).tiny,
                                 BLOCK_H=triton.next_power_of_2(logits.shape[1]))
    return out


@segment_softmax.register_fake
def _(logits, weight, index, size):
    return torch.empty_like(logits)


def _save_index(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.size = inputs[0].shape[0]


def _segment_sum_backward(ctx, grad):
    (index,) = ctx.saved_tensors
    return gather(grad, index), None, None


def _gather_backward(ctx, grad):
    (index,) = ctx.saved_tensors
    return segment_sum(grad, index, ctx.size), None


def _save_softmax(ctx, inputs, output):
    logits, weight, index, size = inputs
    ctx.save_for_backward(weight, index, output)
    ctx.size = size


def _softmax_backward(ctx, grad):
    weight, index, q = ctx.saved_tensors
    u = gather(segment_sum(q * grad, index, ctx.size), index)  # sum over the receiver's edges of q g
    grad_logits = q * (grad - weight[:, None] * u) if ctx.needs_input_grad[0] else None
    grad_weight = -(q * u).sum(1) if ctx.needs_input_grad[1] else None
    return grad_logits, grad_weight, None, None


segment_sum.register_autograd(_segment_sum_backward, setup_context=_save_index)
gather.register_autograd(_gather_backward, setup_context=_save_index)
segment_softmax.register_autograd(_softmax_backward, setup_context=_save_softmax)


def enveloped_softmax(logits: torch.Tensor, weight: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """``w_e q_e``: the enveloped softmax (see :func:`mlff.kernels.enveloped_softmax`)."""
    return weight[:, None] * segment_softmax(logits, weight, index, size)
