"""The scripts in examples/ run as documented (shortened where they take a step count)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script: str, *args) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_every_example_is_covered():
    assert {p.name for p in EXAMPLES.glob("*.py")} == {
        "md_with_shipped_potential.py", "relax_co_on_cu111.py", "train_with_empp.py"}
    assert (EXAMPLES / "empp_study.yaml").is_file()


def test_md_example():
    out = run("md_with_shipped_potential.py", 100)
    spread = float(out.split("within a ")[1].split()[0])
    assert spread < 1.0  # meV/atom: velocity-Verlet fluctuation only (the 10 ps band on the card is 0.28)


def test_relax_example_agrees_with_emt():
    out = run("relax_co_on_cu111.py")
    lines = {line.split(":")[0].strip(): line for line in out.splitlines()}
    height = {k: float(v.split("top layer ")[1].split()[0]) for k, v in lines.items()}
    assert height["co-cu111-emt"] == pytest.approx(height["EMT"], abs=0.1)


def test_training_example(tmp_path):
    out = run("train_with_empp.py", tmp_path)
    assert "test force MAE" in out and (tmp_path / "run" / "model.pt").is_file()
