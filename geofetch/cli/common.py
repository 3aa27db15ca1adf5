"""What ``geocode`` and ``fetch`` share: pool/rate/retry/format flags, and running a
job from an input table to a writer with progress, signals and the summary.

Only light modules are imported here, so that building the parser (for any
subcommand, ``serve`` included) loads no HTTP or HTML library; the work itself is
reached through geofetch's public API inside :func:`execute`'s callers.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from ..exceptions import InputError, OutputError, UsageError
from ..io.output import Output, check_distinct
from ..io.readers import Table, check_delimiter, open_table
from ..io.writers import FORMATS, make_writer
from ..models import ADDRESS_FIELDS, Rejected
from ..options import EXECUTORS, RunOptions
from ..providers import GEOPY_PREFIX
from ..redact import RedactingFilter
from .argtypes import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    provider_name,
    provider_option,
)
from .cluster import add_cluster_options, cluster_options
from .env import Environment, ExitStatus, Terminated

if TYPE_CHECKING:
    from .. import Job


def add_run_options(parser: argparse.ArgumentParser, *, what: str) -> None:
    """The input, output, pool, rate, retry and format flags."""
    parser.add_argument("input", metavar="INPUT",
                        help=f"CSV with a header, text file with one {what} per line, or -")
    parser.add_argument("-o", "--output", metavar="OUTPUT", help="output file (default: stdout)")
    parser.add_argument("--column", metavar="NAME", action="append",
                        help=f"CSV column holding the {what}; repeat it for an address "
                             "spread over columns (their cells joined by ', ')"
                             if what == "place" else f"CSV column holding the {what}")
    parser.add_argument("--executor", choices=EXECUTORS, default="thread",
                        help="thread (default), process, serial or dask")
    parser.add_argument("--workers", type=positive_int, metavar="N",
                        help="pool size (default: 8 threads, or one process per CPU)")
    parser.add_argument("--threads", type=positive_int, default=1, metavar="N",
                        help="threads in each worker process (--executor process or "
                             "dask; default 1)")
    add_cluster_options(parser)
    parser.add_argument("--rate", type=non_negative_float, metavar="PER_SECOND",
                        help="requests per second for the whole run (0: no limit)")
    parser.add_argument("--format", choices=FORMATS,
                        help="csv (default; table on a terminal), jsonl, geojson or table")
    parser.add_argument("--retries", type=non_negative_int, default=3, metavar="N",
                        help="more attempts for transient errors (default 3)")
    parser.add_argument("--timeout", type=positive_float, default=10.0, metavar="SECONDS",
                        help="seconds one request may take: connecting, headers and body "
                             "together (default 10)")
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--cache", metavar="PATH", help="SQLite cache file")
    cache.add_argument("--no-cache", action="store_true", help="neither read nor write a cache")
    parser.add_argument("--max-requests", type=non_negative_int, metavar="N",
                        help="stop after N HTTP requests, retries included")
    parser.add_argument("--max-throttled", type=positive_int, default=20, metavar="N",
                        help="stop after N rate-limit answers in a row (default 20); each "
                             "one halves the run's rate")
    parser.add_argument("--max-wait", type=non_negative_float, default=300.0,
                        metavar="SECONDS",
                        help="the longest Retry-After honoured; a longer one stops the run "
                             "(default 300)")
    parser.add_argument("--delimiter", metavar="C",
                        help="the input's CSV delimiter (default: detected among , ; tab |)")
    parser.add_argument("--output-delimiter", metavar="C",
                        help="CSV output delimiter (default: the input's)")
    parser.add_argument("--raw-cells", action="store_true",
                        help="write cells from remote answers as they came, even those a "
                             "spreadsheet would run as formulas (= + - @)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log to stderr (-vv for debug); tracebacks for internal errors")


def countries_arg(text: str) -> tuple[str, ...]:
    """``--country``: ISO 3166-1 alpha-2 codes separated by commas (``DE,AT``)."""
    from ..providers.base import check_countries

    try:
        countries = check_countries(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("country: ")) from None
    assert countries is not None  # a string always holds a code, or is refused
    return countries


def language_arg(text: str) -> str:
    """``--language``: a BCP 47 language tag (``de``, ``pt-BR``)."""
    from ..providers.base import check_language

    try:
        language = check_language(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("language: ")) from None
    assert language is not None
    return language


def add_address_options(parser: argparse.ArgumentParser) -> None:
    """``--fields``, ``--country`` and ``--language`` (geocode and reverse)."""
    parser.add_argument("--fields", action="store_true",
                        help="add the address fields: " + ", ".join(ADDRESS_FIELDS))
    parser.add_argument("--country", type=countries_arg, metavar="CC[,CC...]",
                        help="answers only in these countries (ISO 3166-1 alpha-2 codes)")
    parser.add_argument("--language", type=language_arg, metavar="LANG",
                        help="answers in this language, such as de or pt-BR (google, "
                             "nominatim)")


def provider_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The provider options ``--country`` and ``--language`` give (None: not given)."""
    return {"countries": args.country, "language": args.language}


