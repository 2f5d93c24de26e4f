"""The EST benchmarks run end to end (tiny settings; the real figures come from the CLI runs)."""

import json

import yaml

from mlff.bench.est import benchmark_molecules
from mlff.cli import main


def test_benchmark_molecules_are_g2_then_rattled_md17():
    molecules = benchmark_molecules(200)
    assert len(molecules) == 200 and all(len(a) > 1 for a in molecules)
    assert len({a.get_chemical_formula() for a in molecules}) > 100


def test_equivariance_table_shows_more_points_help(capfd):
    assert main(["bench", "est-equivariance", "--molecules", "12", "--layers", "1"]) == 0
    out = capfd.readouterr().out
    rows = {line.split("  ")[0]: float(line.split()[-2]) for line in out.splitlines()
            if line.startswith(("Fibonacci", "equiangular"))}
    assert len(rows) == 4
    few, many = rows["Fibonacci 56, no refinement"], rows["Fibonacci 144, no refinement"]
    assert 0 < many < few < 0.1  # eV/Å: approximate equivariance that improves with the point count


def test_accuracy_study_trains_both_models(tmp_path, capfd):
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": ["unused.xyz"]}, "optim": {"lr": 0.005},
                                      "epochs": 1, "batch_size": 4}))
    argv = ["bench", "est-accuracy", str(config), "--molecules", "ethanol", "--frames", "14", "--val", "2",
            "--test", "4", "--device", "cpu", "--workdir", str(tmp_path / "study")]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "study" / "results.json").read_text())
    assert [r["model"] for r in rows] == ["equiformer_v2", "est"]
    assert all(r["force_mae"] > 0 and r["ms_per_step"] > 0 for r in rows)
    assert rows[1]["parameters"] > rows[0]["parameters"]
