"""The training config: choices checked at load, relations between fields, label keys, split sizes."""

import pytest
import yaml

from mlff.data.labels import LabelKeys
from mlff.errors import ConfigError
from mlff.train.config import load_config


def load(tmp_path, **cfg):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data": {"train": ["frames.xyz"]}, **cfg}))
    return load_config(path)


@pytest.mark.parametrize("cfg, match", [
    ({"loss": {"kind": "l2"}}, "loss.kind: 'l2' is not one of 'mse', 'mae', 'huber'"),
    ({"optim": {"schedule": "linear"}}, "optim.schedule: 'linear' is not one of 'cosine', 'plateau', 'constant'"),
    ({"dtype": "float16"}, "dtype: 'float16' is not one of 'float32', 'float64'"),
    ({"val_metric": "force"}, "val_metric: 'force' is not one of 'loss', 'energy_mae', .*'stress_rmse'"),
    ({"val_metric": "stress_mae"}, r"val_metric stress_mae needs stress in the loss \(loss.stress_weight > 0\)"),
    ({"val_metric": "force_mae", "empp": {"pretrain": True}}, "EMPP pre-training has no labels; only 'loss'"),
    ({"data": {"train": ["a.xyz"], "split": {"val": 1.5}}}, r"data.split: val must be a fraction in \[0, 1\) or a "
                                                            r"whole count of structures, got 1.5"),
    ({"data": {"train": ["a.xyz"], "split": {"test": -2}}}, "data.split: test must be .* got -2.0"),
    ({"data": {"train": ["a.xyz"], "keys": {"energie": "E"}}}, "unknown key data.keys.energie"),
])
def test_bad_values_are_named(tmp_path, cfg, match):
    with pytest.raises(ConfigError, match=match):
        load(tmp_path, **cfg)


def test_valid_choices_load(tmp_path):
    cfg = load(tmp_path, loss={"kind": "huber", "stress_weight": 1.0}, optim={"schedule": "plateau"},
               dtype="float64", val_metric="stress_rmse",
               data={"train": ["a.xyz"], "keys": {"energy": "E", "forces": "F"}, "split": {"val": 5, "test": 0.25}})
    chosen = (cfg.loss.kind, cfg.optim.schedule, cfg.dtype, cfg.val_metric)
    assert chosen == ("huber", "plateau", "float64", "stress_rmse")
    assert cfg.data.keys == LabelKeys(energy="E", forces="F", stress="stress")
    assert load(tmp_path).val_metric == "loss"
