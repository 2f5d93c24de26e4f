"""The one dispatch point for hot ops: which implementation runs, chosen at run time.

Every hot op has a PyTorch reference (the layers in :mod:`mlff.nn` and :mod:`mlff.so3`) and may
have a Triton implementation for CUDA. The choice is a runtime setting, never stored in a
checkpoint:

* ``MLFF_KERNELS=torch|triton|auto`` in the environment (default ``auto``);
* :func:`use_backend` as a context manager (the calculator, trainer and model test-suite use it).

``auto`` means Triton on CUDA, the reference elsewhere. ``triton`` also runs on the CPU through
Triton's interpreter when ``TRITON_INTERPRET=1`` is set before anything imports Triton (that is how
the tests check the kernels without a GPU).

The ops, each with one signature here and two implementations (:mod:`mlff.kernels.reference`, plain
torch; :mod:`mlff.kernels.triton`, ``torch.library`` ops whose backward is written with ops that are
themselves differentiable, so forces can be trained on):

* :func:`rotate`: the producer: gather node features along edges, rotate them into the edge frame
  (block-sparse Wigner-D, m-major output) and scale them by the radial features;
* :func:`rotate_back`: the consumer: weight edge-frame features (attention, envelope), rotate them
  back and sum them into nodes (deterministically);
* :func:`segment_sum`: sum edge rows into their receivers (deterministically);
* :func:`enveloped_softmax`: the attention's softmax over each receiver's edges, weighted by the envelope;
* :func:`grid_silu`: coefficients -> sphere grid -> SiLU -> coefficients;
* :func:`grid_mlp`: coefficients -> sphere grid -> point-wise MLP -> coefficients;
* :func:`spherical_harmonics`: real spherical harmonics of unit vectors (any lmax).

No layer knows which implementation ran.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os

import torch

from mlff.errors import ConfigError
from mlff.kernels import reference
from mlff.so3.layout import wigner_rows

CHOICES = ("torch", "triton", "auto")
_override: str | None = None


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """The backends that can run on ``device``: always ``torch``; ``triton`` where Triton is installed
    and the device is CUDA, or the CPU with ``TRITON_INTERPRET=1``."""
    device = torch.device(device)
    runs = device.type == "cuda" or (device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1")
    return ["torch", "triton"] if runs and _triton_installed() else ["torch"]


@functools.lru_cache(maxsize=None)
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def requested_backend() -> str:
    """The backend asked for: :func:`use_backend`'s, else ``$MLFF_KERNELS``, else ``auto``."""
    name = _override or os.environ.get("MLFF_KERNELS", "auto")
    if name not in CHOICES:
        raise ConfigError(f"MLFF_KERNELS={name!r} is not one of {', '.join(CHOICES)}")
    return name


def active_backend(device: torch.device | str = "cpu") -> str:
    """The backend that runs on ``device`` given the request (``auto`` resolved)."""
    name, available = requested_backend(), available_backends(device)
    if name == "auto":
        return "triton" if "triton" in available and torch.device(device).type == "cuda" else "torch"
    if name not in available:
        why = ("Triton is not installed" if not _triton_installed()
               else "Triton runs on CUDA, or on the CPU with TRITON_INTERPRET=1 set before import")
        raise ConfigError(f"kernel backend {name!r} is not available on {torch.device(device)}: {why}")
    return name


@contextlib.contextmanager
def use_backend(name: str):
    """Run the enclosed code with kernel backend ``name`` (``torch``, ``triton`` or ``auto``)."""
    global _override
    if name not in CHOICES:
        raise ConfigError(f"kernel backend {name!r} is not one of {', '.join(CHOICES)}")
    previous, _override = _override, name
    try:
        yield
    finally:
        _override = previous


def _implementation(device: torch.device):
    name = _override or os.environ.get("MLFF_KERNELS", "auto")
    if name == "torch" or (name == "auto" and device.type != "cuda"):  # the common case, without the checks
        return reference
    if active_backend(device) == "triton":
        from mlff.kernels import triton as implementation  # imported only when chosen

        return implementation
    return reference


def _index_sets(index: torch.Tensor) -> torch.Tensor:
    return (index if index.dim() == 2 else index.unsqueeze(0)).long()


