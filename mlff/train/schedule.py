"""Learning-rate schedules: linear warm-up, then cosine decay to ``min_lr_ratio`` or constant; or
reduce-on-plateau of the validation score (stepped by the trainer after each validation)."""

from __future__ import annotations

import math

import torch

from mlff.train.config import OptimConfig


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.plateau_factor,
                                                          patience=cfg.plateau_patience)
    total = max(total_steps, 1)

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        t = (step - cfg.warmup_steps) / max(total - cfg.warmup_steps, 1)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def forget_best(scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau) -> None:
    """Make a plateau schedule compare the next scores afresh (they are on another scale)."""
    scheduler.best, scheduler.num_bad_epochs = scheduler.mode_worse, 0
