"""The engine: ordered streaming, per-task capture, dedup, bounded memory, stops."""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from geofetch import geocode_many, iter_geocode
from geofetch.core.engine import Plan, Run
from geofetch.core.executors import ProcessExecutor, make_executor
from geofetch.exceptions import UsageError

from .fakes import FakeProvider

MIXED = ["Berlin", "boom", "", "  ", "exit", "nothing", "Osaka", "x" * 1001,
         "Berlin", "Zadar"] * 3


#: The process executor alone (one thread per process) and as processes × threads.
THREADS = [1, 4]


@contextlib.contextmanager
def running(kind, spec, workers=2, threads=1):
    """An executor started with ``spec`` and always stopped."""
    executor = make_executor(kind, workers, threads=threads)
    executor.start(spec)
    try:
        yield executor
    finally:
        executor.stop(wait=False)


def _summary(results):
    return [(r.query, r.status, r.lat, r.lng, r.formatted_address, r.error) for r in results]


@pytest.mark.timeout(120)
def test_every_executor_gives_identical_ordered_output():
    pools = [("serial", 1), ("thread", 1), ("process", 1), ("process", 4)]
    outputs = {
        (kind, threads): _summary(geocode_many(MIXED, provider=FakeProvider(), executor=kind,
                                               workers=3, threads=threads))
        for kind, threads in pools
    }
    assert len({tuple(rows) for rows in outputs.values()}) == 1
    rows = outputs[("serial", 1)]
    assert [r[0] for r in rows] == MIXED
    statuses = dict((q, (s, e)) for q, s, *_, e in rows)
    assert statuses["Berlin"] == ("ok", None)
    assert statuses["boom"] == ("failed", "TaskError: RuntimeError: kaboom")
    assert statuses["exit"] == ("failed", "TaskError: SystemExit: 4")
    assert statuses["nothing"] == ("not_found", None)
    assert statuses[""][0] == statuses["  "][0] == statuses["x" * 1001][0] == "invalid"
    for query, status, lat, lng, address, error in rows:
        if status != "ok":
            assert lat is None and lng is None and address is None
            assert bool(error) == (status != "not_found")
        else:
            assert error is None and address == query.upper()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("killer", ["die", "sigkill"])
def test_dead_worker_process_is_retried_once_then_failed(killer, threads):
    # With threads, a death loses every row its process held: each is run again alone,
    # so the killer ends failed and the rest finish.
    queries = ["a", "bb", killer, "ccc", "dd", "e", "ff"] * 2
    results = geocode_many(queries, provider=FakeProvider(delay=0.01), executor="process",
                           workers=2, threads=threads)
    assert [r.query for r in results] == queries
    for r in results:
        if r.query == killer:
            assert r.status == "failed"
            assert r.error.startswith("WorkerDied: worker process exited with")
        else:
            assert r.status == "ok", r
    assert multiprocessing.active_children() == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("threads", THREADS)
def test_unpicklable_result_is_captured_in_its_row(threads):
    results = geocode_many(["a", "unpicklable", "b"], provider=FakeProvider(),
                           executor="process", workers=1, threads=threads)
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert results[1].error.startswith("UnpicklableResult: ")


def _double(x):
    return x * 2


def _factory():
    return _double


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("kind", "threads"), [("serial", 1), ("thread", 1), ("process", 1),
                                               ("process", 4)])
def test_identical_keys_in_flight_are_run_once(kind, threads):
    items = [i % 5 for i in range(200)]
    with running(kind, _factory, threads=threads) as executor:
        run = Run(items, executor,
                  plan=lambda i: Plan(key=i, payload=i), finish=lambda i, v: (i, v),
                  fail=lambda i, e: (i, e), window=1000)
        assert list(run) == [(i, i * 2) for i in items]
    assert run.submitted <= 5 * 2  # at most once per key per pass through the window
    assert run.submitted >= 5


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("kind", "threads"), [("serial", 1), ("thread", 1), ("process", 1),
                                               ("process", 4)])
def test_input_is_read_only_a_window_ahead(kind, threads):
    pulled = 0
    consumed = 0
    max_lag = 0

    def items():
        nonlocal pulled
        for i in range(5000):
            pulled += 1
            yield i

    with running(kind, _factory, threads=threads) as executor:
        run = Run(items(), executor,
                  plan=lambda i: Plan(payload=i), finish=lambda i, v: v,
                  fail=lambda i, e: e, window=64)
        for value in run:
            assert value == consumed * 2
            consumed += 1
            max_lag = max(max_lag, pulled - consumed)
    assert consumed == 5000
    assert max_lag <= 64


