"""Each Triton op equals the PyTorch reference in forward, backward and double backward.

Run on the CPU through Triton's interpreter (tests/conftest.py), on CUDA where there is one. The
second-order comparison differentiates ``<first-order gradients, random v>`` with respect to every
input and to the incoming gradient itself, so every path force training takes is covered.
"""

from __future__ import annotations

import math

import pytest
import torch

from mlff.kernels import reference
from mlff.so3.layout import m_major_pairs, wigner_rows
from tests.kernels.cases import DEGREES, GRAPHS, frame, graph, grid_matrices, randn

triton_ops = pytest.importorskip("mlff.kernels.triton")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [pytest.param(torch.float64, id="float64"), pytest.param(torch.float32, id="float32")]
CHANNELS = 3


def derivatives(call, tensors):
    """Output, first-order gradients (for a random incoming gradient g) and second-order gradients."""
    leaves = [t.to(DEVICE).clone().requires_grad_() for t in tensors]
    out = call(*leaves)
    g = randn(*out.shape, dtype=out.dtype, seed=7).to(DEVICE).requires_grad_()
    first = torch.autograd.grad(out, leaves, g, create_graph=True, allow_unused=True)
    first = [torch.zeros_like(x) if f is None else f for f, x in zip(first, leaves)]
    weights = [randn(*x.shape, dtype=x.dtype, seed=11 + i).to(DEVICE) for i, x in enumerate(leaves)]
    contracted = sum((f * w).sum() for f, w in zip(first, weights))
    if not contracted.requires_grad:  # nothing depends on the inputs (no edges)
        return [out, *first]
    second = torch.autograd.grad(contracted, [*leaves, g], allow_unused=True)
    second = [torch.zeros_like(x) if s is None else s for s, x in zip(second, [*leaves, g])]
    return [out, *first, *second]


def assert_same(call, tensors):
    dtype = tensors[0].dtype
    expected = derivatives(lambda *t: call(reference, *t), tensors)
    got = derivatives(lambda *t: call(triton_ops, *t), tensors)
    assert len(got) == len(expected)
    for name, a, b in zip(["output", "first", "second"] + ["..."] * 10, got, expected):
        scale = float(b.detach().abs().max()) if b.numel() else 1.0
        if dtype == torch.float64:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * max(scale, 1.0))
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * max(scale, 1.0))


def _rotation_case(lmax, mmax, graph_name, dtype, full):
    n, edges = graph(graph_name)
    rows = wigner_rows(lmax, mmax).num_rows if full else lmax + 1
    d = frame(edges.shape[1], lmax, mmax, dtype)
    return n, edges.to(DEVICE), rows, d


#: every degree on the general graph in float64; both dtypes, every graph and both row counts at two
#: degrees (the interpreter runs each program in Python, so the full product would take minutes)
ROTATION_CASES = [pytest.param(l, m, "graph", torch.float64, True, id=f"L{l}-M{m}") for l, m in DEGREES] + [
    pytest.param(l, m, g, dtype, full, id=f"L{l}-M{m}-{g}-{str(dtype)[6:]}-{'all' if full else 'm0'}-rows")
    for l, m in [(2, 1), (4, 2)] for g in GRAPHS for dtype in (torch.float64, torch.float32) for full in (True, False)
    if (g, dtype, full) != ("graph", torch.float64, True)
]


@pytest.mark.parametrize("lmax,mmax,graph_name,dtype,full", ROTATION_CASES)
def test_rotate(lmax, mmax, graph_name, dtype, full):
    n, edges, rows, d = _rotation_case(lmax, mmax, graph_name, dtype, full)
    x = randn(n, (lmax + 1) ** 2, CHANNELS, dtype=dtype)
    assert_same(lambda impl, d, x: impl.rotate(d, x, edges, lmax, mmax, rows), [d, x])


@pytest.mark.parametrize("lmax,mmax,graph_name,dtype,full", ROTATION_CASES)
def test_rotate_back(lmax, mmax, graph_name, dtype, full):
    n, edges, rows, d = _rotation_case(lmax, mmax, graph_name, dtype, full)
    y = randn(edges.shape[1], rows, 2 * CHANNELS, dtype=dtype)
    assert_same(lambda impl, d, y: impl.rotate_back(d, y, edges, n, lmax, mmax), [d, y])


#: the fused producer and consumer at a few degrees and both dtypes, on every graph
FUSED_CASES = [pytest.param(l, m, g, dtype, id=f"L{l}-M{m}-{g}-{str(dtype)[6:]}")
               for l, m in [(1, 1), (3, 2), (4, 2)] for g in GRAPHS for dtype in (torch.float64, torch.float32)
               if g == "graph" or (l, m) == (4, 2)]


