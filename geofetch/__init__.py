"""geofetch: parallel geocoding and scraping under one shared rate limit."""

from __future__ import annotations

import logging

from ._version import __version__
from .geocode import geocode_many, iter_geocode
from .models import FetchResult, GeocodeResult

__all__ = [
    "FetchResult",
    "GeocodeResult",
    "__version__",
    "geocode_many",
    "iter_geocode",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
