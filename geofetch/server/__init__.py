"""The local Google- and Nominatim-compatible geocoding server (``geofetch serve``).

It answers Google's ``GET /maps/api/geocode/json?address=`` and Nominatim's
``GET /search?q=&format=json`` from the offline gazetteer (:mod:`geofetch.gazetteer`),
on loopback, so demos, tests and benchmarks run without keys or network::

    client ──TCP──▶ protocol.HttpProtocol ──h11──▶ app.App.handle(request, arrival)
                    (one per connection)              │ stats, seeded failures,
                                                      │ key, token bucket, gazetteer
    client ◀──TCP── transport.write ◀── loop.call_at(arrival + latency) ◀┘

Modules:

* :mod:`.config`: ``ServerConfig`` and the paths served;
* :mod:`.app`: request → response, with no sockets (routing, statuses, the memo of
  encoded answers bounded in bytes, the token bucket);
* :mod:`.answers`: a gazetteer place in Google's and Nominatim's shapes;
* :mod:`.stats`: the counters served at ``/_geofetch/stats`` and logged on exit;
* :mod:`.protocol`: HTTP/1.1 on one asyncio loop, parsed by ``h11``: limits, timers,
  keep-alive and pipelining, idle connections, accepting within the open-file limit;
* :mod:`.main`: ``serve()``, what ``geofetch serve`` runs;
* :mod:`.local`: ``LocalServer``, the server in a thread or a child process.

The ``/_geofetch/`` endpoints (``GET /_geofetch/stats``; ``GET``/``POST
/_geofetch/reset`` zeroes the counters) are never counted, delayed, failed or rate
limited. The configured key is compared, never logged or printed. This package
imports no HTTP client (requests, urllib3) and nothing of geofetch's client side
(core, tasks, http, providers).
"""

from __future__ import annotations

from .answers import Lookup, PlaceLike, google_result, nominatim_result
from .app import App, TokenBucket
from .config import (
    GOOGLE_PATH,
    KEY_ENV,
    NOMINATIM_PATH,
    PARENT_ENV,
    RESET_PATH,
    STATS_PATH,
    ServerConfig,
)
from .local import LocalServer
from .main import serve
from .protocol import MAX_BODY, MAX_HEAD
from .stats import format_per_second

__all__ = [
    "GOOGLE_PATH",
    "KEY_ENV",
    "MAX_BODY",
    "MAX_HEAD",
    "NOMINATIM_PATH",
    "PARENT_ENV",
    "RESET_PATH",
    "STATS_PATH",
    "App",
    "LocalServer",
    "Lookup",
    "PlaceLike",
    "ServerConfig",
    "TokenBucket",
    "format_per_second",
    "google_result",
    "nominatim_result",
    "serve",
]
