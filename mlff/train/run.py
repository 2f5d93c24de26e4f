"""``mlff train``: set up, train, and report (error table, learning curve, parity plots).

Progress goes to the ``mlff.train`` loggers at INFO level (rank 0 only); set that logger's level to
WARNING to train quietly.
"""

from __future__ import annotations

import json
import logging
import math

import torch

from mlff.fileio import atomic_write
from mlff.models.checkpoint import load_checkpoint, save_checkpoint
from mlff.runtime import resolve_device
from mlff.train import distributed
from mlff.train.config import TrainConfig
from mlff.train.data import build_model, load_training_data
from mlff.train.evaluation import evaluate, format_metrics
from mlff.train.plots import learning_curve, parity_plots
from mlff.train.trainer import Trainer

logger = logging.getLogger(__name__)


def train(cfg: TrainConfig, resume: bool = False, command: str | None = None) -> dict:
    """Train as ``cfg`` says; ``command`` (what the user ran) goes into the figures' captions."""
    rank, world, dist_device = distributed.setup()
    try:
        return _train(cfg, resume, rank, world, dist_device, command or "mlff Python API (mlff.train.run.train)")
    finally:
        distributed.teardown()


def _train(cfg: TrainConfig, resume: bool, rank: int, world: int, dist_device, command: str) -> dict:
    torch.manual_seed(cfg.seed)
    device = dist_device or resolve_device(cfg.device)
    data = load_training_data(cfg)
    model = build_model(cfg, data)
    trainer = Trainer(cfg, data, model, device, rank, world)
    if resume:
        trainer.load_state()
    if rank == 0:
        if resume:
            logger.info("resumed at step %d (epoch %d, batch %d)", trainer.step, trainer.epoch + 1,
                        trainer.batch_in_epoch)
        if world > 1:
            logger.info("data parallel over %d processes; each step splits the batch of %d", world, cfg.batch_size)
        logger.info("training on %d structures, validating on %d, testing on %d; %s parameters; %d steps",
                    len(data.train), len(data.val), len(data.test), f"{sum(p.numel() for p in model.parameters()):,}",
                    trainer.total_steps)
    trainer.fit()
    if rank > 0:
        return {}  # rank 0 evaluates and writes the results
    final = trainer.eval_model()
    best_path = trainer.out / "best.pt"
    best = load_checkpoint(best_path, device=device, dtype=trainer.dtype) if best_path.is_file() else final
    parts = [(name, part) for name, part in (("train", data.train), ("val", data.val), ("test", data.test)) if part]
    if trainer.pretraining:
        table = {name: trainer.evaluate_empp(best, part) for name, part in parts}
    else:
        table = {name: evaluate(best, part, cfg.batch_size, device, trainer.dtype) for name, part in parts}
    save_checkpoint(best, trainer.out / "model.pt", metadata=data.metadata, metrics=table)
    with atomic_write(trainer.out / "metrics.json") as fh:
        best_score = trainer.best if math.isfinite(trainer.best) else None  # None: never validated
        json.dump({"errors": table, "val_metric": cfg.val_metric, "best_score": best_score, "history": trainer.history},
                  fh, indent=2)
    caption = f"{command} · {cfg.model.name} {cfg.model.preset or ''} · {trainer.out}"
    learning_curve(trainer.history, trainer.out / "learning_curve.png", caption)
    if not trainer.pretraining:
        split = "test" if data.test else "validation"
        parity_plots(best, data.test or data.val, trainer.out / "parity", device, trainer.dtype, split, caption,
                     cfg.batch_size)
    logger.info("\n".join(f"{name:>5}: {format_metrics(m)}" for name, m in table.items()))
    return table
