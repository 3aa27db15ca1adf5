"""Address fields and precision, --fields, --country and --language on geocode."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from geofetch import exceptions, geocode_many
from geofetch.models import ADDRESS_FIELDS as MODEL_FIELDS
from geofetch.providers import GoogleProvider, NominatimProvider, OfflineProvider
from geofetch.providers.base import ADDRESS_FIELDS, PRECISIONS, check_countries, check_language
from geofetch.providers.google import google_fields, google_precision
from geofetch.providers.nominatim import nominatim_fields, nominatim_precision
from geofetch.testing.servers import Reply, ScriptedServer

pytestmark = pytest.mark.timeout(120)

KEY = "AIzaFIELDS-TEST-KEY-7"


def query_of(seen) -> dict[str, list[str]]:
    return parse_qs(urlsplit(seen.target).query)


def test_the_field_names_agree_and_precisions_are_the_documented_seven():
    assert ADDRESS_FIELDS == MODEL_FIELDS
    assert PRECISIONS == ("rooftop", "street", "postcode", "locality", "region", "country",
                          "approximate")


@pytest.mark.parametrize("location_type, types, expected", [
    ("ROOFTOP", ["street_address"], "rooftop"),
    ("ROOFTOP", ["premise"], "rooftop"),
    ("RANGE_INTERPOLATED", ["street_address"], "street"),
    ("GEOMETRIC_CENTER", ["route"], "street"),
    ("GEOMETRIC_CENTER", ["intersection"], "street"),
    ("APPROXIMATE", ["postal_code"], "postcode"),
    ("APPROXIMATE", ["locality", "political"], "locality"),
    ("APPROXIMATE", ["sublocality", "political"], "locality"),
    ("APPROXIMATE", ["postal_town"], "locality"),
    ("APPROXIMATE", ["administrative_area_level_1", "political"], "region"),
    ("APPROXIMATE", ["administrative_area_level_2", "political"], "region"),
    ("APPROXIMATE", ["country", "political"], "country"),
    ("APPROXIMATE", ["natural_feature"], "approximate"),
    (None, None, "approximate"),
])
def test_google_precision_table(location_type, types, expected):
    result = {"geometry": {"location_type": location_type}, "types": types}
    assert google_precision(result) == expected


@pytest.mark.parametrize("place, expected", [
    ({"addresstype": "building", "type": "yes"}, "rooftop"),
    ({"addresstype": "place", "type": "house"}, "rooftop"),
    ({"addresstype": "road", "type": "residential"}, "street"),
    ({"addresstype": "postcode", "type": "postcode"}, "postcode"),
    ({"addresstype": "city", "type": "administrative"}, "locality"),
    ({"addresstype": "village", "type": "village"}, "locality"),
    ({"addresstype": "suburb", "type": "suburb"}, "locality"),
    ({"addresstype": "state", "type": "administrative"}, "region"),
    ({"addresstype": "county", "type": "administrative"}, "region"),
    ({"addresstype": "country", "type": "administrative"}, "country"),
    ({"type": "town"}, "locality"),  # older servers: no addresstype
    ({"addresstype": "peak", "type": "peak"}, "approximate"),
    ({}, "approximate"),
])
def test_nominatim_precision_table(place, expected):
    assert nominatim_precision(place) == expected


def test_fields_where_a_provider_gives_none_are_none():
    assert google_fields({}) == dict.fromkeys(ADDRESS_FIELDS) | {"precision": "approximate"}
    assert nominatim_fields({"osm_type": "relation", "osm_id": 62422}) == (
        dict.fromkeys(ADDRESS_FIELDS) | {"place_id": "R62422", "precision": "approximate"})
    # a country code that is not two letters is not passed on
    weird = {"address_components": [{"long_name": "X", "short_name": "XYZ",
                                      "types": ["country"]}]}
    assert google_fields(weird)["country_code"] is None
    assert google_fields(weird)["country"] == "X"


def test_google_geocode_sends_components_and_language_and_reads_fields():
    body = {"status": "OK", "results": [{
        "formatted_address": "Berlin, Germany", "place_id": "ChIJberlin",
        "geometry": {"location": {"lat": 52.52, "lng": 13.405}, "location_type": "APPROXIMATE"},
        "types": ["locality", "political"],
        "address_components": [
            {"long_name": "Berlin", "short_name": "Berlin", "types": ["locality"]},
            {"long_name": "Germany", "short_name": "DE", "types": ["country"]}],
    }]}
    with ScriptedServer(Reply.json(body)) as server:
        provider = GoogleProvider(key=KEY, base_url=server.url, countries="de,at",
                                  language="de")
        [result] = geocode_many(["Berlin"], provider=provider, rate=0)
    assert query_of(server.requests[0]) == {
        "address": ["Berlin"], "components": ["country:DE|country:AT"], "language": ["de"],
        "key": [KEY]}
    assert result.fields() == {
        "country_code": "DE", "country": "Germany", "admin1": None, "locality": "Berlin",
        "postcode": None, "place_id": "ChIJberlin", "precision": "locality",
        "confidence": None}
    assert "countries=DE,AT" in provider.cache_namespace()


def test_nominatim_geocode_sends_countrycodes_and_accept_language():
    place = {"lat": "52.5", "lon": "13.4", "display_name": "Berlin", "addresstype": "city",
             "osm_type": "relation", "osm_id": 62422,
             "address": {"city": "Berlin", "state": "Berlin", "postcode": "10117",
                         "country": "Deutschland", "country_code": "de"}}
    with ScriptedServer(Reply.json([place])) as server:
        provider = NominatimProvider(base_url=server.url, countries=["de"], language="en-GB")
        [result] = geocode_many(["Berlin"], provider=provider, rate=0)
    params = query_of(server.requests[0])
    assert params["countrycodes"] == ["de"] and params["accept-language"] == ["en-GB"]
    assert result.country_code == "DE" and result.postcode == "10117"
    assert result.place_id == "R62422" and result.precision == "locality"


def test_offline_fields_precision_and_confidence():
    exact, alternate, fuzzy = geocode_many(["Berlin", "Vien", "Wrocow"])
    assert exact.fields() == {
        "country_code": "DE", "country": "Germany", "admin1": exact.admin1,
        "locality": "Berlin", "postcode": None, "place_id": "2950159",
        "precision": "locality", "confidence": 1.0}
    assert exact.admin1  # a name or GeoNames' code, never empty
    assert alternate.locality == "Vienna" and alternate.confidence == 1.0
    assert fuzzy.locality == "Wrocław" and fuzzy.precision == "locality"
    assert 0.75 <= fuzzy.confidence < 1.0


def test_offline_countries_restricts_the_matches():
    assert geocode_many(["Paris"])[0].country_code == "FR"
    [texas] = geocode_many(["Paris"], countries="US")
    assert texas.status == "ok" and texas.country_code == "US"
    assert geocode_many(["Paris"], countries="JP")[0].status == "not_found"


def test_fields_survive_the_cache(tmp_path):
    body = {"status": "OK", "results": [{
        "formatted_address": "X", "geometry": {"location": {"lat": 1.0, "lng": 2.0},
                                               "location_type": "ROOFTOP"},
        "address_components": [{"long_name": "12345", "types": ["postal_code"]}]}]}
    cache = str(tmp_path / "c.sqlite")
    with ScriptedServer(Reply.json(body)) as server:
        provider = GoogleProvider(key=KEY, base_url=server.url)
        first = geocode_many(["a"], provider=provider, cache=cache, rate=0)
        again = geocode_many(["a"], provider=provider, cache=cache, rate=0)
        assert len(server.requests) == 1
    assert first[0].fields() == again[0].fields()
    assert again[0].postcode == "12345" and again[0].precision == "rooftop"


@pytest.mark.parametrize("value", ["D", "DEU", "1a", "de,x", ["DE", 5]])
def test_check_countries_refuses_what_is_not_two_letters(value):
    with pytest.raises(exceptions.UsageError, match="not a two-letter ISO 3166-1 code"):
        check_countries(value)


def test_check_countries_and_language_normalise():
    assert check_countries(" de , AT,de") == ("DE", "AT")
    assert check_countries(None) is None and check_countries([]) is None
    assert check_language("pt-BR") == "pt-BR" and check_language(None) is None
    with pytest.raises(exceptions.UsageError, match="not a language tag"):
        check_language("english please")


def test_cli_geocode_fields_columns(cli, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("place\nBerlin\nxqzzvv kkwp\n", encoding="utf-8")
    out = cli(["geocode", path, "--fields"])
    assert out.status == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == ("place,lat,lng,formatted_address,country_code,country,admin1,"
                        "locality,postcode,place_id,precision,confidence,status,error")
    assert lines[1].endswith(",DE,Germany,16,Berlin,,2950159,locality,1.0,ok,")
    assert lines[2] == "xqzzvv kkwp,,,,,,,,,,,,not_found,"
    plain = cli(["geocode", path]).stdout.splitlines()
    assert plain[0] == "place,lat,lng,formatted_address,status,error"


def test_cli_geocode_country_reaches_the_provider(cli, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("place\nParis\n", encoding="utf-8")
    out = cli(["geocode", path, "--country", "us", "--format", "jsonl"])
    assert json.loads(out.stdout)["formatted_address"].endswith("United States")


@pytest.mark.parametrize("argv, message", [
    (["--country", "USA"], "argument --country: 'USA' is not a two-letter ISO 3166-1 code"),
    (["--country", ""], "argument --country: '' is not a two-letter ISO 3166-1 code"),
    (["--language", "x"], "argument --language: 'x' is not a language tag"),
    (["--language", "de"], "the offline provider takes no language option"),
    (["--fields", "x"], "unrecognized arguments: x"),
])
def test_cli_geocode_bad_address_flags_exit_2(cli, tmp_path, argv, message):
    path = tmp_path / "p.csv"
    path.write_text("place\nParis\n", encoding="utf-8")
    out = cli(["geocode", path, *argv])
    assert out.status == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and message in out.stderr


def test_geocode_dataframe_fields():
    pd = pytest.importorskip("pandas")
    from geofetch.pandas import geocode_dataframe

    out = geocode_dataframe(pd.DataFrame({"address": ["Berlin", None]}), fields=True)
    assert list(out.columns)[:5] == ["address", "lat", "lng", "formatted_address",
                                     "country_code"]
    assert out.loc[0, "precision"] == "locality" and out.loc[0, "confidence"] == 1.0
    assert out.loc[1, "status"] == "invalid" and pd.isna(out.loc[1, "confidence"])


def test_offline_provider_repr_and_namespace_name_the_options():
    provider = OfflineProvider(countries="fr", max_distance=10)
    assert repr(provider) == "OfflineProvider(min_population=15000, countries=('FR',), " \
        "max_distance=10)"
    assert provider.cache_namespace() == "offline:15000|countries=FR|max_distance=10"
