"""Reverse geocoding: the spatial index, the offline, Google and Nominatim providers,
the library calls, the command line and the local server's reverse endpoints."""

from __future__ import annotations

import json
import math
import random
import sqlite3
from urllib.parse import parse_qs, urlsplit

import pytest

from geofetch import ReverseResult, exceptions, geocode_many, iter_reverse, reverse_many
from geofetch.cache import SQLiteCache
from geofetch.gazetteer import Gazetteer
from geofetch.gazetteer.nearest import NearestIndex, great_circle_km
from geofetch.providers import GoogleProvider, NominatimProvider, OfflineProvider
from geofetch.server import LocalServer
from geofetch.testing.servers import Reply, ScriptedServer

pytestmark = pytest.mark.timeout(120)

KEY = "AIzaREVERSE-TEST-KEY-42"

GOOGLE_REVERSE = {
    "status": "OK",
    "results": [
        {
            "formatted_address": "Stephansplatz 1, 1010 Wien, Austria",
            "geometry": {"location": {"lat": 48.2085, "lng": 16.3731},
                         "location_type": "ROOFTOP"},
            "place_id": "ChIJ-stephansplatz",
            "types": ["street_address"],
            "address_components": [
                {"long_name": "1", "short_name": "1", "types": ["street_number"]},
                {"long_name": "Wien", "short_name": "Wien", "types": ["locality", "political"]},
                {"long_name": "Wien", "short_name": "Wien",
                 "types": ["administrative_area_level_1", "political"]},
                {"long_name": "Austria", "short_name": "AT", "types": ["country", "political"]},
                {"long_name": "1010", "short_name": "1010", "types": ["postal_code"]},
            ],
        },
    ],
}

NOMINATIM_REVERSE = {
    "place_id": 1234, "osm_type": "way", "osm_id": 27400528,
    "lat": "48.2084", "lon": "16.3731", "addresstype": "building", "type": "cathedral",
    "display_name": "Stephansdom, 1, Stephansplatz, Wien, 1010, Österreich",
    "address": {"house_number": "1", "road": "Stephansplatz", "city": "Wien",
                "state": "Wien", "postcode": "1010", "country": "Österreich",
                "country_code": "at"},
}


def query_of(seen) -> dict[str, list[str]]:
    return parse_qs(urlsplit(seen.target).query)


# -- the spatial index ---------------------------------------------------------------


def test_nearest_index_agrees_with_brute_force_everywhere():
    gazetteer = Gazetteer.load()
    lats, lngs = gazetteer.coordinates()
    index = NearestIndex(lats, lngs)
    rng = random.Random(7)
    points = [(rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(60)]
    points += [(lats[i] + 0.01, lngs[i] - 0.01) for i in range(0, len(lats), 997)]
    for lat, lng in points:
        found = index.nearest(lat, lng)
        distances = [great_circle_km(lat, lng, a, b) for a, b in zip(lats, lngs, strict=True)]
        best = min(distances)
        assert found is not None
        assert found.distance_km == pytest.approx(best, abs=1e-6)
        assert distances[found.position] == pytest.approx(best, abs=1e-6)


def test_nearest_index_crosses_the_antimeridian_and_reaches_the_poles():
    index = NearestIndex([0.0, 0.0, 89.9, 10.0], [179.9, -170.0, 0.0, 0.0])
    east = index.nearest(0.0, -179.95)  # 0.15 degree across the antimeridian
    assert east is not None and east.position == 0
    assert east.distance_km == pytest.approx(0.15 * 111.195, rel=1e-3)
    pole = index.nearest(90.0, 123.0)
    assert pole is not None and pole.position == 2


def test_nearest_index_max_distance_is_inclusive_and_excludes_farther():
    index = NearestIndex([0.0], [1.0])
    one_degree = great_circle_km(0.0, 0.0, 0.0, 1.0)
    assert index.nearest(0.0, 0.0, max_km=one_degree + 1e-6) is not None
    assert index.nearest(0.0, 0.0, max_km=one_degree - 0.01) is None
    assert NearestIndex([], []).nearest(0.0, 0.0) is None
    with pytest.raises(ValueError, match="2 latitudes but 1 longitudes"):
        NearestIndex([0.0, 1.0], [0.0])


# -- the offline provider ------------------------------------------------------------


def test_offline_reverse_names_the_nearest_city_with_its_fields():
    answer = OfflineProvider().reverse(48.2, 16.37, timeout=1)
    assert answer.formatted_address == "Vienna, Austria"
    assert answer.country_code == "AT" and answer.country == "Austria"
    assert answer.locality == "Vienna" and answer.precision == "locality"
    assert answer.place_id == "2761369" and answer.confidence is None
    assert answer.raw["distance_km"] == pytest.approx(
        great_circle_km(48.2, 16.37, answer.lat, answer.lng), abs=1e-3)


def test_offline_reverse_mid_ocean_and_beyond_max_distance_is_not_found():
    mid_ocean = reverse_many([(0.0, -30.0), (-48.0, -125.0)])
    assert [r.status for r in mid_ocean] == ["not_found", "not_found"]
    [near] = reverse_many([(48.3, 16.37)])
    distance = near.raw["distance_km"]
    assert near.status == "ok" and 1 < distance < 50
    assert reverse_many([(48.3, 16.37)], max_distance=distance - 0.01)[0].status == \
        "not_found"
    assert reverse_many([(48.3, 16.37)], max_distance=distance + 0.01)[0].locality == \
        near.locality


def test_offline_reverse_countries_keeps_only_cities_there():
    # Bratislava's centre is 55 km from Vienna's: with AT only, no Slovak answer
    assert reverse_many([(48.1486, 17.1077)])[0].country_code == "SK"
    only_at = reverse_many([(48.1486, 17.1077)], countries="at")
    assert only_at[0].status == "not_found"
    assert reverse_many([(48.2, 16.37)], countries=["AT", "SK"])[0].country_code == "AT"


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "50", True])
def test_offline_max_distance_must_be_a_positive_finite_number(bad):
    with pytest.raises(exceptions.UsageError, match="max-distance"):
        OfflineProvider(max_distance=bad)


