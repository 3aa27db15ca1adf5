"""The process pool under signals and kills from outside (issue: a new user's trial of
``--executor process``): SIGTERM to the main process or to its whole process group
ends a run as Ctrl-C does; a killed forkserver costs no row and no internal error;
SIGKILL of the main process leaves no geofetch-* file behind."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from geofetch.server import LocalServer
from geofetch.testing.site import LocalSite

from .test_signals import _alive, _children, _wait_for

ROOT = str(Path(__file__).resolve().parent.parent)
KEY = "AIzaSyTEST-pool-faults-key-0001"
pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")


def _popen(args: list[str], *, group: bool = False) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": ROOT, "GOOGLE_MAPS_API_KEY": KEY}
    return subprocess.Popen([sys.executable, "-m", "geofetch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=group)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _finish(proc: subprocess.Popen[bytes]) -> str:
    try:
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return stderr.decode()


# -- SIGTERM, to the main process or its whole group, is Ctrl-C with exit 143 -----------


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("executor", "threads"), [("thread", "1"), ("process", "1"),
                                                   ("process", "4")])
@pytest.mark.parametrize("target", ["main", "group", "main, then group"])
@pytest.mark.parametrize("command", ["geocode", "reverse"])
def test_sigterm_writes_only_finished_rows(tmp_path, executor, threads, target, command):
    # Before: the forkserver (it ignores SIGINT only) and the workers died of a SIGTERM
    # sent to the group; the workers' unfinished rows were written `failed, WorkerDied:
    # worker process exited with code 255` (the forkserver's status pipe closed), or a
    # respawn through the dead forkserver ended the run with exit 70.
    if command == "geocode":
        places = [f"Berlin {i}" for i in range(60)]
        source = tmp_path / "many.txt"
        source.write_text("".join(p + "\n" for p in places), encoding="utf-8")
        provider = "google"
    else:
        places = [f"52.{i:02d},13.4" for i in range(60)]
        source = tmp_path / "many.csv"
        source.write_text("lat,lng\n" + "".join(p + "\n" for p in places), encoding="utf-8")
        provider = "nominatim"
    out = tmp_path / "out.csv"
    server = LocalServer(latency=0.5)
    with server as url:
        proc = _popen([command, str(source), "-o", str(out), "--provider", provider,
                       "--base-url", url, "--executor", executor, "--workers", "2",
                       "--threads", threads, "--rate", "0", "--no-cache", "--no-progress"],
                      group=target != "main")
        try:
            _wait_for(lambda: server.stats()["total"] >= 12)
            workers = _children(proc.pid)
            if target == "main":
                proc.send_signal(signal.SIGTERM)
            else:
                if target == "main, then group":  # the run is draining when the rest get it
                    proc.send_signal(signal.SIGTERM)
                    time.sleep(0.3)
                os.killpg(proc.pid, signal.SIGTERM)
        finally:
            stderr = _finish(proc)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    assert "rows: " in stderr  # the summary
    rows = _rows(out)
    assert 0 < len(rows) < len(places)
    assert [r.get("place") or f"{r['lat']},{r['lng']}" for r in rows] == places[: len(rows)]
    assert {r["status"] for r in rows} == {"ok"}, {r["error"] for r in rows}
    _wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=30)


# -- a killed forkserver: every row once, in order, never an internal error ------------


def _forkserver_of(pid: int) -> int | None:
    for child in _children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"forkserver" in cmdline and int(
                Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
            return child
    return None


@pytest.mark.timeout(240)
@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_killed_forkserver_loses_no_row(tmp_path, threads):
    # Before: exit 70 ("EOFError: unexpected EOF", ConnectionRefusedError from _spawn
    # respawning through the dying forkserver), or exit 0 with no summary and a few rows
    # (a BrokenPipeError from the forkserver's socket taken for `| head` going away).
    places = [f"Berlin {i}" for i in range(60)]
    source = tmp_path / "many.txt"
    source.write_text("".join(p + "\n" for p in places), encoding="utf-8")
    out = tmp_path / "out.csv"
    server = LocalServer(latency=0.2)
    with server as url:
        proc = _popen(["geocode", str(source), "-o", str(out), "--provider", "google",
                       "--base-url", url, "--executor", "process", "--workers", "2",
                       "--threads", threads, "--rate", "0", "--no-cache", "--no-progress"])
        try:
            _wait_for(lambda: server.stats()["total"] >= 3)
            kills = 0
            for _ in range(3):  # again once multiprocessing has started a new one
                forkserver = None

                def found() -> bool:
                    nonlocal forkserver
                    forkserver = _forkserver_of(proc.pid)
                    return forkserver is not None or proc.poll() is not None

                _wait_for(found)
                if forkserver is None:
                    break
                workers = _children(forkserver)
                os.kill(forkserver, signal.SIGKILL)
                kills += 1
                for worker in workers:  # its workers too: a respawn is needed
                    try:
                        os.kill(worker, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.5)
        finally:
            stderr = _finish(proc)
    assert kills >= 1
    assert proc.returncode in (0, 1), stderr
    assert "internal error" not in stderr and "Traceback" not in stderr
    assert stderr.count("rows: ") == 1 and stderr.strip().count("\n") == 0, stderr
    rows = _rows(out)
    assert [r["place"] for r in rows] == places  # every row once, in order
    assert {r["status"] for r in rows} <= {"ok", "failed"}


# -- SIGKILL of the main process leaves no geofetch-* name --------------------------------


def _held(pids: set[int]) -> set[str]:
    """Every mapped or open file of ``pids`` whose name has ``geofetch-`` (a memfd's too)."""
    found: set[str] = set()
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            links += Path(f"/proc/{pid}/maps").read_text().splitlines()
        except OSError:
            continue
        found |= {link for link in links if "geofetch-" in link}
    return found


def _ours(pids: set[int]) -> set[str]:
    """geofetch-* paths under /dev/shm or the temp dir that ``pids`` map or hold open."""
    roots = tuple(d for d in ("/dev/shm", tempfile.gettempdir()) if os.path.isdir(d))
    seen: set[str] = set()
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
        except OSError:
            continue
        for line in maps:
            parts = line.split(None, 5)
            if len(parts) == 6:
                links.append(parts[5])
        for link in links:
            link = link.removesuffix(" (deleted)")
            for root in roots:
                if link.startswith(root + "/"):
                    first = link[len(root) + 1:].split("/")[0]
                    if first.startswith("geofetch-"):
                        seen.add(os.path.join(root, first))
    return seen


@pytest.mark.timeout(180)
@pytest.mark.parametrize("command", ["geocode", "fetch"])
def test_sigkill_of_the_main_process_leaves_no_file(tmp_path, command):
    # Before: /dev/shm/geofetch-gate-* (the gate's shared record) and fetch's
    # geofetch-fetch-* lock directory outlived a SIGKILLed run.
    with LocalServer(latency=0.5) as url, LocalSite() as site:
        if command == "geocode":
            source = tmp_path / "many.txt"
            source.write_text("".join(f"Berlin {i}\n" for i in range(200)), encoding="utf-8")
            args = ["geocode", str(source), "--provider", "google", "--base-url", url,
                    "--rate", "50", "--no-cache"]
        else:
            source = tmp_path / "urls.txt"
            source.write_text("".join(f"{site.url}/slow/0.5?n={i}\n" for i in range(200)),
                              encoding="utf-8")
            args = ["fetch", str(source), "--rate", "50"]
        proc = _popen([*args, "-o", str(tmp_path / "out.csv"), "--executor", "process",
                       "--workers", "2", "--no-progress"])
        try:
            seen: set[str] = set()
            held: set[str] = set()
            deadline = time.monotonic() + 60
            # the run's names, as its processes map or hold them open while requests go
            while time.monotonic() < deadline and proc.poll() is None:
                pids = {proc.pid} | _children(proc.pid)
                seen |= _ours(pids)
                held |= _held(pids)
                if any("gate" in h for h in held) and len(_children(proc.pid)) >= 3:
                    break
                time.sleep(0.05)
            for _ in range(20):  # a little longer: every worker at work
                seen |= _ours({proc.pid} | _children(proc.pid))
                time.sleep(0.05)
            workers = _children(proc.pid)
            assert proc.poll() is None
            proc.kill()
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        _wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=60)
    assert any("geofetch-gate" in h for h in held)  # the run did share a gate record
    assert {p for p in seen if os.path.lexists(p)} == set()


