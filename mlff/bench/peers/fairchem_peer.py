#!/usr/bin/env python
"""Peer benchmark: time fairchem-core 1.10's EquiformerV2 (direct energy + forces) on one structure.

Standalone: it runs under the fairchem venv's python (``install_fairchem.sh`` builds it) and never
imports mlff. It builds fairchem's own model -- ``HydraModel`` with the ``equiformer_v2_backbone``
and the ``equiformerV2_scalar_head`` (energy) / ``equiformerV2_vector_head`` (direct forces) heads,
as fairchem's OMat24/OC20 EquiformerV2 checkpoints are built -- from our preset's hyper-parameters,
random weights (nothing is downloaded), in eval mode, and times the whole call: on-the-fly graph
construction, backbone and both heads. Exactly one line of JSON goes to stdout; everything else
(fairchem's logging and warnings included) goes to stderr.

    python fairchem_peer.py --structure cu32.extxyz --config '{"cutoff": 6.0, ...}' --threads 1

Our names map onto fairchem's as: cutoff -> max_radius, num_layers, channels -> sphere_channels,
lmax -> lmax_list=[lmax], mmax -> mmax_list=[mmax], heads -> num_heads, attn_hidden ->
attn_hidden_channels, alpha_channels -> attn_alpha_channels, value_channels -> attn_value_channels,
ffn_hidden -> ffn_hidden_channels, edge_channels, num_basis -> number of Gaussians of the distance
expansion, grid_resolution, avg_degree (and avg_num_nodes, max_num_elements if given). Optional
keys norm (layer_norm_sh / rms_norm_sh / layer_norm), ffn_activation (grid_mlp / s2 / gate) and
edge_activation (s2 / gate) choose fairchem's norm_type / use_grid_mlp / use_gate_act; absent, the
fairchem OMat24 eqV2-31M settings are used (layer_norm_sh, grid-MLP FFN, separable S2 activation in
the attention, SiLU). Unknown keys are ignored (reported on stderr).

Work-arounds for running fairchem 1.10 on a current torch without its compiled extensions:

* ``torch_scatter`` is the pure-PyTorch stand-in next to this file (``torch_scatter_standin``),
  put on the path by the installer; it is added here too when ``import torch_scatter`` fails.
* fairchem's non-periodic graph (``torch_geometric.nn.radius_graph``) needs pyg-lib, which has no
  wheel here; it is replaced by an all-pairs radius graph in plain torch (same edges, no cap).
* fairchem's backbone ignores ``num_distance_basis`` and always builds 600 Gaussians; the Gaussian
  count is set to ``num_basis`` while the backbone is built (600 for the 31m preset: no change).
* with ``regress_forces=True`` fairchem's backbone forward runs under ``torch.enable_grad()``, which
  records an autograd graph through every layer when the weights require grad, although the forces
  are a direct output. By default the weights are frozen and calls run under ``torch.inference_mode``
  (fastest inference); ``--stock-autograd`` keeps trainable weights under ``torch.no_grad()`` as
  fairchem's own predict path does, graph recording included.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
import traceback

WHAT = "fairchem-core 1.10 EquiformerV2 (direct forces)"
STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_scatter_standin")
KNOWN_KEYS = {
    "cutoff", "num_layers", "channels", "lmax", "mmax", "heads", "attn_hidden", "alpha_channels",
    "value_channels", "ffn_hidden", "edge_channels", "num_basis", "grid_resolution", "avg_degree",
    "avg_num_nodes", "max_num_elements", "norm", "ffn_activation", "edge_activation",
}
REQUIRED_KEYS = ("cutoff", "num_layers", "channels", "lmax", "mmax", "heads", "attn_hidden",
                 "alpha_channels", "value_channels", "ffn_hidden", "edge_channels", "num_basis",
                 "grid_resolution")


class PeerError(Exception):
    """A failure with a message meant for the user (no traceback)."""


def log(msg: str) -> None:
    print(f"fairchem_peer: {msg}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--structure", required=True, help="structure file readable by ase.io.read (extxyz)")
    p.add_argument("--config", required=True, help="our preset's hyper-parameters as a JSON object")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds each of the 3 timed rounds lasts at least")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds; the best round's mean is reported")
    p.add_argument("--dtype", choices=["float32"], default="float32",
                   help="float32 only: fairchem 1.10's EquiformerV2 keeps float32 buffers (float64 fails)")
    p.add_argument("--stock-autograd", action="store_true",
                   help="keep trainable weights and torch.no_grad() (fairchem's backbone then records "
                        "an autograd graph): fairchem's stock predict behaviour")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initial weights")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    if not args.min_time >= 0:
        p.error("--min-time must be >= 0")
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    try:
        cfg = json.loads(args.config)
    except json.JSONDecodeError as e:
        p.error(f"--config is not valid JSON: {e}")
    if not isinstance(cfg, dict):
        p.error("--config must be a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        p.error(f"--config lacks {', '.join(missing)}")
    args.cfg = cfg
    return args


def import_fairchem():
    try:
        importlib.import_module("torch_scatter")
    except (ImportError, OSError):
        sys.path.insert(0, STANDIN)
        log(f"torch_scatter not importable: using the stand-in in {STANDIN}")
    try:
        import fairchem.core
        from fairchem.core.models import base as fc_base
        from fairchem.core.models.equiformer_v2 import equiformer_v2 as fc_eqv2

        importlib.import_module("fairchem.core.models.equiformer_v2.heads")  # registers the heads
    except Exception as e:  # noqa: BLE001 - any import failure is reported the same way
        raise PeerError(f"cannot import fairchem-core's EquiformerV2: {type(e).__name__}: {e} "
                        "(build the venv with mlff/bench/peers/install_fairchem.sh)") from e
    version = getattr(fairchem.core, "__version__", "")
    if version and not version.startswith("1.10"):
        log(f"warning: fairchem-core {version}, not 1.10")
    return fc_base, fc_eqv2, fc_base.HydraModel


def radius_graph_all_pairs(x, r, batch=None, loop=False, max_num_neighbors=None, flow="source_to_target",
                           **_ignored):
    """``torch_geometric.nn.radius_graph`` without pyg-lib: every pair within ``r`` (no neighbour cap).

    Returns ``edge_index`` with row 0 the neighbour (source) and row 1 the centre (target), the
    ``source_to_target`` convention fairchem's ``generate_graph`` expects (``j, i = edge_index``).
    """
    import torch

    n = x.shape[0]
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=x.device)
    with torch.no_grad():
        d2 = torch.cdist(x.detach().double(), x.detach().double()).pow(2)
        keep = (d2 <= float(r) ** 2) & (batch.view(-1, 1) == batch.view(1, -1))
        if not loop:
            keep.fill_diagonal_(False)
        centre, neighbour = keep.nonzero(as_tuple=True)  # sorted by centre
    edge_index = torch.stack([neighbour, centre])
    return edge_index if flow == "source_to_target" else edge_index.flip(0)


def read_structure(path: str, cutoff: float):
    import ase.io
    import numpy as np

    try:
        atoms = ase.io.read(path)
    except Exception as e:  # noqa: BLE001
        raise PeerError(f"cannot read structure {path!r}: {type(e).__name__}: {e}") from e
    if len(atoms) == 0:
        raise PeerError(f"structure {path!r} has no atoms")
    pbc = np.array(atoms.pbc, dtype=bool)
    cell = np.array(atoms.cell[:], dtype=float)
    if pbc.any():
        if np.linalg.matrix_rank(cell[pbc]) < int(pbc.sum()):
            raise PeerError(f"structure {path!r}: periodic cell vectors {cell[pbc].tolist()} are degenerate")
        atoms.wrap()  # fairchem's image search assumes atoms inside the cell along periodic axes
        # fairchem divides by the cell volume: give zero non-periodic cell vectors a length
        if (~pbc).any() and abs(np.linalg.det(cell)) < 1e-8:
            extent = np.ptp(atoms.positions, axis=0).max() + 2 * cutoff + 1.0
            for ax in np.flatnonzero(~pbc):
                if np.linalg.norm(cell[ax]) < 1e-8:
                    a, b = [cell[k] for k in range(3) if k != ax]
                    normal = np.cross(a, b)
                    if np.linalg.norm(normal) < 1e-8:
                        normal = np.eye(3)[ax]
                    cell[ax] = normal / np.linalg.norm(normal) * extent
            atoms.cell = cell
    return atoms


def expected_edges(atoms, cutoff: float) -> int:
    """Directed pairs within ``cutoff`` (ase's neighbour list), to check fairchem's graph against."""
    from ase.neighborlist import neighbor_list

    return len(neighbor_list("i", atoms, cutoff, self_interaction=False))


def build_input(atoms, dtype):
    import numpy as np
    import torch
    from torch_geometric.data import Batch, Data

    n = len(atoms)
    data = Data(
        pos=torch.tensor(atoms.positions, dtype=dtype),
        atomic_numbers=torch.tensor(atoms.numbers, dtype=torch.long),
        cell=torch.tensor(np.array(atoms.cell[:]), dtype=dtype).view(1, 3, 3),
        natoms=torch.tensor([n], dtype=torch.long),
        pbc=torch.tensor(np.array(atoms.pbc, dtype=bool)).view(1, 3),
        fixed=torch.zeros(n, dtype=torch.long),
        tags=torch.zeros(n, dtype=torch.long),
    )
    return Batch.from_data_list([data])


def fairchem_kwargs(cfg: dict, atoms) -> dict:
    norm = cfg.get("norm", "layer_norm_sh")
    ffn = cfg.get("ffn_activation", "grid_mlp")
    edge = cfg.get("edge_activation", "s2")
    if norm not in ("layer_norm", "layer_norm_sh", "rms_norm_sh"):
        raise PeerError(f"norm {norm!r}: fairchem has layer_norm, layer_norm_sh, rms_norm_sh")
    if ffn not in ("grid_mlp", "s2", "gate") or edge not in ("s2", "gate"):
        raise PeerError(f"ffn_activation {ffn!r} / edge_activation {edge!r}: expected grid_mlp|s2|gate / s2|gate")
    # fairchem's use_gate_act switches both the attention and the FFN to the gate activation; its
    # use_grid_mlp then still gives the FFN the grid MLP.
    use_gate_act = edge == "gate" or ffn == "gate"
    if ffn == "gate" and edge != "gate":
        raise PeerError("ffn_activation gate with edge_activation s2 has no fairchem equivalent")
    if edge == "gate" and ffn == "s2":
        raise PeerError("edge_activation gate with ffn_activation s2 has no fairchem equivalent")
    zmax = int(max(atoms.numbers))
    kw = dict(
        use_pbc=bool(any(atoms.pbc)),
        use_pbc_single=False,
        regress_forces=True,
        otf_graph=True,
        max_neighbors=max(10**6, 10 * len(atoms)),  # no cap
        max_radius=float(cfg["cutoff"]),
        max_num_elements=int(cfg.get("max_num_elements", max(90, zmax + 1))),
        num_layers=int(cfg["num_layers"]),
        sphere_channels=int(cfg["channels"]),
        attn_hidden_channels=int(cfg["attn_hidden"]),
        num_heads=int(cfg["heads"]),
        attn_alpha_channels=int(cfg["alpha_channels"]),
        attn_value_channels=int(cfg["value_channels"]),
        ffn_hidden_channels=int(cfg["ffn_hidden"]),
        norm_type=norm,
        lmax_list=[int(cfg["lmax"])],
        mmax_list=[int(cfg["mmax"])],
        grid_resolution=int(cfg["grid_resolution"]),
        num_sphere_samples=128,
        edge_channels=int(cfg["edge_channels"]),
        use_atom_edge_embedding=True,
        share_atom_edge_embedding=False,
        use_m_share_rad=False,
        distance_function="gaussian",
        num_distance_basis=int(cfg["num_basis"]),
        attn_activation="silu",
        use_s2_act_attn=False,
        use_attn_renorm=True,
        ffn_activation="silu",
        use_gate_act=use_gate_act,
        use_grid_mlp=ffn == "grid_mlp",
        use_sep_s2_act=True,
        alpha_drop=0.1,  # dropout and drop path are off in eval mode
        drop_path_rate=0.1,
        proj_drop=0.0,
        weight_init="uniform",
        enforce_max_neighbors_strictly=False,
        avg_num_nodes=float(cfg["avg_num_nodes"]) if "avg_num_nodes" in cfg else None,
        avg_degree=float(cfg["avg_degree"]) if "avg_degree" in cfg else None,
    )
    if zmax >= kw["max_num_elements"]:
        raise PeerError(f"atomic number {zmax} needs max_num_elements > {zmax}")
    return kw


def build_model(fc_eqv2, HydraModel, kw: dict):
    """fairchem's HydraModel(equiformer_v2_backbone + scalar energy head + vector force head)."""
    num_basis = kw["num_distance_basis"]
    original = fc_eqv2.GaussianSmearing

    def smearing(start, stop, num_gaussians, basis_width_scalar=1.0):
        # fairchem hard-codes 600 Gaussians here; use the preset's count
        return original(start, stop, num_basis, basis_width_scalar)

    fc_eqv2.GaussianSmearing = smearing
    try:
        model = HydraModel(
            backbone={"model": "equiformer_v2_backbone", **kw},
            heads={"energy": {"module": "equiformerV2_scalar_head"},
                   "forces": {"module": "equiformerV2_vector_head"}},
            otf_graph=True,
            pass_through_head_outputs=True,
        )
    finally:
        fc_eqv2.GaussianSmearing = original
    got = int(model.backbone.distance_expansion.num_output)
    if got != num_basis:
        raise PeerError(f"distance expansion has {got} Gaussians, wanted {num_basis}")
    return model


def time_calls(call, min_time: float, rounds: int) -> float:
    best = math.inf
    for _ in range(rounds):
        n = 0
        start = time.perf_counter()
        while True:
            call()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = min(best, elapsed / n)
    return best


def run(args) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    cfg = args.cfg
    unknown = sorted(set(cfg) - KNOWN_KEYS)
    if unknown:
        log(f"ignoring config keys {unknown}")

    fc_base, fc_eqv2, HydraModel = import_fairchem()
    fc_base.radius_graph = radius_graph_all_pairs  # generate_graph's non-periodic branch

    atoms = read_structure(args.structure, float(cfg["cutoff"]))
    kw = fairchem_kwargs(cfg, atoms)
    log("EquiformerV2Backbone(" + ", ".join(f"{k}={v}" for k, v in kw.items()) + ")")

    torch.manual_seed(args.seed)
    model = build_model(fc_eqv2, HydraModel, kw)
    model = model.to(dtype).eval()
    parameters = sum(p.numel() for p in model.parameters())
    if args.stock_autograd:
        mode = torch.no_grad
    else:
        model.requires_grad_(False)
        mode = torch.inference_mode
    data = build_input(atoms, dtype)

    edges = {}

    def grab_graph(_module, _inputs, output):
        edges["n"] = int(output["graph"].edge_index.shape[1])

    hook = model.backbone.register_forward_hook(grab_graph)

    def call():
        with mode():
            return model(data)

    out = call()  # warm-up (also records the graph size)
    hook.remove()
    energy = out["energy"]
    forces = out["forces"]
    if tuple(energy.shape) != (1,) or tuple(forces.shape) != (len(atoms), 3):
        raise PeerError(f"unexpected output shapes: energy {tuple(energy.shape)}, forces {tuple(forces.shape)}")
    if not (torch.isfinite(energy).all() and torch.isfinite(forces).all()):
        raise PeerError("non-finite energy or forces")
    n_edges = edges.get("n", -1)
    want = expected_edges(atoms, float(cfg["cutoff"]))
    if n_edges != want:
        log(f"warning: fairchem's graph has {n_edges} edges, ase's neighbour list {want} within {cfg['cutoff']} Å")
    else:
        log(f"graph: {n_edges} directed edges (matches ase's neighbour list)")

    seconds = time_calls(call, args.min_time, args.rounds)
    return {
        "seconds": seconds,
        "atoms": len(atoms),
        "edges": n_edges,
        "what": WHAT,
        "energy": float(energy[0]),
        "parameters": int(parameters),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    # Only the result line may reach stdout: point fd 1 (and sys.stdout) at stderr while working.
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    import logging

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    try:
        result = run(args)
    except PeerError as e:
        log(f"error: {e}")
        return 1
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        log("error: the benchmark failed (traceback above)")
        return 1
    finally:
        sys.stderr.flush()
        sys.stdout = real_stdout
    os.write(result_fd, (json.dumps(result) + "\n").encode())
    os.close(result_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
