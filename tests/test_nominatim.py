"""NominatimProvider against a scripted loopback server: one request per call, the
shared error table, the total deadline, and the answer parsing on its own."""

from __future__ import annotations

import csv
import io
import pickle
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from geofetch import exceptions as exc
from geofetch._version import __version__
from geofetch.http import DEFAULT_USER_AGENT, HTTPClient, Response, retry_after_seconds
from geofetch.providers.base import Answer
from geofetch.providers.nominatim import NominatimProvider
from geofetch.testing.servers import Reply, ScriptedServer

pytestmark = pytest.mark.timeout(60)

PLACES = [
    {"lat": "48.2083537", "lon": "16.3725042", "display_name": "Wien, Österreich"},
    {"lat": "38.0", "lon": "-84.5", "display_name": "Vienna, Kentucky"},
]


@pytest.fixture
def server():
    with ScriptedServer(Reply.json(PLACES)) as running:
        yield running


@pytest.fixture
def provider(server) -> NominatimProvider:
    p = NominatimProvider(base_url=server.url)
    yield p
    p.close()


def raised(provider: NominatimProvider, timeout: float = 10) -> exc.ProviderError:
    with pytest.raises(exc.ProviderError) as info:
        provider.geocode("Wien", timeout=timeout)
    assert str(info.value).strip()
    return info.value


def query_of(seen) -> dict[str, list[str]]:
    return parse_qs(urlsplit(seen.target).query)


# -- answers ---------------------------------------------------------------------------


def test_first_place_with_float_coordinates(provider, server):
    answer = provider.geocode("Wien", timeout=10)
    assert answer == Answer(48.2083537, 16.3725042, "Wien, Österreich", raw=PLACES,
                            precision="approximate")
    (seen,) = server.requests
    assert seen.method == "GET" and urlsplit(seen.target).path == "/search"
    assert query_of(seen) == {"q": ["Wien"], "format": ["json"], "limit": ["1"],
                              "addressdetails": ["1"]}
    assert seen.headers["accept"] == "application/json"


def test_query_is_quoted(provider, server):
    provider.geocode("Kraków, ul. Długa 1 & co", timeout=10)
    assert query_of(server.requests[0])["q"] == ["Kraków, ul. Długa 1 & co"]


def test_empty_list_is_not_found(provider, server):
    server.script(Reply.json([]))
    answer = provider.geocode("nowhere", timeout=10)
    assert answer == Answer(raw=[]) and not answer.found


def test_user_agent_names_geofetch_and_its_version(provider, server):
    provider.geocode("x", timeout=10)
    agent = server.requests[0].headers["user-agent"]
    assert agent == DEFAULT_USER_AGENT
    assert agent == f"geofetch/{__version__} (+https://github.com/geofetch/geofetch)"


def test_custom_user_agent_email_and_language(server):
    provider = NominatimProvider(
        server.url, user_agent="my-app/2 (me@example.org)", email="me@example.org", language="de"
    )
    provider.geocode("x", timeout=3)
    provider.close()
    seen = server.requests[0]
    assert seen.headers["user-agent"] == "my-app/2 (me@example.org)"
    query = query_of(seen)
    assert query["email"] == ["me@example.org"] and query["accept-language"] == ["de"]


def test_one_client_per_worker_keeps_its_connection(provider, server):
    provider.open()
    client = provider._client
    assert isinstance(client, HTTPClient)
    provider.geocode("a", timeout=3)
    provider.geocode("b", timeout=3)
    assert provider._client is client
    assert server.connections == 1
    provider.close()
    assert provider._client is None


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"<html>rate limited</html>", headers=[("Content-Type", "text/html")]),
        Reply.json({"error": "Unable to geocode"}),
    ],
)
def test_unexpected_bodies_are_http_errors(provider, server, reply):
    server.script(reply)
    assert type(raised(provider)) is exc.HTTPError


def test_a_place_without_coordinates_is_an_invalid_answer(provider, server):
    server.script(Reply.json([{"display_name": "no coordinates"}]))
    assert type(raised(provider)) is exc.InvalidAnswer


# -- the HTTP status table ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (500, exc.ServerError),
        (503, exc.ServerError),
        (401, exc.RequestDenied),
        (403, exc.RequestDenied),
        (400, exc.InvalidRequest),
        (404, exc.HTTPError),
        (429, exc.RateLimited),
        (302, exc.HTTPError),
    ],
)
def test_http_status_maps_to_one_error(provider, server, code, error_class):
    server.script(Reply(code, headers=[("Location", "/elsewhere")] if code == 302 else []))
    error = raised(provider)
    assert type(error) is error_class and error.status_code == code
    assert len(server.requests) == 1  # a redirect is not followed


def test_error_detail_from_json_body(provider, server):
    server.script(Reply.json({"error": {"code": 400, "message": "Nothing to search for."}},
                             status=400))
    assert str(raised(provider)) == "HTTP 400 Bad Request: Nothing to search for."


def test_429_retry_after_seconds_and_date(provider, server):
    server.script(Reply(429, headers=[("Retry-After", "3")]))
    assert raised(provider).retry_after == 3.0
    when = datetime.now(timezone.utc) + timedelta(seconds=60)
    server.script(Reply(429, headers=[("Retry-After", format_datetime(when, usegmt=True))]))
    assert 58 <= raised(provider).retry_after <= 60


