"""EMPP: masking, no leak of the masked position, equivariance of the head, batching, training modes."""

import numpy as np
import pytest
import torch
from ase.build import fcc111, molecule
from scipy.spatial.transform import Rotation

from mlff.data import AtomicGraph
from mlff.data.labels import set_labels
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import build_network
from mlff.train.config import EMPPConfig
from mlff.train.empp import EMPP, choose_masks, mask_batch

TINY = dict(num_layers=2, channels=16, attn_hidden=16, ffn_hidden=16, edge_channels=16, num_basis=16, lmax=2, mmax=2)
GATE = dict(edge_activation="gate", ffn_activation="gate")


def make(species, gate=False, cutoff=4.0, seed=0, **cfg):
    torch.manual_seed(seed)
    network = build_network(preset="small", species=species, cutoff=cutoff, **TINY, **(GATE if gate else {}))
    model = EnergyModel(network, e0={z: -float(z) for z in species}).double()
    empp = EMPP(EMPPConfig(**{"sphere_points": 400, **cfg}), 16, 2, cutoff, (0.1, 0.5), 1.0).double()
    return model, empp


def labelled(atoms, seed=0):
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.rattle(0.05, rng=rng)
    return set_labels(atoms, energy=float(rng.normal()) - len(atoms), forces=rng.normal(size=(len(atoms), 3)))


def slab():
    atoms = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    atoms += molecule("CO")
    atoms.positions[-2:] += atoms.positions[8] + [0, 0, 1.9] - atoms.positions[-2]
    return atoms


def test_masked_copies_remove_the_atom_and_keep_its_neighbours_as_targets():
    frames = [labelled(molecule("CH3CH2OH")), labelled(slab())]
    graph = AtomicGraph.from_atoms(frames, 4.0, dtype=torch.float64)
    species = torch.zeros(graph.num_atoms, dtype=torch.long)
    masks = choose_masks(graph, 3, torch.Generator().manual_seed(1))
    assert len(masks) == 3 and all(len(m) == 2 for m in masks)
    assert len(torch.cat(masks).unique()) == 6  # distinct atoms within each structure
    batch = mask_batch(graph, species, masks)
    assert len(batch.species) == 3 * (graph.num_atoms - 2)
    vec = graph.edge_vectors()
    sender, receiver = graph.edge_index
    for g, atom in enumerate(batch.masked_atom.tolist()):
        into = receiver == atom
        into &= sender != atom  # self-images of the removed atom vanish with it
        expected = sorted(map(tuple, (-vec[into]).numpy().round(9).tolist()))
        got = sorted(map(tuple, batch.pair_vector[batch.pair_mask == g].numpy().round(9).tolist()))
        assert got == expected and len(got) > 0
        nodes = (batch.node_mask == g).sum().item()
        assert nodes == graph.atoms_per_graph[graph.batch[atom]].item() - 1
    # no edge touches a node of another copy
    assert (batch.node_mask[batch.edge_index[0]] == batch.node_mask[batch.edge_index[1]]).all()


def test_periodic_images_are_separate_neighbours():
    atoms = labelled(slab())
    atoms.pbc = True
    atoms.cell[2, 2] = 9.0  # images along z come within the cutoff too
    graph = AtomicGraph.from_atoms(atoms, 4.0, dtype=torch.float64)
    batch = mask_batch(graph, torch.zeros(graph.num_atoms, dtype=torch.long), [torch.tensor([3])])
    nodes = batch.pair_node.tolist()
    assert len(nodes) > len(set(nodes))  # one atom, several images, several targets
    assert (torch.linalg.vector_norm(batch.pair_vector, dim=1) < 4.0).all()


@pytest.mark.parametrize("encode", [True, False])
def test_moving_the_masked_atom_changes_targets_not_predictions(encode):
    model, empp = make([1, 6, 8], encode_energy=encode, encode_forces=encode)
    atoms = labelled(molecule("CH3CH2OH"))
    graph = AtomicGraph.from_atoms(atoms, 4.0, dtype=torch.float64)
    moved_atoms = atoms.copy()
    moved_atoms.calc = atoms.calc  # same labels
    moved_atoms.positions[2] += [0.03, -0.02, 0.01]
    moved = AtomicGraph.from_atoms(moved_atoms, 4.0, dtype=torch.float64)
    assert moved.edge_index.shape == graph.edge_index.shape  # no neighbour set changed
    net = model.network
    outputs = []
    for g in (graph, moved):
        batch = mask_batch(g, net.species(g.numbers), [torch.tensor([2])])
        cond = empp.condition(model, g, batch, torch.float64)
        feats = net.features(batch.species, batch.vectors, batch.edge_index, cond[batch.node_mask])
        emb = net.atom_embedding(net.species(g.numbers[batch.masked_atom]))
        outputs.append((empp.head(feats[batch.pair_node], emb[batch.pair_mask]), empp.targets(batch.pair_vector, empp.head.points)))
    (pred_a, target_a), (pred_b, target_b) = outputs
    for a, b in zip(pred_a, pred_b):
        assert torch.equal(a, b)
    assert all((a - b).abs().max() > 1e-3 for a, b in zip(target_a, target_b))


