"""Write result rows as CSV, JSON Lines, GeoJSON or a readable table, streaming.

Each writer gets the input's header and, per row, the input values and the
result; it writes the row at once, so a run stopped half way has written every
row before the stop, and memory does not grow with the input.
"""

from __future__ import annotations

import csv
import json
import math
from typing import IO, Any

from ..exceptions import UsageError

FORMATS = ("csv", "jsonl", "geojson", "table")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


class Writer:
    """Base writer: ``write(values, result)`` per row, then ``close()``."""

    def __init__(self, stream: IO[str], header: list[str], fields: tuple[str, ...]) -> None:
        self.stream = stream
        self.header = header
        self.fields = fields

    def output(self, result: Any) -> dict[str, Any]:
        """The result's output columns, in order."""
        columns = result.columns()
        return {name: columns.get(name) for name in self.fields}

    def write(self, values: list[str], result: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stream.flush()


class CSVWriter(Writer):
    """The input's columns, then the output columns."""

    def __init__(self, stream: IO[str], header: list[str], fields: tuple[str, ...]) -> None:
        super().__init__(stream, header, fields)
        self._csv = csv.writer(stream, lineterminator="\n")
        self._csv.writerow([*header, *fields])

    def write(self, values: list[str], result: Any) -> None:
        self._csv.writerow([*values, *(_cell(v) for v in self.output(result).values())])


class JSONLWriter(Writer):
    """One JSON object per line: the input's columns, then the output columns."""

    def write(self, values: list[str], result: Any) -> None:
        record: dict[str, Any] = dict(zip(self.header, values, strict=False))
        record.update(self.output(result))
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")


class GeoJSONWriter(Writer):
    """A FeatureCollection of Point features (lng, lat) for ``ok`` rows."""

    def __init__(self, stream: IO[str], header: list[str], fields: tuple[str, ...]) -> None:
        super().__init__(stream, header, fields)
        self.stream.write('{"type": "FeatureCollection", "features": [\n')
        self._first = True

    def write(self, values: list[str], result: Any) -> None:
        output = self.output(result)
        lat, lng = output.get("lat"), output.get("lng")
        if result.status != "ok" or lat is None or lng is None:
            return
        properties: dict[str, Any] = dict(zip(self.header, values, strict=False))
        properties.update({k: v for k, v in output.items() if k not in ("lat", "lng")})
        feature = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lng, lat]},
            "properties": properties,
        }
        self.stream.write(("" if self._first else ",\n") + json.dumps(feature, ensure_ascii=False))
        self._first = False

    def close(self) -> None:
        self.stream.write("\n]}\n")
        super().close()


class TableWriter(Writer):
    """One readable line per row."""

    def write(self, values: list[str], result: Any) -> None:
        if result.status == "ok" and getattr(result, "lat", None) is not None:
            line = f"{result.formatted_address}, {result.lat:6.2f}, {result.lng:6.2f}"
        elif result.status == "ok":  # a fetched page
            extra = result.selected if result.selected is not None else result.title
            line = f"{result.url}: {result.status_code} {extra or ''}".rstrip()
        else:
            line = f"{result.query}: {result.status} {result.error or ''}".rstrip()
        self.stream.write(line + "\n")


_WRITERS: dict[str, type[Writer]] = {
    "csv": CSVWriter,
    "jsonl": JSONLWriter,
    "geojson": GeoJSONWriter,
    "table": TableWriter,
}


def make_writer(fmt: str, stream: IO[str], header: list[str], fields: tuple[str, ...]) -> Writer:
    """The writer for format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in _WRITERS:
        raise UsageError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return _WRITERS[fmt](stream, header, fields)