@pytest.mark.parametrize("lmax,mmax,graph_name,dtype", FUSED_CASES)
def test_rotate_with_radial_scales(lmax, mmax, graph_name, dtype):
    """The producer scales each (l, |m|) pair and channel: +m and -m rows by the same value."""
    n, edges, rows, d = _rotation_case(lmax, mmax, graph_name, dtype, True)
    x = randn(n, (lmax + 1) ** 2, CHANNELS, dtype=dtype)
    scale = randn(edges.shape[1], wigner_rows(lmax, mmax).num_pairs, 2 * CHANNELS, dtype=dtype, seed=5)
    assert_same(lambda impl, d, x, s: impl.rotate(d, x, edges, lmax, mmax, rows, scale=s), [d, x, scale])


@pytest.mark.parametrize("lmax,mmax,graph_name,dtype", FUSED_CASES)
@pytest.mark.parametrize("groups", [1, 3])
def test_rotate_back_with_weights(lmax, mmax, graph_name, dtype, groups):
    """The consumer weights G channel groups per edge (attention heads times the envelope)."""
    n, edges, rows, d = _rotation_case(lmax, mmax, graph_name, dtype, False)
    y = randn(edges.shape[1], rows, 2 * CHANNELS, dtype=dtype)
    weight = randn(edges.shape[1], groups, dtype=dtype, seed=5)
    assert_same(lambda impl, d, y, w: impl.rotate_back(d, y, edges, n, lmax, mmax, weight=w), [d, y, weight])