# -- the library ---------------------------------------------------------------------

INVALID_POINTS = [
    ((91.0, 0.0), "InvalidQuery: lat 91 is outside -90..90"),
    ((0.0, -180.5), "InvalidQuery: lng -180.5 is outside -180..180"),
    ((math.nan, 1.0), "InvalidQuery: lat is not finite: nan"),
    ((1.0, math.inf), "InvalidQuery: lng is not finite: inf"),
    (("abc", "1"), "InvalidQuery: lat is not a number: 'abc'"),
    (("", "1"), "InvalidQuery: lat is blank"),
    ((None, None), "InvalidQuery: lat is blank"),
    (("1", " "), "InvalidQuery: lng is blank"),
    ((True, 1.0), "InvalidQuery: lat is not a number: True"),
    ("12", "InvalidQuery: lng is blank"),
]


def test_invalid_points_are_invalid_rows_and_never_asked():
    good = [(48.2085, 16.3731)]
    points = [p for p, _ in INVALID_POINTS[:5]] + good + [p for p, _ in INVALID_POINTS[5:]]
    with ScriptedServer(Reply.json(GOOGLE_REVERSE)) as server:
        results = reverse_many(points, provider=GoogleProvider(key=KEY, base_url=server.url),
                               rate=0)
        assert len(server.requests) == 1  # only the one good point was asked
    statuses = [r.status for r in results]
    assert statuses == ["invalid"] * 5 + ["ok"] + ["invalid"] * 5
    errors = [r.error for r in results if r.status == "invalid"]
    assert errors == [e for _, e in INVALID_POINTS]
    assert all(r.formatted_address is None and r.locality is None
               for r in results if r.status == "invalid")


def test_results_keep_input_order_and_points_across_thread_and_process_pools():
    points = [(48.2, 16.37), (52.52, 13.405), (0.0, -30.0), (35.68, 139.69)] * 5
    for executor in ("thread", "process"):
        results = list(iter_reverse(points, executor=executor, workers=2))
        assert [(r.lat, r.lng) for r in results] == points
        assert [r.status for r in results[:4]] == ["ok", "ok", "not_found", "ok"]
        assert results[0].formatted_address == "Vienna, Austria"
        assert results[3].country_code == "JP"
        assert all(isinstance(r, ReverseResult) for r in results)


