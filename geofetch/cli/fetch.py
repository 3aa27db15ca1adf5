"""``geofetch fetch``: a URL list in, one row per page out (status, title, ...)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..io.readers import URL_COLUMNS
from ..models import FETCH_COLUMNS
from .argtypes import positive_int
from .common import (
    add_run_options,
    execute,
    read_table,
    run_options,
    setup_logging,
)
from .env import Environment
from .identity import DEFAULT_AGENT, EMAIL_ENV, USER_AGENT_ENV, add_identity_options


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fetch",
        help="fetch a list of web pages",
        description=(
            "Fetch every http(s) URL of INPUT, politely (robots.txt, a per-host cap, "
            "one shared rate limit); write status, final URL, size, type and title "
            "(or --select's text) per row, in input order."
        ),
    )
    add_run_options(parser, what="URL")
    parser.add_argument("--select", metavar="CSS",
                        help="write the text of the elements matching this CSS selector, "
                             "joined by ' | ', in a 'selected' column instead of 'title'")
    parser.add_argument("--per-host", type=positive_int, default=4, metavar="N",
                        help="requests in flight per host at most, across all workers (default 4)")
    parser.add_argument("--max-bytes", type=positive_int, default=10_000_000, metavar="N",
                        help="largest body read; a bigger page is failed, TooLarge "
                             "(default 10000000)")
    parser.add_argument("--ignore-robots", action="store_true",
                        help="do not read or obey robots.txt")
    add_identity_options(parser)
    parser.set_defaults(func=run)


def output_fields(select: str | None) -> tuple[str, ...]:
    """The fetch columns: ``selected`` in place of ``title`` with ``--select``."""
    dropped = "title" if select is not None else "selected"
    return tuple(name for name in FETCH_COLUMNS if name != dropped)


def run(args: argparse.Namespace, env: Environment) -> int:
    from .. import fetch_job, fetch_options

    setup_logging(args.verbose, env.stderr, ())
    # Options first: a bad selector or option fails before any input is read.
    agent = args.user_agent or os.environ.get(USER_AGENT_ENV) or None
    email = args.email or os.environ.get(EMAIL_ENV) or None
    if email:  # a contact for the sites' operators, as crawlers give one
        agent = f"{agent or DEFAULT_AGENT} (+mailto:{email})"
    fetch = fetch_options(select=args.select, per_host=args.per_host,
                          max_bytes=args.max_bytes, ignore_robots=args.ignore_robots,
                          user_agent=agent)
    options = run_options(args)
    table = read_table(args, env, known=URL_COLUMNS, text_header="url", cache=None,
                       url_values=True)
    job = fetch_job((), fetch=fetch, options=options)
    return execute(job, table, output_fields(args.select), args, env)
