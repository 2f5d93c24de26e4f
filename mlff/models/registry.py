"""Model registry and presets: ``build_network("equiformer_v2", preset="small", species=[...])``."""

from __future__ import annotations

from dataclasses import asdict

from mlff.config import from_dict
from mlff.errors import ConfigError
from mlff.models.equiformer_v2 import EquiformerV2, EquiformerV2Config
from mlff.models.est import EST, ESTConfig

MODELS = {"equiformer_v2": (EquiformerV2, EquiformerV2Config), "est": (EST, ESTConfig)}

PRESETS: dict[str, dict[str, dict]] = {
    "equiformer_v2": {
        # CPU-friendly preset for MD17-style molecules. Gated FFN and head, no sphere grid: exactly
        # equivariant, 24-28 % less time per training step than the grid MLP, and more accurate per
        # core-minute (malonaldehyde, 24 core-minutes: 8.5 vs 9.4 meV/Å test force MAE; README).
        "small": dict(
            cutoff=5.0, num_layers=2, channels=32, lmax=3, mmax=2, heads=4, attn_hidden=32,
            alpha_channels=16, value_channels=8, ffn_hidden=32, edge_channels=32, num_basis=32,
            ffn_activation="gate", avg_degree=8.0,
            grid_resolution=16,  # used only with ffn_activation grid_mlp/s2: 16x16 aliases 1e-8 (10x10: 1e-5)
        ),
        # fairchem's OC20/OMat "31M" configuration (8 blocks, L=4, M=2, 128 channels, 18x18 grid),
        # with a 6 Å cutoff, no neighbour cap, and no direct force head (forces are gradients).
        "31m": dict(
            cutoff=6.0, num_layers=8, channels=128, lmax=4, mmax=2, heads=8, attn_hidden=64,
            alpha_channels=64, value_channels=16, ffn_hidden=128, edge_channels=128, num_basis=600,
            grid_resolution=18, avg_degree=23.4,
        ),
    },
}

# EST keeps EquiformerV2's message block, sizes and cutoff; only its update block differs.
PRESETS["est"] = {
    # 1 steerable + 2 spherical experts (457k parameters vs 437k) on 144 Fibonacci points: untrained,
    # forces rotate correctly to 2-5 % of their size with the EST code's 56 points for L=3 and to
    # 0.4-1 % with 144 (mlff bench est-equivariance).
    "small": {**PRESETS["equiformer_v2"]["small"], "expert_hidden": 32, "steerable_experts": 1,
              "spherical_experts": 2, "sphere_points": 144},
    # 90 points, 2 + 2 experts of 96 hidden channels, 8 heads: 31.7M parameters
    "31m": {**PRESETS["equiformer_v2"]["31m"], "expert_hidden": 96, "steerable_experts": 2,
            "spherical_experts": 2, "est_heads": 8},
}


def model_config(name: str = "equiformer_v2", preset: str | None = None, where: str | None = None, **options):
    """The validated config dataclass of model ``name``: its preset's values with ``options`` on top.

    Options are type-checked like a YAML config (:func:`mlff.config.from_dict`), so a typo or a bad
    value is a :class:`~mlff.errors.ConfigError` naming the key (prefixed by ``where``, default the
    model's name) and what is allowed. Nothing is built, so configs can be checked when they are read.
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    values = {}
    if preset is not None:
        if preset not in PRESETS[name]:
            raise ConfigError(f"unknown preset {preset!r} for {name}; available: {', '.join(PRESETS[name])}")
        values.update(PRESETS[name][preset])
    values.update(options)
    return from_dict(MODELS[name][1], values, where=where or name)


def build_network(name: str = "equiformer_v2", preset: str | None = None, **options):
    """Instantiate a network from a registered name, an optional preset and option overrides
    (validated by :func:`model_config`)."""
    cfg = model_config(name, preset, **options)
    try:
        return MODELS[name][0](cfg)
    except ValueError as exc:  # a combination the layers cannot build; not a bug of the caller's
        raise ConfigError(f"{name}: {exc}") from exc


def network_config(network) -> dict:
    """The JSON-friendly config a network was built with (for checkpoints)."""
    return {"name": network.name, **asdict(network.config)}