def rotate(d: torch.Tensor, x: torch.Tensor, index: torch.Tensor, lmax: int, mmax: int,
           rows: int | None = None, cache: dict | None = None, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Gather node features along edges, rotate them into the edge frame and scale them (the producer).

    ``d`` ``[E, nnz]``: block-sparse Wigner-D (:class:`mlff.so3.rotation.WignerBlocks`); ``x``
    ``[N, (lmax+1)^2, C]`` l-major node features; ``index`` ``[S, E]`` (or ``[E]``): the node each of
    the S channel blocks is gathered from (senders and receivers: S = 2). Returns the first ``rows``
    (default: all) m-major edge-frame rows, ``[E, rows, S*C]``, each multiplied by ``scale``
    ``[E, num_pairs, S*C]`` if given: one value per edge, (l, |m|) pair and channel
    (:func:`mlff.so3.layout.m_major_pairs`; the SO(2) convolution's radial modulation). ``cache``: a dict
    that lives as long as ``d`` (the edge frame's), where an implementation may keep what it derives
    from ``d`` once per forward pass (the reference keeps the dense rows).
    """
    layout = wigner_rows(lmax, mmax)
    rows = layout.num_rows if rows is None else rows
    index = _index_sets(index)
    if scale is not None and tuple(scale.shape) != (index.shape[1], layout.num_pairs, index.shape[0] * x.shape[2]):
        raise ValueError(f"scale must be [E, num_pairs, S*C] = [{index.shape[1]}, {layout.num_pairs}, "
                         f"{index.shape[0] * x.shape[2]}], got {list(scale.shape)}")
    return _implementation(x.device).rotate(d, x, index, lmax, mmax, rows, cache, scale)


def rotate_back(d: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None, num_nodes: int | None,
                lmax: int, mmax: int, cache: dict | None = None, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weight edge-frame features, rotate them back to the global frame and sum them into nodes (the
    consumer; the adjoint of :func:`rotate` in ``x`` when unweighted).

    ``y`` ``[E, rows, S*C]`` holds the first ``rows`` m-major rows (``rows >= lmax + 1``); channel
    block s of edge e is added to node ``index[s, e]``. ``index=None`` keeps one output per edge
    (``[E, (lmax+1)^2, C]``). ``weight`` ``[E, G]`` (G dividing S*C) multiplies each of G equal,
    contiguous channel groups of each edge first (attention heads times envelope). Returns
    ``[num_nodes, (lmax+1)^2, C]``. ``cache`` as in :func:`rotate`.
    """
    if index is None:
        index, num_nodes = torch.arange(y.shape[0], device=y.device), y.shape[0]
    if weight is not None and (weight.dim() != 2 or weight.shape[0] != y.shape[0] or y.shape[2] % weight.shape[1]):
        raise ValueError(f"weight must be [E, G] with E = {y.shape[0]} and G dividing {y.shape[2]} channels, "
                         f"got {list(weight.shape)}")
    return _implementation(y.device).rotate_back(d, y, _index_sets(index), num_nodes, lmax, mmax, cache, weight)


def segment_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Sum the rows of ``src`` ``[E, ...]`` into ``size`` buckets given by ``index`` ``[E]``."""
    return _implementation(src.device).segment_sum(src, index, size)


def enveloped_softmax(logits: torch.Tensor, weight: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """``w_e exp(a_e) / sum_{e' -> same receiver} w_e' exp(a_e')`` for ``logits`` ``[E, H]``, ``weight`` ``[E]``.

    Weighting by the cutoff envelope makes the attention continuous when an edge enters or leaves:
    its weight starts at zero and the normaliser of the other edges changes smoothly.
    """
    return _implementation(logits.device).enveloped_softmax(logits, weight, index, size)


def grid_silu(x: torch.Tensor, to_grid: torch.Tensor, from_grid: torch.Tensor) -> torch.Tensor:
    """``from_grid @ silu(to_grid @ x)`` for ``x`` ``[..., K, C]``, grid matrices ``[G, K]`` and ``[K, G]``."""
    return _implementation(x.device).grid_silu(x, to_grid, from_grid)


def grid_mlp(x: torch.Tensor, to_grid: torch.Tensor, from_grid: torch.Tensor, weights) -> torch.Tensor:
    """``from_grid @ (silu(silu((to_grid @ x) W1^T) W2^T) W3^T)``: EquiformerV2's point-wise grid MLP.

    ``x`` ``[..., K, C]``; grid matrices ``[G, K]`` and ``[K, G]`` (constants); ``weights``: the three
    ``[C, C]`` matrices (``nn.Linear`` layout, ``[out, in]``; trained).
    """
    w1, w2, w3 = weights
    if not w1.shape == w2.shape == w3.shape == (x.shape[-1], x.shape[-1]):
        raise ValueError(f"the grid MLP's weights must be [C, C] with C = {x.shape[-1]}, got "
                         f"{[list(w.shape) for w in weights]}")
    return _implementation(x.device).grid_mlp(x, to_grid, from_grid, w1, w2, w3)


def spherical_harmonics(lmax: int, unit_vectors: torch.Tensor) -> torch.Tensor:
    """``Y_lm`` of unit vectors ``[M, 3]`` for l = 0..lmax, ``[M, (lmax+1)^2]`` (:mod:`mlff.so3.spherical_harmonics`'s
    convention; the vectors must already have length 1)."""
    return _implementation(unit_vectors.device).spherical_harmonics(unit_vectors, lmax)
