"""``mlff train``: set up, train, and report (error table, learning curve, parity plots)."""

from __future__ import annotations

import json

import torch

from mlff.calculator import resolve_device
from mlff.fileio import atomic_write
from mlff.models.checkpoint import load_checkpoint, save_checkpoint
from mlff.train import distributed
from mlff.train.config import TrainConfig
from mlff.train.data import build_model, load_training_data
from mlff.train.plots import learning_curve, parity_plots
from mlff.train.trainer import Trainer, evaluate, format_metrics


def train(cfg: TrainConfig, resume: bool = False, log=print) -> dict:
    rank, world, dist_device = distributed.setup()
    try:
        return _train(cfg, resume, log if rank == 0 else (lambda *_: None), rank, world, dist_device)
    finally:
        distributed.teardown()


def _train(cfg: TrainConfig, resume: bool, log, rank: int, world: int, dist_device) -> dict:
    torch.manual_seed(cfg.seed)
    device = dist_device or resolve_device(cfg.device)
    data = load_training_data(cfg)
    model = build_model(cfg, data)
    trainer = Trainer(cfg, data, model, device, rank, world)
    if resume:
        trainer.load_state()
        log(f"resumed at step {trainer.step} (epoch {trainer.epoch + 1}, batch {trainer.batch_in_epoch})")
    if world > 1:
        log(f"data parallel over {world} processes; each step splits the batch of {cfg.batch_size}")
    log(f"training on {len(data.train)} structures, validating on {len(data.val)}, testing on {len(data.test)}; "
        f"{sum(p.numel() for p in model.parameters()):,} parameters; {trainer.total_steps} steps")
    trainer.fit(log)
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
        json.dump({"errors": table, "history": trainer.history}, fh, indent=2)
    learning_curve(trainer.history, trainer.out / "learning_curve.png")
    if not trainer.pretraining:
        parity_plots(best, data.test or data.val, trainer.out / "parity", device, trainer.dtype)
    log("\n".join(f"{name:>5}: {format_metrics(m)}" for name, m in table.items()))
    return table
