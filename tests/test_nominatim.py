"""NominatimProvider against mocked HTTP (``responses``)."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from geofetch import exceptions as exc
from geofetch._version import __version__
from geofetch.providers._http import DEFAULT_USER_AGENT, retry_after_seconds
from geofetch.providers.base import Answer
from geofetch.providers.nominatim import NominatimProvider

BASE = "http://osm.test"
URL = f"{BASE}/search"

PLACES = [
    {"lat": "48.2083537", "lon": "16.3725042", "display_name": "Wien, Österreich"},
    {"lat": "38.0", "lon": "-84.5", "display_name": "Vienna, Kentucky"},
]


@pytest.fixture
def provider() -> NominatimProvider:
    p = NominatimProvider(base_url=BASE)
    yield p
    p.close()


def raised(provider: NominatimProvider, timeout: float = 10) -> exc.ProviderError:
    with pytest.raises(exc.ProviderError) as info:
        provider.geocode("Wien", timeout=timeout)
    assert str(info.value).strip()
    return info.value


def test_first_place_with_float_coordinates(provider, mocked):
    mocked.get(URL, json=PLACES)
    answer = provider.geocode("Wien", timeout=10)
    assert answer == Answer(48.2083537, 16.3725042, "Wien, Österreich", raw=PLACES)
    assert len(mocked.calls) == 1
    request = mocked.calls[0].request
    assert parse_qs(urlsplit(request.url).query) == {
        "q": ["Wien"],
        "format": ["json"],
        "limit": ["1"],
    }
    assert request.req_kwargs["timeout"] == (10, 10)


def test_empty_list_is_not_found(provider, mocked):
    mocked.get(URL, json=[])
    answer = provider.geocode("nowhere", timeout=10)
    assert answer == Answer(raw=[]) and not answer.found


def test_user_agent_names_geofetch_and_its_version(provider, mocked):
    mocked.get(URL, json=[])
    provider.geocode("x", timeout=10)
    agent = mocked.calls[0].request.headers["User-Agent"]
    assert agent == DEFAULT_USER_AGENT
    assert agent == f"geofetch/{__version__} (+https://github.com/geofetch/geofetch)"


def test_custom_user_agent_email_and_language(mocked):
    mocked.get(URL, json=[])
    provider = NominatimProvider(
        BASE, user_agent="my-app/2 (me@example.org)", email="me@example.org", language="de"
    )
    provider.geocode("x", timeout=3)
    request = mocked.calls[0].request
    assert request.headers["User-Agent"] == "my-app/2 (me@example.org)"
    query = parse_qs(urlsplit(request.url).query)
    assert query["email"] == ["me@example.org"] and query["accept-language"] == ["de"]


def test_one_session_per_worker_reused(provider, mocked):
    mocked.get(URL, json=[])
    provider.open()
    session = provider._session
    assert isinstance(session, requests.Session)
    provider.geocode("a", timeout=3)
    provider.geocode("b", timeout=3)
    assert provider._session is session
    provider.close()
    assert provider._session is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"body": "<html>rate limited</html>", "content_type": "text/html"},
        {"json": {"error": "Unable to geocode"}},
        {"json": [{"display_name": "no coordinates"}]},
    ],
)
def test_unexpected_bodies_are_http_errors(provider, mocked, kwargs):
    mocked.get(URL, **kwargs)
    assert type(raised(provider)) is exc.HTTPError


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
def test_http_status_maps_to_one_error(provider, mocked, code, error_class):
    mocked.get(URL, status=code, body="")
    error = raised(provider)
    assert type(error) is error_class and error.status_code == code
    assert len(mocked.calls) == 1


def test_error_detail_from_json_body(provider, mocked):
    mocked.get(URL, status=400, json={"error": {"code": 400, "message": "Nothing to search for."}})
    assert str(raised(provider)) == "HTTP 400 Bad Request: Nothing to search for."


def test_429_retry_after_seconds_and_date(provider, mocked):
    mocked.get(URL, status=429, headers={"Retry-After": "3"})
    assert raised(provider).retry_after == 3.0
    when = datetime.now(timezone.utc) + timedelta(seconds=60)
    mocked.replace(
        responses.GET, URL, status=429, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
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


@pytest.mark.parametrize(
    "failure", [requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout]
)
def test_timeouts(provider, mocked, failure):
    mocked.get(URL, body=failure("timed out"))
    error = raised(provider, timeout=7)
    assert type(error) is exc.Timeout and str(error) == "no answer within 7 s"
    assert isinstance(error.__cause__, failure)


def test_connection_error(provider, mocked):
    mocked.get(URL, body=requests.exceptions.ConnectionError("connection reset by peer"))
    error = raised(provider)
    assert type(error) is exc.ConnectionError and "reset" in str(error)


def test_other_requests_failures_are_permanent(provider, mocked):
    mocked.get(URL, body=requests.exceptions.TooManyRedirects("too many"))
    assert type(raised(provider)) is exc.HTTPError


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
    assert NominatimProvider(BASE + "/").base_url == BASE


@pytest.mark.parametrize("base_url", ["osm.test", "file:///etc/passwd", ""])
def test_bad_base_url_is_a_usage_error(base_url):
    with pytest.raises(exc.UsageError):
        NominatimProvider(base_url)


def test_pickle_drops_the_session(provider, mocked):
    mocked.get(URL, json=PLACES)
    provider.open()
    provider.geocode("x", timeout=5)
    data = pickle.dumps(provider)
    assert b"Session" not in data
    copy = pickle.loads(data)
    assert copy._session is None and copy.base_url == BASE
    assert copy.geocode("x", timeout=5).formatted_address == "Wien, Österreich"
    copy.close()


def test_proxies_from_the_environment_are_read_once_and_kept(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.test:3128")
    provider = NominatimProvider(base_url=BASE)
    provider.open()
    session = provider._session
    assert session is not None
    assert session.proxies.get("http") == "http://proxy.test:3128"
    assert session.trust_env is False
    provider.close()
