"""The MD soak benchmark: a 50-step run through the CLI, and where it finds the card's drift."""

import json
import re

import pytest
import torch

from mlff.bench.soak import card_drift, rss_mib
from mlff.cli import main
from mlff.models.checkpoint import save_checkpoint
from mlff.models.energy_model import EnergyModel
from mlff.models.potentials import checkpoint_path
from mlff.models.registry import build_network

NUMBER = r"[+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?"


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_short_soak_prints_rss_speed_and_drift_next_to_the_card(capsys, tmp_path, restore_threads):
    out = tmp_path / "soak.json"
    code = main(["bench", "soak", "--steps", "50", "--interval", "20", "--warmup", "5", "--threads", "1",
                 "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    rss = re.findall(rf"^RSS (start|end|)\s+step\s+(\d+)\s+({NUMBER}) ps\s+({NUMBER}) MiB", text, re.M)
    assert [(kind, int(step)) for kind, step, _, _ in rss] == [("start", 0), ("", 20), ("", 40), ("end", 50)], text
    assert all(float(mib) > 10 for *_, mib in rss)  # a Python process with torch loaded
    assert re.search(rf"^RSS growth: ({NUMBER}) MiB over 50 steps", text, re.M), text
    assert re.search(rf"^speed: ({NUMBER}) steps/s", text, re.M), text
    drift = re.search(rf"^NVE drift: ({NUMBER}) meV/atom/ps .* over 0.025 ps", text, re.M)
    assert drift and abs(float(drift[1])) < 50, text  # 25 fs of a conservative potential: noise, not a blow-up
    card = re.search(rf"^model card: ({NUMBER}) meV/atom/ps \((.*?); card run (.*)\)$", text, re.M)
    quoted, where = card_drift("ethanol-xtb")
    assert card and float(card[1]) == pytest.approx(quoted, rel=1e-2) and card[2] == where, text
    figures = json.loads(out.read_text())
    assert figures["steps"] == 50 and figures["threads"] == 1 and figures["card_drift_mev_atom_ps"] == quoted
    assert figures["rss_growth_mib"] == pytest.approx(figures["rss_end_mib"] - figures["rss_start_mib"])


def test_card_drift_comes_from_the_readme_unless_the_checkpoint_stores_one(tmp_path, monkeypatch):
    quoted, where = card_drift("ethanol-xtb")
    readme = checkpoint_path("ethanol-xtb").parent / "README.md"
    assert where == str(readme)
    assert re.search(rf"drift[^\n]*?{re.escape(f'{quoted:+g}')} meV/atom/ps", readme.read_text(), re.I)
    # a potential whose checkpoint stores the drift: that figure wins over any README
    folder = tmp_path / "toy"
    folder.mkdir()
    torch.manual_seed(0)
    network = build_network("equiformer_v2", species=[1, 6, 8], cutoff=3.0, num_layers=1, channels=8, lmax=1,
                            mmax=1, heads=2, attn_hidden=8, alpha_channels=4, value_channels=4, ffn_hidden=8,
                            edge_channels=8, num_basis=8)
    save_checkpoint(EnergyModel(network), folder / "model.pt", metrics={"md": {"nve_drift_mev_atom_ps": -0.25}})
    (folder / "README.md").write_text("Energy drift: **+9.9 meV/atom/ps**\n")
    monkeypatch.setenv("MLFF_POTENTIALS", str(tmp_path))
    assert card_drift("toy") == (-0.25, "checkpoint metrics[md.nve_drift_mev_atom_ps]")
    save_checkpoint(EnergyModel(network), folder / "model.pt")
    assert card_drift("toy") == (9.9, str(folder / "README.md"))
    (folder / "README.md").unlink()
    assert card_drift("toy")[0] is None


def test_rss_is_read_and_bad_options_are_one_line_errors(capsys):
    mib, source = rss_mib()
    assert mib > 10 and source in ("VmRSS", "peak RSS (getrusage)")
    assert main(["bench", "soak", "--steps", "0"]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
