"""Process-level helpers: the allocator modes, and peak memory of this process and of its children."""

import subprocess
import sys
import time

import pytest

from mlff.runtime import child_pids, peak_rss_mib

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_a_child_is_listed_and_measured_and_an_exited_one_holds_nothing():
    child = subprocess.Popen([sys.executable, "-c", "import numpy; a = numpy.ones(2**24); input()"],
                             stdin=subprocess.PIPE, text=True)
    try:
        for _ in range(100):  # until it has allocated its 128 MiB
            if child.pid in child_pids() and peak_rss_mib(child.pid) > 100:
                break
            time.sleep(0.1)
        assert child.pid in child_pids() and peak_rss_mib(child.pid) > 100
        child.stdin.write("\n")
        child.stdin.flush()
        for _ in range(100):  # exited, not yet reaped: a zombie without memory
            status = open(f"/proc/{child.pid}/status").read()
            if "zombie" in status:
                break
            time.sleep(0.1)
        assert peak_rss_mib(child.pid) == 0.0  # not this process's own peak
    finally:
        child.kill()
        child.wait()
    assert peak_rss_mib(child.pid) == 0.0  # reaped: no /proc entry at all


# In a fresh process: set the allocator mode(s) given as arguments, in order, then allocate 256 MiB,
# free it and print the resident memory held while it lived and after it was freed (MiB over the start).
_ALLOCATE_AND_FREE = """
import sys, torch
from mlff.runtime import configure_allocator
for mode in sys.argv[1:]:
    assert configure_allocator(low_memory=mode == "low")
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) / 1024
start = rss()
x = torch.ones(2**26)
held = rss() - start
del x
print(held, rss() - start)
"""


@pytest.mark.parametrize("modes, kept", [(["fast"], True), (["low"], False), (["low", "fast"], True),
                                         (["fast", "low"], False)])
def test_the_fast_mode_keeps_freed_memory_and_the_low_memory_mode_returns_it(modes, kept):
    out = subprocess.run([sys.executable, "-c", _ALLOCATE_AND_FREE, *modes], capture_output=True, text=True,
                         check=True).stdout
    held, after = map(float, out.split())
    assert held > 240  # the 256 MiB tensor was resident
    assert (after > 240) if kept else (after < 16), (modes, held, after)
