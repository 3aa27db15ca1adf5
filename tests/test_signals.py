"""Ctrl-C and SIGTERM on a real `geofetch geocode` process: exit 130 / 143, the rows
done so far written in order, no worker process left behind."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geofetch.server import LocalServer

KEY = "AIzaSyTEST-signal-key-0001"


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid``, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("executor", "threads"), [("thread", "1"), ("process", "1"),
                                                   ("process", "4")])
@pytest.mark.parametrize(("signum", "expected"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_flushes_rows_in_order_and_leaves_no_worker(tmp_path, executor, threads, signum,
                                                           expected):
    places = [f"Berlin {i}" for i in range(400)]
    source = tmp_path / "places.txt"
    source.write_text("\n".join(places) + "\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    server = LocalServer(latency=0.05)
    with server as url:
        env = {**os.environ, "GOOGLE_MAPS_API_KEY": KEY}
        proc = subprocess.Popen(
            [sys.executable, "-m", "geofetch", "geocode", str(source), "-o", str(out),
             "--provider", "google", "--base-url", url, "--executor", executor,
             "--workers", "4", "--threads", threads, "--rate", "0", "--no-cache",
             "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        try:
            _wait_for(lambda: server.stats()["total"] >= 40)
            workers = _children(proc.pid)
            proc.send_signal(signum)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == expected, stderr.decode()
    assert b"Traceback" not in stderr
    assert b"rows: " in stderr  # the summary
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert 0 < len(rows) < len(places)
    assert [r["place"] for r in rows] == places[: len(rows)]
    assert {r["status"] for r in rows} == {"ok"}
    if executor == "process":
        assert workers  # there were worker processes to clean up
    _wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=30)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
@pytest.mark.timeout(120)
@pytest.mark.parametrize(("executor", "threads"), [("thread", 1), ("process", 1),
                                                   ("process", 2)])
def test_ctrl_c_waits_for_the_requests_running_not_the_queued_ones(tmp_path, executor, threads):
    # Before: after Ctrl-C, workers kept starting queued rows for the whole 2 s grace.
    source = tmp_path / "places.txt"
    source.write_text("".join(f"Berlin {i}\n" for i in range(400)), encoding="utf-8")
    server = LocalServer(latency=0.5)
    with server as url:
        env = {**os.environ, "GOOGLE_MAPS_API_KEY": KEY}
        proc = subprocess.Popen(
            [sys.executable, "-m", "geofetch", "geocode", str(source), "-o",
             str(tmp_path / "out.csv"), "--provider", "google", "--base-url", url,
             "--executor", executor, "--workers", str(4 // threads), "--threads",
             str(threads), "--rate", "0", "--no-cache", "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            _wait_for(lambda: server.stats()["total"] >= 8)
            at_signal = server.stats()["total"]
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        after = server.stats()["total"]
    assert proc.returncode == 130, stderr.decode()
    assert after - at_signal <= 4 + 4  # those in flight (and a few racing the signal)
