"""The EMPP benchmarks run end to end (tiny settings; the real figures come from the CLI runs)."""

import json

import yaml

from mlff.cli import main

TINY_MODEL = {"num_layers": 1, "channels": 8, "attn_hidden": 8, "ffn_hidden": 8, "edge_channels": 8, "num_basis": 8}


def test_study_trains_every_variant_and_writes_a_table(tmp_path, capfd):
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"train": ["unused.xyz"]}, "model": {"preset": "small", "options": TINY_MODEL},
        "optim": {"lr": 0.005}, "epochs": 1, "batch_size": 4,
    }))
    argv = ["bench", "empp-study", str(config), "--molecules", "ethanol", "--frames", "16", "--val", "4",
            "--test", "4", "--masks", "0", "1", "--sphere-points", "100", "--pretrain-frames", "12",
            "--finetune-frames", "8", "--weights", "0.1", "1", "--jobs", "2", "--workdir", str(tmp_path / "study")]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "study" / "results.json").read_text())
    assert [r["variant"] for r in rows] == [
        "no EMPP", "1 mask, w=0.1", "1 mask, w=1", "small set, from scratch", "small set, EMPP pre-trained"]
    assert all(r["force_mae"] > 0 for r in rows)
    out = capfd.readouterr().out
    assert "1 mask, w=0.1" in out and "%" in out and "trained in" in out
    # a second call reuses the finished runs instead of training again, and reports the same errors
    assert main(argv) == 0
    assert "trained in" not in capfd.readouterr().out
    assert json.loads((tmp_path / "study" / "results.json").read_text()) == rows
