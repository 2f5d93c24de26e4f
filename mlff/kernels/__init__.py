"""The one dispatch point for hot ops: which implementation runs, chosen at run time.

Every hot op has a PyTorch reference (the layers in :mod:`mlff.nn` and :mod:`mlff.so3`) and may
have a Triton implementation for CUDA. The choice is a runtime setting, never stored in a
checkpoint:

* ``MLFF_KERNELS=torch|triton|auto`` in the environment (default ``auto``);
* :func:`use_backend` as a context manager (the calculator, trainer and model test-suite use it).

``auto`` means Triton on CUDA where an op has a Triton implementation, the reference elsewhere.
No op has a Triton implementation yet, so :func:`available_backends` lists ``torch`` only and
asking for ``triton`` is an error that says so; the kernels register here as they land.
"""

from __future__ import annotations

import contextlib
import os

import torch

from mlff.errors import ConfigError

CHOICES = ("torch", "triton", "auto")
_override: str | None = None


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """The backends that can run on ``device``: always ``torch``; ``triton`` once kernels exist."""
    return ["torch"]


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
        return "triton" if "triton" in available else "torch"
    if name not in available:
        raise ConfigError(f"kernel backend {name!r} is not available on {torch.device(device)}; "
                          f"available: {', '.join(available)} (no op has a Triton implementation yet)")
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