def test_points_equal_after_rounding_are_asked_once_and_cached(tmp_path):
    cache = tmp_path / "c.sqlite"
    points = [(48.2085, 16.3731), (48.20850000001, 16.3731), (48.2085, 16.3731)]
    with ScriptedServer(Reply.json(GOOGLE_REVERSE)) as server:
        provider = GoogleProvider(key=KEY, base_url=server.url)
        first = reverse_many(points, provider=provider, rate=0, cache=str(cache), workers=1)
        assert len(server.requests) == 1
        assert query_of(server.requests[0])["latlng"] == ["48.2085,16.3731"]
        again = reverse_many(points, provider=provider, rate=0, cache=str(cache))
        assert len(server.requests) == 1  # every answer came from the cache
    for results in (first, again):
        assert [r.status for r in results] == ["ok"] * 3
        assert {r.postcode for r in results} == {"1010"}
        assert {r.precision for r in results} == {"rooftop"}
    with sqlite3.connect(cache) as db:
        keys = [row[0] for row in db.execute("SELECT query FROM answers")]
    assert keys == ["48.208500,16.373100"]


def test_reverse_retries_transient_errors_and_redacts_the_key():
    echoed = json.loads(json.dumps(GOOGLE_REVERSE))
    echoed["results"][0]["formatted_address"] = f"key {KEY} here"
    echoed["results"][0]["place_id"] = KEY
    with ScriptedServer(Reply(500, b"oops"), Reply.json(echoed)) as server:
        provider = GoogleProvider(key=KEY, base_url=server.url)
        [result] = reverse_many([(48.2, 16.37)], provider=provider, rate=0)
    assert result.status == "ok" and result.attempts == 2
    assert KEY not in result.formatted_address and KEY not in (result.place_id or "")
    assert KEY not in json.dumps(result.raw)
    with ScriptedServer(Reply.json({"status": "REQUEST_DENIED",
                                    "error_message": f"bad key {KEY}"})) as server:
        provider = GoogleProvider(key=KEY, base_url=server.url)
        [denied] = reverse_many([(48.2, 16.37)], provider=provider, rate=0)
    assert denied.status == "failed" and "REQUEST_DENIED" in denied.error
    assert KEY not in denied.error


def test_a_provider_that_cannot_reverse_is_refused_before_anything_starts():
    class Forward(OfflineProvider):
        supports_reverse = False

    with pytest.raises(exceptions.UsageError, match="does not reverse geocode"):
        reverse_many([(1.0, 2.0)], provider=Forward())


def test_reverse_dataframe_adds_the_columns_and_keeps_the_index():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"lat": [48.2, None, 0.0], "lng": [16.37, 1.0, -30.0],
                       "status": ["mine", "mine", "mine"]}, index=[10, 20, 30])
    from geofetch.pandas import reverse_dataframe

    out = reverse_dataframe(df, fields=True)
    assert list(out.index) == [10, 20, 30]
    assert list(out["status"]) == ["mine"] * 3  # the frame's own column is kept
    assert list(out["geofetch_status"]) == ["ok", "invalid", "not_found"]
    assert out.loc[10, "formatted_address"] == "Vienna, Austria"
    assert out.loc[10, "country_code"] == "AT"
    with pytest.raises(exceptions.InputError, match="no column 'y'"):
        reverse_dataframe(df, lat_column="y")


# -- Google and Nominatim ------------------------------------------------------------


def test_google_reverse_asks_latlng_with_language_and_reads_the_fields():
    with ScriptedServer(Reply.json(GOOGLE_REVERSE)) as server:
        provider = GoogleProvider(key=KEY, base_url=server.url, language="de")
        answer = provider.reverse(48.2085, 16.3731, timeout=5)
    params = query_of(server.requests[0])
    assert urlsplit(server.requests[0].target).path == "/maps/api/geocode/json"
    assert params == {"latlng": ["48.2085,16.3731"], "language": ["de"], "key": [KEY]}
    assert answer.fields() == {
        "country_code": "AT", "country": "Austria", "admin1": "Wien", "locality": "Wien",
        "postcode": "1010", "place_id": "ChIJ-stephansplatz", "precision": "rooftop",
        "confidence": None,
    }


def test_google_reverse_keeps_the_first_result_in_the_countries_asked():
    with ScriptedServer(Reply.json(GOOGLE_REVERSE), Reply.json(GOOGLE_REVERSE)) as server:
        provider = GoogleProvider(key=KEY, base_url=server.url, countries="de")
        assert not provider.reverse(48.2, 16.37, timeout=5).found
        provider = GoogleProvider(key=KEY, base_url=server.url, countries=("AT",))
        assert provider.reverse(48.2, 16.37, timeout=5).country_code == "AT"
    assert "components" not in query_of(server.requests[0])  # reverse takes no filter


