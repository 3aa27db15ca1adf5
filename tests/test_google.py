"""GoogleProvider against a scripted loopback server: one request per call, the
Google status table, the shared HTTP table, the key never shown."""

from __future__ import annotations

import logging
import pickle
import socket
import time
import traceback
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from geofetch import exceptions as exc
from geofetch.exceptions import describe
from geofetch.http import Response
from geofetch.providers.base import Answer
from geofetch.providers.google import GEOCODE_PATH, GoogleProvider
from geofetch.testing.servers import Reply, ScriptedServer

pytestmark = pytest.mark.timeout(60)

KEY = "AIzaSECRET-TEST-KEY-123"

OK_BODY = {
    "status": "OK",
    "results": [
        {
            "formatted_address": "Kraków, Polska",
            "geometry": {"location": {"lat": 50.0647, "lng": 19.945}},
        },
        {
            "formatted_address": "Krakow, WI 54137, USA",
            "geometry": {"location": {"lat": 44.77, "lng": -88.07}},
        },
    ],
}


@pytest.fixture
def server():
    with ScriptedServer(Reply.json(OK_BODY)) as running:
        yield running


@pytest.fixture
def provider(server) -> GoogleProvider:
    p = GoogleProvider(key=KEY, base_url=server.url)
    yield p
    p.close()


def raised(provider: GoogleProvider, timeout: float = 10) -> exc.ProviderError:
    with pytest.raises(exc.ProviderError) as info:
        provider.geocode("Kraków", timeout=timeout)
    return info.value


def assert_clean(error: BaseException, key: str = KEY) -> None:
    """Non-empty message, no key in message, repr, describe() or the traceback."""
    assert str(error).strip()
    for text in (str(error), repr(error), describe(error), *traceback.format_exception(error)):
        assert key not in text


def query_of(seen) -> dict[str, list[str]]:
    return parse_qs(urlsplit(seen.target).query)


# -- answers ---------------------------------------------------------------------


def test_ok_takes_first_result_unchanged(provider, server):
    answer = provider.geocode("Kraków", timeout=10)
    assert answer == Answer(50.0647, 19.945, "Kraków, Polska", raw=OK_BODY,
                            precision="approximate")
    assert answer.found
    assert isinstance(answer.lat, float) and isinstance(answer.lng, float)
    (seen,) = server.requests
    assert seen.method == "GET" and urlsplit(seen.target).path == GEOCODE_PATH
    assert query_of(seen) == {"address": ["Kraków"], "key": [KEY]}
    assert seen.target.endswith(f"&key={KEY}")  # last, as the official client sends it


def test_language_and_region_are_sent(server):
    provider = GoogleProvider(key=KEY, base_url=server.url, language="pl", region="pl")
    provider.geocode("x", timeout=5)
    provider.close()
    query = query_of(server.requests[0])
    assert query["language"] == ["pl"] and query["region"] == ["pl"]


def test_zero_results_is_not_found(provider, server):
    body = {"status": "ZERO_RESULTS", "results": []}
    server.script(Reply.json(body))
    answer = provider.geocode("nowhere at all", timeout=10)
    assert answer == Answer(raw=body)
    assert not answer.found


def test_ok_without_results_is_not_found(provider, server):
    server.script(Reply.json({"status": "OK", "results": []}))
    assert not provider.geocode("x", timeout=10).found


# -- the Google status table -----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        ("OVER_QUERY_LIMIT", exc.RateLimited),
        ("UNKNOWN_ERROR", exc.ServerError),
        ("INVALID_REQUEST", exc.InvalidRequest),
        ("REQUEST_DENIED", exc.RequestDenied),
        ("OVER_DAILY_LIMIT", exc.RequestDenied),
        ("SOMETHING_NEW", exc.HTTPError),
    ],
)
def test_google_status_maps_to_one_error(provider, server, status, error_class):
    server.script(Reply.json({"status": status, "results": []}))
    error = raised(provider)
    assert type(error) is error_class
    assert str(error) == status
    assert len(server.requests) == 1  # neither OVER_QUERY_LIMIT nor UNKNOWN_ERROR re-requested
    assert_clean(error)


