"""Process-level settings: the device and dtype a user asks for, and allocator tuning for CPU runs.

Allocator:

PyTorch allocates large activation tensors with ``malloc``; glibc serves allocations above its mmap
threshold with fresh ``mmap`` pages and returns them on ``free``, so every forward/backward pass
page-faults through hundreds of MB of zeroed memory. Keeping freed memory in the heap instead
removes that cost (measured with ``mlff bench model``: 98-atom slab, 31M preset, energy + forces
12.5 s -> 9.0 s). The memory stays with the process, which is what a long MD or training run wants.

On large cells that heap fragments: what the forward pass keeps for the backward is interleaved with
freed temporaries, and the peak doubles (6 912 Cu atoms, co-cu111-emt, float32: 4.4 GB against 2.1 GB
when every block above 64 KiB is its own mapping). ``low_memory=True`` trades speed for that memory
(the same call 2.7x slower; 1.8x with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` in the environment,
which glibc reads only at start-up). It is for systems that do not fit otherwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from pathlib import Path

import torch

from mlff.errors import ConfigError

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4
_GLIBC_MMAP_MAX = 65536  # glibc's default number of mappings
_mode: str | None = None

#: mallopt settings of each mode: no mappings and no trimming (fast), or a mapping for every block above
#: 64 KiB, returned to the system when freed (low memory; a fixed threshold, so glibc cannot raise it)
_SETTINGS = {
    "fast": ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**30), (_M_TOP_PAD, 2**28)),
    "low_memory": ((_M_MMAP_MAX, _GLIBC_MMAP_MAX), (_M_MMAP_THRESHOLD, 2**16), (_M_TRIM_THRESHOLD, 2**30),
                   (_M_TOP_PAD, 2**28)),
}


#: the command-line flag's help, shared by the commands that run MD
LOW_MEMORY_HELP = ("large cells: map every block above 64 KiB on its own, which halves the peak memory and "
                   "makes each force call about 2x slower (see mlff.runtime)")


def configure_allocator(low_memory: bool = False) -> bool:
    """Tune glibc's malloc for speed (freed memory kept in the heap) or, with ``low_memory``, for the
    smallest peak (large blocks mapped on their own). Can be called again to switch; best before the
    first force call, since a heap that has already grown is not given back.

    Returns True if applied. A no-op (False) on platforms without glibc.
    """
    global _mode
    mode = "low_memory" if low_memory else "fast"
    if _mode == mode:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = all(mallopt(option, value) == 1 for option, value in _SETTINGS[mode])
    _mode = mode if ok else None
    return ok


def allocator_mode() -> str | None:
    """``"fast"`` or ``"low_memory"``: the mode :func:`configure_allocator` last applied (None: glibc's own)."""
    return _mode


DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, checked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {device!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {str(device)!r} is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device} requested but CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device} requested but this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"float32"``/``"float64"`` (or the torch dtypes) to a torch dtype; None stays None."""
    if dtype is None or dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ConfigError(f"dtype {dtype!r} is not supported; use 'float32' or 'float64'")


def peak_rss_mib(pid: int | None = None) -> float:
    """The peak resident set size in MiB of this process (or of process ``pid``): ``VmHWM``, which starts
    afresh at ``exec``. (On Linux ``getrusage``'s ``ru_maxrss`` survives ``exec``, so a child started by a
    large parent reports the parent's size; it is the fallback only where ``/proc`` is missing, and only
    for this process: another process without a ``/proc`` entry, one that has exited, gives 0.)"""
    try:
        with open(f"/proc/{'self' if pid is None else int(pid)}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # no /proc, or process pid is gone
        pass
    if pid is not None:
        return 0.0  # a process that has exited (reaped or not) holds no memory
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def child_pids() -> list[int]:
    """The live child processes of this process (DataLoader workers, ...); empty where ``/proc`` is missing."""
    pids = []
    for task in Path("/proc/self/task").glob("*/children"):
        try:
            pids += [int(p) for p in task.read_text().split()]
        except OSError:  # the thread ended meanwhile
            pass
    return pids
