"""The k-fold expressivity benchmark: structures, the theory it tests, and an end-to-end run."""

import math

import torch

from mlff.bench.kfold import one_layer, separation, star, train_accuracy
from mlff.cli import main


def test_star_is_k_fold_symmetric_and_turning_it_is_not():
    for k in (2, 3, 5, 10):
        a, edges = star(k)
        assert edges.shape == (2, 2 * k) and (edges[:, :k][1] == 0).all()
        same, _ = star(k, 2 * math.pi / k)
        other, _ = star(k, 2 * math.pi / (k + 1))
        distance = lambda x, y: torch.cdist(x, y).min(1).values.max()  # noqa: E731
        assert distance(a, same) < 1e-12 and distance(a, other) > 0.05


def test_exactly_equivariant_layer_separates_only_k_up_to_its_degree():
    torch.manual_seed(0)
    network = one_layer("eqv2", lmax=2)
    diff, error = separation(network, 2, 2 * math.pi / 3)
    assert diff > 0.1 and error < 1e-5  # k = 2 <= L: different features, exact symmetry (grid MLP: 1e-6)
    diff, error = separation(network, 3, 2 * math.pi / 4)
    assert diff < 1e-12  # k = 3 > L: the same features for both orientations


def test_est_update_cannot_see_what_the_message_block_removed():
    """With EquiformerV2's exactly equivariant message, the two stars' centres get identical inputs,
    so no update block, aliasing or not, can tell them apart."""
    torch.manual_seed(0)
    network = one_layer("est", lmax=1, points=12)
    for k in (2, 3):
        assert separation(network, k, 2 * math.pi / (k + 1))[0] < 1e-10


def test_est_message_separation_is_its_symmetry_error():
    """EST's own message block 'separates' k > L only as far as it breaks rotation symmetry: the
    feature difference equals the equivariance error for the same rotation, and both shrink with
    more sampling points."""
    torch.manual_seed(0)
    coarse = one_layer("est", lmax=1, points=12, message="spherical")
    torch.manual_seed(0)
    fine = one_layer("est", lmax=1, points=144, message="spherical")
    angle = 2 * math.pi / 4
    (d12, e12), (d144, e144) = separation(coarse, 3, angle), separation(fine, 3, angle)
    assert d12 > 1e-6 and 0.3 < d12 / e12 < 3  # far above the exact networks' separation (< 1e-10, above)
    assert 0.3 < d144 / e144 < 3 and d144 < d12 / 3


def test_trained_classifier_is_a_coin_flip_on_identical_features():
    torch.manual_seed(0)
    assert train_accuracy(one_layer("eqv2", lmax=1), 3, 2 * math.pi / 4, steps=3) == 0.5
    torch.manual_seed(0)
    assert train_accuracy(one_layer("eqv2", lmax=2), 2, 2 * math.pi / 3, steps=30) == 1.0


def test_cli_table(capfd):
    argv = ["bench", "est-kfold", "--seeds", "1", "--steps", "3", "--eqv2-degrees", "1", "--est", "1:12:spherical",
            "--folds", "2", "3"]
    assert main(argv) == 0
    out = capfd.readouterr().out
    assert "EquiformerV2 L=1" in out and "EST L=1, 12 pts, EST msg" in out and "paper" in out


def test_bad_variant_is_one_line_naming_it(capsys):
    assert main(["bench", "est-kfold", "--est", "1:x"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before the table starts
    assert captured.err.strip() == ("mlff: error: --est '1:x': expected L:points or L:points:spherical, "
                                    "e.g. 1:12:spherical")
