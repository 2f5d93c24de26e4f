"""Training loop: AdamW, learning-rate schedule, gradient clipping, EMA, validation, exact resume.

Batches of epoch ``e`` come from a permutation seeded by ``(seed, e)``, and the full training state
(weights, EMA, optimizer, schedule, position in the epoch, history) is checkpointed atomically every
``checkpoint_every`` steps, so ``--resume`` continues exactly where a run stopped: the same batches
in the same order and, on the CPU, bit-identical weights to an uninterrupted run.

Validation (every ``val_every`` epochs, of the EMA weights if any) gives a score that picks
``best.pt`` and drives the plateau schedule. By default (``val_metric: loss``) it is the training
loss on the whole validation set: the same penalty and the weights of the last step taken (energy
per atom, forces, stress where labelled), each term summed over all structures and divided by its
count, i.e. the loss of one batch holding the whole set (no EMPP auxiliary term; in EMPP
pre-training, the EMPP loss). ``val_metric`` may name an error instead (``force_mae``...). Loss
scores before and after stage two switches the weights do not compare, so the best score (and the
plateau schedule's) is reset at the first validation after the switch: ``best.pt`` is then the best
of stage two. The history records each validation's errors (``val_*``), ``score`` and ``best``.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader
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
from mlff.train.evaluation import evaluate, format_metrics, iter_batches
from mlff.train.loss import Metrics, in_stage_two, loss_terms
from mlff.train.schedule import forget_best, make_scheduler

STATE_FILE = "train_state.pt"
logger = logging.getLogger(__name__)


class TrainingError(MLFFError):
    """Training cannot continue (a NaN loss, a corrupt state file...)."""


class Batches:
    """The batch sampler of the training DataLoader: the index lists of the current epoch, set per epoch."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(list(self.batches))

    def __len__(self) -> int:
        return len(self.batches)


