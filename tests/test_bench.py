"""geofetch bench: the arithmetic on fixed timings, then tiny real sweeps through the CLI.

No test asserts speed: the machine running the tests may be busy.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import replace

import pytest

from geofetch.bench import (
    BenchReport,
    Measurement,
    _all_names,
    bench_names,
    cpu_times,
    ideal_rate,
    misspell,
    percentile,
    steal_between,
    summarize,
)
from geofetch.cli.bench import format_table, notes
from geofetch.exceptions import UsageError
from geofetch.server import LocalServer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = ["bench", "--requests", "6", "--latency", "0.01", "--workers", "1,2"]


# ----------------------------------------------------------------- the arithmetic


def test_percentile_interpolates_between_closest_ranks():
    values = [0.4, 0.1, 0.3, 0.2]  # unsorted on purpose
    assert percentile(values, 0.0) == pytest.approx(0.1)
    assert percentile(values, 0.5) == pytest.approx(0.25)
    assert percentile(values, 0.95) == pytest.approx(0.385)
    assert percentile(values, 1.0) == pytest.approx(0.4)
    assert percentile([7.0], 0.95) == 7.0
    assert math.isnan(percentile([], 0.5))
    with pytest.raises(ValueError):
        percentile(values, 95)


@pytest.mark.parametrize(
    ("workers", "latency", "rate", "expected"),
    [
        (1, 0.05, None, 20.0),
        (4, 0.05, 0, 80.0),  # rate 0: no limit
        (4, 0.05, 50.0, 50.0),  # the rate limit caps it
        (4, 0.05, 500.0, 80.0),
        (4, 0.0, 10.0, 10.0),  # no latency: only the rate bounds it
        (4, 0.0, None, None),  # nothing bounds it: no ideal
        (4, None, 50.0, None),  # unknown latency: no ideal
    ],
)
def test_ideal_rate_is_min_of_rate_and_workers_over_latency(workers, latency, rate, expected):
    assert ideal_rate(workers, latency, rate) == expected


def _fixed() -> list[Measurement]:
    # Given out of order: the speedup base is the smallest pool of each executor.
    return [
        Measurement("thread", 4, 1.5625, tuple([0.05] * 90 + [0.06] * 10), requests=100),
        Measurement("thread", 1, 5.0, tuple([0.05] * 100), requests=100),
        Measurement("process", 2, 4.0, tuple(0.05 + i / 1000 for i in range(100)), failures=3,
                    startup_seconds=0.75, requests=103, in_flight=2),
    ]


def test_summarize_rates_speedup_and_efficiency():
    rows = summarize(_fixed(), latency_seconds=0.05, rate=None)
    assert [(r.executor, r.workers) for r in rows] == [("thread", 4), ("thread", 1),
                                                        ("process", 2)]
    four, one, process = rows
    assert one.rows_per_second == pytest.approx(20.0)
    assert one.ideal == pytest.approx(20.0) and one.efficiency == pytest.approx(1.0)
    assert one.speedup == pytest.approx(1.0)
    assert four.rows_per_second == pytest.approx(64.0)
    assert four.ideal == pytest.approx(80.0) and four.efficiency == pytest.approx(0.8)
    assert four.speedup == pytest.approx(3.2)
    assert four.p50_ms == pytest.approx(50.0) and four.max_ms == pytest.approx(60.0)
    assert four.p95_ms == pytest.approx(60.0)
    assert process.speedup == pytest.approx(1.0)  # its own base, not thread's
    assert process.rows_per_second == pytest.approx(25.0)
    assert process.efficiency == pytest.approx(25.0 / 40.0)
    assert process.p50_ms == pytest.approx(99.5)
    assert process.p95_ms == pytest.approx(144.05)
    assert process.failures == 3 and process.requests == 103 and process.in_flight == 2
    assert process.startup_ms == pytest.approx(750.0)


def test_speedup_of_threads_is_over_the_executors_one_thread_run():
    # bench --threads 1,16 --workers 2: before, both rows said 1.00x.
    measured = [
        Measurement("process", 2, 10.0, tuple([0.05] * 100), requests=100),  # 10 rows/s
        Measurement("process", 2, 1.0, tuple([0.05] * 100), threads=16, requests=100),
        Measurement("process", 4, 0.5, tuple([0.05] * 100), threads=16, requests=100),
        Measurement("thread", 2, 2.0, tuple([0.05] * 100), requests=100),
    ]
    rows = summarize(measured, latency_seconds=0.05, rate=None)
    assert [r.speedup for r in rows] == pytest.approx([1.0, 10.0, 20.0, 1.0])
    # no 1-thread run: the fewest threads at the smallest pool is the base
    rows = summarize(measured[1:3], latency_seconds=0.05, rate=None)
    assert [r.speedup for r in rows] == pytest.approx([1.0, 2.0])


def test_summarize_with_a_rate_limit_and_without_an_ideal():
    capped = summarize(_fixed(), latency_seconds=0.05, rate=40.0)
    assert [r.ideal for r in capped] == [40.0, 20.0, 40.0]
    assert capped[0].efficiency == pytest.approx(1.6)  # faster than the cap: shows it
    offline = summarize(_fixed(), latency_seconds=None, rate=None)
    assert all(r.ideal is None and r.efficiency is None for r in offline)
    assert offline[0].speedup == pytest.approx(3.2)


def test_table_is_aligned_and_says_n_a():
    report = BenchReport(summarize(_fixed(), None, None), "offline", 100, None, None,
                         "gazetteer")
    lines = format_table(report).splitlines()
    assert len(lines) == 4
    assert lines[0].split()[:3] == ["executor", "workers", "rows/s"]
    assert "n/a" in lines[1]
    # right-aligned numeric columns end at the same place on every line
    ends = {line.index("x") + 1 for line in lines[1:]}  # the speedup column, "3.20x"
    assert len(ends) == 1


def test_bench_names_are_distinct_and_wrap_around():
    names = bench_names(50)
    assert len(set(names)) == 50
    assert bench_names(5, offset=50) == bench_names(55)[50:]
    total = len(_all_names())
    wrapped = bench_names(10, offset=total - 3)
    assert wrapped == [*bench_names(3, total - 3), *bench_names(7)]
    assert len(set(wrapped)) == 10
    with pytest.raises(UsageError):
        bench_names(total + 1)
    assert misspell("Berlin") == "Berlinn"


# ---------------------------------------------------------- real sweeps, in-process


@pytest.mark.timeout(180)
def test_json_sweep_threads_and_processes(cli):
    result = cli([*TINY, "--executor", "thread,process", "--format", "json"])
    assert result.status == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["provider"] == "google" and report["latency_seconds"] == 0.01
    rows = report["rows"]
    assert [(r["executor"], r["workers"]) for r in rows] == [
        ("thread", 1), ("thread", 2), ("process", 1), ("process", 2)]
    for row in rows:
        assert row["rows"] == 6 and row["failures"] == 0 and row["requests"] == 6
        assert row["ideal"] == pytest.approx(row["workers"] / 0.01)
        assert 0 < row["efficiency"] and row["rows_per_second"] > 0
        assert 1 <= row["in_flight"] <= row["workers"]
        assert row["p50_ms"] >= 10.0  # the server's latency is in every request
    assert rows[0]["speedup"] == 1.0 and rows[2]["speedup"] == 1.0
    progress = [line for line in result.stderr.splitlines() if " workers: " in line]
    assert len(progress) == 4 and "process × 2 workers: 6 rows" in progress[-1]


@pytest.mark.timeout(180)
def test_threads_sweep_the_process_executor_only_and_multiply_its_ideal(cli):
    result = cli(["bench", "--requests", "12", "--latency", "0.01", "--workers", "1,2",
                  "--executor", "thread,process", "--threads", "1,3", "--format", "json"])
    assert result.status == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert [(r["executor"], r["workers"], r["threads"]) for r in rows] == [
        ("thread", 1, 1), ("thread", 2, 1), ("process", 1, 1), ("process", 2, 1),
        ("process", 1, 3), ("process", 2, 3)]
    for row in rows:
        assert row["rows"] == 12 and row["failures"] == 0
        assert row["ideal"] == pytest.approx(row["workers"] * row["threads"] / 0.01)
        assert 1 <= row["in_flight"] <= row["workers"] * row["threads"]
    # one base per executor: its 1-thread run at the smallest pool (before, each
    # threads setting was its own base, so every x 1-worker row said 1.00x)
    base = rows[2]["rows_per_second"]
    for row in rows[2:]:
        assert row["speedup"] == pytest.approx(row["rows_per_second"] / base)
    assert max(r["in_flight"] for r in rows[4:]) > 2  # threads really ran at once
    progress = [line for line in result.stderr.splitlines() if " workers" in line]
    assert "process × 2 workers × 3 threads: 12 rows" in progress[-1]
    table = cli(["bench", "--requests", "3", "--latency", "0.01", "--workers", "1",
                 "--executor", "process", "--threads", "2"])
    assert table.stdout.splitlines()[0].split()[:4] == ["executor", "workers", "threads",
                                                       "rows/s"]
    assert cli(["bench", "--threads", "0"]).status == 2


@pytest.mark.timeout(180)
def test_csv_and_table_sweeps_and_plot(cli, tmp_path):
    result = cli([*TINY, "--executor", "thread", "--format", "csv"])
    assert result.status == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["workers"] for row in rows] == ["1", "2"]
    assert {row["rows"] for row in rows} == {"6"}
    assert {"rows_per_second", "p50_ms", "p95_ms", "max_ms", "efficiency",
            "speedup", "failures"} <= set(rows[0])

    chart = tmp_path / "bench.png"
    result = cli([*TINY, "--executor", "thread", "--plot", chart])
    assert result.status == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("executor")
    assert [line.split()[:2] for line in lines[1:]] == [["thread", "1"], ["thread", "2"]]
    assert chart.read_bytes()[:8] == PNG_SIGNATURE
    assert f"chart written to {chart}" in result.stderr


@pytest.mark.timeout(180)
def test_offline_sweep_has_no_ideal_and_no_server(cli, tmp_path):
    chart = tmp_path / "offline.png"
    result = cli(["bench", "--provider", "offline", "--requests", "4", "--workers", "1,2",
                  "--executor", "thread", "--plot", chart])
    assert result.status == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert all("n/a" in line for line in lines[1:])  # ideal, efficiency, in flight
    assert chart.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.timeout(180)
def test_base_url_measures_the_users_server(cli):
    with LocalServer(latency=0.0) as url:
        result = cli(["bench", "--base-url", url, "--requests", "5", "--workers", "1",
                      "--executor", "thread", "--provider", "nominatim", "--format", "json"])
        assert result.status == 0, result.stderr
        row = json.loads(result.stdout)["rows"][0]
        assert row["rows"] == 5 and row["failures"] == 0
        assert row["ideal"] is None and row["in_flight"] is None  # no latency known


def test_plot_without_matplotlib_is_a_one_line_usage_error(cli, monkeypatch):
    monkeypatch.setattr("geofetch.cli.bench.plot_available", lambda: False)
    result = cli(["bench", "--plot", "x.png"])
    assert result.status == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "matplotlib" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--workers", "0"],
        ["--workers", "1,x"],
        ["--executor", "fibers"],
        ["--requests", "0"],
        ["--latency", "-1"],
        ["--format", "xml"],
        ["--provider", "offline", "--base-url", "http://127.0.0.1:9"],
    ],
)
def test_bad_usage_exits_2(cli, argv):
    result = cli(["bench", *argv])
    assert result.status == 2
    assert result.stdout == ""


@pytest.mark.timeout(180)
def test_failures_are_counted_and_exit_1(cli):
    with LocalServer(latency=0.0, key="AIzaTheServersOwnKey") as url:  # ours is refused
        result = cli(["bench", "--base-url", url, "--requests", "3", "--workers", "1",
                      "--executor", "thread", "--format", "json"])
    assert result.status == 1
    row = json.loads(result.stdout)["rows"][0]
    assert row["rows"] == 3 and row["failures"] == 3
    assert row["first_error"].startswith("RequestDenied")
    assert "3 failed (first: RequestDenied" in result.stderr
    assert "AIzaTheServersOwnKey" not in result.stdout + result.stderr


def test_cpu_steal_is_the_hypervisors_share_of_the_ticks_between_two_readings():
    assert steal_between((10, 1000), (60, 2000)) == pytest.approx(0.05)
    assert steal_between(None, (60, 2000)) is None
    assert steal_between((10, 1000), (10, 1000)) is None  # no time passed
    now = cpu_times()
    if now is not None:  # Linux
        steal, total = now
        assert 0 <= steal <= total


def test_notes_say_how_many_runs_and_warn_of_steal():
    rows = summarize(_fixed(), latency_seconds=0.1, rate=None)
    rows = [replace(row, runs=3, slowest_rows_per_second=row.rows_per_second * 0.9,
                    cpu_steal=0.08) for row in rows]
    report = BenchReport(rows, "google", 100, 0.1, None, "local server", repeat=3)
    assert notes(report) == [
        "each row: the fastest of 3 runs; the slowest run was within 10%",
        "cpu steal: the hypervisor took up to 8% of this machine's CPU during a run; "
        "rows/s may be low by about as much",
    ]
    quiet = BenchReport([replace(row, cpu_steal=0.001) for row in rows], "google", 100, 0.1,
                        None, "local server")
    assert notes(quiet) == []


@pytest.mark.timeout(180)
def test_repeat_keeps_the_fastest_run_of_each_pair(cli):
    result = cli(["bench", "--provider", "offline", "--requests", "5", "--workers", "1,2",
                  "--executor", "thread", "--repeat", "3", "--format", "json"])
    assert result.status == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["repeat"] == 3
    for row in report["rows"]:
        assert row["runs"] == 3 and row["rows"] == 5
        assert 0 < row["slowest_rows_per_second"] <= row["rows_per_second"]
    assert "bench: each row: the fastest of 3 runs" in result.stderr
    progress = [line for line in result.stderr.splitlines() if " workers: " in line]
    assert len(progress) == 2  # one line per pair, not per run
