"""The validation score: the training loss over the whole set, or a named error, and what it picks."""

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from mlff.data import AtomicGraph
from mlff.data.labels import set_labels
from mlff.models.checkpoint import load_checkpoint
from mlff.train import trainer as trainer_module
from mlff.train.config import DataConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
from mlff.train.data import TrainingData, build_model
from mlff.train.loss import loss_terms
from mlff.train.trainer import Trainer, TrainingError

TINY = {"num_layers": 1, "channels": 8, "attn_hidden": 8, "ffn_hidden": 8, "edge_channels": 8, "num_basis": 8}


def emt_frames(n: int, seed: int) -> list:
    """Rattled Cu cells (energy, forces, stress) and CO molecules (whose stress label must be ignored)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.55 + 0.05 * rng.random(), cubic=True) if k % 3 else molecule("CO")
        atoms.rattle(0.05, rng=rng)
        atoms.calc = EMT()
        stress = atoms.get_stress() if atoms.pbc.all() else np.ones(6)
        frames.append(set_labels(atoms.copy(), energy=atoms.get_potential_energy(), forces=atoms.get_forces(),
                                 stress=stress))
    return frames


def make_trainer(tmp_path, loss: LossConfig, val_metric="loss", schedule="cosine") -> Trainer:
    """Ten steps (one batch of 3 per epoch); validation in batches of 3 and 2."""
    cfg = TrainConfig(data=DataConfig(train=["unused.xyz"]), model=ModelConfig(options=dict(TINY, cutoff=4.0)),
                      loss=loss, optim=OptimConfig(schedule=schedule), epochs=10, batch_size=3, dtype="float64",
                      val_metric=val_metric, output=str(tmp_path), progress=False)
    data = TrainingData(emt_frames(3, seed=0), emt_frames(5, seed=1), [])
    torch.manual_seed(0)
    tmp_path.mkdir(parents=True, exist_ok=True)
    return Trainer(cfg, data, build_model(cfg, data), torch.device("cpu"))


@pytest.mark.parametrize("kind", ["mse", "mae", "huber"])
def test_validation_loss_is_the_loss_of_the_whole_set_in_one_batch(tmp_path, kind):
    loss = LossConfig(kind=kind, huber_delta=0.05, energy_weight=2.0, forces_weight=5.0, stress_weight=30.0,
                      stage_two_fraction=0.5, stage_two_energy_weight=70.0, stage_two_forces_weight=3.0)
    trainer = make_trainer(tmp_path, loss)
    model = trainer.eval_model()
    graph = AtomicGraph.from_atoms(trainer.data.val, model.cutoff, dtype=torch.float64)
    out = model(graph, forces=True, stress=True)
    assert torch.isfinite(out["stress"]).any() and torch.isnan(out["stress"]).any()  # a mixed set
    for step, progress in ((3, 0.0), (8, 1.0)):  # after 3 steps stage one; after 8 (of 10) stage two
        trainer.step = step
        expected = loss_terms(out, graph, loss, progress=progress)
        assert set(expected) == {"energy", "forces", "stress", "total"}
        assert trainer.validate()["loss"] == pytest.approx(expected["total"].item(), rel=1e-10)
        assert trainer.history[-1]["score"] == trainer.history[-1]["val_loss"]


SCRIPT = [  # validation errors of three successive validations
    {"energy_mae": 3.0, "energy_rmse": 3.0, "force_mae": 2.0, "force_rmse": 2.0, "loss": 1.0},
    {"energy_mae": 1.0, "energy_rmse": 1.0, "force_mae": 3.0, "force_rmse": 3.0, "loss": 5.0},
    {"energy_mae": 2.0, "energy_rmse": 2.0, "force_mae": 1.0, "force_rmse": 1.0, "loss": 6.0},
]


def scripted_validations(trainer, monkeypatch, steps=(2, 4, 6)):
    script = iter(SCRIPT)
    monkeypatch.setattr(trainer_module, "evaluate", lambda *args, **kwargs: dict(next(script)))
    for step in steps:
        trainer.step = step
        trainer.validate()
    return [h["best"] for h in trainer.history], load_checkpoint(trainer.out / "best.pt").metrics["val"]


@pytest.mark.parametrize("metric, flags, best", [("loss", [True, False, False], 0),
                                                 ("energy_rmse", [True, True, False], 1),
                                                 ("force_mae", [True, False, True], 2)])
def test_best_checkpoint_follows_the_configured_metric(tmp_path, monkeypatch, metric, flags, best):
    trainer = make_trainer(tmp_path, LossConfig(), val_metric=metric)
    assert scripted_validations(trainer, monkeypatch) == (flags, SCRIPT[best])
    assert [h["score"] for h in trainer.history] == [s[metric] for s in SCRIPT]
    assert trainer.best == SCRIPT[best][metric]


def test_stage_two_resets_the_best_loss_and_the_plateau_schedule(tmp_path, monkeypatch):
    loss = LossConfig(stage_two_fraction=0.4)  # steps 4 onwards (of 10) are stage two
    trainer = make_trainer(tmp_path, loss, schedule="plateau")
    flags, val = scripted_validations(trainer, monkeypatch, steps=(2, 5, 7))
    assert flags == [True, True, False] and val == SCRIPT[1]  # 5.0 after the switch beats nothing before it
    assert trainer.best == 5.0 and trainer.best_stage and trainer.scheduler.best == 5.0

    trainer = make_trainer(tmp_path / "errors", loss, val_metric="force_mae")
    assert scripted_validations(trainer, monkeypatch, steps=(2, 5, 7))[0] == [True, False, True]
    assert trainer.best == 1.0  # errors do not depend on the weights: no reset


def test_a_metric_the_validation_set_lacks_is_a_clear_error(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, LossConfig(stress_weight=1.0), val_metric="stress_rmse")
    with pytest.raises(TrainingError, match="val_metric stress_rmse: the validation set has no such error"):
        scripted_validations(trainer, monkeypatch)
