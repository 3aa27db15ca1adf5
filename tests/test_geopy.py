"""geopy's own geocoders (Photon, Pelias, Nominatim) under geofetch's engine, against a
fake geocoding server on loopback: answers, address fields, reverse, errors mapped to
retries or an abort, the key kept secret, order across executors (issue 15)."""

from __future__ import annotations

import functools
import json
import pickle
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

geopy = pytest.importorskip("geopy")
from geopy.geocoders import Nominatim, Pelias, Photon  # noqa: E402

from geofetch import geocode_many, reverse_many  # noqa: E402
from geofetch.exceptions import (  # noqa: E402
    InvalidRequest,
    RateLimited,
    RequestDenied,
    ServerError,
    Timeout,
    UsageError,
)
from geofetch.gazetteer import Gazetteer  # noqa: E402
from geofetch.providers import get_provider  # noqa: E402
from geofetch.providers.geopy import KEY_ENV, GeopyProvider, geocoder_names, parse_value  # noqa: E402

SECRET = "sk-geofetch-SECRET-4242"


class FakeGeocoder(ThreadingHTTPServer):
    """Photon (``/api``, ``/reverse``), Pelias (``/v1/search``, ``/v1/reverse``) and
    Nominatim (``/search``, ``/reverse?format=json``) on one loopback port, answering
    from the offline gazetteer. Special queries: ``status:NNN`` answers that status
    (429 with ``Retry-After: 0``), ``flaky:...`` answers 503 twice, then as the rest
    of the query, ``slow:...`` waits 3 s first, ``echo-key`` puts the request's
    ``api_key`` into its answer."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.gazetteer = Gazetteer.load()
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.counts: Counter[str] = Counter()
        self.trickled: list[tuple[int, int]] = []
        self.trickle_done = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FakeGeocoder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(10)

    def queries(self, path: str) -> list[str]:
        keys = {"/api": "q", "/v1/search": "text", "/search": "q"}
        return [q.get(keys[path], "") for p, q in self.seen if p == path]


class _Handler(BaseHTTPRequestHandler):
    server: FakeGeocoder

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        server = self.server
        with server.lock:
            server.seen.append((url.path, query))
        text = query.get("q") or query.get("text") or ""
        if text.startswith("trickle:"):
            return self._trickle()
        if text.startswith("slow:"):
            time.sleep(3)
            text = text[5:]
        if text.startswith("flaky:"):
            with server.lock:
                server.counts[text] += 1
                count = server.counts[text]
            if count <= 2:
                return self._send(503, {"error": "try again"})
            text = text[6:]
        if text.startswith("status:"):
            status = int(text[7:10])
            headers = [("Retry-After", "0")] if status == 429 else []
            return self._send(status, {"error": f"status {status}",
                                       "key": query.get("api_key", "")}, headers)
        if url.path in ("/api", "/v1/search", "/search"):
            place = server.gazetteer.lookup(text) if text != "echo-key" else \
                server.gazetteer.lookup("Berlin")
        elif url.path in ("/reverse", "/v1/reverse"):
            lat = float(query.get("lat") or query.get("point.lat") or 0)
            lng = float(query.get("lon") or query.get("point.lon") or 0)
            place = server.gazetteer.lookup("Osaka") if abs(lat - 34.69) < 1 and \
                abs(lng - 135.5) < 1 else None
        else:
            return self._send(404, {"error": "no such path"})
        label = place.formatted_address if place else ""
        if text == "echo-key":
            label += f" (asked with api_key={query.get('api_key', '')})"
        nominatim = "format" in query  # Photon's /reverse takes no format
        if url.path == "/api" or (url.path == "/reverse" and not nominatim):
            return self._send(200, _photon(place, label))
        if url.path.startswith("/v1/"):
            return self._send(200, _pelias(place, label))
        if url.path == "/search":
            return self._send(200, [_nominatim(place, label)] if place else [])
        return self._send(200, _nominatim(place, label) if place
                          else {"error": "Unable to geocode"})

    def _trickle(self) -> None:
        """An answer whose every byte comes in time for a per-read timeout, 0.1 s
        apart, 400 of them; records how many were sent before the client hung up."""
        body = json.dumps({"features": [], "padding": "x" * 400}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        sent = 0
        try:
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                sent += 1
                time.sleep(0.1)
        except OSError:
            pass
        finally:
            self.server.trickled.append((sent, len(body)))
            self.server.trickle_done.set()

    def _send(self, status: int, document: object, headers: list | None = None) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers or []:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _photon(place, label):
    if place is None:
        return {"type": "FeatureCollection", "features": []}
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [place.lng, place.lat]},
        "properties": {"name": label, "countrycode": place.country_code,
                       "country": place.country, "city": place.name, "type": "city",
                       "osm_type": "R", "osm_id": place.geonameid}}]}


def _pelias(place, label):
    if place is None:
        return {"type": "FeatureCollection", "features": []}
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [place.lng, place.lat]},
        "properties": {"label": label, "name": label, "country_code": place.country_code,
                       "country": place.country, "locality": place.name, "layer": "locality",
                       "gid": f"geonames:locality:{place.geonameid}", "confidence": 0.9}}]}


def _nominatim(place, label):
    return {"lat": str(place.lat), "lon": str(place.lng), "display_name": label,
            "osm_type": "relation", "osm_id": place.geonameid, "addresstype": "city",
            "address": {"city": place.name, "country": place.country,
                        "country_code": place.country_code.lower()}}


@pytest.fixture
def server():
    with FakeGeocoder() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


def photon(server, **extra):
    return GeopyProvider("photon", options={"domain": server.domain, "scheme": "http"}, **extra)


def pelias(server, **extra):
    return GeopyProvider(Pelias, options={"domain": server.domain, "scheme": "http"}, **extra)


def nominatim(server, **extra):
    return GeopyProvider(Nominatim, options={"domain": server.domain, "scheme": "http"},
                         **extra)


PLACES = ["Berlin", "xqzzvv kkwp", "Osaka", "10115 Berlin"]


# ----------------------------------------------------------------------------- answers


@pytest.mark.parametrize("make", [photon, pelias, nominatim], ids=["photon", "pelias", "nominatim"])
def test_geopy_geocoders_answer_in_order(server, make):
    results = geocode_many(PLACES, provider=make(server), rate=0, retries=0)
    assert [r.status for r in results] == ["ok", "not_found", "ok", "ok"]
    berlin, osaka = Gazetteer.load().lookup("Berlin"), Gazetteer.load().lookup("Osaka")
    assert (results[0].lat, results[0].lng) == (berlin.lat, berlin.lng)
    assert (results[2].lat, results[2].lng) == (osaka.lat, osaka.lng)
    address = results[0].formatted_address  # as each geocoder composes it
    assert address.startswith("Berlin, ") and address.endswith(", Germany"), address
    assert (results[0].country_code, results[0].country, results[0].locality) == (
        "DE", "Germany", "Berlin")
    assert results[0].precision == "locality"
    assert all(r.attempts == 1 for r in results)
    assert len(server.seen) == len(PLACES)  # one request per place, no retries inside


def test_address_fields_per_service(server):
    photon_result, = geocode_many(["Osaka"], provider=photon(server), rate=0)
    assert photon_result.place_id == f"R{Gazetteer.load().lookup('Osaka').geonameid}"
    assert photon_result.confidence is None
    pelias_result, = geocode_many(["Osaka"], provider=pelias(server), rate=0)
    assert pelias_result.confidence == 0.9
    assert pelias_result.place_id.startswith("geonames:locality:")
    nominatim_result, = geocode_many(["Osaka"], provider=nominatim(server), rate=0)
    assert (nominatim_result.country_code, nominatim_result.locality) == ("JP", "Osaka")
    assert server.seen[-1][1].get("addressdetails") == "1"  # asked for the address parts


@pytest.mark.parametrize("make", [photon, pelias, nominatim], ids=["photon", "pelias", "nominatim"])
def test_geopy_reverse(server, make):
    results = reverse_many([(34.69, 135.50), (0.0, -30.0)], provider=make(server), rate=0)
    assert [r.status for r in results] == ["ok", "not_found"]
    assert results[0].formatted_address.startswith("Osaka")
    assert results[0].country_code == "JP"


def test_language_and_countries_reach_the_service(server):
    nominatim(server, language="de", countries="de,at").geocode("Berlin", timeout=5)
    path, query = server.seen[-1]
    assert path == "/search"
    assert (query["accept-language"], query["countrycodes"]) == ("de", "de,at")
    photon(server, language="de").geocode("Berlin", timeout=5)
    assert server.seen[-1][1]["lang"] == "de"
    with pytest.raises(UsageError, match="cannot keep answers to countries"):
        photon(server, countries=("DE",))


# ------------------------------------------------------------------------------ errors


def test_each_geopy_error_maps_to_geofetch(server):
    provider = photon(server)
    provider.open()
    cases = {"status:429": RateLimited, "status:503": ServerError, "status:500": ServerError,
             "status:403": RequestDenied, "status:401": RequestDenied,
             "status:400": InvalidRequest}
    for query, error in cases.items():
        with pytest.raises(error) as caught:
            provider.geocode(query, timeout=5)
        assert caught.value.status_code == int(query[7:])
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(RateLimited) as caught:
        provider.geocode("status:429", timeout=5)
    assert caught.value.retry_after == 0
    with pytest.raises(Timeout):
        provider.geocode("slow:Berlin", timeout=0.5)
    provider.close()


@pytest.mark.parametrize("make", [
    photon,
    lambda server: GeopyProvider(Photon(domain=server.domain, scheme="http")),
    lambda server: GeopyProvider(functools.partial(Photon, domain=server.domain,
                                                   scheme="http")),
], ids=["class", "instance", "factory"])
def test_timeout_bounds_the_whole_request_not_each_read(server, make):
    """geopy's own adapters apply the timeout to each read: an answer trickling a byte
    every 0.1 s held a row for 40 s under --timeout 1. geofetch's adapter bounds the
    request as a whole, for a class, an instance and a factory alike."""
    provider = make(server)
    provider.open()
    try:
        with pytest.raises(Timeout) as caught:
            provider.geocode("trickle:Berlin", timeout=1)
    finally:
        provider.close()
    assert "within 1 s" in str(caught.value)
    assert server.trickle_done.wait(30)
    sent, length = server.trickled[0]
    assert sent < length  # the client hung up before the answer was complete


def test_geopy_requests_go_through_geofetchs_http_layer(server):
    from geofetch.providers.geopy_adapter import GeofetchAdapter

    for provider in (photon(server), GeopyProvider(Photon(domain=server.domain, scheme="http"))):
        provider.open()
        assert isinstance(provider._geocoder.adapter, GeofetchAdapter)
        assert provider.geocode("Berlin", timeout=5).found
        provider.close()


def test_transient_errors_are_retried_by_the_engine(server):
    results = geocode_many(["flaky:Berlin", "status:503", "status:400", "slow:Osaka", "Osaka"],
                           provider=photon(server), rate=0, retries=2, timeout=1)
    statuses = [(r.status, r.attempts) for r in results]
    assert statuses[0] == ("ok", 3)  # two 503s, then the answer
    assert statuses[1] == ("failed", 3) and results[1].error.startswith("ServerError:")
    assert statuses[2] == ("failed", 1) and results[2].error.startswith("InvalidRequest:")
    assert statuses[3] == ("failed", 3) and results[3].error.startswith("Timeout:")
    assert statuses[4] == ("ok", 1)
    assert Counter(server.queries("/api")) == {"flaky:Berlin": 3, "status:503": 3,
                                               "status:400": 1, "slow:Osaka": 3, "Osaka": 1}


def test_a_rate_limit_is_retried_after_its_retry_after(server):
    results = geocode_many(["status:429"], provider=photon(server), rate=0, retries=2)
    assert (results[0].status, results[0].attempts) == ("failed", 3)
    assert results[0].error.startswith("RateLimited:")


def test_a_refused_key_aborts_the_run(server):
    from geofetch import geocode_job
    from geofetch.options import RunOptions

    places = ["Berlin", "status:403", *["Osaka"] * 20]
    job = geocode_job(places, provider=photon(server),
                      options=RunOptions(rate=0, executor="serial"))
    with job:
        results = list(job)
    assert isinstance(job.aborted, RequestDenied)
    assert results[0].status == "ok" and results[1].status == "failed"
    assert results[1].error.startswith("RequestDenied:")
    assert len(server.seen) == 2  # nothing asked after the refusal


# ------------------------------------------------------------------------------ the key


def test_the_key_comes_from_the_environment_and_never_shows(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    provider = pelias(server)
    assert provider.secrets() == (SECRET,)
    assert SECRET not in provider.cache_namespace() and SECRET not in repr(provider)
    results = geocode_many(["echo-key", "status:500"], provider=provider, rate=0, retries=0)
    assert server.seen[0][1]["api_key"] == SECRET  # the service got it
    assert results[0].status == "ok" and results[1].status == "failed"
    for result in results:
        assert SECRET not in json.dumps(result.to_dict() if hasattr(result, "to_dict")
                                        else vars(result), default=str)
    assert "REDACTED" in results[0].formatted_address


def test_a_secret_is_never_an_option(server):
    for name in ("api_key", "token", "password"):
        with pytest.raises(UsageError) as caught:
            GeopyProvider("pelias", options={"domain": server.domain, name: SECRET})
        assert SECRET not in str(caught.value) and KEY_ENV in str(caught.value)


# ------------------------------------------------------------------- workers and order


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("executor", "workers"), [("thread", 4), ("process", 2)])
def test_rows_in_order_under_thread_and_process_executors(server, executor, workers):
    places = []
    for n in range(12):
        places += [["Berlin", "Osaka", "Paris", "Lyon"][n % 4], f"flaky:Tokyo {n}"
                   if n % 5 == 0 else "xqzzvv kkwp", "status:400"]
    provider = photon(server)
    baseline = [(r.query, r.status, r.lat) for r in
                geocode_many(places, provider=provider, rate=0, executor="serial")]
    server.counts.clear()
    results = geocode_many(places, provider=provider, rate=0, executor=executor,
                           workers=workers)
    assert [(r.query, r.status, r.lat) for r in results] == baseline
    assert [r.query for r in results] == places
    assert Counter(r.status for r in results) == {"ok": 12 + 3, "not_found": 9, "failed": 12}


def test_an_instance_and_a_factory_are_built_once_per_worker(server):
    instance = GeopyProvider(Photon(domain=server.domain, scheme="http"))
    factory = GeopyProvider(functools.partial(Photon, domain=server.domain, scheme="http"))
    for provider in (instance, factory):
        assert provider.name == "geopy:photon"
        results = geocode_many(["Berlin", "Osaka"] * 3, provider=provider, rate=0,
                               executor="process", workers=2)
        assert [r.status for r in results] == ["ok"] * 6


def test_the_provider_pickles_without_a_live_geocoder(server):
    provider = photon(server)
    provider.open()
    clone = pickle.loads(pickle.dumps(provider))
    assert clone._geocoder is None
    assert clone.geocode("Osaka", timeout=5).country_code == "JP"
    assert clone.cache_namespace() == provider.cache_namespace()


# ------------------------------------------------------------------ names and options


def test_names_are_geopys():
    names = geocoder_names()
    assert {"photon", "pelias", "nominatim", "arcgis", "opencage"} <= set(names)
    with pytest.raises(UsageError) as caught:
        GeopyProvider("nope")
    assert "unknown geopy geocoder 'nope'" in str(caught.value)
    assert "photon" in str(caught.value) and "arcgis" in str(caught.value)
    assert get_provider("geopy:photon", options={"scheme": "http"}).name == "geopy:photon"
    with pytest.raises(UsageError, match="provider options are for geopy:NAME"):
        get_provider("offline", options={"domain": "x"})


def test_options_are_checked_and_typed():
    assert parse_value("30", 60) == 30 and parse_value("yes", False) is True
    assert parse_value("2.5", 1.0) == 2.5
    assert parse_value("127.0.0.1:8080", None) == "127.0.0.1:8080"
    with pytest.raises(ValueError):
        parse_value("maybe", True)
    with pytest.raises(UsageError, match="token_lifetime='soon': not a whole number"):
        GeopyProvider("arcgis", options={"token_lifetime": "soon"})
    with pytest.raises(UsageError, match="takes no 'colour' option; it takes: .*domain"):
        GeopyProvider("photon", options={"colour": "red"})
    with pytest.raises(UsageError, match="--timeout"):
        GeopyProvider("photon", options={"timeout": "5"})
    with pytest.raises(UsageError, match="geopy:"):  # Pelias needs a domain
        GeopyProvider("pelias")


def test_base_url_sets_scheme_and_domain(server):
    provider = get_provider("geopy:photon", base_url=f"http://{server.domain}")
    assert provider.geocode("Osaka", timeout=5).country_code == "JP"
    with pytest.raises(UsageError, match="not both"):
        GeopyProvider("photon", base_url="http://x", options={"domain": "y"})


def test_cache_namespace_names_the_service_and_its_options(server):
    a, b = photon(server), pelias(server)
    assert a.cache_namespace().startswith("geopy:photon:")
    assert b.cache_namespace().startswith("geopy:pelias:")
    assert photon(server, language="de").cache_namespace() != a.cache_namespace()
    assert server.domain in a.cache_namespace()


def test_the_cache_answers_a_second_run(server, tmp_path):
    cache = tmp_path / "cache.sqlite"
    first = geocode_many(["Berlin", "Osaka"], provider=photon(server), rate=0, cache=str(cache))
    asked = len(server.seen)
    second = geocode_many(["Berlin", "Osaka"], provider=photon(server), rate=0, cache=str(cache))
    assert [r.lat for r in second] == [r.lat for r in first]
    assert len(server.seen) == asked


# -------------------------------------------------------------------------------- CLI


def _cli_provider(server, name="photon"):
    return ["--provider", f"geopy:{name}", "--provider-option", f"domain={server.domain}",
            "--provider-option", "scheme=http", "--rate", "0", "--no-cache"]


def test_cli_geocode_with_a_geopy_geocoder(cli, server):
    result = cli(["geocode", "-", *_cli_provider(server), "--fields", "--retries", "0"],
                 stdin="place\nBerlin\nxqzzvv kkwp\nstatus:400\nOsaka\n")
    assert result.status == 1, result.stderr  # one failed row
    lines = result.stdout.splitlines()
    assert lines[0].startswith("place,lat,lng,formatted_address,country_code")
    rows = [line.split(",")[0] for line in lines[1:]]
    assert rows == ["Berlin", "xqzzvv kkwp", "status:400", "Osaka"]
    assert ",ok," in lines[1] and ",not_found," in lines[2] and "InvalidRequest" in lines[3]
    assert ",JP," in lines[4]


def test_cli_reverse_with_a_geopy_geocoder(cli, server):
    result = cli(["reverse", "-", *_cli_provider(server, "nominatim")],
                 stdin="lat,lng\n34.69,135.50\n0,-30\n")
    assert result.status == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Osaka" in lines[1] and lines[1].endswith("ok,") and "not_found" in lines[2]


def test_cli_a_refused_key_is_exit_3_and_the_key_never_shows(cli, server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    result = cli(["geocode", "-", *_cli_provider(server, "pelias"), "-vv", "--executor",
                  "serial"], stdin="place\nBerlin\nstatus:500\nstatus:403\nOsaka\n")
    assert result.status == 3, result.stderr
    assert "run aborted: GeocoderInsufficientPrivileges" in result.stderr
    assert "RequestDenied: GeocoderInsufficientPrivileges" in result.stdout
    assert any(q.get("api_key") == SECRET for _, q in server.seen)  # it was sent
    assert SECRET not in result.stdout and SECRET not in result.stderr
    assert "Received an HTTP error" in result.stderr  # geopy's own log line, masked


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--provider", "geopy:nope"], "unknown geopy geocoder 'nope'; choose one of: "),
        (["--provider", "nope"], "unknown provider 'nope'"),
        (["--provider", "geopy:photon", "--provider-option", "colour=red"],
         "takes no 'colour' option"),
        (["--provider", "geopy:photon", "--provider-option", "domainx"], "not KEY=VALUE"),
        (["--provider", "geopy:photon", "--provider-option", "scheme=http",
          "--provider-option", "scheme=https"], "scheme is given twice"),
        (["--provider", "offline", "--provider-option", "domain=x"],
         "--provider-option is for geopy:NAME providers"),
        (["--provider", "geopy:pelias", "--provider-option", "domain=x",
          "--provider-option", f"api_key={SECRET}"], "GEOFETCH_API_KEY"),
        (["--provider", "geopy:photon", "--provider-option", "timeout=3"], "--timeout"),
        (["--provider", "geopy:arcgis", "--provider-option", "token_lifetime=soon"],
         "not a whole number"),
    ],
)
def test_cli_bad_geopy_flags_are_one_line_exit_2(cli, argv, message):
    result = cli(["geocode", "-", *argv], stdin="place\nBerlin\n")
    assert result.status == 2, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert SECRET not in result.stderr and result.stdout == ""


def test_library_names_a_geopy_geocoder_by_string(server):
    results = geocode_many(["Osaka", "xqzzvv kkwp"], provider="geopy:photon",
                           base_url=f"http://{server.domain}", rate=0)
    assert [(r.status, r.country_code) for r in results] == [("ok", "JP"), ("not_found", None)]
    assert server.seen[0][0] == "/api"


def test_a_geocoder_without_reverse_says_so(cli):
    provider = GeopyProvider("databc")
    assert not provider.supports_reverse
    with pytest.raises(UsageError, match="does not reverse geocode"):
        provider.reverse(1.0, 2.0, timeout=1)
    result = cli(["reverse", "-", "--provider", "geopy:databc"], stdin="lat,lng\n1,2\n")
    assert result.status == 2 and "does not reverse geocode" in result.stderr


def test_a_reverse_answer_outside_the_countries_is_not_found(server):
    kept = reverse_many([(34.69, 135.50)], provider=nominatim(server, countries="JP"), rate=0)
    dropped = reverse_many([(34.69, 135.50)], provider=nominatim(server, countries="DE"),
                           rate=0)
    assert [r.status for r in kept + dropped] == ["ok", "not_found"]


def test_the_public_nominatim_is_asked_once_a_second_at_most():
    provider = GeopyProvider("nominatim")  # geopy's default domain: OpenStreetMap's
    assert provider.max_rate == 1.0
    with pytest.raises(UsageError, match="per second"):
        geocode_many(["Berlin"], provider=provider, rate=5)
    assert GeopyProvider("nominatim", options={"domain": "127.0.0.1:9"}).max_rate is None


def test_without_geopy_the_cli_says_how_to_get_it(cli, monkeypatch):
    for name in [m for m in list(sys.modules) if m.split(".")[0] == "geopy"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    result = cli(["geocode", "-", "--provider", "geopy:photon"], stdin="place\nBerlin\n")
    assert result.status == 2 and result.stderr.count("\n") == 1
    assert "pip install 'geofetch[geopy]'" in result.stderr
    offline = cli(["geocode", "-"], stdin="place\nBerlin\n")  # the rest works without it
    assert offline.status == 0 and "Berlin, Germany" in offline.stdout