def test_google_error_message_is_kept_and_redacted(provider, server):
    message = f"The provided API key is invalid. key={KEY}"
    server.script(Reply.json({"status": "REQUEST_DENIED", "error_message": message}))
    error = raised(provider)
    assert isinstance(error, exc.RequestDenied)
    assert str(error).startswith("REQUEST_DENIED: The provided API key is invalid.")
    assert_clean(error)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"<html>oops</html>", headers=[("Content-Type", "text/html")]),
        Reply.json({"results": []}),
        Reply.json(["not", "a", "dict"]),
    ],
)
def test_unexpected_200_bodies_are_http_errors(provider, server, reply):
    server.script(reply)
    error = raised(provider)
    assert type(error) is exc.HTTPError
    assert_clean(error)


def test_a_result_without_coordinates_is_an_invalid_answer(provider, server):
    server.script(Reply.json({"status": "OK", "results": [{"formatted_address": "no geo"}]}))
    error = raised(provider)
    assert type(error) is exc.InvalidAnswer
    assert str(error) == "first result has no usable geometry.location"


# -- the HTTP status table -------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (500, exc.ServerError),
        (502, exc.ServerError),
        (503, exc.ServerError),
        (504, exc.ServerError),
        (401, exc.RequestDenied),
        (403, exc.RequestDenied),
        (400, exc.InvalidRequest),
        (404, exc.HTTPError),
        (418, exc.HTTPError),
        (429, exc.RateLimited),
    ],
)
def test_http_status_maps_to_one_error_with_one_request(provider, server, code, error_class):
    server.script(Reply(code))
    error = raised(provider)
    assert type(error) is error_class
    assert error.status_code == code
    assert str(error).startswith(f"HTTP {code}")
    assert len(server.requests) == 1  # no 500/503/504 re-request behind the engine's back
    assert_clean(error)


def test_redirect_is_reported_not_followed(provider, server):
    server.script(Reply(301, headers=[("Location", f"https://geo.test/?key={KEY}")]))
    error = raised(provider)
    assert type(error) is exc.HTTPError and "301" in str(error)
    assert "redirects are not followed" in str(error)
    assert len(server.requests) == 1
    assert_clean(error)


def test_error_body_detail_is_kept(provider, server):
    server.script(Reply.json({"error_message": "API key expired"}, status=403))
    assert str(raised(provider)) == "HTTP 403 Forbidden: API key expired"


def test_429_retry_after_seconds(provider, server):
    server.script(Reply(429, headers=[("Retry-After", "7")]))
    error = raised(provider)
    assert isinstance(error, exc.RateLimited)
    assert error.retry_after == 7.0
    assert "retry after 7 s" in str(error)


def test_429_retry_after_http_date(provider, server):
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    server.script(Reply(429, headers=[("Retry-After", format_datetime(when, usegmt=True))]))
    error = raised(provider)
    assert isinstance(error, exc.RateLimited)
    assert 28 <= error.retry_after <= 30


@pytest.mark.parametrize("header", ["soon", "", "nan"])
def test_429_unreadable_retry_after_is_ignored(provider, server, header):
    server.script(Reply(429, headers=[("Retry-After", header)]))
    assert raised(provider).retry_after is None


def test_503_retry_after_is_kept(provider, server):
    server.script(Reply(503, headers=[("Retry-After", "2")]))
    error = raised(provider)
    assert isinstance(error, exc.ServerError) and error.retry_after == 2.0


# -- failures without an HTTP answer ---------------------------------------------


@pytest.mark.parametrize(("timeout", "shown"), [(1, "1"), (0.5, "0.5")])
def test_no_answer_says_how_long(provider, server, timeout, shown):
    server.script(Reply(action="stall"))
    error = raised(provider, timeout=timeout)
    assert type(error) is exc.Timeout
    assert str(error) == f"no answer within {shown} s"
    assert isinstance(error, TimeoutError)
    assert len(server.requests) == 1
    assert_clean(error)


def test_trickling_headers_are_bounded_by_the_timeout(provider, server):
    server.script(Reply.json(OK_BODY, header_delay=1.0))
    started = time.monotonic()
    error = raised(provider, timeout=2)
    assert type(error) is exc.Timeout and str(error) == "no answer within 2 s"
    assert time.monotonic() - started < 6


def test_connection_closed_without_an_answer(provider, server):
    server.script(Reply(action="close"))
    error = raised(provider)
    assert type(error) is exc.ConnectionError
    assert error.__cause__ is not None
    assert_clean(error)


def test_refused_connection_on_a_real_socket_is_redacted():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = GoogleProvider(key=KEY, base_url=f"http://127.0.0.1:{port}")
    error = raised(provider, timeout=2)
    assert type(error) is exc.ConnectionError
    assert "refused" in str(error).lower()
    assert_clean(error)


