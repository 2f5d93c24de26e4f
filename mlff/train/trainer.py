"""Training loop: AdamW, warmup + cosine/plateau schedule, gradient clipping, EMA, exact resume.

Batches of epoch ``e`` come from a permutation seeded by ``(seed, e)``, and the full training state
(weights, EMA, optimizer, schedule, position in the epoch, history) is checkpointed atomically every
``checkpoint_every`` steps, so ``--resume`` continues exactly where a run stopped: the same batches
in the same order and, on the CPU, bit-identical weights to an uninterrupted run.
"""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from mlff.data.dataset import GraphDataset
from mlff.errors import MLFFError
from mlff.fileio import atomic_path
from mlff.models.checkpoint import save_checkpoint
from mlff.models.energy_model import EnergyModel
from mlff.train.config import TrainConfig
from mlff.train.data import TrainingData
from mlff.train.distributed import average_gradients
from mlff.train.empp import EMPP
from mlff.train.loss import Metrics, loss_terms

STATE_FILE = "train_state.pt"


class TrainingError(MLFFError):
    """Training cannot continue (a NaN loss, a corrupt state file...)."""


class Trainer:
    def __init__(self, cfg: TrainConfig, data: TrainingData, model: EnergyModel, device: torch.device,
                 rank: int = 0, world: int = 1):
        self.cfg, self.data, self.device = cfg, data, device
        self.rank, self.world = rank, world
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        self.model = model.to(device=device, dtype=self.dtype)
        self.ema = copy.deepcopy(self.model) if cfg.optim.ema_decay else None
        self.out = Path(cfg.output)
        self.train_set = GraphDataset(data.train, model.cutoff, dtype=self.dtype)
        self.batches_per_epoch = math.ceil(len(self.train_set) / cfg.batch_size)
        self.total_steps = cfg.epochs * self.batches_per_epoch
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.empp = self._empp(cfg, data, model)
        self.optimizer = torch.optim.AdamW(self.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.scheduler = self._scheduler()
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best = math.inf
        self.history: list[dict] = []

    def _empp(self, cfg: TrainConfig, data: TrainingData, model: EnergyModel) -> EMPP | None:
        if cfg.empp is None:
            return None
        stats = data.metadata.get("statistics", {})
        energy = (stats.get("energy_per_atom_mean"), stats.get("energy_per_atom_std"))
        net = model.network.config
        empp = EMPP(cfg.empp, net.channels, net.lmax, model.cutoff, energy if None not in energy else None,
                    stats.get("force_rms"))
        return empp.to(device=self.device, dtype=self.dtype)

    def parameters(self) -> list[torch.nn.Parameter]:
        """Everything the optimizer updates: the model and, with EMPP, its encoders and head."""
        return list(self.model.parameters()) + (list(self.empp.parameters()) if self.empp is not None else [])

    @property
    def pretraining(self) -> bool:
        return self.cfg.empp is not None and self.cfg.empp.pretrain

    def empp_loss(self, model: EnergyModel, graph, seed: int) -> dict:
        """EMPP loss of ``graph`` with masks drawn from ``seed`` (reproducible, so resume is exact)."""
        return self.empp(model, graph, torch.Generator().manual_seed(seed))

    # ------------------------------------------------------------------ schedule
    def _scheduler(self):
        o = self.cfg.optim
        if o.schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=o.plateau_factor,
                                                              patience=o.plateau_patience)
        total = max(self.total_steps, 1)

        def factor(step: int) -> float:
            if step < o.warmup_steps:
                return (step + 1) / o.warmup_steps
            if o.schedule == "constant":
                return 1.0
            t = (step - o.warmup_steps) / max(total - o.warmup_steps, 1)
            return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "empp": self.empp.state_dict() if self.empp is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "best": self.best, "history": self.history,
        }

    def save_state(self) -> None:
        if self.rank:
            return
        with atomic_path(self.out / STATE_FILE) as tmp:
            torch.save(self.state_dict(), tmp)

    def load_state(self) -> None:
        path = self.out / STATE_FILE
        if not path.is_file():
            raise TrainingError(f"cannot resume: {path} does not exist")
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
            self.model.load_state_dict(state["model"])
            if self.empp is not None:
                self.empp.load_state_dict(state["empp"])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except Exception as exc:
            raise TrainingError(f"cannot resume from {path}: corrupt or incompatible state ({exc})") from exc
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best, self.history = state["best"], state["history"]

    # ------------------------------------------------------------------ loop
    def epoch_order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.train_set), generator=generator).tolist()

    def train_step(self, indices: list[int]) -> float:
        indices = indices[self.rank :: self.world]  # this rank's share of the global batch
        graph = self.train_set.collate([self.train_set[i] for i in indices]).to(self.device)
        self.model.train()
        loss = torch.zeros((), device=self.device, dtype=self.dtype)
        if not self.pretraining:
            out = self.model(graph, forces=True, stress=self.cfg.loss.stress_weight > 0 and graph.stress is not None,
                             create_graph=True)
            loss = loss_terms(out, graph, self.cfg.loss, progress=self.step / max(self.total_steps, 1))["total"]
        if self.empp is not None:
            seed = (self.cfg.seed * 1_000_003 + self.step) * max(self.world, 1) + self.rank
            loss = loss + self.cfg.empp.weight * self.empp_loss(self.model, graph, seed)["loss"]
        if not torch.isfinite(loss):
            raise TrainingError(f"loss became {float(loss)} at step {self.step}; the last good state is in "
                                f"{self.out / STATE_FILE}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.parameters(), self.world)
        if self.cfg.optim.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.cfg.optim.clip_grad)
        self.optimizer.step()
        if self.cfg.optim.schedule != "plateau":
            self.scheduler.step()
        if self.ema is not None:
            with torch.no_grad():
                d = self.cfg.optim.ema_decay
                for e, p in zip(self.ema.parameters(), self.model.parameters()):
                    e.mul_(d).add_(p, alpha=1 - d)
        self.step += 1
        return loss.item()

    def fit(self, log=print) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        while self.step < self.total_steps and self.epoch < self.cfg.epochs:
            order = self.epoch_order(self.epoch)
            bar = tqdm(total=self.batches_per_epoch, initial=self.batch_in_epoch, desc=f"epoch {self.epoch + 1}",
                       disable=not self.cfg.progress or self.rank > 0, file=sys.stderr, leave=False)
            while self.batch_in_epoch < self.batches_per_epoch and self.step < self.total_steps:
                b = self.batch_in_epoch
                loss = self.train_step(order[b * self.cfg.batch_size : (b + 1) * self.cfg.batch_size])
                self.batch_in_epoch += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}")
                if self.step % self.cfg.checkpoint_every == 0:
                    self.save_state()
            bar.close()
            if self.batch_in_epoch == self.batches_per_epoch:
                self.epoch += 1
                self.batch_in_epoch = 0
                if self.epoch % self.cfg.val_every == 0 or self.epoch == self.cfg.epochs:
                    self.validate(log)
            self.save_state()

    def validate(self, log=print) -> dict:
        model = self.eval_model()
        structures = self.data.val or self.data.train
        if self.pretraining:
            metrics = self.evaluate_empp(model, structures)
            score = metrics["empp"]
        else:
            metrics = evaluate(model, structures, self.cfg.batch_size, self.device, self.dtype)
            score = metrics["energy_rmse"] + metrics.get("force_rmse", 0.0)
        if self.cfg.optim.schedule == "plateau":
            self.scheduler.step(score)
        self.history.append({"epoch": self.epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                             **{f"val_{k}": v for k, v in metrics.items()}})
        line = format_metrics(metrics)
        if score < self.best:
            self.best = score
            if self.rank == 0:
                    save_checkpoint(model, self.out / "best.pt", metadata=self.data.metadata, metrics={"val": metrics})
            line += "  (best)"
        if self.rank == 0:
            log(f"epoch {self.epoch:4d} step {self.step:6d}  val {line}")
        return metrics

    @torch.no_grad()
    def evaluate_empp(self, model: EnergyModel, structures) -> dict:
        """Mean EMPP loss (KL, nats) of ``model`` on ``structures``, with fixed masks."""
        dataset = GraphDataset(structures, model.cutoff, dtype=self.dtype)
        self.empp.eval()
        total = radius = direction = 0.0
        batches = range(0, len(dataset), self.cfg.batch_size)
        for k, start in enumerate(batches):
            graph = dataset.collate([dataset[i] for i in range(start, min(start + self.cfg.batch_size, len(dataset)))])
            out = self.empp_loss(model, graph.to(self.device), seed=k)
            total, radius, direction = total + float(out["loss"]), radius + float(out["radius"]), direction + float(out["direction"])
        self.empp.train()
        n = max(len(batches), 1)
        return {"empp": total / n, "empp_radius": radius / n, "empp_direction": direction / n}

    def eval_model(self) -> EnergyModel:
        return (self.ema if self.ema is not None else self.model).eval()


def evaluate(model: EnergyModel, structures, batch_size: int, device, dtype) -> dict:
    """Energy (meV/atom), force (meV/Å) and stress (meV/Å³) MAE/RMSE of ``model`` on labelled structures."""
    dataset = GraphDataset(structures, model.cutoff, dtype=dtype)
    metrics = Metrics()
    model.eval()
    for start in range(0, len(dataset), batch_size):
        graph = dataset.collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]).to(device)
        metrics.update(model(graph, forces=graph.forces is not None, stress=graph.stress is not None), graph)
    return metrics.result()


def format_metrics(m: dict) -> str:
    if "energy_mae" not in m:
        return f"EMPP KL {m['empp']:.4f} (radius {m['empp_radius']:.4f}, direction {m['empp_direction']:.4f})"
    text = f"E MAE {m['energy_mae']:.2f} RMSE {m['energy_rmse']:.2f} meV/atom"
    if "force_mae" in m:
        text += f"  F MAE {m['force_mae']:.1f} RMSE {m['force_rmse']:.1f} meV/Å"
    if "stress_mae" in m:
        text += f"  S MAE {m['stress_mae']:.2f} RMSE {m['stress_rmse']:.2f} meV/Å³"
    return text
