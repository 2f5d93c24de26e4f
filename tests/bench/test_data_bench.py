"""`mlff bench data`: the frames it writes read back, and a tiny run prints every row."""

from __future__ import annotations

import re

import pytest

from mlff.bench.data_speed import write_frames
from mlff.cli import main
from mlff.data.formats import read_structures

pytest.importorskip("ase_db_backends", reason="ase-db-backends is not installed (pip install 'mlff[oc20]')")
pytest.importorskip("torch_geometric", reason="torch-geometric is not installed (pip install 'mlff[oc20]')")


def test_every_format_holds_the_same_frames(tmp_path):
    written = write_frames(tmp_path, 4)
    frames = {suffix: read_structures(path, require=("energy", "forces")) for suffix, (path, _) in written.items()}
    assert {len(f) for f in frames.values()} == {4}
    for k in range(4):
        reference = frames[".xyz"][k]
        for suffix in (".aselmdb", ".lmdb"):
            assert abs(frames[suffix][k].positions - reference.positions).max() < 1e-5, suffix
            assert frames[suffix][k].get_potential_energy() == pytest.approx(reference.get_potential_energy())


def test_tiny_run_prints_a_row_per_format_and_worker_count(capsys):
    assert main(["bench", "data", "--frames", "20", "--workers", "1", "--steps", "1", "--train-frames", "24",
                 "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\s+(\.\w+)\s+\d+\s+[\d.]+ \|\s+(\d+)\s+(\d+) \|\s+(\d+)\s+(\d+)$", out, re.M)
    assert [r[0] for r in rows] == [".xyz", ".aselmdb", ".lmdb"]
    assert all(int(r[1]) > 0 and int(r[3]) > 0 for r in rows)
    assert re.findall(r"workers (\d): [\d.]+ steps/s \(1.00x\)", out) == ["1"]  # spawned workers feed training
    workers_rss = re.findall(r"peak RSS \d+ MiB \+ (\d+) MiB in child processes", out)
    assert len(workers_rss) == 1 and int(workers_rss[0]) > 50  # a worker imports torch: tens of MiB at least
