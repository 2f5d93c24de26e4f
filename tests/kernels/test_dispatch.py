"""The kernel dispatch point: the request comes from use_backend, else MLFF_KERNELS, else auto."""

import pytest
import torch

from mlff.errors import ConfigError
from mlff.kernels import active_backend, available_backends, requested_backend, segment_sum, use_backend


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


def test_triton_runs_on_the_cpu_only_through_the_interpreter(monkeypatch):
    monkeypatch.delenv("MLFF_KERNELS", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert available_backends("cpu") == ["torch"]
    with use_backend("triton"), pytest.raises(ConfigError, match="'triton' is not available on cpu: Triton runs on CUDA"):
        active_backend("cpu")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert available_backends("cpu") == ["torch", "triton"]
    assert active_backend("cpu") == "torch", "auto means the reference off CUDA, even when Triton could interpret"
    with use_backend("triton"):
        assert active_backend("cpu") == "triton"
    with pytest.raises(ConfigError, match="'gpu' is not one of torch, triton, auto"):
        with use_backend("gpu"):
            pass


def test_asking_for_triton_where_it_cannot_run_fails_instead_of_falling_back(monkeypatch):
    """The op itself refuses: no silent reference run when Triton was asked for."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = torch.zeros(3, 2)
    with use_backend("triton"), pytest.raises(ConfigError, match="not available"):
        segment_sum(x, torch.tensor([0, 1, 1]), 2)
    with use_backend("torch"):
        assert segment_sum(x + 1, torch.tensor([0, 1, 1]), 2).tolist() == [[1, 1], [2, 2]]
