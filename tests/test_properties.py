"""Issue 13, property: whatever CSV comes in, every row comes out once, in order,
with its cells unchanged, in every output format.

Random CSVs: a delimiter among , ; tab |, minimal or full quoting, cells holding
delimiters, quotes and line breaks of both kinds, blank lines, short and long rows,
``\\n`` or ``\\r\\n`` line ends, a BOM or not. The documented rules say what
"unchanged" means for the odd ones:

* a blank line is not a row (as ``csv.DictReader``);
* a short row is padded with empty cells and is ``invalid``;
* a long row keeps its first cells (as many as the header has) and lists the
  extra ones, as JSON, in its ``MalformedRow`` error, naming the line it starts on;
* a header that no delimiter splits is one column: records are read with ``,``,
  and one of several fields is one cell, its text as it stands in the file.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geofetch.io.readers import SNIFF_LINES, unique_names

from .rowtools import strict_json, strict_jsonl

DELIMITERS = [",", ";", "\t", "|"]
OUTPUT = ["lat", "lng", "formatted_address", "status", "error"]
# letters, a place name or two, spaces, every delimiter, quotes, both line breaks,
# formula starters, accents and CJK
ALPHABET = st.sampled_from(list("abcxyz AZ09,;\t|\"'\r\n=+-@éß大阪"))
CELL = st.one_of(
    st.sampled_from(["", "Berlin", "Paris, TX", "Rome;Italy", " Lyon ", '"Graz"', "=1+1"]),
    st.text(ALPHABET, max_size=12),
)
NAME = st.one_of(st.text(st.sampled_from(list("abcdefxyz_")), min_size=1, max_size=6),
                 st.sampled_from(["place", "status", "lat", "error", "x"]))


@dataclass
class Example:
    text: str
    delimiter: str  # the one written with (the one CSV output uses, but one column)
    quoting: int
    header: list[str]
    rows: list[list[str] | None]  # None: a blank line


def _line_count(text: str) -> int:
    return len(io.StringIO(text, newline="").readlines())


def _format_row(cells: list[str], delimiter: str, quoting: int) -> str:
    # csv.writer quotes only its own terminator's characters: write with \r\n so a
    # lone \r in a cell is quoted too, then drop the terminator
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator="\r\n").writerow(
        cells)
    return buffer.getvalue()[:-2]


@st.composite
def examples(draw: st.DrawFn) -> Example:
    delimiter = draw(st.sampled_from(DELIMITERS))
    width = draw(st.integers(1, 4))
    others = draw(st.lists(NAME, min_size=width - 1, max_size=width - 1))
    position = draw(st.integers(0, width - 1))
    header = [*others[:position], "place", *others[position:]]
    kinds = st.sampled_from(["whole"] * 4 + ["short", "long", "blank"])
    rows: list[list[str] | None] = []
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(kinds)
        if kind == "blank":
            rows.append(None)
            continue
        if kind == "short" and width > 1:
            size = draw(st.integers(1, width - 1))
        elif kind == "long":
            size = draw(st.integers(width + 1, width + 3))
        else:
            size = width
        rows.append(draw(st.lists(CELL, min_size=size, max_size=size)))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [_format_row(header, delimiter, quoting)]
    lines += ["" if row is None else _format_row(row, delimiter, quoting) for row in rows]
    text = end.join(lines) + (end if draw(st.booleans()) or not rows else "")
    if draw(st.booleans()):
        text = "\ufeff" + text
    return Example(text, delimiter, quoting, header, rows)


def _records(example: Example) -> list[tuple[int, list[str]]]:
    """The data records of the example's text as the documented rules read them,
    each with the physical line it starts on (blank lines skipped; in a one-column
    file, a record of several fields is its own text)."""
    lines = iter(io.StringIO(example.text.removeprefix("\ufeff"), newline="").readlines())
    taken: list[str] = []

    def counted():
        for line in lines:
            taken.append(line)
            yield line

    one_column = len(example.header) == 1
    reader = csv.reader(counted(), delimiter="," if one_column else example.delimiter)
    records, start, used = [], 1, 0
    for record in reader:
        if one_column and len(record) > 1:
            text = "".join(taken[used:])
            record = [text[:-2] if text.endswith("\r\n") else
                      text[:-1] if text.endswith(("\r", "\n")) else text]
        if record:
            records.append((start, record))
        used = len(taken)
        start = used + 1
    return records[1:]  # the header's record is not a row


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@SETTINGS
@given(example=examples(), suffix=st.sampled_from([".csv", ".txt"]))
def test_every_row_once_in_order_with_its_cells(cli, workdir, example, suffix):
    if _line_count(example.text) >= SNIFF_LINES:
        return  # one-column detection looks at the first lines only
    if len(example.header) == 1 and example.delimiter != "," and any(
            len(row) > 1 and any("\r" in cell or "\n" in cell for cell in row)
            for row in example.rows if row is not None):
        # Not CSV of one column: rows of several cells, written with ; tab or |,
        # quoting line breaks. A one-column file is read with "," (no delimiter
        # shows in it), so such a quote may open mid-cell and the break end the
        # record there, or the quote close never: an input error, not a silent loss.
        return
    source = workdir / f"input{suffix}"
    source.write_bytes(example.text.encode("utf-8"))
    width = len(example.header)
    read = _records(example)
    starts, records = [start for start, _ in read], [record for _, record in read]
    written_rows = [row for row in example.rows if row is not None]
    if width > 1 or all(len(row) == 1 for row in written_rows):
        # what was written is what the rules read, row for row
        assert records == written_rows
    elif example.delimiter == ",":
        # a one-column file with rows of several cells: each is one cell, as written
        assert records == [row if len(row) == 1 else
                           [_format_row(row, ",", example.quoting)] for row in written_rows]
    # else the rows of several cells were written with another delimiter than the
    # one a one-column file is read with: the oracle above says what is read
    cells = [(r + [""] * width)[:width] for r in records]
    errors: list[str | None] = []
    for record, start in zip(records, starts, strict=True):
        if len(record) == width:
            errors.append(None)
            continue
        fields = "field" if len(record) == 1 else "fields"
        error = f"MalformedRow: line {start} has {len(record)} {fields}, the header has {width}"
        if len(record) > width:
            error += f"; the extra cells: {json.dumps(record[width:], ensure_ascii=False)}"
        errors.append(error)
    common = ["geocode", source, "--executor", "serial", "--no-progress"]

    # CSV, in the input's delimiter (a one-column file: ",")
    result = cli(common)
    assert result.status == 0, result.stderr
    out_delimiter = example.delimiter if width > 1 else ","
    written = list(csv.reader(io.StringIO(result.stdout, newline=""), delimiter=out_delimiter))
    names = ["geofetch_" + n if n in example.header else n for n in OUTPUT]
    assert written[0] == [*example.header, *names]
    assert len(written) - 1 == len(records)
    statuses = []
    for row, expected, error in zip(written[1:], cells, errors, strict=True):
        assert len(row) == width + len(OUTPUT)
        assert row[:width] == expected
        status, message = row[width + 3], row[width + 4]
        statuses.append(status)
        if error is not None:
            assert (status, message) == ("invalid", error)
        else:
            assert status in ("ok", "not_found", "invalid")
            assert status != "invalid" or message.startswith("InvalidQuery: ")
    counts = {s: statuses.count(s) for s in ("ok", "not_found", "invalid", "failed")}
    assert result.stderr.startswith(
        f"{len(records)} rows: {counts['ok']} ok, {counts['not_found']} not_found, "
        f"{counts['invalid']} invalid, {counts['failed']} failed in ")

    # JSON Lines: the same cells, under unique keys, in order
    result = cli([*common, "--format", "jsonl"])
    assert result.status == 0
    records_out = strict_jsonl(result.stdout)
    keys = unique_names(example.header)
    assert len(records_out) == len(records)
    for record, expected, error, status in zip(records_out, cells, errors, statuses,
                                               strict=True):
        assert list(record)[:width] == keys
        values = list(record.values())
        assert values[:width] == expected
        assert values[width + 3] == status
        if error is not None:
            assert values[width + 4] == error

    # GeoJSON: the ok rows, in order, with their cells
    result = cli([*common, "--format", "geojson"])
    assert result.status == 0
    features = strict_json(result.stdout)["features"]
    ok_cells = [c for c, s in zip(cells, statuses, strict=True) if s == "ok"]
    assert len(features) == len(ok_cells)
    for feature, expected in zip(features, ok_cells, strict=True):
        assert list(feature["properties"].values())[:width] == expected

    # table: one line per row
    result = cli([*common, "--format", "table"])
    assert result.status == 0
    assert len(result.stdout.split("\n")) - 1 == len(records)


@settings(derandomize=True, database=None)
@given(st.lists(st.sampled_from(["a", "a_2", "a_3", "", "_2", "b", "_1"]), max_size=8))
def test_unique_names(header):
    keys = unique_names(header)
    assert len(keys) == len(header) == len(set(keys))
    for position, name in enumerate(header):
        if name and name not in header[:position]:
            assert keys[position] == name  # the first of each name keeps it
