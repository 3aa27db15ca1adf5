"""The offline gazetteer: matching rules, fuzzy search, the stored index, the provider."""

from __future__ import annotations

import csv
import json
import math
import pickle
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from geofetch import gazetteer as gazetteer_package
from geofetch.exceptions import UsageError
from geofetch.gazetteer import FUZZY_THRESHOLD, Gazetteer, Place, fold, index, search
from geofetch.providers import OfflineProvider, offline
from geofetch.providers.base import Answer

ROOT = Path(__file__).resolve().parents[1]

# Where each seed place (data/places.csv) really is, from outside the gazetteer.
SEEDS = {
    "Reykjavik": (64.1466, -21.9426),  # Reykjavík
    "Vien": (48.2082, 16.3738),  # Vienna (an alternate name)
    "Zadar": (44.1194, 15.2314),
    "Venice": (45.4408, 12.3155),  # Venice, Italy, not Venice FL or Dayton OH
    "Wrocow": (51.1079, 17.0385),  # Wrocław (misspelt)
    "Bolognia": (44.4949, 11.3426),  # Bologna (misspelt)
    "Berlin": (52.5200, 13.4050),
    "Dehil": (28.6139, 77.2090),  # Delhi (misspelt)
    "New York": (40.7128, -74.0060),  # New York City
    "Osaka": (34.6937, 135.5023),
}


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer.load()


def found(gazetteer: Gazetteer, query: str) -> Place:
    place = gazetteer.lookup(query)
    assert place is not None, f"{query!r} not found"
    return place


# ----------------------------------------------------------------- the seed places


def test_seed_file_lists_the_ten_places():
    with open(ROOT / "data" / "places.csv", encoding="utf-8") as f:
        places = [row["place"] for row in csv.DictReader(f)]
    assert sorted(places) == sorted(SEEDS)


@pytest.mark.parametrize("query", SEEDS)
def test_seed_place_within_25_km(gazetteer, query):
    place = found(gazetteer, query)
    assert haversine_km(place.lat, place.lng, *SEEDS[query]) < 25, place


@pytest.mark.parametrize("query", SEEDS)
def test_formatted_address_finds_the_same_city(gazetteer, query):
    place = found(gazetteer, query)
    assert found(gazetteer, place.formatted_address).geonameid == place.geonameid


# ------------------------------------------------------------------ disambiguation


@pytest.mark.parametrize(
    ("query", "country", "admin1"),
    [
        ("Paris, TX", "US", "TX"),
        ("Paris, Texas", "US", "TX"),
        ("Paris Texas", "US", "TX"),
        ("Paris, France", "FR", None),
        ("Paris, FR", "FR", None),
        ("Paris", "FR", None),
        ("Portland, ME", "US", "ME"),  # ME is also Montenegro's code
        ("Portland, Maine, United States", "US", "ME"),
        ("Portland", "US", "OR"),  # the most populous Portland
        ("Portland, OR, USA", "US", "OR"),
        ("Athens, Georgia", "US", "GA"),  # Georgia the state, not the country
        ("Athens", "GR", None),
        ("London, ON", "CA", "08"),
        ("London", "GB", None),
        ("Springfield, IL", "US", "IL"),
        ("1600 Amphitheatre Pkwy, Mountain View, CA", "US", "CA"),
        ("Munich, Bavaria", "DE", None),  # an unknown qualifier is ignored
    ],
)
def test_disambiguation(gazetteer, query, country, admin1):
    place = found(gazetteer, query)
    assert place.country_code == country, place
    if admin1 is not None:
        assert place.admin1 == admin1, place


def test_formatted_address(gazetteer):
    assert found(gazetteer, "Vien").formatted_address == "Vienna, Austria"
    assert found(gazetteer, "Portland, ME").formatted_address == "Portland, Maine, United States"
    assert found(gazetteer, "Paris, TX").formatted_address == "Paris, Texas, United States"


# ------------------------------------------------------- case, accents, alternates


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("reykjavik", "Reykjavík"),
        ("REYKJAVÍK", "Reykjavík"),
        ("  Reykjavik  ", "Reykjavík"),
        ("Wrocław", "Wrocław"),
        ("wroclaw", "Wrocław"),
        ("WROCLAW", "Wrocław"),
        ("sao paulo", "São Paulo"),
        ("SÃO PAULO", "São Paulo"),
        ("zurich", "Zürich"),
        ("new   york", "New York City"),
    ],
)
def test_case_and_accent_insensitive(gazetteer, query, name):
    assert found(gazetteer, query).name == name


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("Vien", "Vienna"),
        ("Wien", "Vienna"),
        ("大阪", "Osaka"),
        ("München", "Munich"),
        ("Muenchen", "Munich"),
        ("Moskva", "Moscow"),
        ("New York", "New York City"),
    ],
)
def test_alternate_names(gazetteer, query, name):
    assert found(gazetteer, query).name == name


