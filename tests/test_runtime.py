"""Process-level helpers: peak memory of this process and of its children."""

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