def test_scaled_rotation_is_the_unscaled_one_times_the_pair_scales():
    """Not only the same as the reference: the scale is the one the SO(2) convolution documents."""
    lmax, mmax = 3, 2
    n, edges, rows, d = _rotation_case(lmax, mmax, "graph", torch.float64, True)
    x = randn(n, (lmax + 1) ** 2, CHANNELS, dtype=torch.float64).to(DEVICE)
    scale = randn(edges.shape[1], wigner_rows(lmax, mmax).num_pairs, 2 * CHANNELS, dtype=torch.float64).to(DEVICE)
    plain = triton_ops.rotate(d.to(DEVICE), x, edges, lmax, mmax, rows)
    scaled = triton_ops.rotate(d.to(DEVICE), x, edges, lmax, mmax, rows, scale=scale)
    pairs = m_major_pairs(lmax, mmax).tolist()
    for row, pair in enumerate(pairs):
        torch.testing.assert_close(scaled[:, row], plain[:, row] * scale[:, pair], rtol=1e-13, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("graph_name", list(GRAPHS))
def test_segment_sum(graph_name, dtype):
    n, edges = graph(graph_name)
    src = randn(edges.shape[1], 3, 5, dtype=dtype)
    receivers = edges[1].to(DEVICE)
    assert_same(lambda impl, src: impl.segment_sum(src, receivers, n), [src])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("graph_name", list(GRAPHS))
def test_enveloped_softmax(graph_name, dtype):
    n, edges = graph(graph_name)
    logits = 3 * randn(edges.shape[1], 3, dtype=dtype)
    weight = randn(edges.shape[1], dtype=dtype, seed=3).abs().clamp(0.05, 1.0)
    receivers = edges[1].to(DEVICE)
    assert_same(lambda impl, a, w: impl.enveloped_softmax(a, w, receivers, n), [logits, weight])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lmax,mmax", [(1, 1), (2, 1), (4, 2), (6, 3)])
@pytest.mark.parametrize("rows", [0, 1, 5])
def test_grid_silu(lmax, mmax, rows, dtype):
    to_grid, from_grid = (m.to(DEVICE) for m in grid_matrices(lmax, mmax, dtype))
    x = randn(rows, to_grid.shape[1], CHANNELS, dtype=dtype)
    assert_same(lambda impl, x: impl.grid_silu(x, to_grid, from_grid), [x])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lmax,channels", [(1, 3), (2, 17), (4, 5)])
@pytest.mark.parametrize("rows", [0, 1, 3])
def test_grid_mlp(lmax, channels, rows, dtype):
    """The point-wise MLP's output, and the gradients in the input and in the three (trained) weights."""
    to_grid, from_grid = (m.to(DEVICE) for m in grid_matrices(lmax, lmax, dtype))
    x = randn(rows, to_grid.shape[1], channels, dtype=dtype)
    weights = [randn(channels, channels, dtype=dtype, seed=20 + i) / channels**0.5 for i in range(3)]
    assert_same(lambda impl, x, *w: impl.grid_mlp(x, to_grid, from_grid, *w), [x, *weights])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lmax", [1, 2, 4, 6, 10])
@pytest.mark.parametrize("count", [0, 1, 37])
def test_spherical_harmonics(lmax, count, dtype):
    if count == 37:  # the poles and the axes among the points
        u = torch.cat([torch.eye(3), -torch.eye(3), randn(31, 3, dtype=torch.float64)]).to(dtype)
    else:
        u = randn(count, 3, dtype=dtype)
    u = torch.nn.functional.normalize(u, dim=-1)
    assert_same(lambda impl, u: impl.spherical_harmonics(u, lmax), [u])


def test_spherical_harmonics_of_degree_zero_are_constant():
    u = torch.nn.functional.normalize(randn(5, 3, dtype=torch.float64), dim=-1).to(DEVICE).requires_grad_()
    y = triton_ops.spherical_harmonics(u, 0)
    assert torch.equal(y.detach(), torch.ones_like(y))
    assert torch.equal(torch.autograd.grad(y.sum(), u)[0], torch.zeros_like(u))


# ----------------------------------------------------------------------------- torch.library checks
def _op_args():
    """(name, op, args) for every Triton op on tiny float64 inputs with gradients on the floats.

    Numerical (grad)gradchecks perturb every input element and the interpreter runs each launch in
    Python, so these are the smallest inputs that still have a receiver with two edges and lmax 1.
    """
    n, edges = 3, torch.tensor([[0, 1, 2], [1, 0, 0]], device=DEVICE)
    lmax, mmax = 1, 1
    rows, pairs = wigner_rows(lmax, mmax).num_rows, wigner_rows(lmax, mmax).num_pairs
    f64 = dict(dtype=torch.float64)

    def leaf(t):
        return t.to(DEVICE).requires_grad_()

    d, x = leaf(frame(3, lmax, mmax, torch.float64)), leaf(randn(n, 4, 1, **f64))
    y = leaf(randn(3, rows, 2, **f64))
    to_grid, from_grid = (m.to(DEVICE) for m in grid_matrices(lmax, mmax, torch.float64))
    unit = torch.nn.functional.normalize(randn(3, 3, **f64), dim=-1)
    ops = torch.ops.mlff
    return [
        ("rotate", ops.rotate.default, (d, x, edges, lmax, mmax, rows, None)),
        ("rotate-m0", ops.rotate.default, (d, x, edges, lmax, mmax, lmax + 1, None)),
        ("rotate-scaled", ops.rotate.default, (d, x, edges, lmax, mmax, rows, leaf(randn(3, pairs, 2, **f64)))),
        ("rotate_back", ops.rotate_back.default, (d, y, edges, n, lmax, mmax, None)),
        ("rotate_back-weighted", ops.rotate_back.default, (d, y, edges, n, lmax, mmax, leaf(randn(3, 2, **f64)))),
        ("rotation_grad", ops.rotation_grad.default, (y, x, edges, lmax, mmax)),
        ("segment_sum", ops.segment_sum.default, (leaf(randn(3, 2, **f64)), edges[1], n)),
        ("gather", ops.gather.default, (leaf(randn(n, 2, **f64)), edges[0])),
        ("segment_softmax", ops.segment_softmax.default,
         (leaf(randn(3, 2, **f64)), leaf(randn(3, **f64).abs() + 0.1), edges[1], n)),
        ("spherical_harmonics", ops.spherical_harmonics.default, (leaf(unit), 3)),
        ("spherical_harmonics_vjp", ops.spherical_harmonics_vjp.default, (leaf(unit), leaf(randn(3, 16, **f64)), 3)),
        ("spherical_harmonics_jvp", ops.spherical_harmonics_jvp.default, (leaf(unit), leaf(randn(3, 3, **f64)), 3)),
        ("grid_mlp", ops.grid_mlp.default, (leaf(randn(2, to_grid.shape[1], 2, **f64)), to_grid, from_grid,
                                            *(leaf(randn(2, 2, **f64, seed=s)) for s in (2, 3, 4)))),
        ("grid_silu", ops.grid_silu.default, (leaf(randn(2, to_grid.shape[1], 1, **f64)), to_grid, from_grid)),
    ]


OPS = _op_args()


@pytest.mark.parametrize("name,op,args", OPS, ids=[o[0] for o in OPS])
def test_gradcheck_and_gradgradcheck(name, op, args):
    differentiable = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]

    def call(*tensors):
        full = list(args)
        for i, t in zip(differentiable, tensors):
            full[i] = t
        return op(*full)

    inputs = tuple(args[i] for i in differentiable)
    # fast mode checks random projections v^T J u of the Jacobian (and of the backward's Jacobian)
    # instead of every column: a handful of launches instead of hundreds under the interpreter
    assert torch.autograd.gradcheck(call, inputs, fast_mode=True)
    assert torch.autograd.gradgradcheck(call, inputs, fast_mode=True)