def test_own_name_beats_alternate_name(gazetteer):
    # Dayton, Ohio lists "Venice" among its alternate names and is more populous
    # than Venice, Italy; a city's own name wins, then population.
    results = gazetteer.search("Venice", limit=10)
    assert "Dayton" in [p.name for p in results]
    assert results[0].name == "Venice" and results[0].country_code == "IT"
    own = [p for p in results if p.name == "Venice"]
    assert results[: len(own)] == own
    assert [p.population for p in own] == sorted((p.population for p in own), reverse=True)


def test_most_populous_wins_among_equal_names(gazetteer):
    assert found(gazetteer, "Berlin").country_code == "DE"
    assert found(gazetteer, "Delhi").country_code == "IN"


# ---------------------------------------------------------------------------- fuzzy


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("Wrocow", "Wrocław"),
        ("Bolognia", "Bologna"),
        ("Dehil", "Delhi"),
        ("Barcelon", "Barcelona"),
        ("Los Angelos", "Los Angeles"),
        ("Wrocow, Poland", "Wrocław"),
        ("Bolognia, IT", "Bologna"),
    ],
)
def test_fuzzy_fallback(gazetteer, query, name):
    assert found(gazetteer, query).name == name


def test_fuzzy_ties_go_to_the_most_populous(gazetteer):
    # "dehil" is as close to "delhi" as to "dehui" (Dehui, China): Delhi is bigger.
    first, second = gazetteer.search("Dehil", limit=2)
    assert (first.name, second.name) == ("Delhi", "Dehui")
    assert first.population > second.population


@pytest.mark.parametrize(
    "query", ["xqzzvv kkwp", "qqqqqqqq", "", "   ", ",", "xq", "x" * 1000, "xqzzvv kkwp, " * 80]
)
def test_not_found(gazetteer, query):
    assert gazetteer.lookup(query) is None
    assert gazetteer.search(query) == []


def _lcs_ratio(a: str, b: str) -> float:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return 2 * previous[-1] / (len(a) + len(b))


@pytest.mark.parametrize("query", ["Dehil", "Bolognia"])
def test_fuzzy_search_misses_nothing(gazetteer, query):
    # Against a brute-force scan of every name in the index with a plain LCS (names
    # whose shared letters cannot reach the best score so far are skipped).
    key = fold(query)
    letters = Counter(key).items()
    best = FUZZY_THRESHOLD
    best_found = 0.0
    for name in gazetteer._all_keys():
        total = len(key) + len(name)
        if 2 * min(len(key), len(name)) < best * total:
            continue
        if 2 * sum(min(k, name.count(c)) for c, k in letters) < best * total:
            continue
        ratio = _lcs_ratio(key, name)
        if ratio >= best:
            best = best_found = ratio
    score, codes = gazetteer._fuzzy(key, [], 1)
    assert score == best_found
    assert bool(codes) == (best_found >= FUZZY_THRESHOLD)


# ---------------------------------------------------------------------------- folding


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Wrocław", "wroclaw"),
        ("  São  Tomé ", "sao tome"),
        ("N'Djamena", "ndjamena"),
        ("Val-d’Or", "val dor"),
        ("Straße", "strasse"),
        ("Þórshöfn", "thorshofn"),
        ("大阪", "大阪"),
        ("St. Louis", "st louis"),
    ],
)
def test_fold(text, key):
    assert fold(text) == key


# ---------------------------------------------------------------------------- places


def test_place_to_dict_is_json_ready(gazetteer):
    place = found(gazetteer, "Portland, ME")
    data = json.loads(json.dumps(place.to_dict()))
    assert data["name"] == "Portland"
    assert data["country_code"] == "US" and data["admin1"] == "ME"
    assert data["formatted_address"] == "Portland, Maine, United States"
    assert Place(**{k: v for k, v in data.items() if k != "formatted_address"}) == place


def test_search_returns_distinct_cities_best_first(gazetteer):
    results = gazetteer.search("Paris", limit=5)
    assert results[0] == gazetteer.lookup("Paris")
    assert len({p.geonameid for p in results}) == len(results) <= 5


def test_load_is_shared(gazetteer):
    assert Gazetteer.load() is gazetteer
    assert len(gazetteer) > 20_000


def test_lookups_from_threads_agree(gazetteer):
    queries = list(SEEDS) * 5
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(gazetteer.lookup, queries))
    assert parallel == [gazetteer.lookup(q) for q in queries]


def test_unknown_population_floor_is_refused():
    with pytest.raises(UsageError, match="500, 1000, 5000, 15000"):
        Gazetteer.load(1234)
    with pytest.raises(UsageError):
        OfflineProvider(min_population=20000)


# -------------------------------------------------------------------------- provider


def test_provider_answers():
    provider = OfflineProvider()
    assert (provider.name, provider.default_rate) == ("offline", None)
    assert not provider.uses_network and not provider.cacheable
    provider.open()
    answer = provider.geocode("Paris, TX", timeout=1)
    assert answer.found
    assert answer.formatted_address == "Paris, Texas, United States"
    assert answer.raw["admin1"] == "TX" and answer.raw["country_code"] == "US"
    assert provider.geocode("xqzzvv kkwp", timeout=1) == Answer()
    provider.close()


