"""The engine's retry loop with real providers: what is retried, how long it waits,
what aborts the run, and that the key never leaks from a failing run."""

from __future__ import annotations

import http.server
import inspect
import json
import logging
import pickle
import random
import socket
import threading
import traceback
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from geofetch import exceptions as exc
from geofetch.core.ratelimit import RequestGate
from geofetch.core.retry import RetryPolicy, call_with_retries
from geofetch.exceptions import describe
from geofetch.providers.base import Answer
from geofetch.providers.google import GoogleProvider
from geofetch.providers.nominatim import NominatimProvider
from geofetch.testing.servers import Reply, ScriptedServer

KEY = "AIzaSECRET-TEST-KEY-123"
OK_BODY = {
    "status": "OK",
    "results": [
        {
            "formatted_address": "Oslo, Norway",
            "geometry": {"location": {"lat": 59.91, "lng": 10.75}},
        }
    ],
}


class FakeTime:
    """A clock and a sleep that advances it, recording every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class EdgeRng(random.Random):
    """``uniform`` always picks one edge of its range."""

    def __init__(self, upper: bool) -> None:
        super().__init__(0)
        self.upper = upper

    def uniform(self, a: float, b: float) -> float:
        return b if self.upper else a


@pytest.fixture
def server():
    """A scripted loopback server: ``server.script(Reply(...), ...)``, then
    ``server.requests`` are the requests it saw."""
    with ScriptedServer() as scripted:
        yield scripted


@pytest.fixture
def google(server) -> GoogleProvider:
    p = GoogleProvider(key=KEY, base_url=server.url)
    yield p
    p.close()


@pytest.fixture
def gate():
    fake = FakeTime()
    with RequestGate(rate=None, _clock=fake.clock, _sleep=fake.sleep) as g:
        g.fake = fake
        yield g


def run(provider, policy=None, gate=None, sleep=None, rng=None, query="Oslo"):
    fake = FakeTime()
    outcome = call_with_retries(
        lambda: provider.geocode(query, timeout=1),
        policy or RetryPolicy(retries=3),
        gate,
        sleep=sleep or fake.sleep,
        rng=rng,
    )
    outcome.waits = fake.waits
    return outcome


# -- what is retried -------------------------------------------------------------

TRANSIENT = {
    "http 500": (Reply(status=500), exc.ServerError),
    "http 503": (Reply(status=503), exc.ServerError),
    "http 429": (Reply(status=429), exc.RateLimited),
    "OVER_QUERY_LIMIT": (Reply.json({"status": "OVER_QUERY_LIMIT"}), exc.RateLimited),
    "UNKNOWN_ERROR": (Reply.json({"status": "UNKNOWN_ERROR"}), exc.ServerError),
    "no answer in time": (Reply(action="stall"), exc.Timeout),
    "an answer too slow": (Reply.json(OK_BODY, byte_delay=0.3), exc.Timeout),
    "connection closed": (Reply(action="close"), exc.ConnectionError),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("retries", [0, 1, 3])
@pytest.mark.parametrize("case", TRANSIENT, ids=list(TRANSIENT))
def test_transient_errors_retried_until_retries_run_out(google, server, gate, case, retries):
    reply, error_class = TRANSIENT[case]
    server.script(reply)
    outcome = run(google, RetryPolicy(retries=retries), gate)
    assert type(outcome.error) is error_class
    assert outcome.attempts == retries + 1
    assert len(server.requests) == retries + 1  # one HTTP request per attempt, no more
    assert gate.requests_sent == retries + 1
    assert len(outcome.waits) == retries


def test_transient_then_answer(google, server):
    server.script(Reply(status=500), Reply.json({"status": "UNKNOWN_ERROR"}), Reply.json(OK_BODY))
    outcome = run(google, RetryPolicy(retries=3))
    assert outcome.error is None
    assert isinstance(outcome.value, Answer) and outcome.value.lat == 59.91
    assert outcome.attempts == 3 and len(server.requests) == 3


PERMANENT = {
    "INVALID_REQUEST": (Reply.json({"status": "INVALID_REQUEST"}), exc.InvalidRequest),
    "http 400": (Reply(status=400), exc.InvalidRequest),
    "http 404": (Reply(status=404), exc.HTTPError),
    "not json": (Reply(body=b"<html/>"), exc.HTTPError),
}


@pytest.mark.parametrize("case", PERMANENT, ids=list(PERMANENT))
def test_permanent_errors_not_retried(google, server, case):
    reply, error_class = PERMANENT[case]
    server.script(reply)
    outcome = run(google, RetryPolicy(retries=5))
    assert type(outcome.error) is error_class
    assert outcome.attempts == 1 and len(server.requests) == 1 and outcome.waits == []


def test_not_found_is_an_answer_not_an_error(google, server):
    server.script(Reply.json({"status": "ZERO_RESULTS", "results": []}))
    outcome = run(google)
    assert outcome.error is None and not outcome.value.found and outcome.attempts == 1


def test_nominatim_retried_the_same_way(server):
    nominatim = NominatimProvider(server.url)
    server.script(Reply(status=502), Reply.json([]))
    outcome = run(nominatim, RetryPolicy(retries=1))
    assert outcome.error is None and outcome.attempts == 2
    server.script(Reply(status=400))
    assert run(nominatim, RetryPolicy(retries=3)).attempts == 1
    nominatim.close()


# -- how long it waits -----------------------------------------------------------


def test_retry_after_seconds_honoured(google, server, gate):
    server.script(Reply(status=429, headers=[("Retry-After", "7")]),
                  Reply(status=429, headers=[("Retry-After", "7")]), Reply.json(OK_BODY))
    outcome = run(google, RetryPolicy(retries=3, backoff_base=0.1), gate)
    assert outcome.error is None and outcome.attempts == 3
    assert len(outcome.waits) == 2
    assert all(wait >= 7 for wait in outcome.waits)


def test_retry_after_date_honoured(google, server):
    when = datetime.now(timezone.utc) + timedelta(seconds=20)
    server.script(Reply(status=429, headers=[("Retry-After", format_datetime(when, usegmt=True))]))
    outcome = run(google, RetryPolicy(retries=1, backoff_base=0.1))
    assert outcome.attempts == 2 and len(outcome.waits) == 1
    assert outcome.waits[0] >= 18  # the date has one-second resolution


def test_retry_after_defers_the_shared_gate(google, server):
    fake = FakeTime()
    with RequestGate(rate=10, _clock=fake.clock, _sleep=fake.sleep) as gate:
        server.script(Reply(status=429, headers=[("Retry-After", "5")]), Reply.json(OK_BODY))
        # the retry loop does not sleep here, so the gate itself must hold the next request
        outcome = call_with_retries(
            lambda: google.geocode("x", timeout=5),
            RetryPolicy(retries=1),
            gate,
            sleep=lambda seconds: None,
        )
        assert outcome.error is None and outcome.attempts == 2
        assert sum(fake.waits) >= 5


def test_backoff_stays_within_full_jitter_bounds(google, server):
    server.script(Reply(status=500))
    policy = RetryPolicy(retries=6, backoff_base=0.5, backoff_max=3.0)
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert run(google, policy, rng=EdgeRng(upper=True)).waits == ceilings
    assert run(google, policy, rng=EdgeRng(upper=False)).waits == [0.0] * 6
    for seed in range(20):
        waits = run(google, policy, rng=random.Random(seed)).waits
        assert all(0 <= wait <= ceiling for wait, ceiling in zip(waits, ceilings, strict=True))


# -- what aborts the run ---------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        Reply.json({"status": "REQUEST_DENIED",
                    "error_message": "The provided API key is invalid."}),
        Reply.json({"status": "OVER_DAILY_LIMIT"}),
        Reply(status=403),
        Reply(status=401),
    ],
)
def test_request_denied_aborts_the_gate(google, server, gate, reply):
    server.script(reply)
    first = run(google, RetryPolicy(retries=3), gate)
    assert type(first.error) is exc.RequestDenied
    assert first.attempts == 1 and len(server.requests) == 1
    assert isinstance(gate.aborted(), exc.RequestDenied)
    second = run(google, RetryPolicy(retries=3), gate, query="Bergen")
    assert type(second.error) is exc.RequestDenied
    assert str(second.error) == str(first.error)
    assert second.attempts == 0
    assert len(server.requests) == 1  # no HTTP request after the abort
    # a copy of the gate in another worker sees the same abort
    with pytest.raises(exc.RequestDenied):
        pickle.loads(pickle.dumps(gate)).acquire()


# -- the key never leaks ---------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next scripted (status, headers, body)."""

    script: list[tuple[int, dict[str, str], bytes]] = []
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        with self.lock:
            status, headers, body = self.script.pop(0) if self.script else (500, {}, b"")
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server(monkeypatch):
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _json(body: dict) -> bytes:
    return json.dumps(body).encode()


