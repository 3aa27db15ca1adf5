"""The answer cache: resumable runs, dedup, what is (not) cached, bad cache files."""

from __future__ import annotations

import csv
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from geofetch import geocode_many
from geofetch.bench import bench_names
from geofetch.cache import CacheEntry, SQLiteCache
from geofetch.exceptions import CacheError
from geofetch.normalize import normalize_query
from geofetch.server import LocalServer

KEY = "AIzaSyTEST-cache-key-0001"


def test_roundtrip_keeps_floats_exactly(tmp_path):
    cache = SQLiteCache(tmp_path / "c.sqlite")
    entry = CacheEntry("ok", 52.52437, 13.41053, "Berlin, Germany", {"status": "OK"})
    cache.put("google|x", "berlin", entry)
    cache.close()
    again = SQLiteCache(tmp_path / "c.sqlite")
    assert again.get("google|x", "berlin") == entry
    assert again.get("google|y", "berlin") is None
    assert again.stats()["per_namespace"] == {"google|x": 1}
    assert again.clear() == 1
    assert again.get("google|x", "berlin") is None
    again.close()


def test_foreign_or_corrupt_or_other_version_files_are_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(CacheError, match="not a usable geofetch cache"):
        SQLiteCache(garbage)
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(CacheError, match="not written by geofetch"):
        SQLiteCache(foreign)
    old = tmp_path / "old.sqlite"
    SQLiteCache(old).close()
    with sqlite3.connect(old) as db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    with pytest.raises(CacheError, match="has format 0"):
        SQLiteCache(old)


def test_corrupt_cache_on_the_command_line_is_exit_2(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", KEY)
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"junk" * 1000)
    result = cli(["geocode", "-", "--provider", "google", "--cache", bad,
                  "--base-url", "http://127.0.0.1:9"], stdin="Berlin\n")
    assert result.status == 2
    assert "not a usable geofetch cache" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_thousand_rows_of_ten_places_make_ten_requests(tmp_path, executor):
    places = bench_names(10)
    rows = [places[i % 10] if i % 3 else f"  {places[i % 10].upper()} " for i in range(1000)]
    server = LocalServer(latency=0.01)
    with server as url:
        results = geocode_many(rows, provider="google", key=KEY, base_url=url, rate=0,
                               executor=executor, workers=4, cache=tmp_path / "c.sqlite")
        stats = server.stats()
    assert stats["total"] == 10
    assert [r.query for r in results] == rows
    assert all(r.status == "ok" for r in results)


@pytest.mark.timeout(120)
def test_rerun_asks_nothing_and_failures_are_not_cached(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", KEY)
    source = tmp_path / "places.txt"
    source.write_text("Berlin\nxqzzvv kkwp\nOsaka\n\n", encoding="utf-8")
    cache = tmp_path / "c.sqlite"
    server = LocalServer(latency=0.0)
    with server as url:
        args = ["geocode", source, "--provider", "google", "--base-url", url, "--rate", "0",
                "--cache", cache]
        first = cli(args)
        after_first = server.stats()["total"]
        second = cli(args)
        after_second = server.stats()["total"]
    assert after_first == 3 and after_second == 3
    assert first.stdout == second.stdout
    assert first.status == second.status == 0
    stats = cli(["cache", "stats", "--cache", cache])
    assert "3 entries" in stats.stdout  # 2 ok and 1 not_found; the blank row is never asked
    with LocalServer(latency=0.0, fail_rate=1.0, seed=3) as url:
        failing = cli(["geocode", "-", "--provider", "google", "--base-url", url, "--rate", "0",
                       "--cache", cache, "--retries", "0"], stdin="Zadar\n")
    assert failing.status == 1
    assert "3 entries" in cli(["cache", "stats", "--cache", cache]).stdout
    assert "removed 3 entries" in cli(["cache", "clear", "--cache", cache]).stdout


def _run(source, out, cache, url):
    env = {**os.environ, "GOOGLE_MAPS_API_KEY": KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "geofetch", "geocode", str(source), "-o", str(out),
         "--provider", "google", "--base-url", url, "--rate", "0", "--workers", "4",
         "--cache", str(cache), "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )


@pytest.mark.timeout(180)
def test_killed_run_resumes_to_identical_output_without_asking_twice(tmp_path):
    places = bench_names(300)
    source = tmp_path / "places.csv"
    with open(source, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "place"])
        writer.writerows([i, p] for i, p in enumerate(places))
    reference = tmp_path / "reference.csv"
    with LocalServer(latency=0.0) as url:
        assert _run(source, reference, tmp_path / "fresh.sqlite", url).wait(timeout=120) == 0

    server = LocalServer(latency=0.02)
    out = tmp_path / "out.csv"
    cache = tmp_path / "resume.sqlite"
    with server as url:
        proc = _run(source, out, cache, url)
        deadline = time.monotonic() + 60
        while server.stats()["total"] < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        asked_before = server.stats()["per_query"]
        assert 100 <= sum(asked_before.values()) < 300
        with sqlite3.connect(cache) as db:  # what the killed run had been answered
            answered = {q for (q,) in db.execute("SELECT query FROM answers")}
        assert _run(source, out, cache, url).wait(timeout=120) == 0
        asked = server.stats()["per_query"]
    assert out.read_bytes() == reference.read_bytes()
    by_key = {normalize_query(p): p for p in places}
    # Lost to the kill: at most the requests in flight (4 workers) and the answers
    # the workers had received but the parent had not yet stored (4 more).
    assert len(answered) >= sum(asked_before.values()) - 8
    assert all(asked[by_key[q]] == 1 for q in answered), "an answered query was asked again"
    assert max(asked.values()) <= 2
    assert sum(asked.values()) - len(places) <= 8
    assert len(list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))) == 300
