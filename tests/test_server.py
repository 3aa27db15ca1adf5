"""The local server: real HTTP against the real gazetteer, counts and order only."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest
import requests

from geofetch.cli import serve as serve_cli
from geofetch.cli.env import Environment
from geofetch.core.ratelimit import RequestGate
from geofetch.exceptions import UsageError
from geofetch.server import GOOGLE_PATH, NOMINATIM_PATH, LocalServer, ServerConfig, TokenBucket

pytestmark = pytest.mark.timeout(60)

KEY = "test-server-key-0123456789"


def google(url: str, session: requests.Session | None = None, **params: str):
    return (session or requests).get(url + GOOGLE_PATH, params=params, timeout=30)


def nominatim(url: str, session: requests.Session | None = None, **params: str):
    params.setdefault("format", "json")
    return (session or requests).get(url + NOMINATIM_PATH, params=params, timeout=30)


@pytest.fixture(scope="module")
def server():
    """One zero-latency server in a thread for the shape tests; reset before each use."""
    with LocalServer(latency=0.0) as url:
        yield url


@pytest.fixture
def url(server):
    requests.post(server + "/_geofetch/reset", timeout=30).raise_for_status()
    return server


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError:
        return True
    return False


def server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "geofetch-serve"]


# ---------------------------------------------------------------------- Google


def test_google_ok_has_the_geocoding_api_shape(url):
    response = google(url, address="Berlin")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert int(response.headers["Content-Length"]) == len(response.content)
    body = response.json()
    assert body["status"] == "OK"
    assert "error_message" not in body
    [result] = body["results"]
    assert result["formatted_address"] == "Berlin, Germany"
    location = result["geometry"]["location"]
    assert isinstance(location["lat"], float) and isinstance(location["lng"], float)
    assert round(location["lat"]) == 53 and round(location["lng"]) == 13
    assert result["geometry"]["location_type"] == "APPROXIMATE"
    viewport = result["geometry"]["viewport"]
    assert viewport["southwest"]["lat"] < location["lat"] < viewport["northeast"]["lat"]
    assert isinstance(result["place_id"], str) and result["place_id"]
    assert result["types"] == ["locality", "political"]
    components = {c["types"][0]: c for c in result["address_components"]}
    assert components["locality"]["long_name"] == "Berlin"
    assert components["country"]["long_name"] == "Germany"
    assert components["country"]["short_name"] == "DE"


def test_google_answers_from_the_gazetteer(url):
    body = google(url, address="Portland, ME").json()
    [result] = body["results"]
    assert result["formatted_address"] == "Portland, Maine, United States"
    components = {c["types"][0]: c for c in result["address_components"]}
    assert components["administrative_area_level_1"]["short_name"] == "ME"
    assert google(url, address="大阪").json()["results"][0]["formatted_address"] == "Osaka, Japan"


def test_google_zero_results(url):
    body = google(url, address="Qqxzzy Nowhereville").json()
    assert body == {"results": [], "status": "ZERO_RESULTS"}


@pytest.mark.parametrize("params", [{}, {"address": ""}, {"address": "   "}])
def test_google_invalid_request_without_an_address(url, params):
    response = google(url, **params)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "INVALID_REQUEST"
    assert body["results"] == []
    assert body["error_message"]


def test_unknown_paths_are_404(url):
    assert requests.get(url + "/maps/api/place/json", timeout=30).status_code == 404
    assert requests.get(url + "/", timeout=30).status_code == 404


def test_google_key_is_checked_and_never_echoed():
    with LocalServer(latency=0.0, key=KEY) as url:
        missing = google(url, address="Berlin")
        wrong = google(url, address="Berlin", key="AIza-not-the-key")
        right = google(url, address="Berlin", key=KEY)
        search = nominatim(url, q="Berlin")  # Nominatim has no keys
    assert [r.json()["status"] for r in (missing, wrong, right)] == [
        "REQUEST_DENIED",
        "REQUEST_DENIED",
        "OK",
    ]
    assert missing.status_code == wrong.status_code == 200
    assert missing.json()["error_message"] and wrong.json()["error_message"]
    assert search.json()[0]["display_name"] == "Berlin, Germany"
    for response in (missing, wrong, right, search):
        assert KEY not in response.text
    assert KEY not in repr(ServerConfig(key=KEY))


def test_google_rate_limit_answers_over_query_limit():
    with LocalServer(latency=0.0, rate_limit=5) as url:
        session = requests.Session()
        responses = [google(url, session, address="Berlin") for _ in range(40)]
    assert {r.status_code for r in responses} == {200}
    statuses = [r.json()["status"] for r in responses]
    assert statuses.count("OVER_QUERY_LIMIT") > 0
    assert statuses.count("OK") > 0
    assert set(statuses) == {"OK", "OVER_QUERY_LIMIT"}
    assert statuses[0] == "OK"
    refused_body = responses[statuses.index("OVER_QUERY_LIMIT")].json()
    assert refused_body["results"] == [] and refused_body["error_message"]


def test_rate_limit_passes_a_burst_of_one_second_then_the_rate():
    bucket = TokenBucket(10)
    assert [bucket.admit(0.0) for _ in range(15)].count(True) == 10
    assert bucket.admit(0.05) is False  # half a token
    assert bucket.admit(0.1) is True
    # Twice the rate, sustained: about half refused.
    admitted = [bucket.admit(1.0 + k / 20) for k in range(200)]
    assert 95 <= admitted.count(True) <= 115


def test_rate_limit_never_refuses_a_paced_client_whose_requests_jitter():
    bucket = TokenBucket(10)
    # Paced at exactly the rate, every other request 80 ms late: a one-second
    # sliding window would see 11 requests and refuse; the bucket does not.
    arrivals = [k / 10 + (0.08 if k % 2 == 0 else 0.0) for k in range(100)]
    assert all(bucket.admit(t) for t in sorted(arrivals))


def test_a_client_paced_by_the_request_gate_is_never_over_the_limit():
    gate = RequestGate(rate=20)
    try:
        with LocalServer(latency=0.0, rate_limit=20) as url:
            session = requests.Session()
            statuses = []
            for _ in range(30):
                gate.acquire()
                statuses.append(google(url, session, address="Berlin").json()["status"])
    finally:
        gate.close()
    assert statuses == ["OK"] * 30


# ------------------------------------------------------------------- Nominatim


def test_nominatim_search_has_the_api_shape(url):
    response = nominatim(url, q="Vien")
    assert response.status_code == 200
    [place] = response.json()
    assert {
        "place_id",
        "lat",
        "lon",
        "display_name",
        "class",
        "type",
        "importance",
        "boundingbox",
    } <= set(place)
    assert place["display_name"] == "Vienna, Austria"
    assert isinstance(place["lat"], str) and isinstance(place["lon"], str)
    assert round(float(place["lat"])) == 48 and round(float(place["lon"])) == 16
    assert isinstance(place["place_id"], int)
    assert place["class"] == "place" and place["type"] == "city"
    assert 0 < place["importance"] <= 1
    south, north, west, east = map(float, place["boundingbox"])
    assert south < float(place["lat"]) < north and west < float(place["lon"]) < east


def test_nominatim_jsonv2_and_no_match(url):
    [place] = nominatim(url, q="Bolognia", format="jsonv2").json()
    assert place["display_name"] == "Bologna, Italy"
    assert place["category"] == "place"
    response = nominatim(url, q="Qqxzzy Nowhereville")
    assert response.status_code == 200 and response.json() == []


def test_nominatim_errors(url):
    assert nominatim(url).status_code == 400
    assert nominatim(url, q="Berlin", format="xml").status_code == 400


def test_nominatim_rate_limit_is_429_with_retry_after():
    with LocalServer(latency=0.0, rate_limit=3) as url:
        session = requests.Session()
        responses = [nominatim(url, session, q="Berlin") for _ in range(30)]
    codes = [r.status_code for r in responses]
    assert codes[0] == 200
    assert codes.count(429) > 0
    assert set(codes) == {200, 429}
    limited = responses[codes.index(429)]
    assert limited.headers["Retry-After"] == "1"


# ------------------------------------------------------------------ behaviour


def fail_sequence(server: LocalServer, url: str, count: int) -> list[int]:
    session = requests.Session()
    codes = []
    for i in range(count):
        response = google(url, session, address="Berlin") if i % 2 else nominatim(url, q="Paris")
        codes.append(response.status_code)
    return codes


def test_fail_rate_is_reproducible_with_a_seed():
    runs = []
    for _ in range(2):
        server = LocalServer(latency=0.0, fail_rate=0.3, seed=42)
        with server as url:
            first = fail_sequence(server, url, 60)
            server.reset()
            again = fail_sequence(server, url, 60)
        runs.append(first)
        assert again == first  # reset restarts the seeded sequence
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}
    with LocalServer(latency=0.0, fail_rate=1.0) as url:
        failed = google(url, address="Berlin")
    assert failed.status_code == 500
    assert failed.json()["status"] == "UNKNOWN_ERROR"


def test_stats_count_requests_in_arrival_order():
    server = LocalServer(latency=0.0)
    with server as url:
        session = requests.Session()
        for place in ["Berlin", "Osaka", "Berlin", ""]:
            google(url, session, address=place)
        nominatim(url, session, q="Osaka")
        session.get(url + "/nowhere", timeout=30)
        # The control endpoints are not counted.
        over_http = session.get(url + "/_geofetch/stats", timeout=30).json()
        stats = server.stats()
    assert stats["total"] == over_http["total"] == 6
    assert stats["per_query"] == {"Berlin": 2, "Osaka": 2, "": 1}
    assert len(stats["arrivals"]) == 6
    assert stats["arrivals"] == sorted(stats["arrivals"])
    assert sum(stats["per_second"].values()) == 6
    assert all(isinstance(second, int) for second in stats["per_second"])
    assert stats["max_in_flight"] >= 1
    assert server.stats() == stats  # kept after stop()


def test_reset_zeroes_the_counters(url):
    google(url, address="Berlin")
    assert requests.get(url + "/_geofetch/stats", timeout=30).json()["total"] == 1
    assert requests.get(url + "/_geofetch/reset", timeout=30).status_code == 200
    stats = requests.get(url + "/_geofetch/stats", timeout=30).json()
    assert stats["total"] == 0 and stats["per_query"] == {} and stats["arrivals"] == []


async def _hold_requests(url: str, count: int) -> list[bytes]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    streams = [await asyncio.open_connection(host, int(port)) for _ in range(count)]
    for i, (_, writer) in enumerate(streams):
        target = f"{GOOGLE_PATH}?address=City{i}"
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answers = [await reader.read() for reader, _ in streams]
    for _, writer in streams:
        writer.close()
    return answers


def test_hundreds_of_requests_in_flight_at_once():
    # Each answer waits 2 s on a timer: all 300 are sent long before the first is due.
    server = LocalServer(latency=2.0)
    with server as url:
        answers = asyncio.run(_hold_requests(url, 300))
        stats = server.stats()
    assert len(answers) == 300
    assert all(answer.startswith(b"HTTP/1.1 200 OK\r\n") for answer in answers)
    assert stats["total"] == 300
    assert stats["max_in_flight"] >= 256
    assert stats["in_flight"] == 0


def test_keep_alive_and_pipelining_answer_in_order(url):
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"GET {GOOGLE_PATH}?address=Berlin HTTP/1.1\r\nHost: x\r\n\r\n"
            f"GET {NOMINATIM_PATH}?q=Osaka&format=json HTTP/1.1\r\nHost: x\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    first, second = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert b"Connection: keep-alive" in first and b"Berlin, Germany" in first
    assert b"Connection: close" in second and b"Osaka, Japan" in second


def test_servers_on_port_zero_get_distinct_free_ports():
    with LocalServer(latency=0.0) as first, LocalServer(latency=0.0) as second:
        assert first != second
        assert first.startswith("http://127.0.0.1:") and second.startswith("http://127.0.0.1:")


def test_cleanup_when_the_with_block_raises():
    before = len(server_threads())
    server = LocalServer(latency=5.0)
    with pytest.raises(RuntimeError, match="boom"):
        with server as url:
            assert len(server_threads()) == before + 1
            raise RuntimeError("boom")
    assert len(server_threads()) == before
    assert refused(url)
    with pytest.raises(RuntimeError):
        server.url  # noqa: B018
    server.stop()  # idempotent


def test_stop_with_requests_still_in_flight():
    before = len(server_threads())
    server = LocalServer(latency=30.0)
    url = server.start()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(f"GET {GOOGLE_PATH}?address=Berlin HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    # Wait (by count) until the server holds the request, then stop it.
    while server.stats()["in_flight"] != 1:
        threading.Event().wait(0.01)
    server.stop()
    assert sock.recv(100) == b""  # the connection was closed, not answered
    sock.close()
    assert len(server_threads()) == before


def test_bad_options_are_usage_errors():
    with pytest.raises(UsageError):
        LocalServer(fail_rate=1.5)
    with pytest.raises(UsageError):
        LocalServer(latency=-1)
    with pytest.raises(UsageError):
        LocalServer(rate_limit=0)


# ------------------------------------------------------------ subprocess mode


def test_subprocess_mode_start_stats_and_stop():
    log = io.StringIO()
    server = LocalServer(latency=0.0, key=KEY, subprocess=True, seed=3, log=log)
    with server as url:
        pid = server.pid
        assert pid is not None and pid != os.getpid()
        assert google(url, address="Berlin", key=KEY).json()["status"] == "OK"
        assert google(url, address="Berlin").json()["status"] == "REQUEST_DENIED"
        assert nominatim(url, q="Osaka").json()[0]["display_name"] == "Osaka, Japan"
        stats = server.stats()
        assert stats["total"] == 3
        assert stats["per_query"] == {"Berlin": 2, "Osaka": 1}
        assert sum(stats["per_second"].values()) == 3
        assert len(stats["arrivals"]) == 3
        server.reset()
        assert server.stats()["total"] == 0
        google(url, address="Zadar", key=KEY)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # terminated and reaped
    assert server.pid is None
    assert refused(url)
    assert server.stats()["per_query"] == {"Zadar": 1}
    assert "1 requests" in log.getvalue()
    assert KEY not in log.getvalue()


def test_subprocess_mode_cleans_up_after_an_exception():
    server = LocalServer(latency=0.0, subprocess=True)
    with pytest.raises(KeyError):
        with server as url:
            pid = server.pid
            raise KeyError("boom")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert refused(url)


# ------------------------------------------------------------------------ CLI


def test_register_adds_the_serve_subcommand(monkeypatch):
    monkeypatch.delenv("GEOFETCH_SERVE_KEY", raising=False)
    parser = argparse.ArgumentParser(prog="geofetch")
    serve_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve"])
    assert (args.host, args.port, args.latency, args.fail_rate) == ("127.0.0.1", 8765, 0.0, 0.0)
    assert (args.rate_limit, args.key, args.seed) == (None, None, None)
    assert args.func is serve_cli.run
    args = parser.parse_args(
        "serve --port 0 --latency 0.5 --fail-rate 0.1 --rate-limit 50 --key K --seed 7".split()
    )
    assert (args.port, args.latency, args.fail_rate, args.rate_limit) == (0, 0.5, 0.1, 50.0)
    assert (args.key, args.seed) == ("K", 7)
    for bad in (["--fail-rate", "2"], ["--latency", "-1"], ["--rate-limit", "0"], ["--port", "x"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["serve", *bad])


def test_run_reports_a_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = argparse.Namespace(
            host="127.0.0.1", port=port, latency=0.0, fail_rate=0.0, rate_limit=None,
            key=None, seed=None,
        )  # fmt: skip
        out, err = io.StringIO(), io.StringIO()
        status = serve_cli.run(args, Environment(stdout=out, stderr=err))
    assert status == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err.getvalue()
    assert out.getvalue() == ""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_serves_until_a_signal_and_logs_per_second_counts(signum):
    env = dict(os.environ, GEOFETCH_SERVE_KEY=KEY)
    child = subprocess.Popen(
        [sys.executable, "-m", "geofetch", "serve", "--port", "0", "--rate-limit", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = child.stdout.readline()
        assert line.startswith("geofetch serve: listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert google(url, address="Zadar", key=KEY).json()["status"] == "OK"
        assert google(url, address="Zadar").json()["status"] == "REQUEST_DENIED"
        assert json.loads(requests.get(url + "/_geofetch/stats", timeout=30).text)["total"] == 2
        child.send_signal(signum)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0
    assert "geofetch serve: 2 requests" in err
    assert "second     0: 2 requests" in err
    assert KEY not in line + out + err


# ---------------------------------------------------------------- HTTP details


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send one raw request, read until the server closes (``Connection: close``)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_head_answers_the_headers_only(url):
    data = raw_exchange(
        url, f"HEAD {NOMINATIM_PATH}?q=Berlin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        .encode(),
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 0\r\n" not in head and body == b""


@pytest.mark.parametrize(
    ("connection", "kept"), [("", False), ("Connection: keep-alive\r\n", True)]
)
def test_http_1_0_keeps_the_connection_only_when_asked(url, connection, kept):
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {NOMINATIM_PATH}?q=Osaka HTTP/1.0\r\n{connection}\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert (b"Connection: keep-alive" in head) == kept


def test_a_repeated_request_is_parsed_once_and_answered_alike():
    request = f"GET {GOOGLE_PATH}?address=Zadar HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    server = LocalServer(latency=0.0)
    with server as url:
        answers = [raw_exchange(url, request.encode()) for _ in range(3)]
        # Not the same bytes: parsed, and still refused if malformed.
        other = raw_exchange(url, request.replace("Host: x", "Host: x\x00").encode())
        stats = server.stats()
    bodies = {answer.partition(b"\r\n\r\n")[2] for answer in answers}
    assert len(bodies) == 1 and b"Zadar, Croatia" in bodies.pop()
    assert other.startswith(b"HTTP/1.1 400 ")
    assert stats["heads_parsed"] == 1  # the first of the three (the other was refused)
    assert stats["heads_remembered"] == 1
    assert stats["total"] == 3 and stats["per_query"] == {"Zadar": 3}
