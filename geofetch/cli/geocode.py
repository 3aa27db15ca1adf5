"""``geofetch geocode``: a place list in, coordinates out."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from ..io.readers import PLACE_COLUMNS
from ..models import GEOCODE_COLUMNS, with_fields
from .common import (
    add_address_options,
    add_provider_options,
    add_run_options,
    cache_path,
    execute,
    geopy_settings,
    provider_settings,
    read_table,
    run_options,
    setup_logging,
)
from .env import Environment
from .identity import EMAIL_ENV, USER_AGENT_ENV, add_identity_options

if TYPE_CHECKING:
    from ..providers import Provider


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "geocode",
        help="geocode a list of places",
        description="Geocode every place of INPUT; write lat/lng per row, in input order.",
    )
    add_run_options(parser, what="place")
    add_provider_options(parser)
    parser.add_argument("--base-url", metavar="URL",
                        help="send requests here (a self-hosted or local server)")
    add_address_options(parser)
    add_identity_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    from .. import geocode_job

    provider = make_provider(args)
    setup_logging(args.verbose, env.stderr, provider.secrets())
    cache = cache_path(args, provider.cacheable)
    options = run_options(args, cache)  # every option checked before the input is opened
    # built (not started) first: a refusal by the service's policy (the public
    # Nominatim under dask) is then the one line, with no warning before it
    job = geocode_job((), provider=provider, keep_raw=False, options=options)
    warn_policy(provider, env)
    table = read_table(args, env, known=PLACE_COLUMNS, text_header="place", cache=cache)
    columns = with_fields(GEOCODE_COLUMNS) if args.fields else GEOCODE_COLUMNS
    return execute(job, table, columns, args, env)


def make_provider(args: argparse.Namespace, **extra: Any) -> Provider:
    """The provider the flags name, with their options (``extra``: more of them);
    an option the provider does not take is a UsageError naming it."""
    from ..providers import get_provider

    settings: dict[str, Any] = {"base_url": args.base_url, "user_agent": args.user_agent,
                                "email": args.email, **provider_settings(args),
                                **geopy_settings(args), **extra}
    if args.provider == "google":
        settings["key"] = os.environ.get("GOOGLE_MAPS_API_KEY")
    if args.provider == "nominatim":  # the one provider that takes them
        settings["user_agent"] = args.user_agent or os.environ.get(USER_AGENT_ENV) or None
        settings["email"] = args.email or os.environ.get(EMAIL_ENV) or None
    return get_provider(args.provider, **settings)


def warn_policy(provider: Provider, env: Environment) -> None:
    """Print the provider's usage-policy warning, if any, as one line on stderr (after
    every check that could refuse the run, so a refusal stays one line)."""
    warning = provider.policy_warning()
    if warning:
        env.stderr.write(f"geofetch: warning: {warning}\n")