def test_failing_run_never_shows_the_key(local_server, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "googlemaps", "geofetch"):
        caplog.set_level(logging.DEBUG, logger=name)
    _Handler.script = [
        (500, {}, b""),
        (429, {"Retry-After": "1"}, b""),
        (
            200,
            {"Content-Type": "application/json"},
            _json({"status": "OVER_QUERY_LIMIT", "error_message": f"slow down, key={KEY}"}),
        ),
        (200, {"Content-Type": "application/json"}, _json({"status": "INVALID_REQUEST"})),
        (404, {}, b"not here"),
        (301, {"Location": f"https://elsewhere.test/?key={KEY}"}, b""),
        (
            200,
            {"Content-Type": "application/json"},
            _json({"status": "REQUEST_DENIED", "error_message": f"The key {KEY} is invalid."}),
        ),
    ]
    provider = GoogleProvider(key=KEY, base_url=local_server)
    errors = []
    # 500, 429, OVER_QUERY_LIMIT: three transient attempts in one retried call
    outcome = call_with_retries(
        lambda: provider.geocode("Oslo", timeout=5),
        RetryPolicy(retries=2),
        None,
        sleep=lambda seconds: None,
    )
    errors.append(outcome.error)
    for _ in range(4):
        errors.append(run(provider, RetryPolicy(retries=0)).error)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}"
    errors.append(run(GoogleProvider(key=KEY, base_url=refused), RetryPolicy(retries=0)).error)
    provider.close()

    kinds = [type(error) for error in errors]
    assert kinds == [
        exc.RateLimited,
        exc.InvalidRequest,
        exc.HTTPError,
        exc.HTTPError,
        exc.RequestDenied,
        exc.ConnectionError,
    ]
    for error in errors:
        assert str(error).strip()
        texts = [str(error), repr(error), describe(error), *traceback.format_exception(error)]
        for text in texts:
            assert KEY not in text
    # urllib3 really logged the request lines, with the key masked
    assert "/maps/api/geocode/json?address=Oslo" in caplog.text
    assert "key=REDACTED" in caplog.text
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in record.getMessage()