@pytest.mark.parametrize("name,op,args", OPS, ids=[o[0] for o in OPS])
def test_opcheck(name, op, args):
    torch.library.opcheck(op, args)


def test_enveloped_softmax_of_a_receiver_whose_edges_all_have_zero_weight_is_zero():
    """Edges exactly at the cutoff: no division by zero, and the weights are 0 (as in the reference)."""
    n, edges = graph("graph")
    receivers = edges[1].to(DEVICE)
    logits = randn(edges.shape[1], 2, dtype=torch.float64).to(DEVICE)
    weight = torch.where(receivers == 0, 0.0, 0.5).to(torch.float64)
    got = triton_ops.enveloped_softmax(logits, weight, receivers, n)
    assert torch.isfinite(got).all() and (got[receivers == 0] == 0).all()
    torch.testing.assert_close(got, reference.enveloped_softmax(logits, weight, receivers, n), rtol=1e-12, atol=0)


def _near_cutoff_case(dtype):
    """Receiver 0's largest logit sits on an edge at the cutoff's edge (weight 1e-20); its other edges' logits
    are so low that exp underflows in float32. Shifting by the largest logit alone left a denominator of
    1e-20, and the double backward of force training overflowed (NaN, seen training on EMT slabs)."""
    n, edges = graph("graph")
    receivers = edges[1].to(DEVICE)
    logits = randn(edges.shape[1], 2, dtype=torch.float64)
    weight = randn(edges.shape[1], dtype=torch.float64, seed=3).abs().clamp(0.05, 1.0)
    into_zero = torch.nonzero(receivers.cpu() == 0).flatten()
    logits[into_zero] = -100.0
    logits[into_zero[0]] = 0.0
    weight[into_zero[0]] = 1e-20
    return n, receivers, logits.to(dtype), weight.to(dtype)


@pytest.mark.parametrize("impl", ["reference", "triton"])
def test_enveloped_softmax_is_finite_to_second_order_when_the_largest_logit_has_a_tiny_weight(impl):
    """Every derivative force training takes is finite in float32; the output, its logit derivatives and
    w * (its weight derivatives) agree with float64. (The weight derivatives themselves differ by rounding
    amplified 1/w-fold in either precision; what reaches the forces is them times dw/dr, which scales with w.)"""
    ops = reference if impl == "reference" else triton_ops
    n, receivers, logits, weight = _near_cutoff_case(torch.float32)
    got = derivatives(lambda a, w: ops.enveloped_softmax(a, w, receivers, n), [logits, weight])
    assert all(torch.isfinite(x).all() for x in got)
    _, _, logits64, weight64 = _near_cutoff_case(torch.float64)
    expected = derivatives(lambda a, w: reference.enveloped_softmax(a, w, receivers, n), [logits64, weight64])
    w = weight64.to(DEVICE)
    for a, b in ((got[0], expected[0]), (got[1], expected[1]), (w * got[2], w * expected[2])):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("impl", ["reference", "triton"])
def test_enveloped_softmax_with_a_zero_weight_edge_of_a_much_larger_logit(impl):
    """A zero-weight edge is left out of the shift: its exponent is capped, so a logit 95 above the others
    gives p = 0 for it (not 0 * inf = NaN) and the positive-weight edges still sum to 1."""
    ops = reference if impl == "reference" else triton_ops
    logits = torch.tensor([[95.0], [0.0], [-1.0]], device=DEVICE)
    weight = torch.tensor([0.0, 1.0, 0.5], device=DEVICE)
    receivers = torch.zeros(3, dtype=torch.long, device=DEVICE)
    got = derivatives(lambda a, w: ops.enveloped_softmax(a, w, receivers, 1), [logits, weight])
    assert all(torch.isfinite(x).all() for x in got)
    p = got[0][:, 0].cpu()
    torch.testing.assert_close(p, torch.tensor([0.0, 1 / (1 + 0.5 * math.exp(-1)), 0.5 * math.exp(-1) / (1 + 0.5 * math.exp(-1))]))
