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
    with pytest.raises(ConfigError, match="unknown equiformer_v2 option.*lmaxx"):
        build_network(lmaxx=3)
