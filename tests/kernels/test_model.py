"""The whole model on the Triton backend equals it on the reference backend, and Triton really ran.

Each op equals the reference in forward, backward and double backward (test_ops.py), and the
reference model passes the full physical test-suite (tests/models). Here the composition is
checked: energy, forces, stress and the gradient of a force-training loss with respect to every
parameter agree to 1e-10 in float64. Under Triton's interpreter one energy + forces evaluation of
even the small test models takes about a minute, so the suite itself runs on Triton only where
Triton is compiled (CUDA); these tiny networks keep this check to seconds.
"""

from __future__ import annotations

import pytest
import torch
from ase.build import bulk, molecule

from mlff import kernels
from mlff.data import AtomicGraph, collate
from mlff.models.energy_model import EnergyModel
from mlff.models.equiformer_v2 import EquiformerV2
from mlff.models.est import EST

triton_ops = pytest.importorskip("mlff.kernels.triton")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TINY = dict(num_layers=1, channels=4, lmax=2, mmax=1, heads=2, attn_hidden=4, alpha_channels=4, value_channels=2,
            ffn_hidden=4, edge_channels=4, num_basis=4, grid_resolution=6, avg_degree=8.0)
#: network builders, and the Triton ops each must launch besides the rotations and sums (EST's own
#: blocks use no edge grid or softmax; its energy head is the grid MLP)
NETWORKS = {
    "equiformer_v2-s2": (lambda: EquiformerV2(species=[1, 6, 8, 29], cutoff=3.0, edge_activation="s2",
                                              ffn_activation="s2", **TINY), {"segment_softmax", "grid_silu"}),
    "equiformer_v2-defaults": (lambda: EquiformerV2(species=[1, 6, 8, 29], cutoff=3.0, **TINY),
                               {"segment_softmax", "grid_mlp"}),
    "est-spherical": (lambda: EST(species=[1, 6, 8, 29], cutoff=3.0, message="spherical", sphere_points=16,
                                  expert_hidden=4, steerable_experts=1, spherical_experts=1, est_heads=1, **TINY),
                      {"grid_mlp"}),
}


def graph():
    """Methanol (H, C and O; open boundaries) and a periodic two-atom Cu cell (stress)."""
    methanol = molecule("CH3OH")
    methanol.rattle(0.05, seed=0)
    copper = bulk("Cu", "fcc", a=3.61) * (2, 1, 1)
    copper.rattle(0.05, seed=1)
    graphs = [AtomicGraph.from_atoms(a, 3.0, dtype=torch.float64) for a in (methanol, copper)]
    return collate(graphs).to(DEVICE)


def evaluate(model, batch, backend):
    """Energy, forces, stress and d(energy + force loss)/d(parameters) on one backend."""
    model.zero_grad(set_to_none=True)
    with kernels.use_backend(backend):
        out = model(batch, stress=True, create_graph=True)
        (out["energy"].square().sum() + out["forces"].square().sum()).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return {k: out[k].detach() for k in ("energy", "forces", "stress")}, grads


@pytest.fixture(scope="module", params=list(NETWORKS))
def model(request):
    torch.manual_seed(0)
    make, extra_ops = NETWORKS[request.param]
    model = EnergyModel(make()).double().to(DEVICE)
    model.extra_ops = extra_ops
    with torch.no_grad():  # an untrained network's outputs are near zero; spread the weights
        for p in model.network.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def test_triton_model_equals_the_reference(model):
    batch = graph()
    expected, expected_grads = evaluate(model, batch, "torch")
    triton_ops.reset_launches()
    got, got_grads = evaluate(model, batch, "triton")
    ran = {"spherical_harmonics", "rotate", "rotate_back", "rotation_grad", "segment_sum"}
    ran |= model.extra_ops
    assert ran <= set(triton_ops.LAUNCHES), f"Triton ops that did not run: {ran - set(triton_ops.LAUNCHES)}"
    for key in expected:
        # the molecule has no stress (NaN); the periodic structure (last) has every entry
        torch.testing.assert_close(got[key], expected[key], rtol=1e-10, atol=1e-10, equal_nan=True)
        assert torch.isfinite(got[key][-1]).all()
    assert got_grads.keys() == expected_grads.keys() and len(got_grads) > 10
    for name in expected_grads:
        torch.testing.assert_close(got_grads[name], expected_grads[name], rtol=1e-9, atol=1e-10, msg=name)
    with kernels.use_backend("triton"):  # bitwise: the Triton sums walk edges in a fixed order, no atomics
        again = model(batch)
    for key in ("energy", "forces"):
        torch.testing.assert_close(again[key].detach(), got[key], rtol=0, atol=0)


def test_the_reference_backend_launches_no_kernel(model):
    triton_ops.reset_launches()
    with kernels.use_backend("torch"):
        model(graph())
    assert not triton_ops.LAUNCHES