@pytest.mark.parametrize("gate,tol", [(True, 1e-10), (False, 1e-6)])
def test_direction_distribution_rotates_with_the_structure(gate, tol):
    model, empp = make([1, 6, 8], gate=gate)
    atoms = labelled(molecule("CH3CH2OH"))
    R = Rotation.random(random_state=3).as_matrix()
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ R.T
    rotated.calc = None
    set_labels(rotated, energy=atoms.get_potential_energy(), forces=atoms.get_forces() @ R.T)
    points = torch.as_tensor(Rotation.random(7, random_state=5).apply([0.0, 0.0, 1.0]))
    net = model.network
    logits = []
    for a, pts in ((atoms, points), (rotated, points @ torch.as_tensor(R).T)):
        g = AtomicGraph.from_atoms(a, 4.0, dtype=torch.float64)
        batch = mask_batch(g, net.species(g.numbers), [torch.tensor([1])])
        cond = empp.condition(model, g, batch, torch.float64)
        feats = net.features(batch.species, batch.vectors, batch.edge_index, cond[batch.node_mask])
        emb = net.atom_embedding(net.species(g.numbers[batch.masked_atom]))
        radius, direction = empp.head(feats[batch.pair_node], emb[batch.pair_mask], points=pts)
        order = torch.argsort(batch.pair_node)  # same neighbours, compare row by row
        logits.append((radius[order], direction[order]))
    (r0, d0), (r1, d1) = logits
    scale = d0.abs().max().item()
    assert scale > 1e-2
    assert (d0 - d1).abs().max().item() <= tol * scale
    assert (r0 - r1).abs().max().item() <= tol * r0.abs().max().item()


def test_three_masks_batched_equal_three_separate_copies():
    model, empp = make([1, 6, 8, 29], masks=3)
    graph = AtomicGraph.from_atoms([labelled(molecule("CH3CH2OH")), labelled(slab())], 4.0, dtype=torch.float64)
    masks = choose_masks(graph, 3, torch.Generator().manual_seed(0))
    batched = run_masks(model, empp, graph, masks)
    separate = np.mean([run_masks(model, empp, graph, [m]) for m in masks])
    assert batched == pytest.approx(separate, rel=1e-12)


def run_masks(model, empp, graph, masks):
    from mlff.train import empp as module

    original = module.choose_masks
    module.choose_masks = lambda *args: masks
    try:
        return empp(model, graph, torch.Generator())["loss"].detach().item()
    finally:
        module.choose_masks = original


def test_targets_are_normalised_and_peak_at_the_truth():
    _, empp = make([1, 6, 8], sphere_points=2000)
    vectors = torch.tensor([[0.0, 0.0, 1.3], [1.0, 1.0, -1.0]], dtype=torch.float64)
    log_r, log_d = empp.targets(vectors, empp.head.points)
    assert torch.allclose(log_r.exp().sum(1), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(log_d.exp().sum(1), torch.ones(2, dtype=torch.float64))
    assert empp.bins[log_r[0].argmax()].item() == pytest.approx(1.3, abs=0.05)
    best = empp.head.points[log_d.argmax(1)]
    cos = (best * torch.nn.functional.normalize(vectors, dim=1)).sum(1)
    assert (cos > 0.99).all()


def test_empp_alone_learns_to_place_atoms():
    model, empp = make([1, 6, 8], masks=2, sphere_points=300)
    frames = [labelled(molecule("CH3CH2OH"), seed=s) for s in range(4)]
    graph = AtomicGraph.from_atoms(frames, 4.0, dtype=torch.float64)
    params = list(model.parameters()) + list(empp.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for step in range(40):
        out = empp(model, graph, torch.Generator().manual_seed(step % 4))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].detach().item())
    assert np.mean(losses[-4:]) < 0.6 * np.mean(losses[:4])
    grads = [p.grad for p in model.network.parameters() if p.grad is not None]
    assert grads, "EMPP must train the backbone"