def test_retry_after_parsing():
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(" 1.5 ") == 1.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:27:00 GMT", now=now) == 0.0  # past
    assert retry_after_seconds("-5") == 0.0
    for unreadable in (None, "", "later", "inf", "nan"):
        assert retry_after_seconds(unreadable) is None


# -- no answer ------------------------------------------------------------------------------


def test_no_answer_is_a_timeout(provider, server):
    server.script(Reply(action="stall"))
    error = raised(provider, timeout=0.5)
    assert type(error) is exc.Timeout and str(error) == "no answer within 0.5 s"


def test_trickled_answer_is_a_timeout_within_the_timeout_not_an_answer(provider, server):
    """The fault: ``[]`` padded to 12 bytes, one byte a second, held a row 11 s and
    came back ``not_found``. It is a Timeout at the deadline."""
    server.script(Reply(body=b"[          ]", headers=[("Content-Type", "application/json")],
                        byte_delay=1.0))
    started = time.monotonic()
    error = raised(provider, timeout=2)
    took = time.monotonic() - started
    assert type(error) is exc.Timeout
    assert str(error) == "answer not complete within 2 s"
    assert 1.5 <= took < 6


def test_connection_closed_without_an_answer(provider, server):
    server.script(Reply(action="close"))
    error = raised(provider)
    assert type(error) is exc.ConnectionError
    assert "closed connection without response" in str(error)


def test_refused_connection():
    provider = NominatimProvider(base_url=f"http://127.0.0.1:{_refused_port()}")
    error = raised(provider, timeout=2)
    assert type(error) is exc.ConnectionError and "refused" in str(error).lower()


# -- parsing alone ---------------------------------------------------------------------


def test_parse_reads_a_response_without_a_server():
    provider = NominatimProvider()
    ok = Response("http://x/search", 200, "OK", {"Content-Type": "application/json"},
                  b'[{"lat": "1.5", "lon": "-2", "display_name": "P"}]')
    assert provider.parse(ok) == Answer(1.5, -2.0, "P", raw=[
        {"lat": "1.5", "lon": "-2", "display_name": "P"}], precision="approximate")
    with pytest.raises(exc.RateLimited):
        provider.parse(Response("http://x/search", 429, "Too Many Requests"))


# -- identity, pickling, environment ----------------------------------------------------


def test_class_attributes_and_namespace():
    assert NominatimProvider.name == "nominatim"
    assert NominatimProvider.default_rate == 1.0
    assert NominatimProvider.uses_network and NominatimProvider.cacheable
    default = NominatimProvider()
    assert default.base_url == "https://nominatim.openstreetmap.org"
    assert "nominatim" in default.cache_namespace()
    assert default.base_url in default.cache_namespace()
    german = NominatimProvider(language="de").cache_namespace()
    assert "de" in german and german != default.cache_namespace()
    assert NominatimProvider("http://osm.test/").base_url == "http://osm.test"


@pytest.mark.parametrize("base_url", ["osm.test", "file:///etc/passwd", ""])
def test_bad_base_url_is_a_usage_error(base_url):
    with pytest.raises(exc.UsageError):
        NominatimProvider(base_url)


def test_pickle_drops_the_client(provider, server):
    provider.open()
    provider.geocode("x", timeout=5)
    data = pickle.dumps(provider)
    assert b"HTTPClient" not in data and b"PoolManager" not in data
    copy = pickle.loads(data)
    assert copy._client is None and copy.base_url == server.url
    assert copy.geocode("x", timeout=5).formatted_address == "Wien, Österreich"
    copy.close()


def test_proxy_from_the_environment(monkeypatch, server):
    """``HTTP_PROXY`` is honoured (the scripted server plays the proxy); NO_PROXY
    (127.0.0.1, set for every test) keeps loopback direct."""
    monkeypatch.setenv("HTTP_PROXY", server.url)
    provider = NominatimProvider(base_url="http://osm.invalid")
    assert provider.geocode("Wien", timeout=5).found
    provider.close()
    (seen,) = server.requests
    assert seen.target.startswith("http://osm.invalid/search?q=Wien&")  # absolute form
    direct = NominatimProvider(base_url=server.url)
    direct.geocode("Wien", timeout=5)
    direct.close()
    assert server.requests[1].target.startswith("/search?")


# -- the command line --------------------------------------------------------------------


def test_cli_trickled_answer_is_failed_with_timeout_and_exit_1(cli, tmp_path):
    """``geofetch geocode one.txt --provider nominatim --base-url URL --timeout 2
    --retries 0`` against the trickling server: the row is failed, exit status 1,
    within about the timeout."""
    source = tmp_path / "one.txt"
    source.write_text("Wien\n", encoding="utf-8")
    trickle = Reply(body=b"[          ]", headers=[("Content-Type", "application/json")],
                    byte_delay=1.0)
    with ScriptedServer(trickle) as slow:
        started = time.monotonic()
        result = cli(["geocode", source, "--provider", "nominatim", "--base-url", slow.url,
                      "--timeout", "2", "--retries", "0", "--no-cache", "--format", "csv"])
        took = time.monotonic() - started
    assert result.status == 1, result.stderr
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert row["status"] == "failed"
    assert row["error"] == "Timeout: answer not complete within 2 s"
    assert took < 8


def _refused_port() -> int:
    import socket

    with socket.socket() as s:  # bound, never listening: a connect is refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
