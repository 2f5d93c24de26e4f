"""Stopping a benchmark stops everything it started: its worker processes and the peers' runners with
their own children (a run left behind would finish later and store a result a restart reuses)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from mlff.bench.peers import run_script
from mlff.bench.studies import in_processes

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")


def state(pid: int) -> str | None:
    """The process's state letter (Z: a zombie, dead but not reaped), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def alive(pid: int) -> bool:
    return state(pid) not in (None, "Z")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def wait_for(condition, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


def test_sigterm_to_a_benchmark_stops_its_worker_processes():
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import time
        from mlff.bench.studies import in_processes
        in_processes([(time.sleep, (300,), {}), (time.sleep, (300,), {})], jobs=2)
        """)])
    try:
        def workers():
            found = [pid for pid in children(parent.pid)
                     if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
            return found if len(found) == 2 else None

        pids = wait_for(workers)
        time.sleep(1.0)  # the workers have started their tasks
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 128 + signal.SIGTERM
        wait_for(lambda: not any(alive(pid) for pid in pids), 30)
    finally:
        parent.kill()
        parent.wait()


def test_a_peer_runner_that_times_out_is_killed_with_what_it_started(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    runner = tmp_path / "runner.py"
    runner.write_text(textwrap.dedent(f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "300"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(300)
        """))
    with pytest.raises(subprocess.TimeoutExpired):
        run_script(sys.executable, str(runner), [], threads=1, timeout=3)  # an absolute path stays as it is
    grandchild = int(pid_file.read_text())
    wait_for(lambda: not alive(grandchild), 30)


def test_a_worker_that_dies_is_an_error_not_a_hang():
    """A worker killed mid-task (here it exits at once; out of memory or unable to start is the same) raises
    BrokenProcessPool; ``multiprocessing.Pool`` started a new worker and waited for the lost task forever.
    The other worker's 120 s task is not waited for."""
    start = time.monotonic()
    with pytest.raises(BrokenProcessPool):
        in_processes([(os._exit, (3,), {}), (time.sleep, (120,), {})], jobs=2)
    assert time.monotonic() - start < 90
