"""``mlff bench kernels``: each hot op and the whole model, per kernel implementation, in one run.

Per op (shapes of a preset on a periodic Cu cell): the previous dense-Wigner rotation (the code this
package ran before the block-sparse layout, kept here as the baseline), the eager PyTorch reference,
the ``torch.compile``d reference and Triton (CUDA only: the CPU interpreter is for testing, not
speed). Each line gives the time of the forward and of forward + backward, the achieved bandwidth
(bytes the op must move / time) as a fraction of a device copy measured in the same run, and GFLOP/s
for the contractions. End to end: energy + forces and a training step (energy + force loss,
backward) per backend, and peak memory on CUDA.

Ratios come from timings taken in this run on this machine; nothing is typed in.
"""

from __future__ import annotations

import argparse

import torch

from mlff import kernels
from mlff.bench.systems import copper
from mlff.bench.timing import best_time
from mlff.data import AtomicGraph
from mlff.kernels import reference
from mlff.models.energy_model import EnergyModel
from mlff.models.registry import PRESETS, build_network
from mlff.so3.grid import SphereGrid
from mlff.so3.layout import m_major_index, wigner_rows
from mlff.so3.rotation import WignerBlocks, WignerD, edge_rotation


def copy_bandwidth(device, dtype) -> float:
    """Bytes/s of a large device-to-device copy (read + write): the bandwidth ops are compared with."""
    src = torch.empty(64 * 2**20 // torch.finfo(dtype).bits * 8, dtype=dtype, device=device)
    dst = torch.empty_like(src)
    seconds = best_time(lambda: dst.copy_(src), repeat=3, min_time=0.2, sync=device.type == "cuda")
    return 2 * src.numel() * src.element_size() / seconds


def _dense_rotate(d, x, index, scale):
    """The previous producer: dense Wigner-D rows ``d [E, K_mmax, (lmax+1)^2]``, one batched matmul,
    then the radial scales as a separate multiplication (in the SO(2) convolution)."""
    return torch.bmm(d, torch.cat([x[i] for i in index], dim=2)) * scale


def _dense_rotate_back(d, y, weight, index, n):
    """The previous consumer: the attention weights as a separate multiplication, then the dense rotation."""
    out = torch.zeros(n, d.shape[2], y.shape[2], dtype=y.dtype, device=y.device)
    return out.index_add(0, index, torch.bmm(d.transpose(1, 2), y * reference.group_weights(weight, y.shape[2])))


def op_cases(preset: str, atoms: int, device, dtype):
    """(name, bytes moved, flops, {implementation: (fn, inputs)}) for each op at a preset's shapes."""
    cfg = PRESETS["equiformer_v2"][preset]
    lmax, mmax, c = cfg["lmax"], cfg["mmax"], cfg["channels"]
    graph = AtomicGraph.from_atoms(copper(atoms), cfg["cutoff"], dtype=dtype)
    n, edges = graph.positions.shape[0], graph.edge_index.to(device)
    e, k, layout = edges.shape[1], (lmax + 1) ** 2, wigner_rows(lmax, mmax)
    vectors = torch.randn(e, 3, dtype=dtype, device=device)
    rotation = edge_rotation(vectors)
    d = WignerBlocks(lmax, mmax).to(device)(rotation)
    dense = WignerD(lmax, rows=m_major_index(lmax, mmax)).to(device)(rotation)
    x = torch.randn(n, k, c, dtype=dtype, device=device)
    y = torch.randn(e, layout.num_rows, c, dtype=dtype, device=device)
    logits = torch.randn(e, cfg["heads"], dtype=dtype, device=device)
    weight = torch.rand(e, dtype=dtype, device=device)
    grid = SphereGrid(lmax, cfg["grid_resolution"], cfg["grid_resolution"], index=m_major_index(lmax, mmax)).to(device)
    to_grid, from_grid = grid.to_grid_mat.to(dtype), grid.from_grid_mat.to(dtype)
    hidden = torch.randn(e, layout.num_rows, cfg["attn_hidden"], dtype=dtype, device=device)
    scale = torch.randn(e, layout.num_pairs, 2 * c, dtype=dtype, device=device)
    heads = torch.rand(e, cfg["heads"], dtype=dtype, device=device)
    node_grid = SphereGrid(lmax, cfg["grid_resolution"], cfg["grid_resolution"]).to(device)
    ffn = torch.randn(n, k, cfg["ffn_hidden"], dtype=dtype, device=device)
    mlp = [torch.randn(cfg["ffn_hidden"], cfg["ffn_hidden"], dtype=dtype, device=device) / 10 for _ in range(3)]
    size = torch.finfo(dtype).bits // 8
    sparse_flops = 2 * sum(2 * l + 1 for l in layout.degree)
    return [
        ("rotate (+radial scale)", size * (2 * e * k * c + e * layout.nnz + 2 * e * layout.num_pairs * 2 * c
                                           + e * layout.num_rows * 2 * c), sparse_flops * e * 2 * c,
         {"dense (before)": (lambda d, x, s: _dense_rotate(d, x, edges, reference.pair_scales(
             s, lmax, mmax, layout.num_rows)), [dense, x, scale]),
          "reference": (lambda d, x, s: reference.rotate(d, x, edges, lmax, mmax, layout.num_rows, scale=s),
                        [d, x, scale]),
          "triton": (lambda d, x, s: _triton().rotate(d, x, edges, lmax, mmax, layout.num_rows, scale=s),
                     [d, x, scale])}),
        ("rotate_back (weighted)", size * (e * layout.num_rows * c + e * layout.nnz + e * cfg["heads"] + n * k * c),
         sparse_flops * e * c,
         {"dense (before)": (lambda d, y, w: _dense_rotate_back(d, y, w, edges[1], n), [dense, y, heads]),
          "reference": (lambda d, y, w: reference.rotate_back(d, y, edges[1:], n, lmax, mmax, weight=w),
                        [d, y, heads]),
          "triton": (lambda d, y, w: _triton().rotate_back(d, y, edges[1:], n, lmax, mmax, weight=w),
                     [d, y, heads])}),
        # the reference rotations above rebuild the dense rows on every call; in the model this happens
        # once per forward pass (Frame.cache) and every layer reuses them
        ("dense rows from blocks", size * (e * layout.nnz + e * layout.num_rows * k), 0,
         {"reference": (lambda d: reference.dense_rows(d, lmax, mmax, layout.num_rows), [d])}),
        ("enveloped_softmax", size * (3 * logits.numel() + e), 0,
         _both(lambda impl, a, w: impl.enveloped_softmax(a, w, edges[1], n), [logits, weight])),
        ("segment_sum", size * (e + n) * k * c, 0,
         _both(lambda impl, src: impl.segment_sum(src, edges[1], n), [torch.randn(e, k, c, dtype=dtype, device=device)])),
        ("grid_silu (edge grid)", size * 2 * hidden.numel(), 4 * hidden.numel() * grid.num_points,
         _both(lambda impl, h: impl.grid_silu(h, to_grid, from_grid), [hidden])),
        ("grid_mlp (node grid)", size * (2 * ffn.numel() + 3 * mlp[0].numel()),
         2 * n * node_grid.num_points * (2 * k * ffn.shape[2] + 3 * ffn.shape[2] ** 2),
         _both(lambda impl, h, *w: impl.grid_mlp(h, node_grid.to_grid_mat.to(dtype),
                                                  node_grid.from_grid_mat.to(dtype), *w), [ffn, *mlp])),
    ]


def _triton():
    from mlff.kernels import triton as implementation
    return implementation


def _both(call, inputs):
    return {"reference": (lambda *t: call(reference, *t), inputs), "triton": (lambda *t: call(_triton(), *t), inputs)}


def _timed(fn, inputs, backward: bool, sync: bool, repeat: int) -> float:
    leaves = [t.detach().requires_grad_(backward) for t in inputs]

    def run():
        out = fn(*leaves)
        if backward:
            torch.autograd.grad(out, leaves, torch.ones_like(out))
    return best_time(run, repeat=repeat, min_time=0.2, sync=sync)


def bench_ops(args, device, dtype) -> None:
    sync = device.type == "cuda"
    bandwidth = copy_bandwidth(device, dtype)
    print(f"\nper op, preset {args.preset}, Cu ~{args.op_atoms} atoms; copy bandwidth {bandwidth / 1e9:.1f} GB/s")
    print(f"{'op':>24} {'implementation':>15} {'fwd ms':>9} {'fwd+bwd ms':>11} {'GB/s':>7} {'of copy':>8} {'GFLOP/s':>8}")
    for name, nbytes, flops, impls in op_cases(args.preset, args.op_atoms, device, dtype):
        variants = []
        for label, (fn, inputs) in impls.items():
            if label == "triton" and device.type != "cuda":
                continue
            variants.append((label, fn, inputs))
            if label == "reference" and args.compile:
                variants.append(("compiled", torch.compile(fn, dynamic=False), inputs))
        times = {}
        for label, fn, inputs in variants:
            try:
                fwd = _timed(fn, inputs, False, sync, args.repeat)
                both = _timed(fn, inputs, True, sync, args.repeat)
            except Exception as error:  # a torch.compile failure is a result too: say so and go on
                print(f"{name:>24} {label:>15} failed: {type(error).__name__}: {str(error).splitlines()[0][:80]}")
                continue
            times[label] = fwd
            gflops = f"{flops / fwd / 1e9:8.1f}" if flops else f"{'-':>8}"
            print(f"{name:>24} {label:>15} {fwd * 1e3:9.3f} {both * 1e3:11.3f} {nbytes / fwd / 1e9:7.1f} "
                  f"{nbytes / fwd / bandwidth:8.0%} {gflops}", flush=True)
        base = "dense (before)" if "dense (before)" in times else "reference"
        ratios = "  ".join(f"{label} {times[base] / t:.2f}x" for label, t in times.items() if label != base)
        if ratios and base in times:
            print(f"{'':>24} forward speed-up over {base}: {ratios}")


def bench_model(args, device, dtype) -> None:
    sync = device.type == "cuda"
    backends = kernels.available_backends(device) if device.type == "cuda" else ["torch"]
    print(f"\nend to end ({', '.join(backends)})")
    torch.manual_seed(0)
    for preset in args.model_presets:
        network = build_network("equiformer_v2", preset=preset, species=[29])
        model = EnergyModel(network).to(device=device, dtype=dtype)
        for atoms in args.atoms:
            graph = AtomicGraph.from_atoms(copper(atoms), model.cutoff, dtype=dtype).to(device)
            line = f"  {preset:>5} Cu {graph.positions.shape[0]:6d} atoms {graph.num_edges:8d} edges"
            results = {}
            for backend in backends:
                with kernels.use_backend(backend):
                    if sync:
                        torch.cuda.reset_peak_memory_stats()
                    ef = best_time(lambda: model(graph), repeat=args.repeat, min_time=0.2, sync=sync)
                    step = best_time(lambda: _train_step(model, graph), repeat=args.repeat, min_time=0.2, sync=sync)
                    memory = torch.cuda.max_memory_allocated() / 2**20 if sync else float("nan")
                results[backend] = (ef, step, memory)
                line += f" | {backend}: E+F {ef * 1e3:8.1f} ms, train step {step * 1e3:8.1f} ms"
                if sync:
                    line += f", peak {memory:7.0f} MiB"
            if "triton" in results:
                (ef0, st0, m0), (ef1, st1, m1) = results["torch"], results["triton"]
                line += f" | triton/torch: E+F {ef0 / ef1:.2f}x, step {st0 / st1:.2f}x, memory {m1 / m0:.2f}"
            print(line, flush=True)


def _train_step(model, graph) -> None:
    model.zero_grad(set_to_none=True)
    out = model(graph, create_graph=True)
    loss = out["energy"].square().sum() + out["forces"].square().sum()
    loss.backward()


def main(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"mlff bench kernels: {name}, {args.dtype}, torch {torch.__version__}")
    if not args.skip_ops:
        bench_ops(args, device, dtype)
    if args.atoms:
        bench_model(args, device, dtype)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu or cuda (default: cuda where present)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--preset", choices=["small", "31m"], default="31m", help="shapes of the per-op benchmark")
    parser.add_argument("--op-atoms", type=int, default=108, help="Cu atoms whose graph sets the per-op sizes")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile'd reference")
    parser.add_argument("--skip-ops", action="store_true", help="only the end-to-end part")
    parser.add_argument("--model-presets", nargs="+", choices=["small", "31m"], default=["small"])
    parser.add_argument("--atoms", type=int, nargs="*", default=[108],
                        help="Cu cell sizes for the end-to-end part (none: skip it)")
    parser.add_argument("--repeat", type=int, default=3)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    raise SystemExit(main(p.parse_args()))
