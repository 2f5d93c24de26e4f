"""Triton segment ops over edges grouped by receiver: sum, gather and the enveloped softmax.

Sums are deterministic: each receiver's program adds its edges in a fixed (stably sorted) order,
with no atomics. ``segment_sum`` and ``gather`` are each other's adjoint, so both differentiate to
any order. The softmax op returns ``p_e = w_e exp(a_e) / Z_i`` (the enveloped softmax) and
``q_e = exp(a_e) / Z_i``, ``Z_i = sum_{e' -> i} w_e' exp(a_e')``: ``q`` is what the derivative in ``w``
needs (``p / w`` would fail at ``w = 0``). Its backward is written with ``segment_sum``, ``gather``
and elementwise torch, so it is itself differentiable; with ``t_i = sum_{e -> i} (p_e dp_e + q_e dq_e)``
it is ``da = p dp + q dq - p t``, ``dw = q (dp - t)``, which is exactly 0 for a lone edge (``p = 1``).
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
def _softmax_kernel(logits_ptr, weight_ptr, order_ptr, start_ptr, p_ptr, q_ptr, heads, BLOCK_H: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    h = tl.arange(0, BLOCK_H)
    mask = h < heads
    begin = tl.load(start_ptr + n)
    end = tl.load(start_ptr + n + 1)
    # the shift is the largest a + log w (the largest a where every w is 0), as in the reference: the
    # denominator is then at least 1 wherever a weight is positive
    shift = tl.full((BLOCK_H,), float("-inf"), dtype=p_ptr.dtype.element_ty)
    largest = tl.full((BLOCK_H,), float("-inf"), dtype=p_ptr.dtype.element_ty)
    for q in range(begin, end):
        e = tl.load(order_ptr + q).to(tl.int64)
        a = tl.load(logits_ptr + e * heads + h, mask=mask, other=0.0)
        shift = tl.maximum(shift, a + tl.log(tl.load(weight_ptr + e)))
        largest = tl.maximum(largest, a)
    shift = tl.where(shift > float("-inf"), shift, largest)
    total = tl.zeros((BLOCK_H,), dtype=p_ptr.dtype.element_ty)
    for q in range(begin, end):
        e = tl.load(order_ptr + q).to(tl.int64)
        a = tl.load(logits_ptr + e * heads + h, mask=mask, other=0.0)
        w = tl.load(weight_ptr + e)
        total += w * tl.exp(tl.where(w > 0, a - shift, tl.minimum(a - shift, 0.0)))
    total = tl.where(total == 0, 1.0, total)  # all weights 0: p = 0 whatever the denominator
    for q in range(begin, end):
        e = tl.load(order_ptr + q).to(tl.int64)
        a = tl.load(logits_ptr + e * heads + h, mask=mask, other=0.0)
        w = tl.load(weight_ptr + e)
        # a zero-weight edge is left out of the shift: its exponent is capped at 0, as in the reference
        scaled = tl.exp(tl.where(w > 0, a - shift, tl.minimum(a - shift, 0.0)))
        tl.store(q_ptr + e * heads + h, scaled / total, mask=mask)
        # the same product as in the total, so a lone edge's p is exactly 1 (and its weight derivative 0)
        tl.store(p_ptr + e * heads + h, w * scaled / total, mask=mask)


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
def segment_softmax(logits: torch.Tensor, weight: torch.Tensor, index: torch.Tensor,
                    size: int) -> tuple[torch.Tensor, torch.Tensor]:
    logits, weight = logits.contiguous(), weight.contiguous()
    p, q = torch.empty_like(logits), torch.empty_like(logits)
    if p.numel():
        order, start = csr(index, size)
        count_launch("segment_softmax")
        _softmax_kernel[(size,)](logits, weight, order, start, p, q, logits.shape[1],
                                 BLOCK_H=triton.next_power_of_2(logits.shape[1]))
    return p, q


@segment_softmax.register_fake
def _(logits, weight, index, size):
    return torch.empty_like(logits), torch.empty_like(logits)


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
    ctx.save_for_backward(index, *output)
    ctx.size = size


def _softmax_backward(ctx, grad_p, grad_q):
    index, p, q = ctx.saved_tensors
    grad_p = torch.zeros_like(p) if grad_p is None else grad_p
    both = p * grad_p if grad_q is None else p * grad_p + q * grad_q
    t = gather(segment_sum(both, index, ctx.size), index)  # summed over the receiver's edges
    grad_logits = None
    if ctx.needs_input_grad[0]:
        grad_logits = p * (grad_p - t) if grad_q is None else p * (grad_p - t) + q * grad_q
    grad_weight = (q * (grad_p - t)).sum(1) if ctx.needs_input_grad[1] else None
    return grad_logits, grad_weight, None, None


segment_sum.register_autograd(_segment_sum_backward, setup_context=_save_index)
gather.register_autograd(_gather_backward, setup_context=_save_index)
segment_softmax.register_autograd(_softmax_backward, setup_context=_save_softmax)


def enveloped_softmax(logits: torch.Tensor, weight: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """The enveloped softmax ``p`` (see :func:`mlff.kernels.enveloped_softmax`)."""
    return segment_softmax(logits, weight, index, size)[0]