def test_unresolvable_host_is_a_redacted_connection_error():
    provider = GoogleProvider(key=KEY, base_url="http://geo.invalid")
    error = raised(provider, timeout=5)
    assert type(error) is exc.ConnectionError
    assert "geo.invalid" in str(error)
    assert_clean(error)


def test_key_is_masked_in_urllib3_request_lines(provider, server, caplog):
    caplog.set_level(logging.DEBUG, logger="urllib3")
    provider.geocode("x", timeout=5)
    lines = [record.getMessage() for record in caplog.records]
    assert any("GET /maps/api/geocode/json?address=x" in line for line in lines)
    assert not any(KEY in line for line in lines)


# -- one request per call, never a retry or a sleep ---------------------------------


def test_every_call_is_exactly_one_request(provider, server):
    for _ in range(150):  # past the official client's default 60 queries per second
        provider.geocode("x", timeout=5)
    assert len(server.requests) == 150
    assert server.connections == 1  # kept alive throughout
    server.script(Reply(500))
    with pytest.raises(exc.ServerError):
        provider.geocode("x", timeout=5)
    assert len(server.requests) == 151


# -- parsing alone ------------------------------------------------------------------------


def test_parse_reads_a_response_without_a_server():
    provider = GoogleProvider(key=KEY)
    body = b'{"status": "OK", "results": [{"geometry": {"location": {"lat": 1, "lng": 2}}}]}'
    answer = provider.parse(Response("http://x", 200, "OK", {}, body))
    assert (answer.lat, answer.lng, answer.formatted_address) == (1.0, 2.0, None)
    with pytest.raises(exc.RequestDenied):
        provider.parse(Response("http://x", 200, "OK", {}, b'{"status": "OVER_DAILY_LIMIT"}'))


# -- construction, identity, pickling --------------------------------------------


def test_key_from_environment(monkeypatch, server):
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", KEY)
    provider = GoogleProvider(base_url=server.url)
    assert provider.secrets() == (KEY,)
    provider.geocode("x", timeout=5)
    provider.close()
    assert query_of(server.requests[0])["key"] == [KEY]


def test_missing_key_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("GOOGLE_MAPS_API_KEY", raising=False)
    with pytest.raises(exc.UsageError, match="GOOGLE_MAPS_API_KEY"):
        GoogleProvider()
    with pytest.raises(exc.UsageError, match="GOOGLE_MAPS_API_KEY"):
        GoogleProvider(key="")


def test_any_key_is_sent_and_never_shown(server):
    """A compatible server (``geofetch serve --key``) may use a key that does not
    start with ``AIza``: it is accepted, sent, and redacted like any other."""
    other = "local-server-key-987"
    provider = GoogleProvider(key=other, base_url=server.url)
    server.script(Reply.json({"status": "REQUEST_DENIED", "error_message": f"bad {other}"}))
    error = raised(provider)
    provider.close()
    assert query_of(server.requests[0])["key"] == [other]
    assert_clean(error, key=other)


@pytest.mark.parametrize("base_url", ["geo.test", "ftp://geo.test", "http://"])
def test_bad_base_url_is_a_usage_error(base_url):
    with pytest.raises(exc.UsageError):
        GoogleProvider(key=KEY, base_url=base_url)


def test_class_attributes():
    assert GoogleProvider.name == "google"
    assert GoogleProvider.default_rate == 50.0
    assert GoogleProvider.uses_network and GoogleProvider.cacheable


def test_cache_namespace_and_repr_never_show_the_key():
    base = "http://geo.test"
    provider = GoogleProvider(key=KEY, base_url=base + "/", language="de", region="at")
    namespace = provider.cache_namespace()
    for part in ("google", base, "de", "at"):
        assert part in namespace
    assert KEY not in namespace and KEY not in repr(provider)
    assert namespace != GoogleProvider(key=KEY, base_url=base, language="fr").cache_namespace()
    assert namespace != GoogleProvider(key=KEY, language="de", region="at").cache_namespace()


def test_pickle_drops_the_client(provider, server):
    provider.open()
    provider.geocode("x", timeout=5)
    data = pickle.dumps(provider)
    assert b"HTTPClient" not in data and b"PoolManager" not in data
    copy = pickle.loads(data)
    assert copy._client is None
    assert (copy.key, copy.base_url) == (KEY, server.url)
    copy.open()
    assert copy.geocode("x", timeout=5).formatted_address == "Kraków, Polska"
    copy.close()
