"""``geofetch geocode``: a place list in, coordinates out."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..core.job import Job
from ..io.readers import PLACE_COLUMNS, open_table
from ..models import GEOCODE_COLUMNS
from ..providers import PROVIDERS, get_provider
from ..tasks.geocode import GeocodeWork
from .common import add_run_options, execute, open_cache_for, setup_logging
from .env import Environment


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "geocode",
        help="geocode a list of places",
        description="Geocode every place of INPUT; write lat/lng per row, in input order.",
    )
    add_run_options(parser, what="place")
    parser.add_argument("--provider", choices=tuple(PROVIDERS), default="offline",
                        help="offline (default, no key, no network), google or nominatim")
    parser.add_argument("--base-url", metavar="URL",
                        help="send requests here (a self-hosted or local server)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    options: dict[str, Any] = {"base_url": args.base_url}
    if args.provider == "google":
        options["key"] = os.environ.get("GOOGLE_MAPS_API_KEY")
    provider = get_provider(args.provider, **options)
    setup_logging(args.verbose, env.stderr, provider.secrets())
    table = open_table(args.input, column=args.column, known=PLACE_COLUMNS,
                       text_header="place", stdin=env.stdin)
    cache = open_cache_for(args, provider.cacheable)
    rate = provider.default_rate if args.rate is None else args.rate
    job = Job(iter(()), GeocodeWork(provider), executor=args.executor, workers=args.workers,
              rate=rate, retries=args.retries, timeout=args.timeout, cache=cache,
              max_requests=args.max_requests, keep_raw=False)
    return execute(job, table, GEOCODE_COLUMNS, args, env)