# -- a worker that cannot be started: its rows fail, the run reports -----------------------


@pytest.mark.timeout(120)
def test_a_worker_that_cannot_be_started_fails_rows_never_ends_the_run_silently(tmp_path,
                                                                                monkeypatch):
    # Before: a BrokenPipeError from starting a worker (the dead forkserver's socket)
    # left the engine and was taken for `| head` going away: exit 0, empty stderr, no
    # summary, and only the rows done so far in the output.
    import io
    import multiprocessing.process

    from geofetch.cli.env import Environment
    from geofetch.cli.main import run_cli

    def refuse(self: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", KEY)
    places = [f"Berlin {i}" for i in range(5)]
    source = tmp_path / "many.txt"
    source.write_text("".join(p + "\n" for p in places), encoding="utf-8")
    out = tmp_path / "out.csv"
    stderr = io.StringIO()
    with LocalServer() as url:
        status = run_cli(["geocode", str(source), "-o", str(out), "--provider", "google",
                          "--base-url", url, "--executor", "process", "--workers", "2",
                          "--rate", "0", "--no-cache", "--no-progress"],
                         Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=stderr))
    assert status == 1, stderr.getvalue()
    assert stderr.getvalue().count("\n") == 1 and "5 rows: 0 ok" in stderr.getvalue()
    rows = _rows(out)
    assert [r["place"] for r in rows] == places
    assert {r["status"] for r in rows} == {"failed"}
    assert all("WorkerDied" in r["error"] and "BrokenPipeError" in r["error"] for r in rows)
