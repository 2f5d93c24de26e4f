"""Self-describing checkpoints: one file holds everything needed to rebuild an energy model.

Layout (a plain dict, loadable with ``torch.load(weights_only=True)``)::

    format            "mlff-checkpoint"
    format_version    FORMAT_VERSION
    model             {"name": ..., "config": {...}}    -> models.registry
    state_dict        network weights
    species, cutoff, e0 {Z: eV}, scale
    metadata          free-form (training data, config, seed...)
    metrics           free-form (test errors, MD drift...)

Files are written atomically, so an interrupted save never damages an existing checkpoint.

Older format versions are read and migrated in memory (:data:`MIGRATIONS`); version 2 renamed the
weights of the shared edge-feature embedding and of the feed-forward nonlinearities when those
layers were factored out, without changing any number; version 3 names the attention-logit norm
(``attn_alpha_norm``), so older files keep the LayerNorm they were trained with when the default changes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from mlff.errors import ConfigError, MLFFError
from mlff.fileio import atomic_path
from mlff.models.energy_model import EnergyModel
from mlff.models.potentials import shipped_potentials
from mlff.models.registry import build_network, network_config

FORMAT = "mlff-checkpoint"
FORMAT_VERSION = 3

# version 1 -> 2: (pattern, replacement) applied to every state-dict key
_V1_RENAMES = [
    (r"(^|\.)(source|target)_embedding\.weight$", r"\1edge_features.\2.weight"),
    (r"(^|\.)(ffn|steerable\.\d+)\.(gate_mlp|scalar_mlp)\.", r"\1\2.act.\3."),
    (r"(^|\.)(ffn|steerable\.\d+)\.grid_mlp\.", r"\1\2.act.grid_mlp.mlp."),
    (r"(^|\.)head\.grid_mlp\.", r"\1head.grid_mlp.mlp."),
]


def _v1_to_v2(payload: dict) -> dict:
    state = {}
    for key, value in payload["state_dict"].items():
        for pattern, replacement in _V1_RENAMES:
            key = re.sub(pattern, replacement, key)
        state[key] = value
    return {**payload, "state_dict": state, "format_version": 2}


def _v2_to_v3(payload: dict) -> dict:
    """Version 3 added ``attn_alpha_norm``; earlier files used EquiformerV2's LayerNorm, whatever the default."""
    model = payload["model"]
    if model.get("name") in ("equiformer_v2", "est"):
        model = {**model, "config": {"attn_alpha_norm": "layer_norm", **model["config"]}}
    return {**payload, "model": model, "format_version": 3}


#: format version -> function that lifts a payload of that version to the next one
MIGRATIONS = {1: _v1_to_v2, 2: _v2_to_v3}


class CheckpointError(MLFFError):
    """A checkpoint is missing, corrupt, or written in an incompatible format."""


def save_checkpoint(model: EnergyModel, path: str | os.PathLike, metadata: dict | None = None,
                    metrics: dict | None = None) -> Path:
    config = network_config(model.network)
    name = config.pop("name")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"name": name, "config": config},
        "state_dict": {k: v.detach().cpu() for k, v in model.network.state_dict().items()},
        "species": list(model.species),
        "cutoff": float(model.cutoff),
        "e0": {int(z): float(e) for z, e in model.e0_dict().items()},
        "scale": float(model.scale),
        "metadata": metadata or {},
        "metrics": metrics or {},
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict, validated; clear errors for missing, corrupt or foreign files."""
    path = Path(path)
    if not path.is_file():
        shipped = ", ".join(shipped_potentials()) or "none found"
        raise CheckpointError(f"checkpoint {path} does not exist, and it is not the name of a shipped potential "
                              f"({shipped})")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not an mlff checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:120]})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mlff checkpoint (no '{FORMAT}' marker)")
    version = payload.get("format_version")
    if version not in MIGRATIONS and version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {version}; this mlff reads versions "
                              f"{', '.join(map(str, [*MIGRATIONS, FORMAT_VERSION]))}")
    missing = [k for k in ("model", "state_dict", "species", "cutoff", "e0", "scale") if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    while payload["format_version"] in MIGRATIONS:
        payload = MIGRATIONS[payload["format_version"]](payload)
    payload["stored_format_version"] = version  # what the file holds (the payload is now current)
    return payload


def load_checkpoint(path: str | os.PathLike, device="cpu", dtype: torch.dtype | None = None) -> EnergyModel:
    """Rebuild the :class:`EnergyModel` stored in ``path`` (in eval mode)."""
    payload = read_checkpoint(path)
    try:
        network = build_network(payload["model"]["name"], **payload["model"]["config"])
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path}: its model config is not valid here ({exc})") from exc
    try:
        network.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path}: weights do not match the stored config ({exc})") from exc
    model = EnergyModel(network, e0={int(z): e for z, e in payload["e0"].items()}, scale=payload["scale"])
    model.metadata = payload.get("metadata", {})
    model.metrics = payload.get("metrics", {})
    if dtype is not None:
        model = model.to(dtype)
    return model.to(device).eval()