def test_nominatim_reverse_asks_reverse_and_reads_the_fields():
    with ScriptedServer(Reply.json(NOMINATIM_REVERSE)) as server:
        provider = NominatimProvider(base_url=server.url, language="de", email="a@b.example")
        answer = provider.reverse(48.2084, 16.3731, timeout=5)
    seen = server.requests[0]
    assert urlsplit(seen.target).path == "/reverse"
    assert query_of(seen) == {"lat": ["48.2084"], "lon": ["16.3731"], "format": ["json"],
                              "addressdetails": ["1"], "accept-language": ["de"],
                              "email": ["a@b.example"]}
    assert answer.lat == 48.2084 and answer.lng == 16.3731
    assert answer.fields() == {
        "country_code": "AT", "country": "Österreich", "admin1": "Wien", "locality": "Wien",
        "postcode": "1010", "place_id": "W27400528", "precision": "rooftop",
        "confidence": None,
    }


def test_nominatim_unable_to_geocode_is_not_found_and_other_countries_too():
    with ScriptedServer(Reply.json({"error": "Unable to geocode"}),
                        Reply.json(NOMINATIM_REVERSE)) as server:
        provider = NominatimProvider(base_url=server.url, countries="de")
        results = reverse_many([(0.0, -30.0), (48.2, 16.37)], provider=provider, rate=0,
                               workers=1)
    assert [r.status for r in results] == ["not_found", "not_found"]


def test_nominatim_reverse_answer_that_is_not_an_object_is_an_error():
    with ScriptedServer(Reply.json([1, 2])) as server:
        provider = NominatimProvider(base_url=server.url)
        with pytest.raises(exceptions.HTTPError, match="expected a JSON object"):
            provider.reverse(1.0, 2.0, timeout=5)


# -- the local server ----------------------------------------------------------------


def test_local_server_answers_both_reverse_apis_in_their_shapes():
    with LocalServer(latency=0.0, key=KEY) as url:
        google = GoogleProvider(key=KEY, base_url=url)
        nominatim = NominatimProvider(base_url=url)
        for provider in (google, nominatim):
            results = reverse_many([(48.2, 16.37), (0.0, -30.0), (35.68, 139.69)],
                                   provider=provider, rate=0)
            assert [r.status for r in results] == ["ok", "not_found", "ok"]
            assert results[0].formatted_address == "Vienna, Austria"
            assert results[0].country_code == "AT" and results[0].locality == "Vienna"
            assert results[0].precision == "locality"
            assert results[2].country_code == "JP"
            provider.close()


def test_local_server_refuses_bad_coordinates_as_the_services_do():
    import urllib.request

    with LocalServer(latency=0.0) as url:
        with urllib.request.urlopen(f"{url}/maps/api/geocode/json?latlng=91,0") as answer:
            body = json.load(answer)
        assert body["status"] == "INVALID_REQUEST"
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{url}/reverse?lat=abc&lon=0&format=json")
        assert info.value.code == 400
        info.value.close()
        with urllib.request.urlopen(f"{url}/reverse?lat=0&lon=-30&format=jsonv2") as answer:
            assert json.load(answer) == {"error": "Unable to geocode"}


# -- the cache -----------------------------------------------------------------------


def test_a_format_1_cache_is_upgraded_in_place_and_keeps_its_answers(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        db.execute("CREATE TABLE answers (namespace TEXT NOT NULL, query TEXT NOT NULL, "
                   "status TEXT NOT NULL, lat REAL, lng REAL, formatted_address TEXT, "
                   "raw TEXT, stored_at REAL NOT NULL, PRIMARY KEY (namespace, query))")
        db.execute("INSERT INTO answers VALUES ('ns', 'berlin', 'ok', 1.0, 2.0, 'B', NULL, 0)")
    cache = SQLiteCache(path)
    old = cache.get("ns", "berlin")
    assert old is not None and old.formatted_address == "B" and old.fields is None
    from geofetch.cache import CacheEntry

    cache.put("ns", "x", CacheEntry("ok", 1.0, 2.0, "X", None, {"precision": "locality"}))
    cache.close()
    reopened = SQLiteCache(path)
    entry = reopened.get("ns", "x", raw=False)
    assert entry is not None and entry.fields == {"precision": "locality"}
    reopened.close()


# -- the command line ----------------------------------------------------------------


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("header", ["lat,lng", "Latitude,Longitude", "LAT,lon"])
def test_cli_finds_coordinate_columns_by_name(cli, tmp_path, header):
    path = write(tmp_path, "p.csv", f"id,{header}\n1,48.2,16.37\n2,0,-30\n3,95,0\n")
    out = cli(["reverse", path, "--no-progress"])
    assert out.status == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"id,{header},formatted_address,status,error",
        '1,48.2,16.37,"Vienna, Austria",ok,',
        "2,0,-30,,not_found,",
        "3,95,0,,invalid,InvalidQuery: lat 95 is outside -90..90",
    ]
    assert out.stderr.strip() == out.stderr.strip().splitlines()[-1]  # the summary only
    assert "3 rows: 1 ok, 1 not_found, 1 invalid, 0 failed" in out.stderr


