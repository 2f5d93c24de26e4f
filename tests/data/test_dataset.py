"""Splits (make, save, load) and the cached graph dataset."""

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from torch.utils.data import DataLoader

from mlff.cli import main
from mlff.data.dataset import GraphDataset, load_splits, make_splits, save_splits
from mlff.data.graph import AtomicGraph
from mlff.data.labels import get_labels
from mlff.errors import ConfigError, DataError, StructureError

CUTOFF = 4.0


# ------------------------------------------------------------------------------------- splits
def assert_partition(splits, n):
    assert set(splits) == {"train", "val", "test"}
    joined = np.concatenate([splits["train"], splits["val"], splits["test"]])
    assert sorted(joined.tolist()) == list(range(n))  # disjoint and complete


def test_fractions():
    splits = make_splits(100, val=0.1, test=0.25, seed=0)
    assert_partition(splits, 100)
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == (65, 10, 25)
    for indices in splits.values():
        assert indices.dtype.kind == "i" and np.all(np.diff(indices) > 0)


def test_counts_and_empty_splits():
    splits = make_splits(10, val=3, test=0, seed=1)
    assert_partition(splits, 10)
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == (7, 3, 0)


def test_same_seed_same_split_other_seed_other_split():
    a, b = make_splits(50, 0.2, 0.2, seed=3), make_splits(50, 0.2, 0.2, seed=3)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    c = make_splits(50, 0.2, 0.2, seed=4)
    assert not np.array_equal(a["test"], c["test"])
    assert_partition(c, 50)


def test_whole_floats_are_counts_and_fractions_are_below_one():
    sizes = lambda splits: (len(splits["val"]), len(splits["test"]))  # noqa: E731
    assert sizes(make_splits(10, val=1.0, test=4.0, seed=0)) == (1, 4)  # as YAML or the command line give them
    assert sizes(make_splits(20, val=0.9, test=0.05, seed=0)) == (18, 1)


@pytest.mark.parametrize(
    "n, val, test, match",
    [(10, 5, 5, "leave no training structures"), (10, 0.6, 0.5, "leave no training structures"),
     (10, -1, 0, "val must be a fraction in \\[0, 1\\) or a whole count of structures, got -1"),
     (10, 0.1, 1.5, "test must be a fraction .* got 1.5"), (10, 0.1, -0.5, "test must be .* got -0.5"),
     (10, float("nan"), 0, "val must be .* got nan"), (10, 0, float("inf"), "test must be .* got inf"),
     (10, True, 0, "val must be .* got True"), (10, "0.1", 0, "val must be .* got '0.1'"),
     (0, 0, 0, "cannot split 0")],
)
def test_bad_split_sizes(n, val, test, match):
    with pytest.raises(ConfigError, match=match):
        make_splits(n, val, test, seed=0)


@pytest.fixture
def frames_file(tmp_path):
    path = tmp_path / "frames.xyz"
    write(path, [molecule("H2O") for _ in range(10)])
    return path


@pytest.mark.parametrize("val, expected", [("3", 3), ("2.0", 2), ("0.5", 5), ("0", 0)])
def test_split_command_sizes(tmp_path, frames_file, capsys, val, expected):
    assert main(["data", "split", str(frames_file), "--val", val, "--test", "1", "-o", str(tmp_path / "s")]) == 0
    splits = load_splits(tmp_path / "s", n=10)
    assert (len(splits["val"]), len(splits["test"]), len(splits["train"])) == (expected, 1, 9 - expected)


