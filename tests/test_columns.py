"""An address spread over columns: ``--column`` repeated (issue 15)."""

from __future__ import annotations

import csv
import io

import pytest

from geofetch.exceptions import InputError, UsageError
from geofetch.io.readers import open_table

ADDRESSES = (
    "id,street,city,zip,note\n"
    "1,Hauptstrasse 5,Muenchen,80331,a\n"
    "2,12 Rue de la Republique,Lyon,69002,\n"
    "3,,Berlin,,blank street and zip\n"
    "4,Damrak 1,,1012 LG,no city\n"
    "5,,,,nothing at all\n"
    '6,"Via Roma 10",Roma, ,"quoted, with a comma"\n'
)


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def addresses(tmp_path):
    path = tmp_path / "addresses.csv"
    path.write_text(ADDRESSES, encoding="utf-8")
    return path


def test_columns_are_joined_in_the_order_given_blanks_skipped(addresses):
    table = open_table(str(addresses), column=["street", "city", "zip"])
    assert table.columns == (1, 2, 3) and table.column == 1
    assert [table.query(row.cells) for row in table.rows] == [
        "Hauptstrasse 5, Muenchen, 80331",
        "12 Rue de la Republique, Lyon, 69002",
        "Berlin",
        "Damrak 1, 1012 LG",
        "",
        "Via Roma 10, Roma",
    ]
    table = open_table(str(addresses), column=["zip", "CITY"])  # any order, any case
    assert [table.query(row.cells) for row in table.rows][:2] == [
        "80331, Muenchen",
        "69002, Lyon",
    ]


def test_one_column_as_before(addresses):
    for column in ("city", ["city"]):
        table = open_table(str(addresses), column=column)
        assert table.columns == (2,)
        assert [table.query(row.cells) for row in table.rows][:2] == ["Muenchen", "Lyon"]


def test_a_missing_column_names_the_columns_that_exist(addresses):
    with pytest.raises(InputError) as caught:
        open_table(str(addresses), column=["street", "town"])
    assert str(caught.value) == (
        f"no column 'town' in {addresses}; columns are: id, street, city, zip, note"
    )


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["city", "city"], "column 'city' is named twice"),
        (["city", "CITY"], "columns 'city' and 'CITY' are the same column"),
        ([], "no column named"),
    ],
)
def test_a_column_named_twice_is_a_usage_error(addresses, columns, message):
    with pytest.raises(UsageError, match=message):
        open_table(str(addresses), column=columns)


def test_cli_joins_repeated_columns_and_keeps_every_input_column(cli, addresses):
    result = cli(["geocode", addresses, "--column", "street", "--column", "city",
                  "--column", "zip"])
    assert result.status == 0, result.stderr  # row 5 is blank: invalid, not failed
    rows = _rows(result.stdout)
    assert list(rows[0])[:5] == ["id", "street", "city", "zip", "note"]
    assert [row["id"] for row in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [row["note"] for row in rows] == [
        "a", "", "blank street and zip", "no city", "nothing at all", "quoted, with a comma"
    ]
    found = {row["id"]: (row["status"], row["formatted_address"]) for row in rows}
    assert found["1"] == ("ok", "Munich, Germany")
    assert found["2"] == ("ok", "Lyon, France")
    assert found["3"] == ("ok", "Berlin, Germany")
    assert found["6"] == ("ok", "Rome, Italy")
    assert found["5"][0] == "invalid"


def test_cli_jsonl_keeps_every_input_column(cli, addresses):
    result = cli(["geocode", addresses, "--column", "city", "--column", "zip",
                  "--format", "jsonl", "--executor", "process", "--workers", "2"])
    import json

    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["id"] for row in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[0]["street"] == "Hauptstrasse 5" and rows[0]["status"] == "ok"


def test_cli_missing_column_is_one_line_exit_2(cli, addresses):
    result = cli(["geocode", addresses, "--column", "street", "--column", "town"])
    assert result.status == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "no column 'town'" in result.stderr
    assert "columns are: id, street, city, zip, note" in result.stderr


def test_cli_column_twice_is_exit_2(cli, addresses):
    result = cli(["geocode", addresses, "--column", "city", "--column", "city"])
    assert result.status == 2 and result.stderr.count("\n") == 1
    assert "named twice" in result.stderr


def test_fetch_takes_one_url_column(cli, tmp_path):
    path = tmp_path / "urls.csv"
    path.write_text("url,other\nhttp://127.0.0.1:9/,x\n", encoding="utf-8")
    result = cli(["fetch", path, "--column", "url", "--column", "other"])
    assert result.status == 2 and result.stderr.count("\n") == 1
    assert "--column names the one URL column" in result.stderr


def test_geocode_dataframe_joins_a_list_of_columns():
    pd = pytest.importorskip("pandas")
    from geofetch.pandas import geocode_dataframe

    df = pd.DataFrame(
        {"street": ["Hauptstrasse 5", None, "  "], "city": ["Muenchen", "Lyon", None],
         "zip": ["80331", float("nan"), None]},
        index=[10, 20, 30],
    )
    out = geocode_dataframe(df, column=["street", "city", "zip"])
    assert list(out.index) == [10, 20, 30]
    assert list(out["formatted_address"][:2]) == ["Munich, Germany", "Lyon, France"]
    assert list(out["status"]) == ["ok", "ok", "invalid"]
    assert list(out["street"][:1]) == ["Hauptstrasse 5"]  # the input columns stay
    with pytest.raises(InputError, match="no column 'town'.*columns are: street, city, zip"):
        geocode_dataframe(df, column=["street", "town"])
    with pytest.raises(UsageError, match="no column named"):
        geocode_dataframe(df, column=[])