def test_cli_named_columns_text_lines_and_stdin(cli, tmp_path):
    path = write(tmp_path, "p.csv", "y;x;name\n16.37;48.2;a\n")
    out = cli(["reverse", path, "--lat-column", "x", "--lng-column", "Y"])
    assert out.status == 0, out.stderr
    assert out.stdout.splitlines()[1] == '16.37;48.2;a;Vienna, Austria;ok;'
    text = write(tmp_path, "p.txt", "48.2,16.37\n0,-30\nnowhere\n")
    expected = ["point,formatted_address,status,error", '"48.2,16.37","Vienna, Austria",ok,',
                '"0,-30",,not_found,',
                'nowhere,,invalid,"InvalidQuery: \'nowhere\' is not \'lat,lng\'"']
    assert cli(["reverse", text]).stdout.splitlines() == expected
    assert cli(["reverse", "-"], stdin="48.2,16.37\n0,-30\nnowhere\n").stdout.splitlines() \
        == expected


def test_cli_fields_add_the_address_columns(cli, tmp_path):
    path = write(tmp_path, "p.csv", "lat,lng\n48.2,16.37\n")
    out = cli(["reverse", path, "--fields", "--format", "jsonl"])
    row = json.loads(out.stdout)
    assert list(row) == ["lat", "lng", "formatted_address", "country_code", "country",
                         "admin1", "locality", "postcode", "place_id", "precision",
                         "confidence", "status", "error"]
    assert row["country_code"] == "AT" and row["precision"] == "locality"
    assert row["confidence"] is None and row["postcode"] is None


def test_cli_geojson_puts_the_point_asked(cli, tmp_path):
    path = write(tmp_path, "p.csv", "lat,lng\n48.2,16.37\n0,-30\n")
    document = json.loads(cli(["reverse", path, "--format", "geojson"]).stdout)
    assert [f["geometry"]["coordinates"] for f in document["features"]] == [[16.37, 48.2]]


@pytest.mark.parametrize("argv, message", [
    (["--max-distance", "-1"], "argument --max-distance: must be more than 0, not -1"),
    (["--max-distance", "0"], "argument --max-distance: must be more than 0, not 0"),
    (["--max-distance", "far"], "argument --max-distance: not a number: 'far'"),
    (["--max-distance", "inf"], "argument --max-distance: must be a finite number, not inf"),
    (["--country", "DEU"], "argument --country: 'DEU' is not a two-letter ISO 3166-1 code"),
    (["--country", "de,"], "argument --country: '' is not a two-letter ISO 3166-1 code"),
    (["--language", "de_DE!"], "argument --language: 'de_DE!' is not a language tag"),
    (["--lat-column", "nope"], "no column 'nope' in"),
    (["--provider", "nominatim", "--max-distance", "5"],
     "the nominatim provider takes no max-distance option"),
    (["--provider", "offline", "--language", "de"],
     "the offline provider takes no language option"),
    (["--column", "lat", "--lat-column", "lat"], "exclude each other"),
])
def test_cli_bad_reverse_flags_exit_2_with_one_line(cli, tmp_path, argv, message):
    path = write(tmp_path, "p.csv", "lat,lng\n48.2,16.37\n")
    out = cli(["reverse", path, *argv])
    assert out.status == 2
    assert out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and message in out.stderr


def test_cli_missing_coordinate_columns_name_the_columns(cli, tmp_path):
    path = write(tmp_path, "p.csv", "lat,x\n1,2\n")
    out = cli(["reverse", path])
    assert out.status == 2
    assert out.stderr.splitlines() == [
        f"geofetch: error: no longitude column in {path} (looked for lng, lon, longitude); "
        "columns are: lat, x; name it with --lng-column"]
    both = cli(["reverse", write(tmp_path, "q.csv", "a,b\n1,2\n")])
    assert both.status == 2 and "--lat-column and --lng-column" in both.stderr
    assert len(both.stderr.splitlines()) == 1


