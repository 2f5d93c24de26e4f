"""Segment reductions over edges grouped by receiver (plain torch, deterministic on CPU)."""

from __future__ import annotations

import torch


def scatter_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Sum rows of ``src`` ``[E, ...]`` into ``size`` buckets given by ``index`` ``[E]``."""
    out = src.new_zeros((size, *src.shape[1:]))
    return out.index_add_(0, index, src)


def enveloped_softmax(logits: torch.Tensor, weight: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """``w_e exp(a_e) / sum_{e' -> same receiver} w_e' exp(a_e')`` along dim 0.

    ``logits`` is ``[E, H]``, ``weight`` ``[E]`` (the cutoff envelope). Weighting by the envelope makes
    the attention continuous when an edge enters or leaves: its weight starts at zero and the
    normaliser of the other edges changes smoothly. The per-receiver maximum is subtracted for
    stability; it cancels exactly in the ratio, so it carries no gradient.
    """
    shift = torch.full((size, logits.shape[1]), -torch.inf, dtype=logits.dtype, device=logits.device)
    shift = shift.scatter_reduce(0, index[:, None].expand_as(logits), logits.detach(), "amax", include_self=True)
    numerator = weight[:, None] * torch.exp(logits - shift[index])
    denominator = scatter_sum(numerator, index, size).clamp_min(torch.finfo(logits.dtype).tiny)
    return numerator / denominator[index]
