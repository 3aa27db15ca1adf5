"""geofetch: parallel geocoding and scraping under one shared rate limit.

::

    from geofetch import geocode_many, iter_geocode, fetch_many
    results = geocode_many(["Berlin", "Osaka"], provider="offline", executor="thread")

    # The building blocks the command line uses: one options object, a job that owns
    # its gate, cache and workers between enter and exit.
    from geofetch import RunOptions, geocode_job
    with geocode_job(places, provider="offline", options=RunOptions(workers=4)) as job:
        for result in job: ...

Per-row failures are captured in each result (``status``, ``error``); only usage
errors (bad options, unreadable input, a bad cache file) are raised, all as
:class:`GeofetchError` subclasses. Heavy modules are imported on first use, so
``import geofetch`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .exceptions import (
    BudgetExhausted,
    CacheError,
    GeofetchError,
    InputError,
    ProviderError,
    RequestDenied,
    RunAborted,
    UsageError,
)
from .models import FetchResult, GeocodeResult, ReverseResult
from .options import EXECUTORS, RunOptions

if TYPE_CHECKING:
    from .core.job import Job
    from .providers import GoogleProvider, NominatimProvider, OfflineProvider, Provider
    from .server import LocalServer
    from .tasks.fetch import FetchOptions, fetch_job, fetch_many, fetch_options, iter_fetch
    from .tasks.geocode import geocode_job, geocode_many, iter_geocode
    from .tasks.reverse import iter_reverse, reverse_job, reverse_many

__all__ = [
    "BudgetExhausted",
    "CacheError",
    "EXECUTORS",
    "FetchOptions",
    "FetchResult",
    "GeocodeResult",
    "GeofetchError",
    "GoogleProvider",
    "InputError",
    "Job",
    "LocalServer",
    "NominatimProvider",
    "OfflineProvider",
    "Provider",
    "ProviderError",
    "RequestDenied",
    "ReverseResult",
    "RunAborted",
    "RunOptions",
    "UsageError",
    "__version__",
    "fetch_job",
    "fetch_many",
    "fetch_options",
    "geocode_job",
    "geocode_many",
    "iter_fetch",
    "iter_geocode",
    "iter_reverse",
    "reverse_job",
    "reverse_many",
]

_LAZY = {
    "Job": ".core.job",
    "geocode_job": ".tasks.geocode",
    "geocode_many": ".tasks.geocode",
    "iter_geocode": ".tasks.geocode",
    "iter_reverse": ".tasks.reverse",
    "reverse_job": ".tasks.reverse",
    "reverse_many": ".tasks.reverse",
    "FetchOptions": ".tasks.fetch",
    "fetch_job": ".tasks.fetch",
    "fetch_many": ".tasks.fetch",
    "fetch_options": ".tasks.fetch",
    "iter_fetch": ".tasks.fetch",
    "GoogleProvider": ".providers",
    "NominatimProvider": ".providers",
    "OfflineProvider": ".providers",
    "Provider": ".providers",
    "LocalServer": ".server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


logging.getLogger(__name__).addHandler(logging.NullHandler())