def test_local_server_honours_the_country_filters_of_both_apis():
    with LocalServer(latency=0.0) as url:
        for provider in (GoogleProvider(key=KEY, base_url=url, countries="us"),
                         NominatimProvider(base_url=url, countries="us")):
            [paris] = geocode_many(["Paris"], provider=provider, rate=0)
            assert paris.country_code == "US" and paris.admin1 == "Texas"
            provider.close()
        [france] = geocode_many(["Paris"], provider=GoogleProvider(key=KEY, base_url=url),
                                rate=0)
        assert france.country_code == "FR"


def test_cli_column_names_one_lat_lng_column_or_two_joined(cli, tmp_path):
    path = write(tmp_path, "p.csv", "where,lat,lng\n\"48.2,16.37\",0,-30\n")
    one = cli(["reverse", path, "--column", "where"])
    assert one.stdout.splitlines()[1] == '"48.2,16.37",0,-30,"Vienna, Austria",ok,'
    two = cli(["reverse", path, "--column", "lat", "--column", "lng"])
    assert two.stdout.splitlines()[1] == '"48.2,16.37",0,-30,,not_found,'


def test_nominatim_reverse_place_without_coordinates_is_an_invalid_answer():
    with ScriptedServer(Reply.json({"display_name": "X", "lat": "north"})) as server:
        provider = NominatimProvider(base_url=server.url)
        [result] = reverse_many([(1.0, 2.0)], provider=provider, rate=0, retries=0)
    assert result.status == "failed"
    assert result.error == "InvalidAnswer: the place has no usable lat/lon"


def test_cli_reverse_shares_the_budget_and_aborts_with_exit_3(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", KEY)
    path = write(tmp_path, "p.csv", "lat,lng\n48.2,16.37\n35.68,139.69\n52.52,13.405\n")
    with LocalServer(latency=0.0) as url:
        out = cli(["reverse", path, "--provider", "google", "--base-url", url, "--no-cache",
                   "--max-requests", "1", "--workers", "1"])
    assert out.status == 3
    rows = out.stdout.splitlines()[1:]
    assert rows[0] == '48.2,16.37,"Vienna, Austria",ok,'
    assert [r.split(",")[-2] for r in rows[1:]] == ["failed", "failed"]
    assert all("BudgetExhausted" in r for r in rows[1:])
    assert KEY not in out.stdout + out.stderr


def test_points_are_sent_in_plain_decimal_notation():
    from geofetch.providers.base import decimal_degrees

    assert [decimal_degrees(v) for v in (5e-06, -0.0, -1e-07, 48.2, -122.4783, 180.0)] == \
        ["0.000005", "0", "0", "48.2", "-122.4783", "180"]
    with ScriptedServer(Reply.json(GOOGLE_REVERSE),
                        Reply.json({"error": "Unable to geocode"})) as server:
        reverse_many([(5e-06, -1e-05)], provider=GoogleProvider(key=KEY, base_url=server.url),
                     rate=0)
        reverse_many([(5e-06, -1e-05)], provider=NominatimProvider(base_url=server.url),
                     rate=0)
    assert query_of(server.requests[0])["latlng"] == ["0.000005,-0.00001"]
    assert query_of(server.requests[1])["lat"] == ["0.000005"]
    assert query_of(server.requests[1])["lon"] == ["-0.00001"]


def test_cli_reads_decimal_commas_of_semicolon_files(cli, tmp_path):
    path = write(tmp_path, "p.csv", "lat;lng\n48,2;16,37\n48,2,1;16\n")
    out = cli(["reverse", path])
    assert out.stdout.splitlines() == [
        "lat;lng;formatted_address;status;error",
        "48,2;16,37;Vienna, Austria;ok;",
        "48,2,1;16;;invalid;InvalidQuery: '48,2,1,16' is not 'lat,lng'",
    ]


def test_iter_reverse_streams_its_input():
    read = []

    def points():
        for i in range(20_000):
            read.append(i)
            yield (i % 180) - 89.5, 16.37

    results = iter_reverse(points(), workers=2)
    first = next(results)
    assert first.lat == -89.5 and len(read) < 20_000  # not read to the end first
    rest = list(results)
    assert len(rest) == 19_999 and [r.lat for r in rest[:3]] == [-88.5, -87.5, -86.5]
