"""Real runs against the real local server: one shared rate limit across threads and
processes, the budget guard, run-wide abort, and every row back in order.

These tests assert counts and order (arrivals per one-second window as the server
saw them), never how long anything took.
"""

from __future__ import annotations

import csv
import io
import multiprocessing

import pytest

from geofetch import geocode_many
from geofetch.bench import bench_names, max_per_window
from geofetch.server import LocalServer

KEY = "AIzaSyTEST-loopback-key-0001"


@pytest.fixture
def server():
    # In its own process, so the client's threads don't share the server's GIL.
    srv = LocalServer(latency=0.0, subprocess=True)
    with srv:
        yield srv


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("executor", "threads"), [("thread", 1), ("process", 1),
                                                   ("process", 4)])
@pytest.mark.parametrize("rate", [5, 20, 100])
def test_one_rate_limit_for_every_worker(server, executor, threads, rate):
    n = rate * 3 + 1  # three seconds of requests at the limit
    places = bench_names(n)
    results = geocode_many(places, provider="google", key=KEY, base_url=server.url,
                           executor=executor, workers=8 if executor == "thread" else 4,
                           threads=threads, rate=rate, cache=None)
    assert [r.query for r in results] == places
    assert all(r.status in ("ok", "not_found") for r in results)
    arrivals = server.stats()["arrivals"]
    assert len(arrivals) == n
    # Never more than R (+1 for jitter) in any one-second window ...
    assert max_per_window(arrivals) <= rate + 1
    # ... and the run keeps up with the limit: at least 95% of R overall.
    achieved = (n - 1) / (max(arrivals) - min(arrivals))
    assert achieved >= 0.95 * rate, f"achieved {achieved:.2f}/s of {rate}/s"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("executor", "threads"), [("thread", 1), ("process", 1),
                                                   ("process", 4)])
def test_budget_caps_requests_even_in_a_retry_storm(cli, monkeypatch, tmp_path, executor,
                                                    threads):
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", KEY)
    srv = LocalServer(latency=0.0, fail_rate=1.0, seed=1)
    places = tmp_path / "places.txt"
    places.write_text("".join(f"town {i}\n" for i in range(40)), encoding="utf-8")
    with srv as url:
        result = cli(["geocode", places, "--provider", "google", "--base-url", url,
                      "--executor", executor, "--workers", "4", "--threads", str(threads),
                      "--rate", "0", "--retries", "3", "--max-requests", "15",
                      "--no-cache"])
        total = srv.stats()["total"]
    assert total == 15
    assert result.status == 3
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["place"] for r in rows] == [f"town {i}" for i in range(40)]
    assert {r["status"] for r in rows} == {"failed"}
    assert sum("budget exhausted" in r["error"] for r in rows) >= 40 - 15
    assert "run aborted" in result.stderr
    assert multiprocessing.active_children() == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("executor", "threads"), [("thread", 1), ("process", 1),
                                                   ("process", 4)])
def test_denied_key_aborts_the_run_with_exit_3(cli, monkeypatch, tmp_path, executor, threads):
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", "AIzaSyWRONG-key-for-test")
    srv = LocalServer(latency=0.0, key=KEY)
    places = tmp_path / "places.txt"
    places.write_text("".join(f"Berlin {i}\n" for i in range(30)), encoding="utf-8")
    with srv as url:
        result = cli(["geocode", places, "--provider", "google", "--base-url", url,
                      "--executor", executor, "--workers", "2", "--threads", str(threads),
                      "--rate", "0", "--no-cache"])
        total = srv.stats()["total"]
    assert result.status == 3
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 30
    assert {r["status"] for r in rows} == {"failed"}
    assert all(r["error"].startswith("RequestDenied: ") for r in rows)
    assert total <= 4 * threads  # the workers stop asking once one of them is refused
    assert "AIzaSyWRONG" not in result.stdout + result.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_flaky_server_every_row_back_in_order(cli, monkeypatch, tmp_path, executor):
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", KEY)
    names = ["Berlin", "Osaka", "Vien", "xqzzvv kkwp", "", "Zadar", "Dehil"]
    places = tmp_path / "in.csv"
    lines = [f"{i},{names[i % len(names)]}" for i in range(60)]
    places.write_text("id,place\n" + "\n".join(lines) + "\n", encoding="utf-8")
    with LocalServer(latency=0.01, fail_rate=0.3, seed=7) as url:
        result = cli(["geocode", places, "--provider", "google", "--base-url", url,
                      "--executor", executor, "--workers", "4", "--rate", "0",
                      "--retries", "8", "--no-cache"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["id"] for r in rows] == [str(i) for i in range(60)]
    expected = {"Berlin": "ok", "Osaka": "ok", "Vien": "ok", "xqzzvv kkwp": "not_found",
                "": "invalid", "Zadar": "ok", "Dehil": "ok"}
    assert [r["status"] for r in rows] == [expected[r["place"]] for r in rows]
    assert result.status == 0