def add_provider_options(parser: argparse.ArgumentParser) -> None:
    """``--provider`` (offline, google, nominatim or geopy:NAME) and the repeatable
    ``--provider-option KEY=VALUE`` of a geopy geocoder (geocode and reverse)."""
    parser.add_argument("--provider", type=provider_name, default="offline", metavar="NAME",
                        help="offline (default, no key, no network), google, nominatim, or "
                             "geopy:NAME, any geocoder of geopy (the geopy extra): "
                             "geopy:photon, geopy:pelias, geopy:arcgis, ...")
    parser.add_argument("--provider-option", type=provider_option, action="append",
                        metavar="KEY=VALUE",
                        help="an option of a geopy:NAME geocoder (domain=127.0.0.1:2322, "
                             "scheme=http); repeat it for more; its key comes from "
                             "GEOFETCH_API_KEY, never from here")


def geopy_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The provider options ``--provider-option`` gives (``{}``: none); a usage error
    for a provider that is not geopy's or an option given twice."""
    given = getattr(args, "provider_option", None)
    if not given:
        return {}
    if not str(args.provider).startswith(GEOPY_PREFIX):
        raise UsageError(f"--provider-option is for {GEOPY_PREFIX}NAME providers, "
                         f"not {args.provider}")
    options: dict[str, str] = {}
    for name, value in given:
        if name in options:
            raise UsageError(f"--provider-option {name} is given twice")
        options[name] = value
    return {"options": options}


def run_options(args: argparse.Namespace, cache: Any = None) -> RunOptions:
    """The run's options from the flags (the progress bar is the CLI's own)."""
    return RunOptions(executor=args.executor, workers=args.workers, threads=args.threads,
                      rate=args.rate, retries=args.retries, timeout=args.timeout, cache=cache,
                      max_requests=args.max_requests, max_throttled=args.max_throttled,
                      max_wait=args.max_wait, **cluster_options(args))


def cache_path(args: argparse.Namespace, cacheable: bool) -> str | None:
    """The SQLite cache file the run uses, per --cache / --no-cache and the output's
    location (it is opened when the run starts, never before)."""
    if not cacheable or args.no_cache:
        return None
    from ..cache import default_cache_path

    return str(args.cache or default_cache_path(args.output))


def setup_logging(verbosity: int, stream: IO[str], secrets: tuple[str, ...]) -> None:
    """-v: INFO, -vv: DEBUG, to stderr, with every secret masked."""
    if not verbosity:
        return
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)