def test_provider_opens_itself_when_needed():
    assert OfflineProvider().geocode("Osaka", timeout=1).found


def test_cache_namespace_includes_population():
    assert "15000" in OfflineProvider().cache_namespace()
    assert OfflineProvider(1000).cache_namespace() != OfflineProvider().cache_namespace()
    assert repr(OfflineProvider(5000)) == "OfflineProvider(min_population=5000)"


def test_provider_pickles_without_its_index():
    provider = OfflineProvider()
    provider.open()
    blob = pickle.dumps(provider)
    assert len(blob) < 1000  # the index is never pickled
    clone = pickle.loads(blob)
    assert clone.min_population == 15000
    assert clone._gazetteer is None
    assert clone.geocode("Berlin", timeout=1).formatted_address == "Berlin, Germany"
    # A provider for another city set pickles without loading anything.
    assert pickle.loads(pickle.dumps(OfflineProvider(500))).min_population == 500


# ---------------------------------------------------------------------- stored index


@pytest.fixture(scope="module")
def compiled(gazetteer) -> dict:
    """The compiled index, read from the user's store when it is there (fast)."""
    data = index.read_index(index.index_path(), 15000)
    return data if data is not None else index.compile_index(15000)


@pytest.fixture
def store(tmp_path, monkeypatch, compiled):
    """An empty index store in tmp_path, a fresh memo, and a counted ``compile_index``."""
    monkeypatch.setenv("GEOFETCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(search, "_memo", {})
    builds: list[int] = []

    def compile_(min_population: int) -> dict:
        builds.append(min_population)
        return compiled

    monkeypatch.setattr(index, "compile_index", compile_)

    def load() -> Gazetteer:
        search._memo.clear()
        return Gazetteer.load()

    load.builds = builds
    return load


def test_index_is_built_once_then_read(store, tmp_path):
    assert store().lookup("Vien").name == "Vienna"
    assert store.builds == [15000]
    path = index.index_path()
    assert path.parent == tmp_path / "cache"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    assert store().lookup("Vien").name == "Vienna"
    assert store.builds == [15000]


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: b"",
        lambda blob: b"not an index at all",
        lambda blob: blob[: len(blob) // 2],
        lambda blob: blob[:-1] + bytes([blob[-1] ^ 0xFF]),
        lambda blob: blob[:40] + b"\0" * 64 + blob[104:],
    ],
    ids=["empty", "garbage", "truncated", "last-byte", "zeroed"],
)
def test_corrupt_index_is_rebuilt_silently(store, damage):
    store()
    path = index.index_path()
    path.write_bytes(damage(path.read_bytes()))
    assert store().lookup("Osaka").name == "Osaka"
    assert store.builds == [15000, 15000]
    assert index.read_index(path, 15000) is not None  # stored again, whole
    store()
    assert store.builds == [15000, 15000]


def test_index_of_another_format_is_rebuilt(store, compiled):
    index.write_index(index.index_path(), {**compiled, "format": -1})
    assert store().lookup("Zadar").name == "Zadar"
    assert store.builds == [15000]


def test_unwritable_cache_dir_still_works(tmp_path, monkeypatch, store):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("GEOFETCH_CACHE_DIR", str(blocker / "cache"))
    assert store().lookup("Berlin").name == "Berlin"
    assert store().lookup("Berlin").name == "Berlin"
    assert store.builds == [15000, 15000]  # nothing could be stored


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOFETCH_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert index.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("GEOFETCH_CACHE_DIR")
    assert index.cache_dir() == tmp_path / "xdg" / "geofetch"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert index.cache_dir() == tmp_path / "home" / ".cache" / "geofetch"


def test_index_name_carries_its_inputs(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOFETCH_CACHE_DIR", str(tmp_path))
    name = index.index_path(1000).name
    assert "p1000" in name and f"f{index.INDEX_FORMAT}" in name
    assert index.index_path(1000) != index.index_path(15000)


# -------------------------------------------------------------------------- package


def test_the_gazetteer_package_imports_no_client_stack():
    # The local server uses the gazetteer and must not drag in the HTTP client stack.
    code = (
        "import sys\n"
        "from geofetch.gazetteer import Gazetteer\n"
        "assert Gazetteer.load().lookup('Berlin').name == 'Berlin'\n"
        "banned = ('geofetch.providers', 'geofetch.core', 'geofetch.tasks', 'geofetch.cli',\n"
        "          'geofetch.server', 'geofetch.http', 'requests', 'urllib3', 'bs4')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in banned\n"
        "             or m.startswith(banned)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_old_names_are_still_importable_from_the_provider_module():
    assert offline.Gazetteer is Gazetteer and offline.fold is fold and offline.Place is Place
    assert offline.POPULATIONS == gazetteer_package.POPULATIONS == (500, 1000, 5000, 15000)
