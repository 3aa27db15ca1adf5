"""Write result rows as CSV, JSON Lines, GeoJSON or a readable table, streaming.

Each writer gets the input's header and, per row, the input cells and the result;
it writes the row at once, so a run stopped half way has written every row before
the stop, and memory does not grow with the input.

Rules every format keeps:

* **Input cells are written back unchanged**, in their columns, in every format.
* **Output columns never overwrite input columns.** An output column whose name the
  input already uses is written as ``geofetch_NAME`` (``geofetch_status``, ...;
  ``geofetch_2_NAME`` if that is taken too). JSON formats, whose keys cannot repeat,
  give repeated or empty input header names a suffix (``place``, ``place_2``).
* **Cells from a remote answer are neutralised in CSV**: a formatted address, title,
  selected text, URL, content type or error message that starts with ``=``, ``+``,
  ``-``, ``@``, a tab or a carriage return gets a leading ``'``, so a spreadsheet
  shows it as text instead of running it as a formula (OWASP, "CSV Injection").
  ``raw_cells=True`` (``--raw-cells``) turns this off. Numbers are never touched.
* **The table format strips control characters** (terminal escape sequences) from
  every line it prints.
* **JSON is strict**: no ``NaN`` or ``Infinity`` is ever written.
* A failed write (a full disk, ``/dev/full``) raises
  :class:`~geofetch.exceptions.OutputError` naming the output and the OS error; a
  pipe whose reader went away (``| head``) raises ``BrokenPipeError`` as it is,
  which the command line ends quietly with status 0.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import IO, Any

from ..exceptions import OutputError, UsageError
from .readers import unique_names

FORMATS = ("csv", "jsonl", "geojson", "table")
#: First characters that make a spreadsheet read a cell as a formula (OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: C0 and C1 control characters but tab; ESC starts terminal escape sequences.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def neutralise(value: str) -> str:
    """``value`` with a leading ``'`` if a spreadsheet would read it as a formula."""
    return "'" + value if value.startswith(FORMULA_START) else value


def output_names(header: list[str], fields: tuple[str, ...]) -> list[str]:
    """The names the output columns are written under: ``geofetch_NAME`` where the
    input already has ``NAME``."""
    taken = set(header)
    names = []
    for field in fields:
        name, number = field, 1
        while name in taken:
            name = f"geofetch_{field}" if number == 1 else f"geofetch_{number}_{field}"
            number += 1
        taken.add(name)
        names.append(name)
    return names


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


