"""reverse_dataframe finds the coordinate columns by name as `geofetch reverse` does
(lat/lng, lat/lon, latitude/longitude, any case); names given are still taken."""

from __future__ import annotations

from pathlib import Path

import pytest

from geofetch import exceptions
from geofetch.io.coordinates import LAT_COLUMNS, LNG_COLUMNS, column_index

pd = pytest.importorskip("pandas")
from geofetch.pandas import reverse_dataframe  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "coordinates.csv"


def test_the_sample_file_with_lon_works_without_naming_columns():
    df = pd.read_csv(SAMPLE)
    assert "lon" in df.columns and "lng" not in df.columns
    out = reverse_dataframe(df)
    named = reverse_dataframe(df, lat_column="lat", lng_column="lon")
    assert len(out) == len(df) and list(out.index) == list(df.index)
    assert list(out["formatted_address"]) == list(named["formatted_address"])
    assert list(out["status"]).count("ok") >= len(df) - 2  # mid-ocean points may be far


@pytest.mark.parametrize("lat, lng", [
    ("lat", "lng"), ("lat", "lon"), ("latitude", "longitude"), ("Latitude", "Longitude"),
    ("LAT", "LON"), (" lat ", "Lng"), ("latitude", "lng"),
])
def test_columns_found_by_name_in_any_case(lat, lng):
    df = pd.DataFrame({"name": ["Vienna"], lat: [48.2], lng: [16.37]})
    [address] = reverse_dataframe(df)["formatted_address"]
    assert address == "Vienna, Austria"


def test_names_given_are_taken_exactly_else_in_any_case():
    df = pd.DataFrame({"y": [48.2], "X": [16.37], "lat": [0.0], "lng": [-30.0]})
    assert reverse_dataframe(df, "y", "X")["formatted_address"][0] == "Vienna, Austria"
    assert reverse_dataframe(df, lat_column="Y", lng_column="x")["status"][0] == "ok"
    assert reverse_dataframe(df)["status"][0] == "not_found"  # lat/lng: mid-Atlantic


def test_missing_or_same_columns_are_one_clear_error():
    df = pd.DataFrame({"lat": [48.2], "east": [16.37]})
    with pytest.raises(exceptions.InputError, match=r"no longitude column in the DataFrame "
                       r"\(looked for lng, lon, longitude\); columns are: lat, east; "
                       r"name it with lng_column="):
        reverse_dataframe(df)
    with pytest.raises(exceptions.InputError, match="no column 'y' in the DataFrame"):
        reverse_dataframe(df, lat_column="y", lng_column="east")
    with pytest.raises(exceptions.InputError, match="same column"):
        reverse_dataframe(df, lat_column="lat", lng_column="LAT")


def test_the_cli_and_the_library_look_for_the_same_names():
    from geofetch.cli import reverse as cli_reverse

    assert (cli_reverse.LAT_COLUMNS, cli_reverse.LNG_COLUMNS) == (LAT_COLUMNS, LNG_COLUMNS)
    assert column_index(["Lat", "LON"], None, LNG_COLUMNS) == 1
    assert column_index(["a"], None, LAT_COLUMNS) is None
