"""Issue 14: the dask executor and the gate shared through Redis, with a real
``redis-server`` and real ``distributed.LocalCluster`` worker processes on loopback.
Counts and order only: what the server saw, what the output holds."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import sys
import threading
import time

import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("redis")

from geofetch import RunOptions  # noqa: E402
from geofetch.core.redis_gate import RedisGate  # noqa: E402
from geofetch.exceptions import UsageError  # noqa: E402
from geofetch.tasks.geocode import geocode_job  # noqa: E402
from geofetch.testing.redis import RedisServer  # noqa: E402
from geofetch.testing.servers import Reply, ScriptedServer  # noqa: E402

from .rowtools import run_geofetch  # noqa: E402

EMPTY = Reply.json([])


def _start_or_skip(server):
    try:
        server.start()
    except UsageError as exc:  # no redis-server here (.ci/run installs it)
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def redis_url():
    server = RedisServer()
    _start_or_skip(server)
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def cluster():
    """2 worker processes x 8 threads on 127.0.0.1, no dashboard, shared by tests."""
    import logging

    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=8, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as local, \
            distributed.Client(local, set_as_default=False) as client:
        yield client


def _places(tmp_path, count, name="places.txt"):
    path = tmp_path / name
    path.write_text("".join(f"Place {i}\n" for i in range(count)), encoding="utf-8")
    return path


def _rows(stdout):
    return list(csv.reader(io.StringIO(stdout)))[1:]


def _most_in_one_second(times):
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def _geocode(url, places, **options):
    opts = RunOptions(**options)
    with geocode_job(places, provider="nominatim", base_url=url, options=opts) as job:
        results = list(job)
    return job, results


@pytest.mark.timeout(180)
def test_rows_come_back_in_input_order_each_once_under_dask(tmp_path, cli):
    with ScriptedServer(EMPTY) as server:
        result = cli(["geocode", _places(tmp_path, 300), "--provider", "nominatim",
                      "--base-url", server.url, "--executor", "dask", "--workers", "2",
                      "--threads", "4", "--chunk", "7", "--rate", "0", "--no-cache"])
        asked = sorted(request.target for request in server.requests)
    assert result.status == 0, result.stderr
    rows = _rows(result.stdout)
    assert [row[0] for row in rows] == [f"Place {i}" for i in range(300)]
    assert {row[-2] for row in rows} == {"not_found"}
    assert len(asked) == 300 and len(set(asked)) == 300  # each row asked once


@pytest.mark.timeout(180)
def test_rate_across_two_dask_processes_of_eight_threads(redis_url, cluster):
    # 2 processes x 8 threads, --rate 20 on the Redis gate: no 1 s window over 21 at
    # the server, and the long run reaches at least 95% of 20/s.
    count = 160
    with ScriptedServer(Reply.json([], delay=0.05)) as server:
        job, results = _geocode(server.url, [f"Place {i}" for i in range(count)],
                                executor="dask", client=cluster, rate=20, gate=redis_url,
                                cache=None)
        seen = [request.at for request in server.requests]
    assert [r.query for r in results] == [f"Place {i}" for i in range(count)]
    assert [r.status for r in results] == ["not_found"] * count
    assert len(seen) == count
    assert _most_in_one_second(seen) <= 21
    achieved = (count - 1) / (max(seen) - min(seen))
    assert achieved >= 0.95 * 20, achieved


@pytest.mark.timeout(180)
def test_two_runs_with_one_gate_name_stay_within_the_limit_together(redis_url, tmp_path):
    seen_by_run = {}
    with ScriptedServer(EMPTY) as server:

        def run(label):
            job, results = _geocode(server.url, [f"{label} {i}" for i in range(60)],
                                    executor="thread", workers=4, rate=10, gate=redis_url,
                                    gate_name="shared-key-1", cache=None)
            seen_by_run[label] = [r.status for r in results]

        threads = [threading.Thread(target=run, args=(label,)) for label in ("A", "B")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        seen = [request.at for request in server.requests]
    assert seen_by_run == {"A": ["not_found"] * 60, "B": ["not_found"] * 60}
    assert len(seen) == 120
    assert _most_in_one_second(seen) <= 11  # one limit of 10/s for both runs


@pytest.mark.timeout(180)
def test_the_budget_holds_across_dask_workers(redis_url, cluster):
    with ScriptedServer(EMPTY) as server:
        job, results = _geocode(server.url, [f"Place {i}" for i in range(200)],
                                executor="dask", client=cluster, rate=0, gate=redis_url,
                                max_requests=37, cache=None, retries=0)
        asked = len(server.requests)
    assert asked == 37
    assert len(results) == 200
    assert [r.query for r in results] == [f"Place {i}" for i in range(200)]
    assert sum(r.status == "not_found" for r in results) == 37
    failed = [r.error for r in results if r.status == "failed"]
    assert len(failed) == 163 and all(e.startswith("BudgetExhausted: ") for e in failed)
    assert job.requests == 37


@pytest.mark.timeout(180)
def test_a_retry_after_pauses_every_dask_worker(redis_url, cluster):
    first = Reply(status=429, headers=[("Retry-After", "2")])
    with ScriptedServer(first, EMPTY) as server:
        job, results = _geocode(server.url, [f"Place {i}" for i in range(40)],
                                executor="dask", client=cluster, rate=50, gate=redis_url,
                                cache=None)
        seen = [request.at for request in server.requests]
    assert [r.status for r in results] == ["not_found"] * 40
    assert len(seen) == 41
    # requests already on the wire when the 429 came back may land sooner; none after
    # them, from any worker of either process, before the Retry-After ran out
    sooner = [at for at in seen[1:] if at < seen[0] + 1.95]
    assert len(sooner) <= 2
    assert all(at - seen[0] >= 1.95 for at in seen[1 + len(sooner):])


@pytest.mark.timeout(240)
def test_a_dask_worker_killed_mid_run_loses_no_row(redis_url, cluster):
    pids = list(cluster.run(os.getpid).values())
    count = 300

    with ScriptedServer(Reply.json([], delay=0.05)) as server:

        def kill_after_some_requests():
            while len(server.requests) < 40:
                time.sleep(0.01)
            os.kill(pids[0], signal.SIGKILL)  # a dask worker process this test started

        killer = threading.Thread(target=kill_after_some_requests, daemon=True)
        killer.start()
        job, results = _geocode(server.url, [f"Place {i}" for i in range(count)],
                                executor="dask", client=cluster, rate=0, gate=redis_url,
                                cache=None, chunk=5)
        killer.join(5)
    assert not killer.is_alive()
    assert [r.query for r in results] == [f"Place {i}" for i in range(count)]
    assert [r.status for r in results] == ["not_found"] * count  # rerun, not lost
    cluster.wait_for_workers(2, timeout=60)


@pytest.mark.timeout(240)
def test_a_row_that_kills_its_dask_worker_fails_alone(tmp_path):
    from .fakes import FakeProvider

    places = ["Berlin", "Osaka", "sigkill", "Lima", "Paris", "Rome"] * 1
    opts = RunOptions(executor="dask", workers=2, threads=2, chunk=3)
    with geocode_job(places, provider=FakeProvider(), options=opts) as job:
        results = list(job)
    assert [r.query for r in results] == places
    assert [r.status for r in results] == ["ok", "ok", "failed", "ok", "ok", "ok"]
    assert results[2].error.startswith("WorkerDied: ")


@pytest.mark.timeout(240)
def test_redis_killed_mid_run_fails_the_rest_and_exits_3(tmp_path):
    server_redis = RedisServer()
    _start_or_skip(server_redis)
    try:
        with ScriptedServer(EMPTY) as server:
            places = _places(tmp_path, 200)
            timer = threading.Timer(2.0, server_redis.kill)
            timer.start()
            result = run_geofetch(["geocode", places, "--provider", "nominatim",
                                   "--base-url", server.url, "--executor", "dask",
                                   "--workers", "2", "--threads", "2", "--rate", "20",
                                   "--gate", server_redis.url.replace("//", "//:pw@"),
                                   "--no-cache", "--no-progress"], timeout=150)
            timer.join()
    finally:
        server_redis.stop()
    assert result.returncode == 3, result.stderr
    rows = _rows(result.stdout)
    assert [row[0] for row in rows] == [f"Place {i}" for i in range(200)]
    failed = [row[-1] for row in rows if row[-2] == "failed"]
    assert failed and all(e.startswith(f"GateUnavailable: redis://127.0.0.1:{server_redis.port}")
                          for e in failed)
    assert sum(row[-2] == "not_found" for row in rows) + len(failed) == 200
    assert "pw" not in result.stdout + result.stderr.replace("pw@", "")


def test_a_remote_scheduler_without_a_gate_is_a_usage_error(cli, tmp_path):
    result = cli(["geocode", _places(tmp_path, 3), "--executor", "dask",
                  "--scheduler", "tcp://127.0.0.1:1"])
    assert result.status == 2
    assert result.stderr.count("\n") == 1 and "--gate redis://" in result.stderr


def test_public_nominatim_refuses_a_distributed_executor(cli, tmp_path):
    result = cli(["geocode", _places(tmp_path, 3), "--provider", "nominatim",
                  "--email", "a@example.org", "--executor", "dask"])
    assert result.status == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "usage policy" in result.stderr


@pytest.mark.parametrize("argv", [
    ["reverse", "-", "--provider", "nominatim", "--email", "a@example.org"],
    ["geocode", "-", "--provider", "geopy:nominatim", "--provider-option",
     "user_agent=geofetch-tests"],
], ids=["reverse", "geopy"])
def test_public_nominatim_refuses_a_distributed_executor_by_any_road(cli, argv):
    # Before the merge the check sat in geocode_job alone: reverse and geopy's own
    # Nominatim class reached the public server from a dask cluster.
    pytest.importorskip("geopy")
    result = cli([*argv, "--executor", "dask"], stdin="52.5,13.4\n")
    assert result.status == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "usage policy" in result.stderr


def test_an_unreachable_gate_is_a_usage_error_without_its_password(cli, tmp_path):
    port = RedisServer().port  # nothing listens there
    result = cli(["geocode", _places(tmp_path, 3), "--rate", "5",
                  "--provider", "nominatim", "--base-url", "http://127.0.0.1:1",
                  "--gate", f"redis://:s3cret@127.0.0.1:{port}/0"])
    assert result.status == 2
    assert result.stderr.count("\n") == 1 and f"redis://127.0.0.1:{port}" in result.stderr
    assert "s3cret" not in result.stderr
    assert result.stdout == ""  # was the CSV header, written before the gate failed


def test_an_unreachable_gate_leaves_an_output_file_as_it_was(cli, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("kept\n", encoding="utf-8")
    port = RedisServer().port  # nothing listens there
    result = cli(["geocode", _places(tmp_path, 3), "-o", str(out), "--provider", "nominatim",
                  "--base-url", "http://127.0.0.1:1", "--gate", f"redis://127.0.0.1:{port}/0"])
    assert result.status == 2
    assert out.read_text(encoding="utf-8") == "kept\n"


def test_a_gate_without_redis_py_says_how_to_install_it(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # as if redis-py were not installed
    result = cli(["geocode", _places(tmp_path, 3), "--provider", "nominatim",
                  "--base-url", "http://127.0.0.1:1", "--gate", "redis://127.0.0.1:6379/0"])
    assert result.status == 2, result.stderr  # was 70, ModuleNotFoundError
    assert result.stderr.count("\n") == 1 and "geofetch[dask]" in result.stderr
    assert result.stdout == ""


def test_gate_pickles_to_the_same_schedule(redis_url):
    import pickle

    gate = RedisGate(redis_url, rate=5, max_requests=3)
    try:
        copy = pickle.loads(pickle.dumps(gate))
        assert [gate.acquire(), copy.acquire(), gate.acquire()] == [1, 2, 3]
        with pytest.raises(Exception, match="budget exhausted"):
            copy.acquire()
        assert gate.requests_sent == 3
    finally:
        gate.close()


def _children(pid):
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


CITIES = ["Berlin", "Paris", "Osaka", "Lima", "Rome", "Madrid", "Cairo", "Oslo", "Quito",
          "Dakar"]


@pytest.mark.timeout(240)
def test_a_coordinator_killed_and_run_again_gives_the_uninterrupted_output(redis_url, tmp_path):
    # (the Redis gate: a one-machine gate's file in /dev/shm would outlive a SIGKILL)
    import sqlite3
    import subprocess
    import sys

    from geofetch.server import LocalServer

    from .rowtools import PACKAGE_ROOT

    places = tmp_path / "places.txt"
    places.write_text("".join(f"{CITIES[i % 10]} {i // 10}\n" for i in range(150)),
                      encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    server = LocalServer(latency=0.05)
    with server as url:

        def command(output, cache):
            return [sys.executable, "-m", "geofetch", "geocode", str(places), "--provider",
                    "nominatim", "--base-url", url, "--executor", "dask", "--workers", "2",
                    "--threads", "2", "--rate", "0", "--chunk", "2", "-o", str(output),
                    "--gate", redis_url,
                    "--cache", str(cache), "--no-progress"]

        reference = subprocess.run(command(tmp_path / "reference.csv", tmp_path / "r.sqlite"),
                                   env=env, capture_output=True, text=True, timeout=180)
        assert reference.returncode == 0, reference.stderr
        first = subprocess.Popen(command(tmp_path / "out.csv", tmp_path / "c.sqlite"), env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cache = tmp_path / "c.sqlite"
        try:
            deadline = time.monotonic() + 120
            answered = 0
            while answered < 40 and time.monotonic() < deadline:
                time.sleep(0.05)
                if cache.exists():
                    with contextlib.closing(sqlite3.connect(cache)) as db:
                        try:
                            answered = db.execute("SELECT count(*) FROM answers").fetchone()[0]
                        except sqlite3.OperationalError:
                            answered = 0
            children = _children(first.pid)
            first.kill()  # SIGKILL: the coordinator this test started
            first.wait(30)
        finally:
            if first.poll() is None:
                first.kill()
        assert answered >= 40
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in children if _alive(pid)]  # its dask workers went too
        with contextlib.closing(sqlite3.connect(cache)) as db:
            kept = db.execute("SELECT count(*) FROM answers").fetchone()[0]
        assert 40 <= kept < 150
        asked_before = server.stats()["total"]
        again = subprocess.run(command(tmp_path / "out.csv", cache), env=env,
                               capture_output=True, text=True, timeout=180)
        asked_again = server.stats()["total"] - asked_before
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "reference.csv").read_bytes()
    # the second run asked only what the first had not answered (and kept)
    with contextlib.closing(sqlite3.connect(cache)) as db:
        assert db.execute("SELECT count(*) FROM answers").fetchone()[0] == 150
    assert "150 rows:" in again.stderr
    assert asked_again == 150 - kept  # nothing the first run kept was asked again


@pytest.mark.timeout(240)
def test_a_remote_scheduler_runs_the_rows_and_losing_it_fails_the_rest(redis_url, tmp_path):
    import subprocess
    import sys

    from geofetch.testing.redis import free_port

    from .rowtools import PACKAGE_ROOT

    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT,
           "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--no-dashboard"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2",
         "--nthreads", "2", "--host", "127.0.0.1", "--no-dashboard"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with distributed.Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        with ScriptedServer(Reply.json([], delay=0.05)) as server:
            args = ["geocode", _places(tmp_path, 30), "--provider", "nominatim",
                    "--base-url", server.url, "--executor", "dask", "--scheduler", address,
                    "--gate", redis_url, "--rate", "0", "--chunk", "2", "--no-cache",
                    "--no-progress"]
            ok = run_geofetch(args, timeout=120)
            assert ok.returncode == 0, ok.stderr
            assert [row[0] for row in _rows(ok.stdout)] == [f"Place {i}" for i in range(30)]

            def kill_scheduler():
                while len(server.requests) < 30 + 20:
                    time.sleep(0.01)
                scheduler.kill()  # SIGKILL: the scheduler this test started

            killer = threading.Thread(target=kill_scheduler, daemon=True)
            killer.start()
            args[1] = _places(tmp_path, 400, "more.txt")
            lost = run_geofetch(args, timeout=150)
            killer.join(5)
    finally:
        for process in (worker, scheduler):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
    assert lost.returncode == 3, lost.stderr
    rows = _rows(lost.stdout)
    assert [row[0] for row in rows] == [f"Place {i}" for i in range(400)]
    failed = [row[-1] for row in rows if row[-2] == "failed"]
    assert failed and all(e.startswith(f"SchedulerUnavailable: dask scheduler {address}")
                          for e in failed)
    assert sum(row[-2] == "not_found" for row in rows) >= 10
    lines = lost.stderr.splitlines()
    assert len(lines) == 2, lost.stderr  # the summary and why: no dask traceback
    assert lines[1].startswith("geofetch: run aborted: dask scheduler ")


def test_the_redis_gate_halves_once_per_round_and_recovers_by_steps(redis_url):
    # the same rules as the one-machine gate (test_throttling), on the Redis schedule
    gate = RedisGate(redis_url, rate=6400, max_throttled=30)
    try:
        tickets = [gate.acquire() for _ in range(4)]  # four requests in flight at once
        for ticket in tickets:
            gate.throttled(ticket)  # their four 429s are one signal, not four
        assert gate.current_rate == 3200
        assert gate.throttle_count == 4
        for _ in range(20):
            gate.throttled(gate.acquire())
        assert gate.current_rate == 100  # the floor: 1/64 of the configured rate
        gate.succeeded()  # a clean answer: the count in a row starts again
        assert gate.current_rate == pytest.approx(100 + 6400 / 20)
        for _ in range(29):
            gate.throttled(gate.acquire())
        assert gate.aborted() is None
        gate.throttled(gate.acquire())
        with pytest.raises(Exception, match="30 rate-limit answers in a row"):
            gate.acquire()
        assert gate.throttle_count == 4 + 20 + 30
    finally:
        gate.close()


@pytest.mark.timeout(180)
def test_geocode_many_takes_an_existing_client_and_the_gate(redis_url, cluster):
    from geofetch import geocode_many

    with ScriptedServer(EMPTY) as server:
        results = geocode_many([f"Place {i}" for i in range(50)], provider="nominatim",
                               base_url=server.url, executor="dask", client=cluster,
                               gate=redis_url, rate=0, chunk=4, max_requests=20)
        asked = len(server.requests)
    assert [r.query for r in results] == [f"Place {i}" for i in range(50)]
    assert asked == 20
    assert sum(r.status == "not_found" for r in results) == 20
    # the plugin of the run was removed from every dask worker when it ended
    plugins = cluster.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert not [name for names in plugins.values() for name in names
                if name.startswith("geofetch-")]


@pytest.mark.timeout(180)
def test_each_dask_worker_thread_builds_its_provider_once_and_closes_it(tmp_path):
    from .fakes import CountingProvider, events

    log = str(tmp_path / "events.log")
    places = [f"Place {i}" for i in range(60)]
    opts = RunOptions(executor="dask", workers=2, threads=2, chunk=3)
    with geocode_job(places, provider=CountingProvider(log, delay=0.01), options=opts) as job:
        results = list(job)
    assert [r.status for r in results] == ["ok"] * 60
    seen = events(log)
    opened = [(pid, tid) for event, pid, tid in seen if event == "open"]
    closed = [(pid, tid) for event, pid, tid in seen if event == "close"]
    assert 1 <= len(opened) <= 4  # at most once per thread of the 2 x 2
    assert len(set(opened)) == len(opened)
    # teardown (in the dask worker's own thread) closed every one, in its process
    assert sorted(pid for pid, _ in closed) == sorted(pid for pid, _ in opened)
    assert os.getpid() not in {pid for pid, _ in opened}  # built in the dask workers


# -- fetch: per-host politeness on Redis ---------------------------------------------


@pytest.mark.timeout(180)
def test_fetch_on_dask_keeps_the_per_host_cap_and_asks_robots_once_per_origin(redis_url,
                                                                               cluster):
    from geofetch import fetch_many
    from geofetch.testing.site import LocalSite

    with LocalSite() as site:
        urls = [f"http://{host}:{site.port}/slow/0.2?n={i}"
                for i in range(10) for host in ("127.0.0.1", "localhost")]
        results = fetch_many(urls, executor="dask", client=cluster, gate=redis_url,
                             per_host=2, chunk=1)
        stats = site.stats()
    assert [r.url for r in results] == urls
    assert [r.status for r in results] == ["ok"] * 20
    in_flight = stats["max_in_flight"]
    assert set(in_flight) == {"127.0.0.1", "localhost"}
    assert max(in_flight.values()) == 2, in_flight  # 16 threads, 2 per host at most
    assert stats["hits"]["/robots.txt"] == 2  # once per origin, by one of 16 threads


def test_shared_host_slots_hold_across_copies_and_a_dead_holders_lease_ends(redis_url):
    import pickle

    from geofetch.tasks.fetch import shared

    gate = RedisGate(redis_url, rate=0)
    try:
        slots = shared.SharedHostSlots(gate, per_host=2)
        copies = [pickle.loads(pickle.dumps(slots)) for _ in range(6)]
        inside, most, lock = [0], [0], threading.Lock()

        def use(copy):
            for _ in range(5):
                with copy.hold("example.org"):
                    with lock:
                        inside[0] += 1
                        most[0] = max(most[0], inside[0])
                    time.sleep(0.01)
                    with lock:
                        inside[0] -= 1

        workers = [threading.Thread(target=use, args=(c,)) for c in copies]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert most[0] == 2
        # a holder that died holding both slots: they come back when the leases end
        key = gate.shared_key("host", shared.digest("example.org"))
        script = gate.script("geofetch.tasks.fetch", "shared.lua")
        for token in ("dead-1", "dead-2"):
            assert gate.execute(lambda _, t=token: script(keys=[key],
                                                          args=["take", 2, t, 300_000])) == 1
        took = []
        worker = threading.Thread(target=lambda: took.append(slots.hold("example.org")
                                                             .__enter__()))
        worker.start()
        worker.join(0.15)
        assert worker.is_alive() and not took  # both slots held by the dead
        worker.join(10)
        assert took == [None]  # 0.3 s later their leases ended
    finally:
        gate.close()


def test_shared_robots_book_downloads_once_for_every_copy(redis_url):
    import pickle

    from geofetch.tasks.fetch import shared
    from geofetch.tasks.fetch.robots import RobotsVerdict

    gate = RedisGate(redis_url, rate=0)
    downloads = []

    def download():
        downloads.append(1)
        time.sleep(0.1)
        return RobotsVerdict("rules", "User-agent: *\nDisallow: /x\n"), 1, None

    try:
        book = shared.SharedRobotsBook(gate)
        copies = [pickle.loads(pickle.dumps(book)) for _ in range(5)]
        found = []
        workers = [threading.Thread(target=lambda c=c: found.append(
            c.lookup("http://example.org", download))) for c in copies]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        assert len(downloads) == 1
        assert sorted(attempts for _, attempts, _ in found) == [0, 0, 0, 0, 1]
        assert {verdict.text for verdict, _, _ in found} == {"User-agent: *\nDisallow: /x\n"}
    finally:
        gate.close()
    import redis

    assert redis.Redis.from_url(redis_url).keys(f"geofetch:{{{gate.name}}}:*") == []


def test_a_verdict_stored_between_a_read_and_the_lock_is_not_asked_again(redis_url):
    """The interleaving that made the dask fetch test see robots.txt asked 3 times
    for 2 origins: worker A reads no verdict; worker B takes the lock, downloads,
    stores its verdict and lets go; A then takes the free lock. A must read again
    under the lock, not download a second time."""
    from geofetch.tasks.fetch import shared
    from geofetch.tasks.fetch.robots import RobotsVerdict

    gate = RedisGate(redis_url, rate=0)
    downloads = []

    def download():
        downloads.append(1)
        return RobotsVerdict("rules", "User-agent: *\nDisallow: /x\n"), 1, None

    class LateReader(shared.SharedRobotsBook):
        """A copy whose first read sees nothing, while another copy does it all."""

        reads = 0

        def _stored(self, key):
            self.reads += 1
            if self.reads == 1:
                shared.SharedRobotsBook(self.store).lookup("http://example.org", download)
                return None
            return super()._stored(key)

    try:
        verdict, attempts, error = LateReader(gate).lookup("http://example.org", download)
        assert (len(downloads), attempts, error) == (1, 0, None)
        assert verdict.text == "User-agent: *\nDisallow: /x\n"
    finally:
        gate.close()


@pytest.mark.timeout(180)
def test_a_row_that_hangs_its_dask_worker_fails_with_worker_timeout():
    from .fakes import FakeProvider

    places = ["Berlin", "hang", "Osaka", "Lima", "Paris", "Rome", "Oslo", "Quito"]
    opts = RunOptions(executor="dask", workers=2, threads=2, chunk=1, timeout=0.2,
                      retries=0)
    with geocode_job(places, provider=FakeProvider(), options=opts) as job:
        results = list(job)
    assert [r.query for r in results] == places
    assert [r.status for r in results] == ["ok", "failed"] + ["ok"] * 6
    assert results[1].error.startswith("WorkerTimeout: no result within ")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["SIGINT to the group", "SIGTERM to the pid",
                                 "SIGTERM to the group"])
def test_an_interrupt_under_dask_keeps_every_answer_the_server_gave(tmp_path, how):
    # Before: chunks came back only whole, so an interrupt at 7 s wrote 0 rows and
    # cached nothing though the server had answered ~140 requests; a SIGTERM to the
    # group (timeout, systemd) also killed the dask workers and wrote every row
    # 'failed WorkerDied'. Now every chunk stops starting rows and comes back with
    # those it finished: cached, the finished prefix written, nothing failed, and the
    # run again asks only what the server had not answered.
    import sqlite3
    import subprocess
    import sys

    from .rowtools import PACKAGE_ROOT

    places = _places(tmp_path, 300)
    cache = tmp_path / "c.sqlite"
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    signum = signal.SIGINT if "SIGINT" in how else signal.SIGTERM

    def command(output):
        return [sys.executable, "-m", "geofetch", "geocode", str(places), "--provider",
                "nominatim", "--base-url", server.url, "--executor", "dask",
                "--workers", "2", "--threads", "4", "--rate", "20", "-o", str(output),
                "--cache", str(cache), "--no-progress"]

    with ScriptedServer(EMPTY) as server:
        run = subprocess.Popen(command(tmp_path / "out.csv"), env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while len(server.requests) < 60 and time.monotonic() < deadline:
                time.sleep(0.02)
            answered = len(server.requests)
            if "group" in how:
                os.killpg(run.pid, signum)  # the session this test started
            else:
                os.kill(run.pid, signum)
            _, stderr = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait(30)
        assert answered >= 60
        assert run.returncode == 128 + signum, stderr
        assert "WorkerDied" not in stderr and "Traceback" not in stderr
        with contextlib.closing(sqlite3.connect(cache)) as db:
            kept = db.execute("SELECT count(*) FROM answers").fetchone()[0]
        assert kept >= answered  # every answer seen before the signal was kept
        written = _rows((tmp_path / "out.csv").read_text(encoding="utf-8"))
        assert 0 < len(written) < 300
        assert [row[0] for row in written] == [f"Place {i}" for i in range(len(written))]
        assert {row[-2] for row in written} == {"not_found"}  # nothing written failed
        asked_before = len(server.requests)
        again = subprocess.run(command(tmp_path / "again.csv"), env=env,
                               capture_output=True, text=True, timeout=180)
        asked_again = len(server.requests) - asked_before
    assert again.returncode == 0, again.stderr
    assert asked_again == 300 - kept  # nothing kept was asked again
    rows = _rows((tmp_path / "again.csv").read_text(encoding="utf-8"))
    assert [row[0] for row in rows] == [f"Place {i}" for i in range(300)]


def test_the_public_nominatim_refusal_is_one_line_without_the_identity_warning(cli, tmp_path):
    # Before: 'identify itself' warning, then the refusal: two lines for exit 2.
    for command in ("geocode", "reverse"):
        result = cli([command, "-", "--provider", "nominatim", "--executor", "dask"],
                     stdin="52.5,13.4\n")
        assert result.status == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "usage policy" in result.stderr
        assert "warning" not in result.stderr


@pytest.mark.parametrize("executor", ["process", "thread", "serial"])
def test_chunk_without_dask_is_a_usage_error(cli, tmp_path, executor):
    result = cli(["geocode", _places(tmp_path, 3), "--executor", executor, "--chunk", "5"])
    assert result.status == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "--chunk" in result.stderr
    assert "dask" in result.stderr
    with pytest.raises(UsageError, match="dask"):
        RunOptions(executor=executor, chunk=5)
    assert RunOptions(executor="dask", chunk=5).chunk == 5


@pytest.fixture()
def redis_with_password():
    """A redis-server that asks for the password 's3cret' (started and stopped here)."""
    import shutil
    import socket
    import subprocess

    from geofetch.testing.redis import free_port

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--requirepass", "s3cret", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), \
                    socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"-NOAUTH"):
                    break
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("userinfo", ["", ":wrong@", "someone:wrong@"])
def test_a_redis_that_wants_a_password_says_so_in_one_line(cli, tmp_path, redis_with_password,
                                                            userinfo):
    # Before: 'AuthenticationError: HELLO must be called with the client already
    # authenticated...' (no password) or the server's own words.
    port = redis_with_password
    result = cli(["geocode", _places(tmp_path, 3), "--rate", "5", "--provider", "nominatim",
                  "--base-url", "http://127.0.0.1:1",
                  "--gate", f"redis://{userinfo}127.0.0.1:{port}/0"])
    assert result.status == 2, result.stderr
    assert result.stderr.count("\n") == 1 and f"redis://127.0.0.1:{port}" in result.stderr
    assert "wrong" not in result.stderr and "HELLO" not in result.stderr
    if userinfo:
        assert "refused the user name or password" in result.stderr
    else:
        assert "needs a password" in result.stderr
        assert "redis://:PASSWORD@HOST:PORT/DB" in result.stderr
    # the right password works
    RedisGate(f"redis://:s3cret@127.0.0.1:{port}/0", rate=5).close()
