"""Bad input to ``mlff md`` and ``mlff relax``: exit code 2 and one line, ``mlff: error: ...``, naming
the problem, raised before anything else touches the structure."""

import pytest

import mlff.dynamics.runner as runner
from mlff.cli import main
from tests.dynamics.decks import TINY, write_deck

CU = {"preset": "small", "options": TINY, "species": [29]}


def write_xyz(path, lines: list[str]) -> str:
    header = 'Lattice="10 0 0 0 10 0 0 0 10" Properties=species:S:1:pos:R:3 pbc="T T T"'
    path.write_text("\n".join([str(len(lines)), header, *lines]) + "\n")
    return str(path)


def error_line(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("mlff: error: "), err
    return err[0]


@pytest.fixture
def no_calculator(monkeypatch):
    """Fail if a calculator is built: the structure must be rejected first."""
    def fail(*args):
        raise AssertionError("the calculator was built before the structure was checked")

    monkeypatch.setattr(runner, "make_calculator", fail)


@pytest.mark.parametrize("command", ["md", "relax"])
def test_nan_position_in_a_structure_file(tmp_path, capsys, no_calculator, command):
    structure = write_xyz(tmp_path / "broken.xyz", ["Cu 0 0 0", "Cu nan 1 1"])
    section = {"md": {"steps": 5}} if command == "md" else {"relax": {"steps": 5}}
    deck = write_deck(tmp_path, structure={"system": None, "file": structure}, potential=CU, **section)
    assert main([command, str(deck)]) == 2
    line = error_line(capsys)
    assert f"structure.file {structure} (frame -1): positions contain NaN or infinity (atom 1" in line


def test_overlapping_atoms(tmp_path, capsys, no_calculator):
    structure = write_xyz(tmp_path / "overlap.xyz", ["Cu 0 0 0", "Cu 0.05 0 0"])
    deck = write_deck(tmp_path, structure={"system": None, "file": structure}, potential=CU, md={"steps": 5})
    assert main(["md", str(deck)]) == 2
    assert "atoms 0 and 1 are 0.05 Å apart (minimum 0.1 Å): overlapping atoms" in error_line(capsys)


def test_element_unknown_to_a_shipped_potential(tmp_path, capsys, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("velocities were drawn before the elements were checked")

    monkeypatch.setattr(runner, "thermalize_momenta", fail)
    deck = write_deck(tmp_path, structure={"system": None, "builder": "molecule", "args": ["H2O"]},
                      potential={"preset": None, "model": "co-cu111-emt", "species": [], "dtype": None},
                      md={"steps": 5})
    assert main(["md", str(deck)]) == 2
    assert ("structure.builder molecule, potential co-cu111-emt: element H (Z=1) is not among the model's "
            "species (C, O, Cu)") in error_line(capsys)


@pytest.mark.parametrize("sections, message", [
    ({"md": {"timestep": 0}}, "md.timestep must be > 0, got 0"),
    ({"md": {"temperature": -1}}, "md.temperature must be >= 0, got -1"),
    ({"md": {"initial_temperature": -5}}, "md.initial_temperature must be >= 0, got -5"),
    ({"md": {"friction": 0}}, "md.friction must be > 0, got 0"),
    ({"md": {"tdamp": -50}}, "md.tdamp must be > 0, got -50"),
    ({"md": {"pdamp": 0}}, "md.pdamp must be > 0, got 0"),
    ({"md": {"ensemble": "nose_hoover", "temperature": 0}}, "md.temperature (ensemble nose_hoover) must be > 0"),
    ({"md": {"ensemble": "npt"}}, "md.ensemble npt needs a cell periodic in x, y and z, not pbc=[False, False, False]"),
    ({"md": {"ensemble": "npt"}, "potential": CU, "structure": {
        "system": None, "builder": "bulk", "args": ["Cu", "fcc"], "kwargs": {"cubic": True}, "fix_bottom_layers": 1}},
     "md.ensemble npt: ASE's IsotropicMTKNPT does not support constraints"),
    ({"relax": {"cell": True}}, "relax.cell needs a cell periodic in x, y and z, not pbc=[False, False, False]"),
    ({"relax": {"fmax": 0}}, "relax.fmax must be > 0, got 0"),
    ({"relax": {"steps": 0}}, "relax.steps must be >= 1, got 0"),
    ({"md": {}, "potential": {"dtype": "float16"}}, "potential.dtype: 'float16' is not one of 'float32', 'float64'"),
    ({"md": {}, "potential": {"options": {"lmax": "three"}}}, "lmax"),
    ({"md": {}, "potential": {"options": {"species": [1]}}}, "options.species: give the elements as potential.species"),
    ({"md": {}, "potential": {"model": "co-cu111-emt", "preset": None, "options": {"lmax": 1}}},
     "options: only for an untrained network"),
    ({"md": {}, "guard": {"max_force": 0}}, "guard.max_force must be > 0, got 0"),
])
def test_deck_values_are_checked_and_named(tmp_path, capsys, sections, message):
    deck = write_deck(tmp_path, **sections)
    assert main(["relax" if "relax" in sections else "md", str(deck)]) == 2
    assert message in error_line(capsys)


def test_command_line_overrides_are_checked(tmp_path, capsys):
    deck = write_deck(tmp_path, md={"steps": 10})
    assert main(["md", str(deck), "--steps", "0"]) == 2
    assert "md.steps must be >= 1, got 0" in error_line(capsys)
