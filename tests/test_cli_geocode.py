"""`geofetch geocode` on the offline gazetteer: formats, input kinds, errors, exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "data" / "places.csv"
SEED = ["Reykjavik", "Vien", "Zadar", "Venice", "Wrocow", "Bolognia", "Berlin", "Dehil",
        "New York", "Osaka"]
SUMMARY = "10 rows: 10 ok, 0 not_found, 0 invalid, 0 failed in "


def _csv(text):
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("executor", "threads"), [("serial", 1), ("thread", 1), ("process", 1),
                                                   ("process", 3)])
def test_seed_places_csv_every_executor_same_output(cli, executor, threads):
    result = cli(["geocode", DATA, "--executor", executor, "--workers", "2", "--threads",
                  str(threads)])
    assert result.status == 0, result.stderr
    rows = _csv(result.stdout)
    assert [r["place"] for r in rows] == SEED
    assert list(rows[0]) == ["place", "lat", "lng", "formatted_address", "status", "error"]
    assert {r["status"] for r in rows} == {"ok"}
    assert rows[1]["formatted_address"] == "Vienna, Austria"
    assert all(r["error"] == "" for r in rows)
    assert SUMMARY in result.stderr
    baseline = cli(["geocode", DATA, "--executor", "serial"]).stdout
    assert result.stdout == baseline


def test_output_file_and_table_on_terminal(cli, tmp_path):
    out = tmp_path / "out.csv"
    result = cli(["geocode", DATA, "-o", out])
    assert result.status == 0
    assert result.stdout == ""
    assert len(_csv(out.read_text(encoding="utf-8"))) == 10
    table = cli(["geocode", DATA], tty=True)
    lines = table.stdout.splitlines()
    assert lines[1] == "Vienna, Austria,  48.21,  16.37"
    assert len(lines) == 10


def test_jsonl_format(cli):
    result = cli(["geocode", "-", "--format", "jsonl"], stdin="place\nBerlin\nxqzzvv kkwp\n\n")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["place"] for r in records] == ["Berlin", "xqzzvv kkwp"]
    assert records[0]["status"] == "ok" and isinstance(records[0]["lat"], float)
    assert records[1]["status"] == "not_found" and records[1]["lat"] is None
    assert result.status == 0


def test_geojson_format(cli):
    result = cli(["geocode", "-", "--format", "geojson"], stdin="Berlin\n\nxqzzvv kkwp\nOsaka\n")
    collection = json.loads(result.stdout)
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert [f["properties"]["place"] for f in features] == ["Berlin", "Osaka"]
    lng, lat = features[0]["geometry"]["coordinates"]
    assert 52 < lat < 53 and 13 < lng < 14
    assert features[0]["properties"]["status"] == "ok"
    assert "lat" not in features[0]["properties"]


def test_table_format_for_rows_that_are_not_ok(cli):
    result = cli(["geocode", "-", "--format", "table"], stdin="Berlin\n   \nxqzzvv kkwp\n")
    lines = result.stdout.splitlines()
    assert lines[0] == "Berlin, Germany,  52.52,  13.41"
    assert lines[1] == "   : invalid InvalidQuery: blank place"
    assert lines[2] == "xqzzvv kkwp: not_found"
    assert "3 rows: 1 ok, 1 not_found, 1 invalid, 0 failed" in result.stderr


def test_plain_text_keeps_commas_in_one_place(cli, tmp_path):
    path = tmp_path / "places.txt"
    path.write_text("Paris, TX\nPortland, ME\n", encoding="utf-8")
    rows = _csv(cli(["geocode", path]).stdout)
    assert [r["place"] for r in rows] == ["Paris, TX", "Portland, ME"]
    assert rows[0]["formatted_address"].startswith("Paris, Texas")
    assert rows[1]["formatted_address"].startswith("Portland, Maine")


def test_csv_with_bom_quotes_newlines_and_other_columns(cli, tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes('\ufeffid,City,note\n1,Berlin,"a, b"\n2,"Osaka","line\nbreak"\n3,,x\n'
                     .encode())
    result = cli(["geocode", path])
    rows = _csv(result.stdout)
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["note"] == "a, b" and rows[1]["note"] == "line\nbreak"
    assert [r["status"] for r in rows] == ["ok", "ok", "invalid"]
    assert result.status == 0


def test_column_option_and_case_insensitive_detection(cli, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("Where,Other\nBerlin,Osaka\n", encoding="utf-8")
    rows = _csv(cli(["geocode", path, "--column", "Other"]).stdout)
    assert rows[0]["formatted_address"] == "Osaka, Japan"
    path.write_text("ADDRESS\nOsaka\n", encoding="utf-8")
    assert _csv(cli(["geocode", path]).stdout)[0]["status"] == "ok"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file: "),
        ("column", "no column 'nope' in "),
        ("ambiguous", "cannot tell which column"),
        ("latin1", "is not UTF-8 text"),
        ("directory", "is a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, setup, message):
    path = tmp_path / "in.csv"
    args = ["geocode", path]
    if setup == "column":
        path.write_text("place,country\nBerlin,DE\n", encoding="utf-8")
        args += ["--column", "nope"]
    elif setup == "ambiguous":
        path.write_text("a,b\nBerlin,DE\n", encoding="utf-8")
    elif setup == "latin1":
        path.write_bytes("place\nK\u00f8benhavn\n".encode("latin-1"))
    elif setup == "directory":
        path.mkdir()
    result = cli(args)
    assert result.status == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    if setup in ("column", "ambiguous"):
        assert "columns are: " in result.stderr


def test_usage_errors_exit_2(cli):
    assert cli(["geocode", DATA, "--workers", "0"]).status == 2
    assert cli(["geocode", DATA, "--executor", "fork"]).status == 2
    assert cli(["geocode", DATA, "--executor", "process", "--threads", "0"]).status == 2
    threads = cli(["geocode", DATA, "--threads", "4"])  # the thread executor: no processes
    assert threads.status == 2 and threads.stdout == ""
    assert threads.stderr.count("\n") == 1 and "needs executor='process'" in threads.stderr
    assert cli(["geocode", DATA, "--provider", "nope"]).status == 2
    offline_url = cli(["geocode", DATA, "--base-url", "http://127.0.0.1:9"])
    assert offline_url.status == 2
    assert "the offline provider takes no base-url option" in offline_url.stderr
    missing_key = cli(["geocode", DATA, "--provider", "google"])
    assert missing_key.status == 2 and "GOOGLE_MAPS_API_KEY" in missing_key.stderr
    assert cli(["frobnicate"]).status == 2


def test_process_executor_leaves_no_workers(cli):
    import multiprocessing

    assert cli(["geocode", DATA, "--executor", "process", "--workers", "2"]).status == 0
    assert multiprocessing.active_children() == []
