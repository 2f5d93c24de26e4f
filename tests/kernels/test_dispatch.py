"""The kernel dispatch point: the request comes from use_backend, else MLFF_KERNELS, else auto."""

import pytest

from mlff.errors import ConfigError
from mlff.kernels import active_backend, available_backends, requested_backend, use_backend


def test_precedence_and_resolution(monkeypatch):
    monkeypatch.delenv("MLFF_KERNELS", raising=False)
    assert requested_backend() == "auto" and active_backend("cpu") == "torch"
    monkeypatch.setenv("MLFF_KERNELS", "torch")
    assert requested_backend() == "torch"
    with use_backend("auto"):
        assert requested_backend() == "auto"
        with use_backend("torch"):
            assert requested_backend() == "torch"
        assert requested_backend() == "auto"
    assert requested_backend() == "torch"


def test_the_reference_is_always_available_and_triton_is_refused_where_it_cannot_run(monkeypatch):
    monkeypatch.delenv("MLFF_KERNELS", raising=False)
    assert available_backends("cpu") == ["torch"]
    with use_backend("triton"), pytest.raises(ConfigError, match="'triton' is not available on cpu"):
        active_backend("cpu")
    with pytest.raises(ConfigError, match="'gpu' is not one of torch, triton, auto"):
        with use_backend("gpu"):
            pass
