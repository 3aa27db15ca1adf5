"""Workers and runs with a lifetime: built once, closed always, nothing left behind.

Each test here is a fault found by trying geofetch as a new user would (issue 12):
Ctrl-C turned into a row, providers rebuilt and never closed, an interpreter held
by closed runs, files left in /dev/shm by runs that failed early, memory growing
with distinct queries, and ``geofetch serve`` importing the HTTP client stack.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest

from geofetch import geocode_many, iter_geocode
from geofetch.core.job import RECENT_ANSWERS
from geofetch.providers.base import Answer
from geofetch.server import LocalServer

from .fakes import CountingProvider, FakeProvider, events

ROOT = str(Path(__file__).resolve().parent.parent)
KEY = "AIzaSyTEST-lifecycle-key-0001"
EXECUTORS = ("serial", "thread", "process")
#: Each executor, and the process executor with threads in each process too.
POOLS = [("serial", 1), ("thread", 1), ("process", 1), ("process", 4)]


def _python(code: str, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, *flags, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=timeout, env=environment)


# -- finding 3: Ctrl-C is the caller's, never a row ------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("executor", "threads"), POOLS)
def test_keyboard_interrupt_in_a_task_is_raised_not_written_as_a_row(executor, threads,
                                                                     tmp_path):
    log = str(tmp_path / "events")
    with pytest.raises(KeyboardInterrupt):
        geocode_many(["a", "bb", "interrupt", "ccc"] + ["dd"] * 20,
                     provider=CountingProvider(log), executor=executor, workers=2,
                     threads=threads)
    # and the workers that were built were closed on the way out
    for _ in range(100):
        opened = [e for e in events(log) if e[0] == "open"]
        closed = [e for e in events(log) if e[0] == "close"]
        if len(closed) == len(opened):
            break
        time.sleep(0.05)
    assert opened and len(closed) == len(opened)


# -- finding 4: a provider per worker, built once, closed always ------------------------


@pytest.mark.timeout(120)
def test_a_slow_generator_builds_one_provider_and_closes_it(tmp_path):
    log = str(tmp_path / "events")

    def places():
        for place in ("Berlin", "Osaka", "Zadar", "Vien"):
            time.sleep(1.3)  # longer than the old 1 s idle exit of a thread loop
            yield place

    results = geocode_many(places(), provider=CountingProvider(log), workers=8)
    assert [r.status for r in results] == ["ok"] * 4
    assert [e[0] for e in events(log)] == ["open", "close"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("executor", "threads"), POOLS)
def test_each_worker_builds_its_provider_once_and_closes_it(executor, threads, tmp_path):
    log = str(tmp_path / "events")
    places = [f"place {i}" for i in range(300)]
    results = geocode_many(places, provider=CountingProvider(log, delay=0.001),
                           executor=executor, workers=3, threads=threads)
    assert [r.query for r in results] == places
    seen = events(log)
    opened = [(pid, tid) for event, pid, tid in seen if event == "open"]
    closed = [(pid, tid) for event, pid, tid in seen if event == "close"]
    assert 1 <= len(opened) <= (1 if executor == "serial" else 3 * threads)
    if threads > 1:  # every thread of every process built its own
        assert len(opened) == 3 * threads and len({pid for pid, _ in opened}) == 3
    assert sorted(closed) == sorted(opened)  # each worker closed exactly its own
    assert len(set(opened)) == len(opened)  # none built twice


@pytest.mark.timeout(120)
def test_a_google_run_leaves_no_unclosed_socket_under_dev_mode():
    with LocalServer(latency=0.01) as url:
        done = _python(f"""
            import time
            from geofetch import geocode_many
            def places():
                for place in ("Berlin", "Osaka", "Zadar", "Vien"):
                    time.sleep(1.2)
                    yield place
            results = geocode_many(places(), provider="google", key={KEY!r},
                                   base_url={url!r}, workers=8, rate=0)
            print([r.status for r in results])
        """, flags=("-X", "dev"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['ok', 'ok', 'ok', 'ok']"
    assert "ResourceWarning" not in done.stderr


# -- finding 5: closing a run returns at once, and so does the interpreter --------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("executor", "threads"), POOLS[1:])
def test_closing_a_run_with_slow_requests_in_flight_returns_and_exits_at_once(executor,
                                                                              threads):
    # Requests that would take 25 s (their timeout; the server answers after 30 s) are
    # in flight when the run is closed: close() must return within a second, and the
    # interpreter must exit without waiting for them.
    with LocalServer(latency=30.0) as url:
        started = time.monotonic()
        done = _python(f"""
            import time
            from geofetch import iter_geocode
            if __name__ == "__main__":
                places = [""] + [f"Berlin {{i}}" for i in range(8)]
                results = iter_geocode(places, provider="google", key={KEY!r},
                                       base_url={url!r}, workers=4, rate=0, timeout=25,
                                       executor={executor!r}, threads={threads})
                assert next(results).status == "invalid"
                time.sleep(1.0)  # the slow requests are now in flight
                before = time.monotonic()
                results.close()
                print(f"closed in {{time.monotonic() - before:.2f}} s", flush=True)
        """, timeout=60)
        elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    closed_in = float(done.stdout.split()[2])
    assert closed_in < 1.5
    assert elapsed < 10  # far less than the 25 s the requests would have taken


# -- finding 6: a run that fails early, or is interrupted, leaves nothing behind ---------


def _litter() -> set[str]:
    names: set[str] = set()
    for directory in ("/dev/shm", tempfile.gettempdir()):
        if os.path.isdir(directory):
            names |= {os.path.join(directory, n) for n in os.listdir(directory)
                      if "geofetch" in n}
    return names


def _geofetch(*args: str, env: dict[str, str] | None = None, timeout: float = 120
              ) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": ROOT, "GOOGLE_MAPS_API_KEY": KEY, **(env or {})}
    return subprocess.run([sys.executable, "-m", "geofetch", *args], capture_output=True,
                          text=True, timeout=timeout, env=environment)


@pytest.mark.timeout(300)
def test_runs_that_succeed_fail_early_or_are_interrupted_leave_nothing_behind(tmp_path):
    places = tmp_path / "places.csv"
    places.write_text("place\nBerlin\nOsaka\nZadar\n", encoding="utf-8")
    many = tmp_path / "many.txt"
    many.write_text("".join(f"Berlin {i}\n" for i in range(400)), encoding="utf-8")
    before = _litter()
    with LocalServer(latency=0.05) as url:
        common = ("--provider", "google", "--base-url", url, "--rate", "0", "--no-progress")
        ok = _geofetch("geocode", str(places), "-o", str(tmp_path / "out.csv"),
                       "--executor", "process", "--workers", "2", *common)
        assert ok.returncode == 0, ok.stderr
        fetched = _geofetch("fetch", str(tmp_path / "urls.txt"), "--no-progress")
        assert fetched.returncode == 2  # no such file
        bad_output = _geofetch("geocode", str(places), "-o", "/nonexistent/dir/out.csv",
                               "--executor", "process", *common)
        assert bad_output.returncode == 2
        assert bad_output.stderr.count("\n") == 1 and "/nonexistent/dir/out.csv" in (
            bad_output.stderr)
        assert not os.path.exists("/nonexistent/dir")  # no cache directory made for it
        no_column = _geofetch("geocode", str(places), "--column", "nope",
                              "--executor", "process", *common)
        assert no_column.returncode == 2 and "columns are: place" in no_column.stderr
        proc = subprocess.Popen(
            [sys.executable, "-m", "geofetch", "geocode", str(many), "-o",
             str(tmp_path / "many.csv"), "--executor", "process", "--workers", "2",
             "--no-cache", *common],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": ROOT, "GOOGLE_MAPS_API_KEY": KEY})
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
    assert _litter() - before == set()


# -- finding 7: memory does not grow with distinct queries --------------------------------


class BigAnswers(FakeProvider):
    """Answers with a 4 KB raw payload, as a real provider's JSON would be."""

    def geocode(self, query: str, *, timeout: float) -> Answer:
        return Answer(1.0, 2.0, query, raw={"q": query, "padding": query + "x" * 4096})


