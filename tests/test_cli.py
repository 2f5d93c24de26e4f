"""The ``mlff`` command line, driven in-process through ``mlff.cli.main``."""

import os
import subprocess
import sys

import pytest
from ase.io import read

from mlff.cli import main
from mlff.data.labels import get_labels

MD17 = ["data", "generate", "md17", "--molecule", "ethanol", "--frames", "2", "--interval", "3",
        "--equilibration", "4"]
OC20 = ["data", "generate", "oc20", "--frames", "4", "--interval", "3", "--equilibration", "4",
        "--relax-paths", "1", "--max-relax-steps", "8", "--size", "2", "2", "--layers", "3",
        "--fixed-layers", "1"]


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], "COMMAND"),
        (["data"], "generate"),
        (["data", "generate"], "md17"),
        (["data", "generate", "md17"], "--molecule"),
        (["data", "generate", "oc20"], "--adsorbate"),
    ],
)
def test_help_on_every_level(capsys, argv, expected):
    assert main([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mlff") and expected in out


def test_md17_writes_frames_and_a_summary(tmp_path, capsys):
    path = tmp_path / "ethanol.xyz"
    assert main([*MD17, "--seed", "3", "-o", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote 2 frames to {path} in ") and "frames/s" in captured.out
    assert "frame" in captured.err  # the progress bar, on stderr
    frames = read(path, ":")
    assert [f.info["step"] for f in frames] == [7, 10]
    assert {f.info["seed"] for f in frames} == {3}
    assert set(get_labels(frames[0])) == {"energy", "forces"}


def test_oc20_splits_frames_between_md_and_relaxation(tmp_path, capsys):
    path = tmp_path / "co_cu111.xyz"
    assert main([*OC20, "--no-progress", "-o", str(path)]) == 0
    assert capsys.readouterr().err == ""
    frames = read(path, ":")
    assert [f.info["source"] for f in frames] == ["md", "md", "relax", "relax"]
    assert frames[0].info["system"] == "CO/Cu(111)" and len(frames[0]) == 14
    assert set(get_labels(frames[0])) == {"energy", "forces", "stress"}
    assert "site" not in frames[2].info  # paths start from the built site unless asked


def test_oc20_relaxation_paths_from_every_site(tmp_path):
    path = tmp_path / "co_cu111.xyz"
    argv = [*OC20, "--frames", "8", "--relax-fraction", "0.5", "--relax-paths", "4", "--relax-sites", "all",
            "--lift", "0.3", "--no-progress", "-o", str(path)]
    assert main(argv) == 0
    relax = [f for f in read(path, ":") if f.info["source"] == "relax"]
    assert [f.info["site"] for f in relax] == ["ontop", "bridge", "fcc", "hcp"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["data", "generate", "md17", "--molecule", "unobtainium"],
         "unknown molecule 'unobtainium': use one of aspirin"),
        (["data", "generate", "md17", "--molecule", "nowhere/x.xyz"],
         "No such file or directory: nowhere/x.xyz"),
        (["data", "generate", "oc20", "--metal", "Fe"], "unknown metal 'Fe'"),
        (["data", "generate", "oc20", "--adsorbate", "XeF6"], "unknown adsorbate 'XeF6'"),
        (["data", "generate", "oc20", "--relax-fraction", "2"], "--relax-fraction must be in [0, 1]"),
        (["data", "generate", "oc20", "--lift", "-1"], "rattle and lift must be >= 0"),
        (["data", "generate", "md17", "--molecule", "ethanol", "--frames", "0"], "n_frames must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, argv, message):
    path = tmp_path / "out.xyz"
    path.write_text("good data\n")
    assert main([*argv, "--no-progress", "-o", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"mlff: error: {err.removeprefix('mlff: error: ').strip()}\n"
    assert message in err and "Traceback" not in err
    assert path.read_text() == "good data\n"  # the old output is left alone


def test_usage_errors_exit_2(capsys):
    assert main(["data", "generate", "md17", "--molecule", "ethanol"]) == 2  # no -o
    assert "required: -o/--output" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2


def test_separate_processes_write_identical_files(tmp_path):
    """Byte-identical output across runs, even where OpenMP would give tblite several threads."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    argv = ["data", "generate", "md17", "--molecule", "malonaldehyde", "--frames", "3", "--interval", "10",
            "--equilibration", "20", "--no-progress"]
    for name in ("a.xyz", "b.xyz"):
        subprocess.run([sys.executable, "-m", "mlff.cli", *argv, "-o", str(tmp_path / name)], env=env,
                       check=True, capture_output=True)
    assert (tmp_path / "a.xyz").read_bytes() == (tmp_path / "b.xyz").read_bytes()


@pytest.mark.parametrize("command", [["md"], ["relax"], ["info"], ["bench", "model"], ["data", "stats"]])
def test_every_command_has_help(command, capsys):
    from mlff.cli import main as cli_main

    assert cli_main([*command, "--help"]) == 0
    assert "usage: mlff " + " ".join(command) in capsys.readouterr().out