@contextlib.contextmanager
def signals_to(job: Job[Any]) -> Iterator[None]:
    """While the job runs, SIGINT and SIGTERM ask it to stop, drain and flush."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        received.append(signum)
        if len(received) > 1:
            raise exc  # a second signal: stop now, even if blocked reading input
        job.interrupt(exc)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def read_table(args: argparse.Namespace, env: Environment, *, known: tuple[str, ...],
               text_header: str, cache: str | None, url_values: bool = False) -> Table:
    """Check the paths and delimiters, then open the input (nothing is written yet).

    A ``--cache`` file is checked even when the provider uses no cache: naming the
    output or the input as the cache is a mistake either way. ``url_values``: without
    ``--column`` and a known name, the first column whose values are http(s) URLs."""
    check_delimiter(args.output_delimiter)
    check_distinct(args.input, args.output, cache or getattr(args, "cache", None), env.stdout)
    if url_values and args.column and len(args.column) > 1:
        raise UsageError(f"--column names the one URL column; it was given "
                         f"{len(args.column)} times")
    return open_table(args.input, column=args.column, known=known, text_header=text_header,
                      stdin=env.stdin, delimiter=args.delimiter, url_values=url_values)


def execute(
    job: Job[Any],
    table: Table,
    fields: tuple[str, ...],
    args: argparse.Namespace,
    env: Environment,
    query_of: Callable[[list[str]], str] | None = None,
) -> int:
    """Run ``job`` over ``table``, writing each row in order; return the exit status.

    The output is opened first: a run that cannot write fails before the job makes
    anything (gate, cache, workers). ``query_of`` makes a row's query from its cells
    (default: the table's query column). Rows written before Ctrl-C, an abort or a cache
    error are kept (renamed into place); an output that fails to write, or a run
    whose input turns out unreadable half way (a quote that never closes, bad bytes
    on standard input), is discarded and a regular file's previous content stays.
    """
    output = Output(args.output, env.stdout)
    fmt = args.format or ("csv" if not output.is_stdout or not env.stdout_isatty else "table")
    rows: deque[list[str]] = deque()

    def queries() -> Iterator[str]:
        for row in table.rows:
            rows.append(row.cells)
            if query_of is not None:
                query = query_of(row.cells)
            else:
                query = table.query(row.cells)
            yield Rejected(query, row.error) if row.error else query

    job.queries = queries()
    status: int = ExitStatus.OK
    bar = None
    delimiter = check_delimiter(args.output_delimiter) or table.delimiter
    writer = None
    try:
        writer = make_writer(fmt, output.stream, table.header, fields, name=output.name,
                             delimiter=delimiter, raw_cells=args.raw_cells)
        bar = _progress_bar(args, env, table.line_count)
        try:
            with job, signals_to(job):
                for result in job:
                    writer.write(rows.popleft(), result)
                    if bar is not None:
                        bar.update(1)
        except Terminated:
            status = ExitStatus.TERMINATED
        except KeyboardInterrupt:
            status = ExitStatus.INTERRUPTED
        finally:
            if bar is not None:
                bar.close()
        writer.close()
    except (OutputError, InputError):
        output.discard()  # a run that cannot read on or write: the old file stays
        raise
    except UsageError:
        if job.counts.total() == 0:  # the run could not start (its gate, its cluster):
            output.discard()  # no header, and the old file stays
            raise
        _keep_rows_done(writer, output)
        raise
    except BaseException:
        _keep_rows_done(writer, output)
        raise
    output.commit()
    env.stderr.write(job.summary() + "\n")
    if status:
        env.stderr.write("geofetch: interrupted; rows done so far are written\n")
        return status
    if job.aborted is not None:
        env.stderr.write(f"geofetch: run aborted: {job.aborted}\n")
        return ExitStatus.ABORTED
    return ExitStatus.FAILED_ROWS if job.counts["failed"] else ExitStatus.OK


def _keep_rows_done(writer: Any, output: Any) -> None:
    """Close the document (the header, the GeoJSON's end) and keep the rows done so
    far: they are whole."""
    with contextlib.suppress(OutputError):
        if writer is not None:
            writer.close()
        output.commit()


def _progress_bar(args: argparse.Namespace, env: Environment, total: int | None) -> Any:
    if args.no_progress or not env.stderr_isatty:
        return None
    from tqdm import tqdm

    return tqdm(total=total, file=env.stderr, unit="row", dynamic_ncols=True, leave=False)