@pytest.mark.timeout(120)
def test_streaming_distinct_places_keeps_memory_bounded():
    places = (f"place {i}" for i in range(20_000))
    tracemalloc.start()
    try:
        count = 0
        for result in iter_geocode(places, provider=BigAnswers(), executor="serial"):
            count += result.ok
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    # 20,000 answers of 4 KB are 80 MB: only the recent ones and the window are kept
    assert peak < (RECENT_ANSWERS + 2_000) * 5_000


# -- finding 8: `geofetch serve` loads no HTTP client or HTML parser ----------------------


@pytest.mark.timeout(120)
def test_serve_imports_no_http_client_or_html_parser():
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "geofetch", "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": ROOT})
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "listening on http://127.0.0.1:" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    imported = {row.rsplit("|", 1)[-1].strip() for row in stderr.splitlines()
                if row.startswith("import time:")}
    assert "geofetch.cli.serve" in imported or "geofetch.server" in imported
    heavy = {name for name in imported
             if name.split(".")[0] in ("requests", "urllib3", "bs4", "googlemaps")
             or name.startswith(("geofetch.core", "geofetch.tasks", "geofetch.http"))}
    assert heavy == set()


@pytest.mark.timeout(120)
def test_the_process_executor_changes_no_global_multiprocessing_setting(monkeypatch):
    import multiprocessing
    import multiprocessing.context

    calls: list[str] = []
    for owner, name in ((multiprocessing.context.ForkServerContext, "set_forkserver_preload"),
                        (multiprocessing.context.BaseContext, "set_executable")):
        original = getattr(owner, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(owner, name, spy)
    before = multiprocessing.get_start_method(allow_none=True)
    results = geocode_many(["Berlin", "Osaka"], executor="process", workers=2)
    assert [r.status for r in results] == ["ok", "ok"]
    assert calls == []  # no preload, no executable set for the host
    assert multiprocessing.get_start_method(allow_none=True) == before