@pytest.mark.parametrize("option, value", [("--val", "1.5"), ("--test", "-1"), ("--val", "half")])
def test_split_command_rejects_sizes_that_are_neither_fraction_nor_count(tmp_path, frames_file, capsys, option,
                                                                         value):
    assert main(["data", "split", str(frames_file), option, value, "-o", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert f"argument {option}: expected a fraction in [0, 1) or a whole count of frames, got '{value}'" in err
    assert not (tmp_path / "s").exists()


def test_save_and_load_round_trip(tmp_path):
    splits = make_splits(30, 0.2, 0.1, seed=2)
    save_splits(tmp_path / "splits", splits)
    text = (tmp_path / "splits" / "val.idx").read_text()
    assert text == "".join(f"{i}\n" for i in splits["val"])  # one integer per line
    back = load_splits(tmp_path / "splits", n=30)
    for name in splits:
        np.testing.assert_array_equal(back[name], splits[name])
    assert sorted(p.name for p in (tmp_path / "splits").iterdir()) == ["test.idx", "train.idx", "val.idx"]


def test_load_empty_split(tmp_path):
    save_splits(tmp_path, make_splits(5, 0, 2, seed=0))
    assert load_splits(tmp_path)["val"].shape == (0,)


def test_load_missing_file(tmp_path):
    save_splits(tmp_path, {"train": [0, 1], "val": [2]})
    with pytest.raises(DataError, match="test.idx: no such split file"):
        load_splits(tmp_path)


def test_load_non_integer_line(tmp_path):
    save_splits(tmp_path, {"train": [0, 1], "val": [2], "test": [3]})
    (tmp_path / "train.idx").write_text("0\n1\nseven\n")
    with pytest.raises(DataError, match=r"line 3 of .*train.idx: expected a non-negative integer, got 'sev"):
        load_splits(tmp_path)
    (tmp_path / "train.idx").write_text("0\n-1\n")
    with pytest.raises(DataError, match="line 2 of .*train.idx"):
        load_splits(tmp_path)


def test_load_overlapping_and_duplicate_indices(tmp_path):
    save_splits(tmp_path, {"train": [0, 1, 2], "val": [3, 1], "test": [4]})
    with pytest.raises(DataError, match=r"line 2 of .*val.idx: index 1 is already in split 'train'"):
        load_splits(tmp_path)
    save_splits(tmp_path, {"train": [0, 1, 0], "val": [3], "test": [4]})
    with pytest.raises(DataError, match="line 3 of .*train.idx: index 0 is already in split 'train'"):
        load_splits(tmp_path)


def test_load_index_out_of_range(tmp_path):
    save_splits(tmp_path, {"train": [0, 1], "val": [2], "test": [9]})
    assert len(load_splits(tmp_path)["test"]) == 1
    with pytest.raises(DataError, match="index 9 is out of range for 5 structures"):
        load_splits(tmp_path, n=5)


# ------------------------------------------------------------------------------------- dataset
def labelled(atoms):
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


@pytest.fixture(scope="module")
def structures():
    out = []
    for k in range(3):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=k)
        out.append(labelled(atoms))
    out.append(labelled(molecule("CO")))
    return out


def test_graph_dataset_builds_lazily_and_caches(structures):
    dataset = GraphDataset(structures, cutoff=CUTOFF, dtype=torch.float64)
    assert len(dataset) == 4 and dataset._cache == {}
    graph = dataset[1]
    assert isinstance(graph, AtomicGraph) and set(dataset._cache) == {1}
    assert dataset[1] is graph and dataset[-3] is graph
    assert graph.dtype == torch.float64 and graph.cutoff == CUTOFF
    np.testing.assert_array_equal(graph.positions.numpy(), structures[1].positions)
    assert graph.energy.item() == get_labels(structures[1])["energy"]
    reference = AtomicGraph.from_atoms(structures[1], CUTOFF, dtype=torch.float64)
    torch.testing.assert_close(graph.edge_index, reference.edge_index)
    with pytest.raises(IndexError):
        dataset[4]


def test_default_dtype(structures):
    assert GraphDataset(structures, CUTOFF)[0].dtype == torch.get_default_dtype()
    with pytest.raises(ConfigError, match="cutoff must be positive"):
        GraphDataset(structures, 0.0)


def test_dataloader_batches(structures):
    dataset = GraphDataset(structures, cutoff=CUTOFF, dtype=torch.float64)
    loader = DataLoader(dataset, batch_size=3, shuffle=False, collate_fn=GraphDataset.collate)
    batches = list(loader)
    assert [b.num_graphs for b in batches] == [3, 1]
    energies = torch.cat([b.energy for b in batches])
    expected = [get_labels(a)["energy"] for a in structures]
    np.testing.assert_allclose(energies.numpy(), expected, rtol=0, atol=0)
    assert batches[0].num_atoms == 12 and batches[0].forces.shape == (12, 3)
    assert batches[1] is not dataset[3]  # a batch of one is not the cached object itself


def test_subset_shares_built_graphs(structures):
    dataset = GraphDataset(structures, cutoff=CUTOFF)
    built = dataset[2]
    sub = dataset.subset(np.array([3, 2]))
    assert len(sub) == 2 and sub.structures[0] is structures[3]
    assert sub[1] is built and sub.cutoff == CUTOFF and sub.dtype == dataset.dtype
    assert sub[0].num_atoms == 2


def test_invalid_structure_is_named(structures):
    broken = structures[0].copy()
    broken.positions[2] = broken.positions[0]
    dataset = GraphDataset([structures[1], broken], cutoff=CUTOFF)
    dataset[0]
    with pytest.raises(StructureError, match="structure 1 of the dataset"):
        dataset[1]
