"""Read a place (or URL) list: a CSV with a header, plain text, or standard input.

Rows are streamed: nothing holds the whole input.

**CSV or text.** A file is read as CSV when it is named ``.csv``/``.tsv``, when
``--column`` or ``--delimiter`` is given, or when its first line, split by the
detected delimiter, names a known column (``address``, ``place``, ...); anything
else is plain text, one query per line (so ``Paris, TX`` on a line of a text file
stays one place, and a ``.txt`` whose first line is ``name;address;zip`` is CSV).

**The delimiter** is one of ``,`` ``;`` tab ``|`` (European Excel writes ``;``, others
tab or ``|``, even in files named ``.csv``), chosen from the first
:data:`SNIFF_LINES` lines: each candidate splits them as CSV would (quotes
respected), and the one whose header has more than one field and the most rows
with as many fields as the header wins; ties go in the order above. ``.tsv`` files
are tab-separated; ``--delimiter`` forces one. A header that no candidate splits
means **one column**: records are read as CSV with ``,``, and one that reads as
several fields is one cell all the same, its text as it stands in the file
(``address`` then ``1 Main St, Springfield`` is one address, not a ragged row; a
record that is one quoted field is that field); CSV output uses ``,``.

**Malformed rows.** A row whose number of fields differs from the header's is never
shifted into the wrong columns: it is kept, in order, with its cells (padded with
empty cells when short, the first ones when long), and marked ``MalformedRow: line
N has F fields, the header has H`` with any extra cells listed (as JSON) in that
message, so nothing is lost; the row is ``invalid`` and nothing is asked for it.
Blank lines are not rows (as ``csv.DictReader``). A quoted field still open after
:data:`MAX_QUOTED_LINES` lines or :data:`MAX_FIELD_CHARS` characters is an input
error naming the line where the quote opened: an unterminated quote would
otherwise swallow the rest of the file into one cell.

**The URL column** (``geofetch fetch``, ``url_values``): without ``--column``, a
column named one of :data:`URL_COLUMNS` (``url``, ``link``, ``href``, ``website``,
``homepage``; case-insensitive, first in that order), else the first column most of
whose values in the first :data:`SNIFF_LINES` lines are http(s) URLs (a header
``name,page`` over URLs); else the error naming the columns. Such a file is read as
CSV whatever its name, unless a cell of its first line is itself a URL (then it is
a list of URLs with commas in them, not a header).

**Several columns** (``--column street --column city --column zip``): the query is
those cells joined by ``", "`` in the order given, blank cells skipped (``"Damrak 1,
Amsterdam"`` when the zip is empty); every input column is still written out.

**Header names.** Empty or repeated header names are kept as they are for CSV
output (written back unchanged); :func:`unique_names` gives the keys JSON output
uses (``place``, ``place_2``, ...).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

from ..exceptions import InputError, UsageError

#: Header names recognised as the place column, in order of preference.
PLACE_COLUMNS = ("address", "place", "location", "query", "city", "name", "url")
#: Header names recognised as the URL column of ``geofetch fetch``, in order of preference.
URL_COLUMNS = ("url", "link", "href", "website", "homepage")
#: The delimiters a CSV may use, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")
#: Lines read to choose the delimiter.
SNIFF_LINES = 50
#: A quoted field open longer than this (lines, or characters) is an input error.
MAX_QUOTED_LINES = 100
MAX_FIELD_CHARS = 1_000_000

csv.field_size_limit(sys.maxsize)


@dataclass
class Row:
    """One input row: its cells (as many as the header has) and, for a malformed
    row, the error that makes it ``invalid``."""

    cells: list[str]
    error: str | None = None


@dataclass
class Table:
    """An opened input: its header, the query column's index, and a row stream.

    ``columns``: the query's columns when several were named (their cells are
    joined, see :meth:`query`); else just ``(column,)``.
    """

    header: list[str]
    column: int
    rows: Iterator[Row]
    source: str
    is_csv: bool
    line_count: int | None = None
    delimiter: str = ","
    columns: tuple[int, ...] = ()

    def query(self, cells: list[str]) -> str:
        """The query of a row: its query column's cell, or the cells of several
        columns joined by ``", "`` with blank ones (spaces only) left out."""
        columns = self.columns or (self.column,)
        if len(columns) == 1:
            return cells[columns[0]] if columns[0] < len(cells) else ""
        parts = (cells[i].strip() if i < len(cells) else "" for i in columns)
        return ", ".join(part for part in parts if part)


def check_delimiter(delimiter: str | None) -> str | None:
    """``delimiter`` if it is one character usable as a CSV delimiter (``\\t`` may be
    written as two characters); raise :class:`UsageError` otherwise."""
    if delimiter is None:
        return None
    if delimiter in ("\\t", "tab", "TAB"):
        return "\t"
    if len(delimiter) != 1 or delimiter in ('"', "\r", "\n") or delimiter.isalnum():
        raise UsageError(f"a delimiter must be one character such as , ; | or \\t "
                         f"(not a quote, letter or digit), not {delimiter!r}")
    return delimiter


def open_table(
    path: str,
    *,
    column: str | Sequence[str] | None = None,
    known: tuple[str, ...] = PLACE_COLUMNS,
    text_header: str = "place",
    stdin: IO[str] | None = None,
    delimiter: str | None = None,
    url_values: bool = False,
) -> Table:
    """Open ``path`` (``-`` for standard input) and find its query column.

    ``column``: the query column's name, or several names whose cells make the query
    together (see :meth:`Table.query`). ``url_values``: with no ``known`` name in the
    header, the column is the first whose values are http(s) URLs (see the module
    docstring).

    Raises :class:`InputError` with a one-line message for a missing or unreadable
    file, undecodable bytes or a missing column (naming the columns that exist), and
    (while rows are read) for a quoted field that never closes;
    :class:`UsageError` for an empty list of columns or a column named twice.
    """
    delimiter = check_delimiter(delimiter)
    names = _column_names(column)
    if path == "-":
        stream = _stdin_text(stdin)
        source = "standard input"
        line_count = None
    else:
        stream, line_count = _open_file(path)
        source = path
    lines = _checked_lines(stream, source)
    sample: list[str] = []
    for line in lines:
        sample.append(line)
        if len(sample) >= SNIFF_LINES:
            break
    if not sample:
        return Table([text_header], 0, iter(()), source, False, 0)
    suffix = os.path.splitext(path)[1].lower()
    one_column = False
    if delimiter is None and suffix == ".tsv":
        delimiter = "\t"
    elif delimiter is None:
        found = _sniff(sample)
        one_column = found is None
        delimiter = found or ","
    header = next(csv.reader([sample[0]], delimiter=delimiter), [])
    url_column = None
    if url_values and not names and not one_column:
        url_column = _url_column(sample, delimiter)
    is_csv = (
        suffix in (".csv", ".tsv")
        or bool(names)
        or any(h.strip().lower().lstrip("\ufeff") in known for h in header)
        or url_column is not None
    )
    everything = _chain(sample, lines)
    if not is_csv:
        return Table([text_header], 0, _text_rows(everything), source, False, line_count)
    record, used = _first_record(everything, delimiter, source)
    header = [h.lstrip("\ufeff") for h in record]
    what = "URLs" if url_values else "places"
    wanted: list[str | None] = [*names] if names else [None]
    indexes = tuple(_find_column(header, name, known, source, url_column, what)
                    for name in wanted)
    for n, index in enumerate(indexes):
        if index in indexes[:n]:
            raise UsageError(f"columns {names[indexes.index(index)]!r} and {names[n]!r} are "
                             f"the same column of {source}")
    rows = _csv_rows(everything, delimiter, len(header), source, used, one_column=one_column)
    return Table(header, indexes[0], rows, source, True, line_count and line_count - 1,
                 delimiter, indexes)


def _column_names(column: str | Sequence[str] | None) -> list[str]:
    """``column`` as a list of names (empty: none given); a name given twice, or an
    empty list, is a UsageError."""
    if column is None:
        return []
    names = [column] if isinstance(column, str) else list(column)
    if not names:
        raise UsageError("no column named: give one or more column names")
    for n, name in enumerate(names):
        if name in names[:n]:
            raise UsageError(f"column {name!r} is named twice")
    return names


def sniff_delimiter(lines: list[str]) -> str:
    """The delimiter among :data:`DELIMITERS` that splits ``lines`` best (see the
    module docstring); ``,`` when none splits the header."""
    return _sniff(lines) or ","


def _sniff(lines: list[str]) -> str | None:
    """:func:`sniff_delimiter`, but None when no candidate splits the header."""
    best, best_score = None, (0, 0)
    for candidate in DELIMITERS:
        try:
            records = [r for r in csv.reader(lines, delimiter=candidate) if r]
        except csv.Error:
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        score = (sum(1 for r in records if len(r) == width), width)
        if score > best_score:
            best, best_score = candidate, score
    return best


def unique_names(header: list[str]) -> list[str]:
    """``header`` with repeated or empty names made unique, for JSON output, which
    cannot repeat a key: the first of each name keeps it, a repeat gets the first
    free ``NAME_2``, ``NAME_3``, ..., an empty name ``_POSITION``; a suffixed key is
    never a name the header itself uses (``a, a, a_2 -> a, a_3, a_2``)."""
    reserved = set(header)
    taken: set[str] = set()
    names = []
    for position, name in enumerate(header, 1):
        if name and name not in taken:
            candidate = name
        else:
            stem = name or f"_{position}"
            candidate, number = (f"{stem}_2", 3) if name else (stem, 2)
            while candidate in taken or candidate in reserved:
                candidate = f"{stem}_{number}"
                number += 1
        taken.add(candidate)
        names.append(candidate)
    return names


def _chain(first: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from first
    yield from rest


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
    line_count = None
    if raw.seekable():
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


def _text_rows(lines: Iterator[str]) -> Iterator[Row]:
    for line in lines:
        yield Row([line.rstrip("\r\n")])


class _Lines:
    """The physical lines given to ``csv.reader``, watched: a record still open after
    :data:`MAX_QUOTED_LINES` lines or :data:`MAX_FIELD_CHARS` characters stops the
    read with an :class:`InputError` naming the line it started on."""

    def __init__(self, lines: Iterator[str], source: str) -> None:
        self.lines = lines
        self.source = source
        self.number = 0  # physical lines handed out
        self.record_start = 1  # where the record being read started
        self.record_chars = 0
        self.record_lines: list[str] = []  # the text of the record being read
        self.exhausted = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            line = next(self.lines)
        except StopIteration:
            self.exhausted = True
            raise
        self.number += 1
        self.record_chars += len(line)
        self.record_lines.append(line)
        spanned = self.number - self.record_start + 1
        if spanned > MAX_QUOTED_LINES or self.record_chars > MAX_FIELD_CHARS:
            raise InputError(
                f"{self.source}: a quoted field opened on line {self.record_start} is still "
                f"open after {spanned} lines ({self.record_chars} characters); "
                "is a closing quote missing?")
        return line

    def record_done(self) -> None:
        """The record just read is whole: the next one starts on the next line.

        ``csv.reader`` (not strict) asks for a line past the end of the input only
        inside a quoted field, and then returns what it has as a record: a record
        that comes after the input ran out is a quote that never closed.
        """
        if self.exhausted:
            raise InputError(
                f"{self.source}: a quoted field opened on line {self.record_start} is still "
                f"open at the end of the input ({self.number - self.record_start + 1} "
                "lines later); is a closing quote missing?")
        self.record_start = self.number + 1
        self.record_chars = 0
        self.record_lines.clear()

    def record_text(self) -> str:
        """The record being read as it stands in the input, less its line end."""
        text = "".join(self.record_lines)
        if text.endswith("\r\n"):
            return text[:-2]
        return text[:-1] if text.endswith(("\n", "\r")) else text


def _first_record(lines: Iterator[str], delimiter: str, source: str) -> tuple[list[str], int]:
    """The header, the first record of ``lines`` (consumed from them), and how many
    physical lines it took."""
    watched = _Lines(lines, source)
    for record in csv.reader(watched, delimiter=delimiter):
        watched.record_done()
        return record, watched.number
    return [], watched.number


def _csv_rows(lines: Iterator[str], delimiter: str, width: int, source: str,
              header_lines: int, *, one_column: bool = False) -> Iterator[Row]:
    """The rows after the header; ``one_column``: a record of several fields is one
    cell, its text as it stands (see the module docstring)."""
    watched = _Lines(lines, source)
    watched.number = header_lines
    watched.record_start = header_lines + 1
    reader = csv.reader(watched, delimiter=delimiter)
    try:
        for record in reader:
            start = watched.record_start
            if one_column and len(record) > 1:
                record = [watched.record_text()]
            watched.record_done()
            if not record:
                continue  # a blank line is not a row (as csv.DictReader does)
            if len(record) == width:
                yield Row(record)
                continue
            fields = "field" if len(record) == 1 else "fields"
            error = f"MalformedRow: line {start} has {len(record)} {fields}, the header has {width}"
            if len(record) > width:
                extra = json.dumps(record[width:], ensure_ascii=False)
                error += f"; the extra cells: {extra}"
                record = record[:width]
            else:
                record = record + [""] * (width - len(record))
            yield Row(record, error)
    except csv.Error as exc:
        raise InputError(f"{source}: line {watched.record_start}: {exc}") from None


def is_web_url(text: str) -> bool:
    """True if ``text`` (spaces around it aside) is an http(s) URL with a host."""
    try:
        parts = urlsplit(text.strip())
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _url_column(sample: list[str], delimiter: str) -> int | None:
    """The first column most of whose non-blank values in ``sample`` (after its
    first line, the header) are http(s) URLs; None if none is, or if a cell of the
    first line is a URL (no header: a URL list)."""
    try:
        records = [r for r in csv.reader(sample, delimiter=delimiter) if r]
    except csv.Error:
        return None
    if len(records) < 2 or any(is_web_url(cell) for cell in records[0]):
        return None
    for index in range(len(records[0])):
        values = [r[index] for r in records[1:] if index < len(r) and r[index].strip()]
        if values and 2 * sum(1 for v in values if is_web_url(v)) > len(values):
            return index
    return None


def _find_column(header: list[str], column: str | None, known: tuple[str, ...],
                 source: str, by_values: int | None = None, what: str = "places") -> int:
    names = ", ".join(_printable(h) for h in header) or "(none)"
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
    if by_values is not None and by_values < len(header):
        return by_values
    if len(header) == 1:
        return 0
    raise InputError(
        f"cannot tell which column of {source} holds the {what}; columns are: {names}; "
        "choose one with --column"
    )


def _printable(name: str) -> str:
    """A header name for a one-line message: as it is, or quoted with escapes if it
    holds a line break or another control character."""
    return name if name.isprintable() else repr(name)
