import pytest

from mlff.errors import ConfigError
from mlff.models.registry import PRESETS, build_network, network_config


def test_presets_build_and_report_their_config():
    small = build_network("equiformer_v2", preset="small", species=[1, 6, 8])
    assert network_config(small)["name"] == "equiformer_v2"
    assert network_config(small)["lmax"] == PRESETS["equiformer_v2"]["small"]["lmax"]


def test_31m_preset_matches_fairchem_layout():
    net = build_network("equiformer_v2", preset="31m", species=list(range(1, 84)))
    cfg = net.config
    assert (cfg.num_layers, cfg.lmax, cfg.mmax, cfg.channels, cfg.attn_hidden, cfg.heads, cfg.ffn_hidden,
            cfg.grid_resolution) == (8, 4, 2, 128, 64, 8, 128, 18)
    params = sum(p.numel() for p in net.parameters())
    # fairchem's 31,074,818 include a direct-force head (one more attention block); ours has none
    assert 28e6 < params < 31.1e6


def test_bad_names_and_options_are_named():
    with pytest.raises(ConfigError, match="unknown model 'nequip'"):
        build_network("nequip")
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        build_network(preset="huge")
    with pytest.raises(ConfigError, match="unknown key equiformer_v2.lmaxx; allowed: .*lmax"):
        build_network(lmaxx=3)
    with pytest.raises(ConfigError, match="equiformer_v2.norm: 'layer_nrom' is not one of 'layer_norm_sh', 'rms_norm_sh'"):
        build_network(norm="layer_nrom")
    with pytest.raises(ConfigError, match="equiformer_v2.lmax: expected int, got '3'"):
        build_network(lmax="3")
    with pytest.raises(ConfigError, match="repulsion must be >= 0"):
        build_network(repulsion=-0.1)
    with pytest.raises(ConfigError, match=r"repulsion=2.0 reaches 5.28 Å for these species, beyond the cutoff of 5.0"):
        build_network(species=[8, 29], repulsion=2.0)
    with pytest.raises(ConfigError, match="mmax must be in 0..lmax=3, got 4"):
        build_network(lmax=3, mmax=4)
    with pytest.raises(ConfigError, match="channels .32. must be divisible by est_heads .5."):
        build_network("est", preset="small", est_heads=5)
    with pytest.raises(ConfigError, match="est.message: 'sphere' is not one of 'graph_attention', 'spherical'"):
        build_network("est", message="sphere")


def test_choice_types_list_exactly_the_registered_implementations():
    """Each Literal option type names the keys of the table the layers build from, no more, no less."""
    import typing

    from mlff.models.equiformer_v2 import Basis, EdgeActivation, FFNActivation, Norm
    from mlff.models.est import EST, SAMPLINGS, Message, Sampling
    from mlff.nn.attention import EDGE_ACTIVATIONS
    from mlff.nn.feed_forward import FFN_ACTIVATIONS
    from mlff.nn.norm import NORMS
    from mlff.nn.radial import RADIAL_BASES

    for literal, table in ((Norm, NORMS), (Basis, RADIAL_BASES), (EdgeActivation, EDGE_ACTIVATIONS),
                           (FFNActivation, FFN_ACTIVATIONS), (Sampling, SAMPLINGS), (Message, EST.MESSAGES)):
        assert set(typing.get_args(literal)) == set(table)


def test_est_presets_derive_from_equiformer_v2():
    for preset in ("small", "31m"):
        base, est = PRESETS["equiformer_v2"][preset], PRESETS["est"][preset]
        assert {k: est[k] for k in base} == base
