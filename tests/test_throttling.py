"""A polite client backs off together, stops when the quota is gone, and does not
sleep for a day (issue 16, cases 1-3): counted at a scripted loopback server."""

from __future__ import annotations

import pytest

from geofetch.core.ratelimit import FLOOR_FRACTION, RequestGate
from geofetch.testing.servers import Reply, ScriptedServer

HTML_429 = Reply(status=429, body=b"<html><title>Too Many Requests</title></html>",
                 headers=[("Content-Type", "text/html")])


def _places(tmp_path, count):
    path = tmp_path / "places.txt"
    path.write_text("".join(f"Place {i}\n" for i in range(count)), encoding="utf-8")
    return path


@pytest.mark.timeout(120)
def test_rate_limit_answers_slow_the_whole_run_then_stop_it(cli, tmp_path):
    # Before: 4 rows, 16 requests evenly 1.02 s apart at --rate 1, nothing slowed.
    with ScriptedServer(HTML_429) as server:
        result = cli(["geocode", _places(tmp_path, 12), "--provider", "nominatim",
                      "--base-url", server.url, "--rate", "10", "--retries", "0",
                      "--workers", "1", "--max-throttled", "5", "--no-cache"])
        seen = [request.at for request in server.requests]
    assert result.status == 3, result.stderr
    assert len(seen) == 5  # the fifth rate-limit answer in a row stopped the run
    gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
    # 1/rate doubles with each answer: 0.1 s, then 0.2, 0.4, 0.8 s (scheduling aside)
    assert all(later > earlier * 1.4 for earlier, later in zip(gaps, gaps[1:], strict=False))
    assert gaps[-1] > 0.6
    lines = result.stderr.strip().splitlines()
    assert "12 rows: 0 ok, 0 not_found, 0 invalid, 12 failed" in lines[-2]
    assert lines[-2].endswith("; 5 rate-limit answers, final rate 0.312/s")
    assert lines[-1].startswith("geofetch: run aborted: 5 rate-limit answers in a row")
    rows = result.stdout.splitlines()[1:]
    assert len(rows) == 12
    # rows 1-4 got their 429; the fifth 429 stopped the run, its row and the 7 after it
    assert sum("RateLimited: HTTP 429" in row for row in rows[:4]) == 4
    assert sum("Throttled: 5 rate-limit answers in a row" in row for row in rows[4:]) == 8


@pytest.mark.timeout(120)
def test_a_clean_answer_resets_the_count_and_the_rate_recovers(cli, tmp_path):
    empty = Reply.json([])
    script = [HTML_429, HTML_429, empty] * 4 + [empty] * 30
    with ScriptedServer(*script) as server:
        result = cli(["geocode", _places(tmp_path, 42), "--provider", "nominatim",
                      "--base-url", server.url, "--rate", "50", "--retries", "0",
                      "--workers", "1", "--max-throttled", "3", "--no-cache"])
        count = len(server.requests)
    assert result.status == 1, result.stderr  # 8 rows failed RateLimited, none aborted
    assert count == 42
    summary = result.stderr.strip().splitlines()[-1]
    assert "42 rows: 34 not_found, 0 invalid, 8 failed" in summary.replace("0 ok, ", "")
    assert summary.endswith("; 8 rate-limit answers, final rate 50/s")  # recovered


def test_the_gate_halves_once_per_round_of_requests_and_never_below_its_floor():
    with RequestGate(rate=64, processes=False) as gate:
        tickets = [gate.acquire() for _ in range(4)]  # four requests in flight at once
        for ticket in tickets:
            gate.throttled(ticket)  # their four 429s are one signal, not four
        assert gate.current_rate == 32
        assert gate.throttle_count == 4
        for _ in range(20):
            gate.throttled(gate.acquire())
        assert gate.current_rate == 64 * FLOOR_FRACTION
        gate.succeeded()
        assert gate.current_rate == pytest.approx(1 + 64 / 20)


