"""--country with two letters that name no country (XX, UK, QQ): a usage error before
any row and any request, for every provider; `geofetch serve` answers such a code as
the services do (Google ZERO_RESULTS, Nominatim []), never with a 500."""

from __future__ import annotations

import pytest
import requests

from geofetch import exceptions, geocode_many, reverse_many
from geofetch.gazetteer import Gazetteer
from geofetch.providers import GoogleProvider, NominatimProvider, OfflineProvider
from geofetch.providers.base import check_countries, country_codes
from geofetch.server import GOOGLE_PATH, NOMINATIM_PATH, LocalServer
from geofetch.testing.servers import Reply, ScriptedServer

pytestmark = pytest.mark.timeout(120)

KEY = "AIzaCOUNTRY-CODES-KEY-3"


def test_the_codes_are_iso_3166_alpha_2_and_the_gazetteer_knows_each():
    codes = country_codes()
    assert {"DE", "US", "GB", "BR", "XK"} <= codes and not {"XX", "UK", "QQ", "EU"} & codes
    assert len(codes) >= 249 and all(len(code) == 2 and code.isupper() for code in codes)
    assert Gazetteer.load().country_codes() == codes


@pytest.mark.parametrize("value, code", [
    ("XX", "'XX'"), ("de,qq", "'qq'"), (["FR", "ZZ"], "'ZZ'"), ("uk", "'uk'")])
def test_check_countries_refuses_a_code_of_no_country(value, code):
    with pytest.raises(exceptions.UsageError, match=f"unknown country code {code}"):
        check_countries(value)


def test_uk_is_pointed_to_gb():
    with pytest.raises(exceptions.UsageError, match=r"the United Kingdom is GB"):
        check_countries("UK")


@pytest.mark.parametrize("command", ["geocode", "reverse"])
@pytest.mark.parametrize("provider", ["offline", "nominatim", "google", "geopy:photon"])
def test_cli_unknown_country_exits_2_with_one_line_before_any_row(
    cli, tmp_path, monkeypatch, command, provider
):
    monkeypatch.setenv("GEOFETCH_API_KEY", KEY)
    path = tmp_path / "in.csv"
    path.write_text("place\nBerlin\n" if command == "geocode" else "lat,lon\n52.5,13.4\n",
                    encoding="utf-8")
    out = cli([command, path, "--country", "XX", "--provider", provider])
    assert out.status == 2 and out.stdout == ""
    [line] = out.stderr.splitlines()
    assert "unknown country code 'XX'" in line and "Traceback" not in line


@pytest.mark.parametrize("make", [
    lambda url: NominatimProvider(base_url=url, countries="XX"),
    lambda url: GoogleProvider(key=KEY, base_url=url, countries=["de", "QQ"]),
    lambda url: OfflineProvider(countries="XX"),
])
def test_library_refuses_before_any_request(make):
    with ScriptedServer(Reply.json([])) as server:
        with pytest.raises(exceptions.UsageError, match="unknown country code"):
            make(server.url)
        with pytest.raises(exceptions.UsageError, match="unknown country code 'XX'"):
            geocode_many(["Berlin"], provider="nominatim", base_url=server.url,
                         countries="XX", rate=0)
        with pytest.raises(exceptions.UsageError, match="unknown country code 'XX'"):
            reverse_many([(52.5, 13.4)], countries="XX")
    assert server.requests == []


@pytest.fixture(scope="module")
def serve():
    with LocalServer(latency=0.0, key=KEY) as url:
        yield url


def test_serve_answers_an_unknown_country_as_the_services_do(serve):
    google = requests.get(serve + GOOGLE_PATH, params={
        "address": "Berlin", "components": "country:XX", "key": KEY}, timeout=30)
    assert google.status_code == 200
    assert google.json() == {"results": [], "status": "ZERO_RESULTS"}
    nominatim = requests.get(serve + NOMINATIM_PATH, params={
        "q": "Berlin", "countrycodes": "xx", "format": "json"}, timeout=30)
    assert nominatim.status_code == 200 and nominatim.json() == []
    # an unknown code among known ones is left out: Berlin is still in DE
    mixed = requests.get(serve + NOMINATIM_PATH, params={
        "q": "Berlin", "countrycodes": "xx,de", "format": "json"}, timeout=30)
    assert mixed.status_code == 200 and mixed.json()[0]["display_name"].endswith("Germany")
    both = requests.get(serve + GOOGLE_PATH, params={
        "address": "Berlin", "components": "country:QQ|country:DE", "key": KEY}, timeout=30)
    assert both.json()["status"] == "OK"
