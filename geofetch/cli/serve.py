"""``geofetch serve``: the local Google/Nominatim-compatible server (see geofetch.server)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .argtypes import fraction, non_negative_float, port, positive_float
from .env import Environment

#: The environment variable holding the key Google requests must carry (the same as
#: :data:`geofetch.server.KEY_ENV`; repeated here so the parser imports no server).
KEY_ENV = "GEOFETCH_SERVE_KEY"


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "serve",
        help="run a local Google/Nominatim-compatible geocoding server",
        description=(
            "Serve Google's Geocoding API (/maps/api/geocode/json: ?address= forward, "
            "with components=country:CC; ?latlng=LAT,LNG reverse) and Nominatim's "
            "(/search?q=&format=json forward, with countrycodes=; "
            "/reverse?lat=&lon=&format=json reverse) from the offline gazetteer, until "
            "Ctrl-C or SIGTERM. Forward answers are the gazetteer's city; reverse answers "
            "the nearest city within 50 km (else ZERO_RESULTS / 'Unable to geocode'); a "
            "country code that names no country matches nothing. Per-second request "
            "counts are logged to stderr on exit."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=port, default=8765, help="port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--latency",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="delay added to every request (default: %(default)s)",
    )
    parser.add_argument(
        "--fail-rate",
        type=fraction,
        default=0.0,
        metavar="P",
        help="fraction of requests answered with HTTP 500 (default: %(default)s)",
    )
    parser.add_argument(
        "--rate-limit",
        type=positive_float,
        default=None,
        metavar="PER_SECOND",
        help="answer OVER_QUERY_LIMIT (Google) / HTTP 429 (Nominatim) past this many "
        "requests per second (default: no limit)",
    )
    parser.add_argument(
        "--key",
        default=None,
        help=f"API key Google requests must carry (default: ${KEY_ENV}, else any)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, metavar="N", help="seed for reproducible failures"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    """Serve until SIGINT/SIGTERM; return 0 (2 if the address cannot be bound)."""
    from ..server import ServerConfig, serve

    key = args.key if args.key is not None else (os.environ.get(KEY_ENV) or None)
    config = ServerConfig(
        latency_seconds=args.latency,
        fail_rate=args.fail_rate,
        rate_limit=args.rate_limit,
        key=key,
        seed=args.seed,
    )
    return serve(config, args.host, args.port, stdout=env.stdout, stderr=env.stderr)