@pytest.mark.timeout(60)
def test_stop_finishes_the_rest_with_stopped_results():
    out = []
    with running("serial", _factory) as executor:
        run = Run(range(1000), executor,
                  plan=lambda i: Plan(payload=i), finish=lambda i, v: ("done", i),
                  fail=lambda i, e: ("failed", i), stopped=lambda i: ("stopped", i),
                  window=10)
        for result in run:
            out.append(result)
            if len(out) == 5:
                run.stop()
    assert [i for _, i in out] == list(range(1000))
    assert out[0] == ("done", 0)
    assert out[-1] == ("stopped", 999)
    assert sum(1 for kind, _ in out if kind == "done") < 50


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("kind", "threads"), [("thread", 1), ("process", 1), ("process", 4)])
def test_interrupt_yields_a_finished_prefix_then_raises(kind, threads):
    seen = []
    with pytest.raises(KeyboardInterrupt), running(kind, _factory, threads=threads) as executor:
        run = Run(range(100_000), executor,
                  plan=lambda i: Plan(payload=i), finish=lambda i, v: v,
                  fail=lambda i, e: e)
        for value in run:
            seen.append(value)
            if len(seen) == 100:
                run.interrupt(KeyboardInterrupt())
    assert seen == [2 * i for i in range(len(seen))]
    assert len(seen) < 100_000
    assert multiprocessing.active_children() == []


@pytest.mark.timeout(60)
def test_iter_geocode_streams_a_generator():
    def places():
        for i in range(20_000):
            yield f"place{i}"

    count = 0
    for count, result in enumerate(iter_geocode(places(), provider=FakeProvider()), 1):
        assert result.query == f"place{count - 1}"
    assert count == 20_000


def test_bad_executor_options_are_usage_errors():
    with pytest.raises(UsageError, match="executor must be one of .* not 'fork'"):
        geocode_many(["a"], provider=FakeProvider(), executor="fork")
    with pytest.raises(UsageError, match="workers must be .* at least 1, not 0"):
        geocode_many(["a"], provider=FakeProvider(), workers=0)
    with pytest.raises(UsageError, match="threads must be .* at least 1, not 0"):
        geocode_many(["a"], provider=FakeProvider(), executor="process", threads=0)
    for kind in ("thread", "serial"):  # threads inside processes need processes
        with pytest.raises(UsageError, match=f"threads=4 .* needs executor='process' or "
                                             f"'dask', not '{kind}'"):
            geocode_many(["a"], provider=FakeProvider(), executor=kind, threads=4)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("threads", THREADS)
def test_process_workers_are_gone_after_stop(threads):
    executor = ProcessExecutor(2, threads=threads)
    executor.start(_factory)
    pids = executor.pids()
    assert len(pids) == 2
    executor.stop()
    assert multiprocessing.active_children() == []


def test_results_pickle():
    result = geocode_many(["Berlin"], provider=FakeProvider())[0]
    assert pickle.loads(pickle.dumps(result)) == result


def _count_builds(counter):
    def make_worker():
        with counter["lock"]:
            counter["built"] += 1
        return lambda payload: (payload, threading.get_ident())
    return make_worker


@pytest.mark.timeout(60)
def test_thread_executor_builds_one_worker_per_thread_and_runs_every_task_once():
    counter = {"built": 0, "lock": threading.Lock()}
    done = []
    with running("thread", _count_builds(counter), 4) as executor:
        for task_id in range(200):
            executor.submit(task_id, task_id)
        while len(done) < 200:
            done += executor.completed(timeout=10)
    assert sorted(task_id for task_id, _ in done) == list(range(200))
    assert all(outcome[1][0] == task_id for task_id, outcome in done)
    # a thread may build its worker and find the queue already empty: no more
    # builds than threads, and every thread that ran a task built first
    assert len({outcome[1][1] for _, outcome in done}) <= counter["built"] <= 4


def _failing_factory():
    raise RuntimeError("no worker today")


@pytest.mark.timeout(60)
def test_thread_worker_that_cannot_be_built_fails_each_of_its_tasks():
    with running("thread", _failing_factory, 3) as executor:
        results = Run(range(10), executor,
                      plan=lambda i: Plan(payload=i), finish=lambda i, v: v,
                      fail=lambda i, e: e)
        assert list(results) == ["TaskError: RuntimeError: no worker today"] * 10


@pytest.mark.timeout(120)
def test_an_abandoned_thread_run_does_not_keep_the_interpreter_alive(tmp_path):
    script = tmp_path / "abandon.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
        "from geofetch import iter_geocode\n"
        "from tests.fakes import FakeProvider\n"
        "results = iter_geocode(['a'] * 100 + ['slow'] * 100, provider=FakeProvider(),\n"
        "                       workers=4)\n"
        "print(next(results).query, flush=True)\n"
        "sys.modules['__main__'].keep = results  # never closed, never collected\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "a\n"
