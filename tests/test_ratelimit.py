"""The request gate: GCRA spacing, shared state across processes, budget, abort.

Logic is tested on a fake clock (no sleeping); the real-time behaviour across
threads and processes is proven against a real server in test_loopback_rate.py.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal

import pytest

from geofetch.core.ratelimit import HEADROOM, RequestGate
from geofetch.exceptions import BudgetExhausted, RequestDenied, UsageError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _gate(rate=None, max_requests=None):
    clock = FakeClock()
    return RequestGate(rate, max_requests, _clock=clock.time, _sleep=clock.sleep), clock


def test_slots_are_spaced_one_over_rate():
    gate, clock = _gate(rate=4)
    starts = []
    for _ in range(9):
        gate.acquire()
        starts.append(clock.now)
    gate.close()
    gaps = [round(b - a, 9) for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps == [round(0.25 / HEADROOM, 9)] * 8
    assert starts[0] == 1000.0  # the first request goes at once


def test_idle_time_is_not_banked_as_a_burst():
    gate, clock = _gate(rate=2)
    gate.acquire()
    clock.now += 60  # a long pause
    starts = []
    for _ in range(3):
        gate.acquire()
        starts.append(clock.now)
    gate.close()
    assert starts == pytest.approx([1060.0, 1060 + 0.5 / HEADROOM, 1060 + 1 / HEADROOM])


def test_defer_moves_everyones_next_slot():
    gate, clock = _gate(rate=10)
    gate.acquire()
    gate.defer(5)
    gate.acquire()
    gate.close()
    assert clock.now == pytest.approx(1005.0)


def test_budget_counts_every_request_then_aborts():
    gate, _ = _gate(max_requests=3)
    for _ in range(3):
        gate.acquire()
    with pytest.raises(BudgetExhausted, match="budget exhausted"):
        gate.acquire()
    with pytest.raises(BudgetExhausted):
        gate.acquire()
    assert gate.requests_sent == 3
    assert isinstance(gate.aborted(), BudgetExhausted)
    gate.close()


def test_abort_stops_every_later_request():
    gate, _ = _gate()
    gate.acquire()
    gate.abort(RequestDenied("The provided API key is invalid."))
    with pytest.raises(RequestDenied, match="API key is invalid"):
        gate.acquire()
    gate.abort(BudgetExhausted("later reason"))  # the first reason stays
    assert str(gate.aborted()) == "The provided API key is invalid."
    gate.close()


def test_bad_rates_are_usage_errors():
    with pytest.raises(UsageError):
        RequestGate(-1)
    with pytest.raises(UsageError):
        RequestGate(float("inf"))


def test_gate_pickles_to_the_same_shared_state():
    with RequestGate(rate=None, max_requests=10) as gate:
        gate.acquire()
        copy = pickle.loads(pickle.dumps(gate))
        copy.acquire()
        assert gate.requests_sent == 2
        assert copy.requests_sent == 2


def test_close_removes_the_shared_file():
    gate = RequestGate(5)
    gate.acquire()
    assert os.path.exists(gate.path)
    gate.close()
    assert not os.path.exists(gate.path)


def _hold_lock_then_die(gate: RequestGate) -> None:
    gate._locked().__enter__()  # take the cross-process lock and never release it
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_a_worker_killed_holding_the_lock_does_not_block_the_rest(method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available here")
    ctx = multiprocessing.get_context(method)
    with RequestGate(rate=None, max_requests=100) as gate:
        process = ctx.Process(target=_hold_lock_then_die, args=(gate,))
        process.start()
        process.join(30)
        assert process.exitcode == -signal.SIGKILL
        gate.acquire()  # would hang forever with a multiprocessing.Lock
        assert gate.requests_sent == 1


def _count_requests(gate: RequestGate, n: int) -> None:
    for _ in range(n):
        gate.acquire()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_processes_share_one_budget(method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available here")
    ctx = multiprocessing.get_context(method)
    with RequestGate(rate=None, max_requests=50) as gate:
        processes = [ctx.Process(target=_count_requests, args=(gate, 25)) for _ in range(4)]
        for p in processes:
            p.start()
        for p in processes:
            p.join(30)
        # 100 attempts, 50 allowed: the other 50 raised BudgetExhausted in the children
        assert gate.requests_sent == 50
        assert isinstance(gate.aborted(), BudgetExhausted)
        assert sum(p.exitcode != 0 for p in processes) >= 2  # they hit the budget


@pytest.mark.timeout(60)
def test_many_threads_first_using_a_gate_at_once_do_not_deadlock():
    import threading

    for _ in range(20):
        gate = RequestGate(rate=None, max_requests=None)
        barrier = threading.Barrier(16)

        def use(gate=gate, barrier=barrier):
            barrier.wait()
            for _ in range(20):
                gate.acquire()

        threads = [threading.Thread(target=use) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        assert gate.requests_sent == 16 * 20
        gate.close()


class LateClock(FakeClock):
    """A clock whose sleeps overshoot when told to, like a worker woken late."""

    def __init__(self) -> None:
        super().__init__()
        self.late_by: list[float] = []

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds + (self.late_by.pop(0) if self.late_by else 0.0))


def test_a_late_worker_does_not_land_just_before_the_next_one():
    clock = LateClock()
    gate = RequestGate(10, _clock=clock.time, _sleep=clock.sleep)
    released = []
    gate.acquire()  # at once
    released.append(clock.now)
    clock.late_by = [0.05]  # the second worker wakes 50 ms after its slot
    gate.acquire()
    released.append(clock.now)
    gate.acquire()  # its slot is on time, but it may not follow the late one closely
    released.append(clock.now)
    gate.close()
    slot = 0.1 / HEADROOM
    assert released[1] == pytest.approx(1000 + slot + 0.05)
    assert released[2] - released[1] == pytest.approx(0.1)  # 1/rate, not slot - 0.05
    assert released[2] > 1000 + 2 * slot


@pytest.mark.timeout(60)
def test_a_thread_only_gate_counts_every_thread_and_refuses_to_leave_the_process():
    import threading

    gate = RequestGate(rate=None, max_requests=None, processes=False)
    threads = [threading.Thread(target=lambda: [gate.acquire() for _ in range(50)])
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert gate.requests_sent == 8 * 50
    with pytest.raises(TypeError, match="processes=False"):
        pickle.dumps(gate)
    gate.close()


@pytest.mark.parametrize(("executor", "processes"), [("thread", False), ("serial", False),
                                                     ("process", True)])
def test_jobs_share_their_gate_across_processes_only_when_they_run_processes(
        executor, processes, tmp_path):
    from geofetch import RunOptions, fetch_job

    job = fetch_job([], options=RunOptions(executor=executor))
    assert job.gate is None  # nothing exists before the job is entered
    with job:
        assert job.gate is not None and job.gate.processes is processes
        assert (job.gate.path is not None) is processes  # a file only to share across processes
        path = job.gate.path
    assert path is None or not os.path.exists(path)