class Trainer:
    def __init__(self, cfg: TrainConfig, data: TrainingData, model: EnergyModel, device: torch.device,
                 rank: int = 0, world: int = 1):
        self.cfg, self.data, self.device = cfg, data, device
        self.rank, self.world = rank, world
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        self.model = model.to(device=device, dtype=self.dtype)
        self.ema = copy.deepcopy(self.model) if cfg.optim.ema_decay else None
        self.out = Path(cfg.output)
        # in memory: graphs are built once and kept; lazily read data, or workers (each would keep its own
        # copy of every graph): built per use, memory stays bounded. Frames from the readers are validated.
        self.train_set = GraphDataset(data.train, model.cutoff, dtype=self.dtype,
                                      cache=not cfg.data.lazy and not cfg.data.workers, validate=not data.validated)
        self.batches_per_epoch = math.ceil(len(self.train_set) / cfg.batch_size)
        self.total_steps = cfg.epochs * self.batches_per_epoch
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.empp = self._empp(cfg, data, model)
        self.optimizer = torch.optim.AdamW(self.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, cfg.optim, self.total_steps)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best, self.best_stage = math.inf, False  # lowest score, and whether it was of stage two
        self.history: list[dict] = []
        self.running = Metrics()  # training errors since the last validation (live weights; not resumed)
        self._loader, self._shares = None, Batches()  # DataLoader workers (data.workers > 0)

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

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "empp": self.empp.state_dict() if self.empp is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "best": self.best, "best_stage": self.best_stage, "history": self.history,
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
            self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
            self.best, self.best_stage, self.history = state["best"], state["best_stage"], state["history"]
        except Exception as exc:
            raise TrainingError(f"cannot resume from {path}: corrupt or incompatible state ({exc})") from exc

    # ------------------------------------------------------------------ loop
    def epoch_order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.train_set), generator=generator).tolist()

    def train_step(self, indices: list[int]) -> float:
        """One optimisation step on the global batch ``indices`` (this rank takes its share)."""
        share = indices[self.rank :: self.world]
        return self.train_on(self.train_set.collate([self.train_set[i] for i in share]))

    def epoch_batches(self, order: list[int]):
        """This rank's graphs for the batches of the epoch from ``batch_in_epoch`` on, read by
        ``data.workers`` DataLoader processes (0: in this process)."""
        size = self.cfg.batch_size
        shares = [order[b * size : (b + 1) * size][self.rank :: self.world]
                  for b in range(self.batch_in_epoch, self.batches_per_epoch)]
        if not self.cfg.data.workers:
            return (self.train_set.collate([self.train_set[i] for i in share]) for share in shares)
        if self._loader is None:  # started once: spawned workers take seconds to import torch
            # spawned, not forked: a forked child inherits the parent's open LMDB files, which LMDB
            # forbids it to use or to open again
            self._loader = DataLoader(self.train_set, batch_sampler=self._shares, num_workers=self.cfg.data.workers,
                                      collate_fn=GraphDataset.collate, multiprocessing_context="spawn",
                                      persistent_workers=True)
        self._shares.batches = shares
        return iter(self._loader)

    def train_on(self, graph) -> float:
        """One optimisation step on this rank's ``graph``."""
        graph = graph.to(self.device)
        self.model.train()
        loss = torch.zeros((), device=self.device, dtype=self.dtype)
        if not self.pretraining:
            out = self.model(graph, forces=True, stress=self.cfg.loss.stress_weight > 0 and graph.stress is not None,
                             create_graph=True)
            loss = loss_terms(out, graph, self.cfg.loss, progress=self.progress(self.step))["total"]
            self.running.update(out, graph)
        if self.empp is not None:
            seed = (self.cfg.seed * 1_000_003 + self.step) * max(self.world, 1) + self.rank
            loss = loss + self.cfg.empp.weight * self.empp_loss(self.model, graph, seed)["loss"]
        if not torch.isfinite(loss):
            raise TrainingError(f"loss became {loss.item()} at step {self.step}; the last good state is in "
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

    def progress(self, step: int) -> float:
        """Training progress in [0, 1] at optimisation step ``step`` (what stage two of the loss goes by)."""
        return step / max(self.total_steps, 1)

    def fit(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        while self.step < self.total_steps and self.epoch < self.cfg.epochs:
            order = self.epoch_order(self.epoch)
            bar = tqdm(total=self.batches_per_epoch, initial=self.batch_in_epoch, desc=f"epoch {self.epoch + 1}",
                       disable=not self.cfg.progress or self.rank > 0, file=sys.stderr, leave=False)
            batches = self.epoch_batches(order)
            while self.batch_in_epoch < self.batches_per_epoch and self.step < self.total_steps:
                loss = self.train_on(next(batches))
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
                    self.validate()
            self.save_state()

    def validate(self) -> dict:
        model = self.eval_model()
        structures = self.data.val or self.data.train
        if self.pretraining:
            metrics = self.evaluate_empp(model, structures)
            score, stage = metrics["empp"], False
        else:
            progress = self.progress(max(self.step - 1, 0))  # the weights of the last step taken
            metrics = evaluate(model, structures, self.cfg.batch_size, self.device, self.dtype, self.cfg.loss, progress)
            score, stage = self.score(metrics), in_stage_two(self.cfg.loss, progress)
        plateau = self.cfg.optim.schedule == "plateau"
        if stage != self.best_stage and self.cfg.val_metric == "loss":  # other weights: start comparing afresh
            self.best, self.best_stage = math.inf, stage
            if plateau:
                forget_best(self.scheduler)
        if plateau:
            self.scheduler.step(score)
        best = score < self.best
        running = self.running.result() if self.running.n_struct else {}
        self.running = Metrics()
        self.history.append({"epoch": self.epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                             **{f"val_{k}": v for k, v in metrics.items()}, **{f"train_{k}": v for k, v in running.items()},
                             "score": score, "best": best})
        if best:
            self.best = score
            if self.rank == 0:
                save_checkpoint(model, self.out / "best.pt", metadata=self.data.metadata, metrics={"val": metrics})
        if self.rank == 0:
            logger.info("epoch %4d step %6d  val %s%s", self.epoch, self.step, format_metrics(metrics),
                        "  (best)" if best else "")
        return metrics

    def score(self, metrics: dict) -> float:
        if self.cfg.val_metric not in metrics:
            raise TrainingError(f"val_metric {self.cfg.val_metric}: the validation set has no such error "
                                f"(it has {', '.join(sorted(metrics))}); are its labels missing?")
        return metrics[self.cfg.val_metric]

    @torch.no_grad()
    def evaluate_empp(self, model: EnergyModel, structures) -> dict:
        """Mean EMPP loss (KL, nats) of ``model`` on ``structures``, with fixed masks."""
        self.empp.eval()
        batches = iter_batches(structures, model.cutoff, self.cfg.batch_size, self.device, self.dtype)
        parts = [{key: float(value) for key, value in self.empp_loss(model, graph, seed=k).items()}
                 for k, graph in enumerate(batches)]
        self.empp.train()
        mean = lambda key: sum(part[key] for part in parts) / max(len(parts), 1)  # noqa: E731
        return {"empp": mean("loss"), "empp_radius": mean("radius"), "empp_direction": mean("direction")}

    def eval_model(self) -> EnergyModel:
        return (self.ema if self.ema is not None else self.model).eval()
