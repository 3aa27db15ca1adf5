"""GoogleProvider against mocked HTTP (``responses``): one request per call, one table."""

from __future__ import annotations

import pickle
import traceback
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

import googlemaps
import pytest
import requests
import responses

from geofetch import exceptions as exc
from geofetch.exceptions import describe
from geofetch.providers.base import Answer
from geofetch.providers.google import GoogleProvider

KEY = "AIzaSECRET-TEST-KEY-123"
BASE = "http://geo.test"
URL = f"{BASE}/maps/api/geocode/json"

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
def provider() -> GoogleProvider:
    p = GoogleProvider(key=KEY, base_url=BASE)
    yield p
    p.close()


def raised(provider: GoogleProvider, timeout: float = 10) -> exc.ProviderError:
    with pytest.raises(exc.ProviderError) as info:
        provider.geocode("Kraków", timeout=timeout)
    return info.value


def assert_clean(error: BaseException) -> None:
    """Non-empty message, no key in message, repr, describe() or the traceback."""
    assert str(error).strip()
    for text in (str(error), repr(error), describe(error), *traceback.format_exception(error)):
        assert KEY not in text


# -- answers ---------------------------------------------------------------------


def test_ok_takes_first_result_unchanged(provider, mocked):
    mocked.get(URL, json=OK_BODY)
    answer = provider.geocode("Kraków", timeout=10)
    assert answer == Answer(50.0647, 19.945, "Kraków, Polska", raw=OK_BODY)
    assert answer.found
    assert isinstance(answer.lat, float) and isinstance(answer.lng, float)
    assert len(mocked.calls) == 1
    query = parse_qs(urlsplit(mocked.calls[0].request.url).query)
    assert query == {"address": ["Kraków"], "key": [KEY]}


def test_language_and_region_are_sent(mocked):
    mocked.get(URL, json=OK_BODY)
    GoogleProvider(key=KEY, base_url=BASE, language="pl", region="pl").geocode("x", timeout=5)
    query = parse_qs(urlsplit(mocked.calls[0].request.url).query)
    assert query["language"] == ["pl"] and query["region"] == ["pl"]


def test_zero_results_is_not_found(provider, mocked):
    body = {"status": "ZERO_RESULTS", "results": []}
    mocked.get(URL, json=body)
    answer = provider.geocode("nowhere at all", timeout=10)
    assert answer == Answer(raw=body)
    assert not answer.found


def test_ok_without_results_is_not_found(provider, mocked):
    mocked.get(URL, json={"status": "OK", "results": []})
    assert not provider.geocode("x", timeout=10).found


def test_per_call_timeout_bounds_connect_and_read(provider, mocked):
    mocked.get(URL, json=OK_BODY)
    provider.geocode("x", timeout=4.5)
    assert mocked.calls[0].request.req_kwargs["timeout"] == (4.5, 4.5)


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
def test_google_status_maps_to_one_error(provider, mocked, status, error_class):
    mocked.get(URL, json={"status": status, "results": []})
    error = raised(provider)
    assert type(error) is error_class
    assert str(error) == status
    assert len(mocked.calls) == 1  # neither OVER_QUERY_LIMIT nor UNKNOWN_ERROR re-requested
    assert_clean(error)


def test_google_error_message_is_kept_and_redacted(provider, mocked):
    message = f"The provided API key is invalid. key={KEY}"
    mocked.get(URL, json={"status": "REQUEST_DENIED", "error_message": message})
    error = raised(provider)
    assert isinstance(error, exc.RequestDenied)
    assert str(error).startswith("REQUEST_DENIED: The provided API key is invalid.")
    assert_clean(error)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"body": "<html>oops</html>", "content_type": "text/html"},
        {"json": {"results": []}},
        {"json": ["not", "a", "dict"]},
        {"json": {"status": "OK", "results": [{"formatted_address": "no geometry"}]}},
    ],
)
def test_unexpected_200_bodies_are_http_errors(provider, mocked, kwargs):
    mocked.get(URL, **kwargs)
    error = raised(provider)
    assert type(error) is exc.HTTPError
    assert_clean(error)


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
def test_http_status_maps_to_one_error_with_one_request(provider, mocked, code, error_class):
    mocked.get(URL, status=code, body="")
    error = raised(provider)
    assert type(error) is error_class
    assert error.status_code == code
    assert str(error).startswith(f"HTTP {code}")
    assert len(mocked.calls) == 1  # the client's own 500/503/504 recursion is off
    assert_clean(error)


def test_redirect_is_reported_not_followed(provider, mocked):
    mocked.get(URL, status=301, headers={"Location": f"https://geo.test/?key={KEY}"})
    error = raised(provider)
    assert type(error) is exc.HTTPError and "301" in str(error)
    assert len(mocked.calls) == 1
    assert_clean(error)


def test_error_body_detail_is_kept(provider, mocked):
    mocked.get(URL, status=403, json={"error_message": "API key expired"})
    error = raised(provider)
    assert str(error) == "HTTP 403 Forbidden: API key expired"


def test_429_retry_after_seconds(provider, mocked):
    mocked.get(URL, status=429, headers={"Retry-After": "7"})
    error = raised(provider)
    assert isinstance(error, exc.RateLimited)
    assert error.retry_after == 7.0
    assert "retry after 7 s" in str(error)