def test_timeout_against_a_slow_server_is_bounded_and_redacted(caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    listener = socket.socket()  # accepts connections (backlog), never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        provider = GoogleProvider(key=KEY, base_url=f"http://127.0.0.1:{listener.getsockname()[1]}")
        with pytest.raises(exc.Timeout) as info:
            provider.geocode("Oslo", timeout=0.3)
    finally:
        listener.close()
    assert str(info.value) == "no answer within 0.3 s"
    assert KEY not in "".join(traceback.format_exception(info.value))
    assert KEY not in caplog.text


# -- exceptions cross process boundaries -----------------------------------------


def _exception_classes() -> list[type[BaseException]]:
    return [
        value
        for value in vars(exc).values()
        if inspect.isclass(value) and issubclass(value, exc.GeofetchError)
    ]


@pytest.mark.parametrize("cls", _exception_classes(), ids=lambda cls: cls.__name__)
def test_every_exception_survives_pickling(cls):
    if issubclass(cls, exc.ProviderError):
        error = cls("HTTP 429 Too Many Requests", retry_after=2.5, status_code=429)
        bare = cls()
    else:
        error = cls("bad option")
        bare = cls()
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    if issubclass(cls, exc.ProviderError):
        assert copy.retry_after == 2.5 and copy.status_code == 429
        bare_copy = pickle.loads(pickle.dumps(bare))
        assert bare_copy.retry_after is None and bare_copy.status_code is None
    assert type(pickle.loads(pickle.dumps(bare))) is cls


def test_the_tree_has_every_documented_leaf():
    names = {cls.__name__ for cls in _exception_classes()}
    assert {
        "Timeout",
        "ConnectionError",
        "RateLimited",
        "ServerError",
        "InvalidRequest",
        "HTTPError",
        "RequestDenied",
        "BudgetExhausted",
        "UsageError",
    } <= names


def test_log_filter_lets_a_malformed_record_through_without_raising(google):
    google.open()  # installs the redacting filter on the HTTP libraries' loggers
    logger = logging.getLogger("urllib3.connectionpool")
    record = logger.makeRecord(logger.name, logging.DEBUG, __file__, 1, "%s %s", ("one",), None)
    assert all(f.filter(record) for f in logger.filters)
    good = logger.makeRecord(logger.name, logging.DEBUG, __file__, 1, "GET /?key=%s", (KEY,), None)
    assert all(f.filter(good) for f in logger.filters)
    assert good.getMessage() == "GET /?key=REDACTED"