class Writer:
    """Base writer: ``write(cells, result)`` per row, then ``close()``.

    ``name`` is how messages call the output (a path, or "standard output").
    """

    def __init__(self, stream: IO[str], header: list[str], fields: tuple[str, ...], *,
                 name: str = "the output", delimiter: str = ",",
                 raw_cells: bool = False) -> None:
        self.stream = stream
        self.header = header
        self.fields = fields
        self.names = output_names(header, fields)
        self.name = name
        self.delimiter = delimiter
        self.raw_cells = raw_cells
        self._opened = False

    def output(self, result: Any) -> dict[str, Any]:
        """The result's output columns, in order, under their output names (a float
        that is not finite, which only a stale cache could still hold, as None)."""
        columns = result.columns()
        return {name: _finite(columns.get(field))
                for name, field in zip(self.names, self.fields, strict=True)}

    def write(self, values: list[str], result: Any) -> None:
        """Write one row (the input's cells, the result); raise OutputError if it fails."""
        try:
            if not self._opened:
                self._opened = True
                self._open()
            self._write(values, result)
        except BrokenPipeError:
            raise  # the reader went away (| head): not a write error
        except OSError as exc:
            raise self._failed(exc) from None

    def _open(self) -> None:
        """Whatever the format writes first (a header), written with the first row or
        at the close: a run that fails before its first row writes nothing."""

    def _write(self, values: list[str], result: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the output and flush it; raise OutputError if that fails."""
        try:
            if not self._opened:
                self._opened = True
                self._open()
            self._close()
            self.stream.flush()
        except BrokenPipeError:
            raise  # the reader went away (| head): not a write error
        except OSError as exc:
            raise self._failed(exc) from None

    def _close(self) -> None:
        """Whatever the format writes last."""

    def _failed(self, exc: OSError) -> OutputError:
        return OutputError(f"cannot write {self.name}: {exc.strerror or exc}")


class CSVWriter(Writer):
    """The input's columns, then the output columns, in the output delimiter.

    Rows end in ``\n``; a cell holding a line break of either kind (``\r`` too) is
    quoted. (``csv.writer`` quotes only the characters of its own line terminator,
    so a lone ``\r`` in a cell would be written bare and split the row when read
    back: each row is formatted with a ``\r\n`` terminator, which is then
    replaced by ``\n``.)
    """

    def __init__(self, stream: IO[str], header: list[str], fields: tuple[str, ...],
                 **options: Any) -> None:
        super().__init__(stream, header, fields, **options)
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, delimiter=self.delimiter, lineterminator="\r\n")

    def _open(self) -> None:
        self._row([*self.header, *self.names])

    def _row(self, cells: list[str]) -> None:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._csv.writerow(cells)
        self.stream.write(self._buffer.getvalue()[:-2] + "\n")

    def _write(self, values: list[str], result: Any) -> None:
        cells = [neutralise(v) if isinstance(v, str) and not self.raw_cells else _cell(v)
                 for v in self.output(result).values()]
        self._row([*values, *cells])


class JSONLWriter(Writer):
    """One JSON object per line: the input's columns, then the output columns."""

    def __init__(self, stream: IO[str], header: list[str], fields: tuple[str, ...],
                 **options: Any) -> None:
        super().__init__(stream, header, fields, **options)
        self.keys = unique_names(header)
        self.names = output_names(self.keys, fields)

    def _write(self, values: list[str], result: Any) -> None:
        record: dict[str, Any] = dict(zip(self.keys, values, strict=False))
        record.update(self.output(result))
        self.stream.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")


class GeoJSONWriter(Writer):
    """A FeatureCollection of Point features (lng, lat) for ``ok`` rows; the point is
    the result's ``lat``/``lng`` columns (for a reverse lookup, which writes none, the
    point asked)."""

    def __init__(self, stream: IO[str], header: list[str], fields: tuple[str, ...],
                 **options: Any) -> None:
        super().__init__(stream, header, fields, **options)
        self.keys = unique_names(header)
        self.names = output_names(self.keys, fields)
        self._lat, self._lng = (self.names[fields.index(f)] if f in fields else f
                                for f in ("lat", "lng"))
        self._first = True

    def _open(self) -> None:
        self.stream.write('{"type": "FeatureCollection", "features": [\n')

    def _write(self, values: list[str], result: Any) -> None:
        output = self.output(result)
        if "lat" in self.fields:
            lat, lng = output.get(self._lat), output.get(self._lng)
        else:
            columns = result.columns()
            lat, lng = _finite(columns.get("lat")), _finite(columns.get("lng"))
        if result.status != "ok" or lat is None or lng is None:
            return
        properties: dict[str, Any] = dict(zip(self.keys, values, strict=False))
        properties.update({k: v for k, v in output.items() if k not in (self._lat, self._lng)})
        feature = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lng, lat]},
            "properties": properties,
        }
        text = json.dumps(feature, ensure_ascii=False, allow_nan=False)
        self.stream.write(("" if self._first else ",\n") + text)
        self._first = False

    def _close(self) -> None:
        self.stream.write("\n]}\n")


class TableWriter(Writer):
    """One readable line per row, control characters stripped."""

    def _write(self, values: list[str], result: Any) -> None:
        if result.status == "ok" and getattr(result, "lat", None) is not None:
            line = f"{result.formatted_address}, {result.lat:6.2f}, {result.lng:6.2f}"
        elif result.status == "ok":  # a fetched page
            extra = result.selected if result.selected is not None else result.title
            line = f"{result.url}: {result.status_code} {extra or ''}".rstrip()
        else:
            line = f"{result.query}: {result.status} {result.error or ''}".rstrip()
        self.stream.write(_CONTROL.sub("", line) + "\n")


_WRITERS: dict[str, type[Writer]] = {
    "csv": CSVWriter,
    "jsonl": JSONLWriter,
    "geojson": GeoJSONWriter,
    "table": TableWriter,
}


def make_writer(fmt: str, stream: IO[str], header: list[str], fields: tuple[str, ...], *,
                name: str = "the output", delimiter: str = ",",
                raw_cells: bool = False) -> Writer:
    """The writer for format ``fmt`` (one of :data:`FORMATS`); ``delimiter`` and
    ``raw_cells`` matter to CSV only. Raises UsageError for an unknown format and
    OutputError if the output cannot be written."""
    if fmt not in _WRITERS:
        raise UsageError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return _WRITERS[fmt](stream, header, fields, name=name, delimiter=delimiter,
                         raw_cells=raw_cells)