def test_429_retry_after_http_date(provider, mocked):
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    mocked.get(URL, status=429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    error = raised(provider)
    assert isinstance(error, exc.RateLimited)
    assert 28 <= error.retry_after <= 30


@pytest.mark.parametrize("header", ["soon", "", "nan"])
def test_429_unreadable_retry_after_is_ignored(provider, mocked, header):
    mocked.get(URL, status=429, headers={"Retry-After": header})
    assert raised(provider).retry_after is None


def test_503_retry_after_is_kept(provider, mocked):
    mocked.get(URL, status=503, headers={"Retry-After": "2"})
    error = raised(provider)
    assert isinstance(error, exc.ServerError) and error.retry_after == 2.0


# -- failures without an HTTP answer ---------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout],
)
@pytest.mark.parametrize(("timeout", "shown"), [(10, "10"), (2.5, "2.5")])
def test_timeouts_say_how_long(provider, mocked, failure, timeout, shown):
    mocked.get(URL, body=failure(f"timed out: {URL}?key={KEY}"))
    error = raised(provider, timeout=timeout)
    assert type(error) is exc.Timeout
    assert str(error) == f"no answer within {shown} s"
    assert isinstance(error, TimeoutError)
    assert isinstance(error.__cause__, googlemaps.exceptions.Timeout)
    assert len(mocked.calls) == 1
    assert_clean(error)


def test_connection_error(provider, mocked):
    mocked.get(URL, body=requests.exceptions.ConnectionError(f"reset by peer: {URL}?key={KEY}"))
    error = raised(provider)
    assert type(error) is exc.ConnectionError
    assert "reset by peer" in str(error)
    assert error.__cause__ is not None  # raised from the client's TransportError
    assert_clean(error)


def test_unmatched_request_connection_error_is_redacted(provider, mocked):
    # responses refuses an unregistered URL with a message that repeats it, key and all
    error = raised(provider)
    assert type(error) is exc.ConnectionError
    assert_clean(error)


def test_refused_connection_on_a_real_socket_is_redacted():
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = GoogleProvider(key=KEY, base_url=f"http://127.0.0.1:{port}")
    error = raised(provider, timeout=2)
    assert type(error) is exc.ConnectionError
    assert "refused" in str(error).lower()
    assert_clean(error)


# -- the client's own machinery is off -------------------------------------------


def test_client_never_sleeps_or_retries(provider, mocked, monkeypatch):
    def no_sleep(seconds):
        raise AssertionError(f"googlemaps slept {seconds} s")

    monkeypatch.setattr(googlemaps.client.time, "sleep", no_sleep)
    mocked.get(URL, json=OK_BODY)
    for _ in range(150):  # past the client's default 60 queries per second
        provider.geocode("x", timeout=5)
    assert len(mocked.calls) == 150
    mocked.replace(responses.GET, URL, status=500)
    with pytest.raises(exc.ServerError):
        provider.geocode("x", timeout=5)
    assert len(mocked.calls) == 151


# -- construction, identity, pickling --------------------------------------------


def test_key_from_environment(monkeypatch, mocked):
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", KEY)
    provider = GoogleProvider(base_url=BASE)
    assert provider.secrets() == (KEY,)
    mocked.get(URL, json=OK_BODY)
    provider.geocode("x", timeout=5)
    assert f"key={KEY}" in mocked.calls[0].request.url


def test_missing_key_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("GOOGLE_MAPS_API_KEY", raising=False)
    with pytest.raises(exc.UsageError, match="GOOGLE_MAPS_API_KEY"):
        GoogleProvider()
    with pytest.raises(exc.UsageError, match="GOOGLE_MAPS_API_KEY"):
        GoogleProvider(key="")


def test_malformed_key_is_a_usage_error_that_does_not_show_it():
    with pytest.raises(exc.UsageError) as info:
        GoogleProvider(key="not-a-google-key-987")
    assert "not-a-google-key-987" not in str(info.value)


@pytest.mark.parametrize("base_url", ["geo.test", "ftp://geo.test", "http://"])
def test_bad_base_url_is_a_usage_error(base_url):
    with pytest.raises(exc.UsageError):
        GoogleProvider(key=KEY, base_url=base_url)


def test_class_attributes():
    assert GoogleProvider.name == "google"
    assert GoogleProvider.default_rate == 50.0
    assert GoogleProvider.uses_network and GoogleProvider.cacheable


def test_cache_namespace_and_repr_never_show_the_key():
    provider = GoogleProvider(key=KEY, base_url=BASE + "/", language="de", region="at")
    namespace = provider.cache_namespace()
    for part in ("google", BASE, "de", "at"):
        assert part in namespace
    assert KEY not in namespace and KEY not in repr(provider)
    assert namespace != GoogleProvider(key=KEY, base_url=BASE, language="fr").cache_namespace()
    assert namespace != GoogleProvider(key=KEY, language="de", region="at").cache_namespace()


def test_pickle_drops_the_client(provider, mocked):
    mocked.get(URL, json=OK_BODY)
    provider.open()
    provider.geocode("x", timeout=5)
    data = pickle.dumps(provider)
    assert b"Session" not in data and b"googlemaps" not in data
    copy = pickle.loads(data)
    assert copy._client is None
    assert (copy.key, copy.base_url) == (KEY, BASE)
    copy.open()
    assert copy.geocode("x", timeout=5).formatted_address == "Kraków, Polska"
    copy.close()
