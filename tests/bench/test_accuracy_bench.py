"""``mlff bench accuracy`` end to end at tiny settings (the real figures come from CLI runs, in the README)."""

import argparse
import json

import pytest
import yaml

from mlff.bench import peers
from mlff.bench.accuracy import contended, load_variants, merged, report, split_files, variant_config
from mlff.cli import main
from mlff.data.formats import read_structures
from mlff.errors import ConfigError

TINY = {"model": {"options": {"num_layers": 1, "channels": 8, "lmax": 1, "mmax": 1, "ffn_hidden": 8,
                              "edge_channels": 8, "num_basis": 8, "attn_hidden": 8, "grid_resolution": 8}},
        "batch_size": 4}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return split_files(tmp_path_factory.mktemp("acc"), "ethanol", 20, 3, 4, seed=1)


def test_split_files_are_disjoint_and_reused(files):
    frames = {name: read_structures(path) for name, path in files.items()}
    assert [len(frames[n]) for n in ("train", "val", "test")] == [13, 3, 4]
    keys = {name: {a.positions.tobytes() for a in part} for name, part in frames.items()}
    assert not (keys["train"] & keys["val"] or keys["train"] & keys["test"] or keys["val"] & keys["test"])
    stamp = files["train"].stat().st_mtime_ns
    assert split_files(files["train"].parent, "ethanol", 20, 3, 4, seed=1) == files
    assert files["train"].stat().st_mtime_ns == stamp


def test_variants_merge_into_the_base_and_bad_keys_are_named(tmp_path, files):
    base = {"model": {"name": "equiformer_v2", "preset": "small", "options": {"channels": 16}}, "batch_size": 2}
    out = merged(base, {"model": {"options": {"lmax": 2}}})
    assert out["model"] == {"name": "equiformer_v2", "preset": "small", "options": {"channels": 16, "lmax": 2}}
    assert base["model"]["options"] == {"channels": 16}  # not modified
    cfg = variant_config(base, {"optim": {"lr": 0.01}}, files, tmp_path / "run", "fast")
    assert cfg.optim.lr == 0.01 and cfg.data.val == [str(files["val"])] and cfg.batch_size == 2
    with pytest.raises(ConfigError, match="variant typo: unknown key optim.learning_rate"):
        variant_config(base, {"optim": {"learning_rate": 0.01}}, files, tmp_path / "run", "typo")
    hot = variant_config(base, {"data": {"extra_train": ["hot.xyz"]}}, files, tmp_path / "run", "hot")
    assert hot.data.train == [str(files["train"])] and hot.data.extra_train == ["hot.xyz"]
    assert hot.data.test == [str(files["test"])]
    with pytest.raises(ConfigError, match="variant one: data.extra_train: expected a list"):
        variant_config(base, {"data": {"extra_train": "hot.xyz"}}, files, tmp_path / "run", "one")
    with pytest.raises(ConfigError, match="variant leak: data may only give extra_train.*got test"):
        variant_config(base, {"data": {"test": ["other.xyz"]}}, files, tmp_path / "run", "leak")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="variant name -> partial training config"):
        load_variants(str(bad))


def test_budget_sets_the_steps_and_finished_runs_are_reused(tmp_path, capfd):
    variants = tmp_path / "variants.yaml"
    variants.write_text(yaml.safe_dump({"tiny": TINY, "tiny_lr": merged(TINY, {"optim": {"lr": 0.01}})}))
    argv = ["bench", "accuracy", "--variants", str(variants), "--molecules", "ethanol", "--frames", "20",
            "--val", "3", "--test", "4", "--budget", "0.02", "--calibration-steps", "2", "--no-mace",
            "--workdir", str(tmp_path / "bench")]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert [r["run"] for r in rows] == ["tiny", "tiny_lr"]
    for row in rows:
        assert row["steps"] == max(1, int(0.02 * 60 / row["step_seconds"]))
        assert row["epochs"] == -(-row["steps"] // 4)  # 13 frames in batches of 4: 4 batches per epoch
        assert all(row["errors"][split]["force_mae"] > 0 for split in ("train", "val", "test"))
        assert 0 < row["calibration_cpu_share"] < 1.5  # CPU seconds per wall second and thread
    out = capfd.readouterr().out
    assert "tiny_lr" in out and "F/MACE" in out
    assert main(argv) == 0  # cached: the same rows without training again
    assert json.loads((tmp_path / "bench" / "results.json").read_text()) == rows


def test_a_step_budget_gives_every_variant_those_steps(tmp_path, capfd):
    variants = tmp_path / "variants.yaml"
    variants.write_text(yaml.safe_dump({"tiny": TINY}))
    assert main(["bench", "accuracy", "--variants", str(variants), "--molecules", "ethanol", "--frames", "20",
                 "--val", "3", "--test", "4", "--steps", "3", "--calibration-steps", "1", "--no-mace",
                 "--workdir", str(tmp_path / "bench")]) == 0
    (row,) = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert row["steps"] == 3 and row["epochs"] == 1
    assert "3 steps per mlff run" in capfd.readouterr().out
    assert row["calibration_cpu_share"] is None  # a step budget does not depend on the calibration


def test_runs_whose_calibration_shared_the_cpu_are_named(capfd):
    errors = {split: {"energy_mae": 0.1, "force_mae": 5.0} for split in ("train", "val", "test")}
    rows = [{"molecule": "ethanol", "run": run, "parameters": 10, "steps": steps, "epochs": 3, "train_seconds": 60.0,
             "threads": 1, "errors": errors, **({} if share == "absent" else {"calibration_cpu_share": share})}
            for run, steps, share in (("idle", 100, 0.97), ("shared", 100, 0.45), ("MACE", None, 0.6),
                                      ("cached_before", 100, "absent"), ("step_budget", 100, None))]
    assert [r["run"] for r in contended(rows)] == ["shared", "MACE"]
    report(rows, argparse.Namespace(steps=None, budget=24.0, threads=1, frames=1300, val=100, test=200, seed=1))
    warnings = [line for line in capfd.readouterr().out.splitlines() if line.startswith("warning")]
    assert len(warnings) == 2
    assert "ethanol shared: its calibration got 45 % of its 1 thread(s)' CPU time" in warnings[0]
    assert "fewer steps" in warnings[0] and "fewer epochs" in warnings[1] and "--steps" in warnings[1]


def test_bad_arguments_are_named(tmp_path, capfd):
    assert main(["bench", "accuracy", "--frames", "10", "--val", "5", "--test", "5", "--workdir", str(tmp_path)]) != 0
    assert "--frames 10 must exceed --val 5 + --test 5" in capfd.readouterr().err
    assert main(["bench", "accuracy", "--budget", "0", "--workdir", str(tmp_path)]) != 0
    assert "--budget > 0" in capfd.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing generated before the arguments are checked


MACE = peers.python_of("mace", argparse.Namespace(mace_python=None))


@pytest.mark.skipif(MACE is None, reason="the MACE peer environment is not installed "
                                         "(bash mlff/bench/peers/install_mace.sh .peers)")
def test_mace_trains_on_the_same_files(tmp_path, files):
    from mlff.bench.accuracy import run_mace

    result = run_mace(str(MACE), files, tmp_path / "mace", budget=5.0, threads=1, batch_size=4, seed=0, timeout=600)
    assert result["epochs"] >= 2 and result["parameters"] > 0
    assert 0 < result["calibration_cpu_share"] < 1.5
    assert set(result["errors"]) == {"train", "val", "test"}
    assert all(result["errors"][split]["force_mae"] > 0 for split in result["errors"])
