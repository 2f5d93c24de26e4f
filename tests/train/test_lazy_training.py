"""Training on data read on demand, by DataLoader workers or not: the same run as in memory."""

from __future__ import annotations

import torch

from mlff.train.run import train
from mlff.train.trainer import STATE_FILE
from tests.train.test_training import config


def final_state(tmp_path, xtb_data, **options):
    cfg = config(tmp_path, xtb_data, epochs=2)
    for key, value in options.items():
        setattr(cfg.data, key, value)
    train(cfg)
    return torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)


def test_lazy_data_with_workers_trains_exactly_as_in_memory(tmp_path, xtb_data):
    memory = final_state(tmp_path / "memory", xtb_data)
    lazy = final_state(tmp_path / "lazy", xtb_data, lazy=True, workers=2)
    assert lazy["step"] == memory["step"] > 0
    for key, value in memory["model"].items():
        assert torch.equal(lazy["model"][key], value), key
    assert lazy["history"][-1]["val_force_mae"] == memory["history"][-1]["val_force_mae"]
    splits = [(tmp_path / name / "run" / "splits" / "test.idx").read_text() for name in ("memory", "lazy")]
    assert splits[0] == splits[1]
