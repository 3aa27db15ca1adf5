"""Read a place (or URL) list: a CSV with a header, plain text, or standard input.

A CSV is recognised by its ``.csv``/``.tsv`` name, by ``--column``, or by a first
line that names a known column; anything else is plain text, one query per line
(so ``Paris, TX`` on a line of a text file stays one place). Rows are streamed:
nothing holds the whole input.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from ..exceptions import InputError

#: Header names recognised as the place column, in order of preference.
PLACE_COLUMNS = ("address", "place", "location", "query", "city", "name", "url")
URL_COLUMNS = ("url", "link", "href", "address")

csv.field_size_limit(sys.maxsize)


@dataclass
class Table:
    """An opened input: its header, the query column's index, and a row stream."""

    header: list[str]
    column: int
    rows: Iterator[list[str]]
    source: str
    is_csv: bool
    line_count: int | None = None


def open_table(
    path: str,
    *,
    column: str | None = None,
    known: tuple[str, ...] = PLACE_COLUMNS,
    text_header: str = "place",
    stdin: IO[str] | None = None,
) -> Table:
    """Open ``path`` (``-`` for standard input) and find its query column.

    Raises :class:`InputError` with a one-line message for a missing or unreadable
    file, undecodable bytes or a missing column (naming the columns that exist).
    """
    if path == "-":
        stream = _stdin_text(stdin)
        source = "standard input"
        line_count = None
    else:
        stream, line_count = _open_file(path)
        source = path
    lines = _checked_lines(stream, source)
    first = next(lines, None)
    if first is None:
        return Table([text_header], 0, iter(()), source, False, 0)
    suffix = os.path.splitext(path)[1].lower()
    delimiter = "\t" if suffix == ".tsv" else ","
    header = next(csv.reader([first], delimiter=delimiter), [])
    is_csv = (
        suffix in (".csv", ".tsv")
        or column is not None
        or any(h.strip().lower() in known for h in header)
    )
    if not is_csv:
        return Table([text_header], 0, _text_rows(first, lines), source, False, line_count)
    header = [h.lstrip("\ufeff") for h in header]
    index = _find_column(header, column, known, source)
    rows = _csv_rows(lines, delimiter, len(header))
    return Table(header, index, rows, source, True, line_count and line_count - 1)


def _stdin_text(stdin: IO[str] | None) -> IO[str]:
    stdin = stdin if stdin is not None else sys.stdin
    buffer = getattr(stdin, "buffer", None)
    if buffer is not None:
        return io.TextIOWrapper(buffer, encoding="utf-8-sig", errors="strict", newline="")
    return stdin


def _open_file(path: str) -> tuple[IO[str], int | None]:
    try:
        raw = open(path, "rb")  # noqa: SIM115 - streamed for the whole run
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"is a directory, not a file: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    line_count = _count_lines_and_check(raw, path)
    raw.seek(0)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline=""), line_count


def _count_lines_and_check(raw: IO[bytes], path: str) -> int:
    """One fast pass: count lines (for the progress bar) and find bad bytes up front,
    so a bad file fails before any row is written."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    count = 0
    offset = 0
    last = b""
    while True:
        chunk = raw.read(1 << 20)
        if not chunk:
            break
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{path} is not UTF-8 text (bad byte at offset {offset + exc.start}); "
                "save it as UTF-8"
            ) from None
        count += chunk.count(b"\n")
        offset += len(chunk)
        last = chunk[-1:]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text (truncated character at the end)") from None
    return count + (1 if last and last != b"\n" else 0)


def _checked_lines(stream: IO[str], source: str) -> Iterator[str]:
    try:
        yield from stream
    except UnicodeDecodeError as exc:
        raise InputError(f"{source} is not UTF-8 text ({exc.reason}); save it as UTF-8") from None


def _text_rows(first: str, lines: Iterator[str]) -> Iterator[list[str]]:
    yield [first.rstrip("\r\n")]
    for line in lines:
        yield [line.rstrip("\r\n")]


def _csv_rows(lines: Iterator[str], delimiter: str, width: int) -> Iterator[list[str]]:
    for row in csv.reader(lines, delimiter=delimiter):
        if not row:
            continue  # a blank line is not a row (as csv.DictReader does)
        if len(row) < width:
            row.extend([""] * (width - len(row)))
        yield row


def _find_column(header: list[str], column: str | None, known: tuple[str, ...],
                 source: str) -> int:
    names = ", ".join(header) or "(none)"
    if column is not None:
        if column in header:
            return header.index(column)
        folded = [h.strip().lower() for h in header]
        if column.strip().lower() in folded:
            return folded.index(column.strip().lower())
        raise InputError(f"no column {column!r} in {source}; columns are: {names}")
    folded = [h.strip().lower() for h in header]
    for name in known:
        if name in folded:
            return folded.index(name)
    if len(header) == 1:
        return 0
    raise InputError(
        f"cannot tell which column of {source} holds the places; columns are: {names}; "
        "choose one with --column"
    )
