"""Workers that hang or keep dying never hang the run or lose a row (issue 16, 4-5)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from geofetch import exceptions, geocode_many
from geofetch.exceptions import WorkerStartError

from .fakes import CountingProvider, DiesOnOpen, FakeProvider, events

ROOT = str(Path(__file__).resolve().parent.parent)


@pytest.mark.timeout(120)
def test_a_thread_past_its_deadline_fails_its_row_and_the_run_ends():
    places = ["a", "bb", "hang", "ccc", "dd"] * 2
    results = geocode_many(places, provider=FakeProvider(), executor="thread", workers=2,
                           timeout=0.5, retries=0)
    assert [r.query for r in results] == places
    statuses = [(r.status, (r.error or "").split(":")[0]) for r in results]
    assert statuses == [("ok", ""), ("ok", ""), ("failed", "WorkerTimeout"), ("ok", ""),
                        ("ok", "")] * 2
    assert issubclass(exceptions.WorkerTimeout, exceptions.RowError)  # a class, drawn


@pytest.mark.timeout(180)
def test_a_hung_thread_in_a_worker_process_fails_its_row_and_the_others_go_on(tmp_path):
    # Its own process fails the row and replaces the thread: no process is killed,
    # so no other row is lost and run again.
    log = str(tmp_path / "events")
    places = ["a", "bb", "hang", "ccc", "dd"] * 2 + [f"p{i}" for i in range(100)]
    results = geocode_many(places, provider=CountingProvider(log, delay=0.01),
                           executor="process", workers=2, threads=4, timeout=0.5, retries=0)
    assert [r.query for r in results] == places
    failed = [(r.query, r.error) for r in results if r.status != "ok"]
    assert [query for query, _ in failed] == ["hang", "hang"]  # one task, two rows
    assert all(error.startswith("WorkerTimeout: no result within ") and
               error.endswith("the worker thread was abandoned") for _, error in failed)
    opened = [(pid, tid) for event, pid, tid in events(log) if event == "open"]
    assert len({pid for pid, _ in opened}) == 2  # the same two processes throughout
    assert len(opened) == 2 * 4 + 1  # and one thread more: the hung one's replacement


@pytest.mark.timeout(180)
@pytest.mark.parametrize("threads", [1, 4])
def test_a_stopped_worker_process_is_killed_and_replaced_and_every_row_comes_back(threads):
    places = [f"p{i}" for i in range(60)]
    places[17] = "stop"  # its process SIGSTOPs itself, as `kill -STOP` would
    results = geocode_many(places, provider=FakeProvider(delay=0.01), executor="process",
                           workers=4, threads=threads, timeout=0.5, retries=0)
    assert [r.query for r in results] == places
    failed = [(r.query, r.error) for r in results if r.status != "ok"]
    assert [query for query, _ in failed] == ["stop"]
    assert failed[0][1].startswith("WorkerTimeout: the worker process sent nothing for")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("threads", [1, 4])
def test_workers_killed_as_they_start_fail_every_row_without_the_main_hint(threads):
    places = [f"p{i}" for i in range(200)]
    results = geocode_many(places, provider=DiesOnOpen(), executor="process", workers=2,
                           threads=threads)
    assert [r.query for r in results] == places
    assert {r.status for r in results} == {"failed"}
    assert {r.error.split(":")[0] for r in results} == {"WorkerDied"}
    assert all("__main__" not in r.error for r in results)
    assert "could not keep worker processes alive" in results[-1].error


@pytest.mark.timeout(180)
def test_a_script_without_a_main_guard_is_told_so(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        from geofetch import geocode_many
        print(geocode_many(["Berlin", "Osaka"], executor="process", workers=2))
    """), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=150, env={**os.environ, "PYTHONPATH": ROOT}, cwd=tmp_path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{WorkerStartError.__module__}.WorkerStartError: ")
    assert "__main__" in last


@pytest.mark.timeout(120)
@pytest.mark.parametrize("threads", [1, 4])
def test_slow_rows_are_spread_over_every_worker_process(threads):
    # Before: 40 slow rows on 8 workers went 10 to each of the first 4, the rest idle.
    places = [f"whoami {i}" for i in range(16)]
    results = geocode_many(places, provider=FakeProvider(), executor="process", workers=8,
                           threads=threads)
    assert [r.query for r in results] == places
    assert len({r.formatted_address for r in results}) == 8


@pytest.mark.timeout(60)
def test_the_serial_executor_streams_row_by_row():
    # Before: it ran 256 rows before yielding the first, deaf to Ctrl-C meanwhile.
    pulled = 0

    def places():
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield f"p{i}"

    from geofetch import iter_geocode

    results = iter_geocode(places(), provider=FakeProvider(), executor="serial")
    assert next(results).query == "p0"
    assert pulled <= 2
    results.close()
