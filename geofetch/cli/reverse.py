"""``geofetch reverse``: points in, addresses out.

The input is a CSV whose coordinate columns are found by name (:data:`LAT_COLUMNS`
and :data:`LNG_COLUMNS`, case-insensitive) or named with ``--lat-column`` and
``--lng-column`` (a cell may use a decimal comma: ``48,2``); or text with one
``lat,lng`` per line; or ``-``. ``--column NAME``
instead names one column holding ``lat,lng`` in each cell.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from ..exceptions import InputError, UsageError
from ..io.output import check_distinct
from ..io.readers import Table, check_delimiter, open_table
from ..models import REVERSE_COLUMNS, with_fields
from .argtypes import positive_float
from .common import (
    add_address_options,
    add_provider_options,
    add_run_options,
    cache_path,
    execute,
    read_table,
    run_options,
    setup_logging,
)
from .env import Environment
from .geocode import make_provider, warn_policy
from .identity import add_identity_options

#: Header names recognised as the latitude and the longitude, in order of preference.
LAT_COLUMNS = ("lat", "latitude")
LNG_COLUMNS = ("lng", "lon", "longitude")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reverse",
        help="reverse geocode a list of points",
        description="Reverse geocode every point (lat, lng in WGS 84 degrees) of INPUT; "
                    "write the address per row, in input order.",
    )
    add_run_options(parser, what="point (lat,lng)")
    parser.add_argument("--lat-column", metavar="NAME",
                        help="CSV column holding the latitude (default: lat or latitude)")
    parser.add_argument("--lng-column", metavar="NAME",
                        help="CSV column holding the longitude (default: lng, lon or "
                             "longitude)")
    parser.add_argument("--max-distance", type=positive_float, metavar="KM",
                        help="offline: the farthest the nearest city may be, in km "
                             "(default 50); farther is not_found")
    add_provider_options(parser)
    parser.add_argument("--base-url", metavar="URL",
                        help="send requests here (a self-hosted or local server)")
    add_address_options(parser)
    add_identity_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    from .. import reverse_job

    provider = make_provider(args, max_distance=args.max_distance)
    if not provider.supports_reverse:  # said before the input is read
        raise UsageError(f"the {provider.name} provider does not reverse geocode")
    setup_logging(args.verbose, env.stderr, provider.secrets())
    cache = cache_path(args, provider.cacheable)
    options = run_options(args, cache)  # every option checked before the input is opened
    if args.column and (args.lat_column or args.lng_column):
        raise UsageError("--column (one column of 'lat,lng') and --lat-column/--lng-column "
                         "exclude each other")
    # built (not started) first: a refusal by the service's policy (the public
    # Nominatim under dask) is then the one line, with no warning before it
    job = reverse_job((), provider=provider, keep_raw=False, options=options)
    warn_policy(provider, env)
    if args.column:
        table = read_table(args, env, known=LAT_COLUMNS, text_header="point", cache=cache)
        query_of = None
    else:
        table, query_of = open_points(args, env, cache)
    columns = with_fields(REVERSE_COLUMNS) if args.fields else REVERSE_COLUMNS
    return execute(job, table, columns, args, env, query_of=query_of)


def open_points(args: argparse.Namespace, env: Environment,
                cache: str | None) -> tuple[Table, Callable[[list[str]], str]]:
    """Open the input and say how a row's cells make its ``lat,lng`` query."""
    check_delimiter(args.output_delimiter)
    check_distinct(args.input, args.output, cache or args.cache, env.stdout)
    # a named column makes the input a CSV, as --column does for geocode
    named = args.lat_column or args.lng_column
    try:
        table = open_table(args.input, column=named, known=LAT_COLUMNS + LNG_COLUMNS,
                           text_header="point", stdin=env.stdin, delimiter=args.delimiter)
    except InputError as exc:
        if "choose one with --column" not in str(exc):
            raise
        raise InputError(str(exc).replace("the places", "the coordinates").replace(
            "choose one with --column", "name them with --lat-column and --lng-column")
        ) from None
    if not table.is_csv or (len(table.header) == 1 and not named):
        return table, lambda cells: cells[0] if cells else ""  # "lat,lng" per line
    lat = find_column(table, args.lat_column, LAT_COLUMNS, "latitude", "--lat-column")
    lng = find_column(table, args.lng_column, LNG_COLUMNS, "longitude", "--lng-column")
    if lat == lng:
        raise InputError(f"the latitude and the longitude are the same column "
                         f"({table.header[lat]!r}) of {table.source}")

    def query_of(cells: list[str]) -> str:
        return (f"{decimal_point(cells[lat]) if lat < len(cells) else ''},"
                f"{decimal_point(cells[lng]) if lng < len(cells) else ''}")

    return table, query_of


_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d+,\d+\s*")


def decimal_point(cell: str) -> str:
    """A coordinate cell written with a decimal comma (``48,2``, as European
    spreadsheets write it in ``;``-separated files) with a decimal point; any other
    cell as it is (a cell with a comma left makes the row ``invalid``)."""
    return cell.replace(",", ".") if _DECIMAL_COMMA.fullmatch(cell) else cell


def find_column(table: Table, name: str | None, known: tuple[str, ...], what: str,
                flag: str) -> int:
    """The index of column ``name`` (exact, else case-insensitive), or of the first of
    ``known`` in the header; an InputError naming the columns that exist otherwise."""
    header = table.header
    folded = [h.strip().lower() for h in header]
    if name is not None:
        if name in header:
            return header.index(name)
        if name.strip().lower() in folded:
            return folded.index(name.strip().lower())
        raise InputError(f"no column {name!r} in {table.source}; columns are: "
                         f"{', '.join(header) or '(none)'}")
    for candidate in known:
        if candidate in folded:
            return folded.index(candidate)
    raise InputError(f"no {what} column in {table.source} (looked for "
                     f"{', '.join(known)}); columns are: {', '.join(header) or '(none)'}; "
                     f"name it with {flag}")