@pytest.mark.timeout(120)
def test_a_retry_after_longer_than_max_wait_stops_the_run_instead_of_sleeping(cli, tmp_path):
    # Before: Retry-After: 100000 on one 429 pushed the shared gate back 28 hours.
    reply = Reply(status=429, headers=[("Retry-After", "100000")])
    with ScriptedServer(reply) as server:
        result = cli(["geocode", _places(tmp_path, 6), "--provider", "nominatim",
                      "--base-url", server.url, "--rate", "10", "--workers", "2",
                      "--no-cache"])
        count = len(server.requests)
    assert result.status == 3, result.stderr
    assert count <= 2  # the first answer(s), then nothing more
    assert "asked to wait 100000 s (Retry-After), more than --max-wait 300 s" in result.stderr
    rows = result.stdout.splitlines()[1:]
    assert len(rows) == 6 and all(',failed,"WaitTooLong: ' in row for row in rows)


@pytest.mark.timeout(120)
def test_a_short_retry_after_is_honoured_by_every_worker(cli, tmp_path):
    first = Reply(status=429, headers=[("Retry-After", "1")])
    with ScriptedServer(first, Reply.json([])) as server:
        result = cli(["geocode", _places(tmp_path, 4), "--provider", "nominatim",
                      "--base-url", server.url, "--rate", "50", "--workers", "4",
                      "--no-cache"])
        seen = [request.at for request in server.requests]
    assert result.status == 0, result.stderr
    assert len(seen) >= 5
    # every request after the 429 waited for its Retry-After, whichever worker sent it
    later = [at for at in seen[1:] if at > seen[0] + 0.5]
    assert len(later) >= len(seen) - 1 - 3  # at most the 3 already in flight came sooner
    assert min(later) - seen[0] >= 0.95


@pytest.mark.timeout(120)
def test_a_spent_daily_quota_stops_the_run_at_once(cli, tmp_path, monkeypatch):
    # Before: OVER_QUERY_LIMIT saying the daily quota is spent was retried 4 times a row.
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", "AIzaSyTEST-daily-quota-key")
    spent = Reply.json({"status": "OVER_QUERY_LIMIT", "results": [],
                        "error_message": "You have exceeded your daily request quota for "
                                         "this API."})
    with ScriptedServer(spent) as server:
        result = cli(["geocode", _places(tmp_path, 5), "--provider", "google",
                      "--base-url", server.url, "--workers", "1", "--no-cache"])
        count = len(server.requests)
    assert result.status == 3, result.stderr
    assert count == 1
    rows = result.stdout.splitlines()[1:]
    assert len(rows) == 5 and all("RequestDenied: OVER_QUERY_LIMIT: You have exceeded your "
                                  "daily request quota" in row for row in rows)


KEY = "AIzaSyTEST-echo-key-0042"


@pytest.mark.timeout(60)
def test_a_key_the_server_echoes_never_reaches_the_output(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", KEY)
    echo = Reply.json({"status": "OK", "results": [{
        "formatted_address": f"addr {KEY}", "geometry": {"location": {"lat": 1.0, "lng": 2.0}},
        "note": [f"key={KEY}"]}]})
    with ScriptedServer(echo) as server:
        result = cli(["geocode", _places(tmp_path, 2), "--provider", "google", "--base-url",
                      server.url, "--no-cache", "--format", "jsonl"])
    assert result.status == 0, result.stderr
    assert KEY not in result.stdout + result.stderr
    assert '"formatted_address": "addr REDACTED"' in result.stdout
    from geofetch import geocode_many

    with ScriptedServer(echo) as server:
        [row] = geocode_many(["x"], provider="google", key=KEY, base_url=server.url)
    assert KEY not in repr(row.raw) and row.formatted_address == "addr REDACTED"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("lat", ["", "abc", None])
def test_unreadable_coordinates_are_an_invalid_answer(cli, tmp_path, lat):
    with ScriptedServer(Reply.json([{"lat": lat, "lon": "2.0", "display_name": "X"}])
                        ) as server:
        result = cli(["geocode", _places(tmp_path, 1), "--provider", "nominatim",
                      "--base-url", server.url, "--no-cache", "--retries", "0"])
    assert result.status == 1
    assert result.stdout.splitlines()[1] == (
        "Place 0,,,,failed,InvalidAnswer: first place has no usable lat/lon")
