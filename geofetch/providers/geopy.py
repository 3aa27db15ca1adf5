"""Every geocoder of geopy (the ``geopy`` extra) as a geofetch provider.

geopy's geocoder classes each know one service's request and answer (about thirty:
``photon``, ``pelias``, ``arcgis``, ``opencage``, ...). :class:`GeopyProvider` runs
one under geofetch's engine, which keeps what geopy leaves to its caller:

* **one instance per worker**: a provider carries the geocoder's class (or factory)
  and its keyword arguments, never a live instance, and builds its own instance in
  :meth:`~GeopyProvider.open` (a geopy instance holds a session that is neither
  thread-safe nor meant to be pickled);
* **the gate, not geopy's RateLimiter**: geofetch's one rate limit spans threads and
  processes; geopy's ``RateLimiter`` spaces the calls of one process only;
* **one HTTP layer**: each geocoder's requests go through geofetch's own HTTP client
  (:class:`~geofetch.providers.geopy_adapter.GeofetchAdapter`, geopy's public
  adapter API), whatever adapter the class, instance or factory had: one request
  per call (geopy's ``RequestsAdapter`` would re-send twice, unseen by the rate
  limit and the budget), and ``timeout`` bounds the request as a whole;
* **retries**: the engine's; geopy's exceptions map
  to geofetch's (:meth:`GeopyProvider.error_for`), so the engine retries the
  transient ones with backoff and ``Retry-After``, and a refused key stops the run
  (exit 3);
* **the cache**: the namespace is ``geopy:NAME`` with the options that change
  answers (never the key);
* **the key**: from ``key=`` or ``GEOFETCH_API_KEY`` (never the command line), passed
  as the class's key argument (``api_key``, ``apikey``, ``key``, ``token``) and
  masked in every error and log line.

``timeout`` (seconds) is passed to each geopy call and bounds the whole request
(connecting, headers and body), as for geofetch's own providers; geopy's own
adapters would apply it to each socket operation, so a server trickling its answer
could hold a row for ever.

::

    GeopyProvider("photon", options={"domain": "127.0.0.1:2322", "scheme": "http"})
    GeopyProvider(geopy.geocoders.Pelias, options={"domain": "pelias.example"})
    GeopyProvider(functools.partial(Photon, domain="photon.example"))  # a factory
    GeopyProvider(Photon(domain="photon.example"))  # an instance: copied per worker
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import (
    ConnectionError,
    HTTPError,
    InvalidAnswer,
    InvalidRequest,
    ProviderError,
    RateLimited,
    RequestDenied,
    ServerError,
    Timeout,
    UsageError,
)
from ..redact import RedactingFilter, redact
from .base import (
    APPROXIMATE,
    COUNTRY,
    LOCALITY,
    NOT_FOUND,
    POSTCODE,
    REGION,
    ROOFTOP,
    STREET,
    Answer,
    Provider,
    check_countries,
    check_language,
)
from .nominatim import DISTRIBUTED_FORBIDDEN

__all__ = ["KEY_ENV", "PREFIX", "GeopyProvider", "geocoder_names"]

#: The environment variable the key is read from when ``key`` is not given.
KEY_ENV = "GEOFETCH_API_KEY"
#: Provider names ``geopy:NAME`` run geopy's geocoder NAME.
PREFIX = "geopy:"
#: Public servers whose usage policy allows at most one request per second
#: (https://operations.osmfoundation.org/policies/nominatim/): a faster run is refused.
PUBLIC_ONE_PER_SECOND = ("nominatim.openstreetmap.org",)
#: Constructor arguments that take the key, in order of preference.
KEY_PARAMETERS = ("api_key", "apikey", "key", "token", "auth_token")
#: Constructor arguments never given as options: geofetch owns the timeout, and the
#: adapter and TLS context are objects, not text.
OWN_PARAMETERS = ("timeout", "adapter_factory", "ssl_context")
# Names of arguments that hold a secret: never options (they would be on the command
# line, in shell history and ps).
_SECRET_WORDS = ("key", "apikey", "token", "secret", "password", "signature", "credentials")

logger = logging.getLogger(__name__)
_LOG_FILTER = RedactingFilter()


def _geopy() -> Any:
    try:
        import geopy.geocoders
    except ImportError:
        raise UsageError("the geopy providers need geopy: pip install 'geofetch[geopy]'") from None
    return geopy


def geocoder_names() -> tuple[str, ...]:
    """The names geopy's ``get_geocoder_for_service`` knows (``"arcgis"``, ...), sorted.

    Raises :class:`UsageError` when geopy is not installed."""
    return tuple(sorted(_geopy().geocoders.SERVICE_TO_GEOCODER))


def geocoder_class(name: str) -> type:
    """geopy's geocoder class for ``name`` (case-insensitive); a :class:`UsageError`
    listing the valid names for any other."""
    geopy = _geopy()
    try:
        return geopy.geocoders.get_geocoder_for_service(name.lower())  # type: ignore[no-any-return]
    except geopy.exc.GeocoderNotFound:
        raise UsageError(f"unknown geopy geocoder {name!r}; choose one of: "
                         f"{', '.join(geocoder_names())}") from None


def parse_value(text: str, default: object) -> object:
    """An option's text as the type of the parameter's default: ``true``/``false``
    (also ``1 0 yes no on off``) for a bool, a whole number for an int, a number for
    a float; anything else stays text. Raises :class:`ValueError` when it does not
    read as that type."""
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError("not true or false")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


class GeopyProvider(Provider):
    """A geopy geocoder as a provider.

    ``geocoder``: a name (``"photon"``, as ``get_geocoder_for_service`` knows it), a
    geocoder class, a factory (a picklable callable that returns a geocoder, for the
    process executor), or an instance (each worker gets a copy with a fresh adapter:
    the instance's session is not shared).
    ``options``: the class's constructor arguments (``domain``, ``scheme``,
    ``user_agent``, ...); text values are read as the type of the argument's default
    (see :func:`parse_value`); not for an instance or a factory. ``key``: the API key
    (default: ``$GEOFETCH_API_KEY``; never an option). ``base_url``
    (``http://127.0.0.1:2322``) sets ``scheme`` and ``domain``. ``user_agent``
    replaces geofetch's own. ``countries`` and ``language`` are passed to each call
    where the class's ``geocode`` takes them (``country_codes``/``country``,
    ``language``), else refused; a reverse answer outside ``countries`` is not found.

    Raises :class:`UsageError` for an unknown name, an option the class does not take
    (naming those it does), a secret given as an option, or a geocoder that geopy
    refuses to build (its ``ConfigurationError`` message).
    """

    #: geopy's free services ask for about one request per second (geopy's docs do
    #: the same with ``RateLimiter(min_delay_seconds=1)``); ``--rate`` overrides it.
    default_rate = 1.0
    uses_network = True
    cacheable = True

    def __init__(
        self,
        geocoder: str | type | Callable[[], Any] | Any,
        *,
        options: Mapping[str, Any] | None = None,
        key: str | None = None,
        base_url: str | None = None,
        user_agent: str | None = None,
        countries: str | Iterable[str] | None = None,
        language: str | None = None,
    ) -> None:
        geopy = _geopy()
        base = geopy.geocoders.base.Geocoder
        self.key = key or os.environ.get(KEY_ENV) or None
        self._secrets: tuple[str, ...] = (self.key,) if self.key else ()
        self.countries = check_countries(countries)
        self.language = check_language(language)
        options = dict(options or {})
        if isinstance(geocoder, str):
            geocoder = geocoder_class(geocoder)
        self._own_adapter = False  # an instance or factory gets geofetch's adapter
        if isinstance(geocoder, type) and issubclass(geocoder, base):
            self._kwargs = self._constructor_kwargs(geocoder, options, base_url, user_agent)
            self._factory: Callable[[], Any] = functools.partial(geocoder, **self._kwargs)
        elif isinstance(geocoder, base) or callable(geocoder):
            if options or base_url or user_agent or key:
                raise UsageError("options, key, base_url and user_agent are for a geocoder "
                                 "class or name; an instance or factory has its own")
            self._kwargs = {}
            if isinstance(geocoder, base):
                # a copy without its adapter (a live session) is what workers get
                template = copy.copy(geocoder)
                template.adapter = None
                self._factory = functools.partial(copy.copy, template)
            else:
                self._factory = geocoder
            self._own_adapter = True
        else:
            raise UsageError(f"not a geopy geocoder, class, factory or name: {geocoder!r}")
        built = self._build()  # bad options fail here, before any row
        # an instance or factory may carry its own key: mask it too
        own = (getattr(built, name, None) for name in KEY_PARAMETERS)
        known = self._secrets
        self._secrets = tuple(dict.fromkeys(
            (*self._secrets, *(value for value in own if isinstance(value, str) and value))))
        if self._secrets != known:  # its adapter must mask that key too
            built.adapter.close()
            built = self._build()
        self._class_name = type(built).__name__
        self.service = _service_name(type(built))
        if getattr(built, "domain", None) in PUBLIC_ONE_PER_SECOND:
            #: the public OpenStreetMap Nominatim allows 1 request per second at most
            self.max_rate = 1.0
            self.distributed_forbidden = DISTRIBUTED_FORBIDDEN
        self._geocoder: Any = built
        self._geocode_kwargs = self._call_kwargs(built.geocode, countries=True)
        self.supports_reverse = callable(getattr(type(built), "reverse", None))
        self._reverse_kwargs = (self._call_kwargs(built.reverse, countries=False)
                                if self.supports_reverse else {})
        # what decides an answer besides the query (the key never: it would be stored)
        endpoint = {name: getattr(built, name) for name in ("scheme", "domain", "api")
                    if isinstance(getattr(built, name, None), str)}
        unrelated = (*KEY_PARAMETERS, *OWN_PARAMETERS, "user_agent", "proxies")
        settings = {k: v for k, v in self._kwargs.items() if k not in unrelated}
        self._namespace = (f"{PREFIX}{self.service}:{sorted(endpoint.items())}:"
                           f"{sorted((k, repr(v)) for k, v in settings.items())}:"
                           f"{self.countries}:{self.language}")

    # -- construction ---------------------------------------------------------------

    def _constructor_kwargs(self, cls: type, options: dict[str, Any], base_url: str | None,
                            user_agent: str | None) -> dict[str, Any]:
        """The keyword arguments to build ``cls`` with, checked against its signature."""
        parameters = inspect.signature(cls).parameters
        accepted = [name for name, p in parameters.items()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        usable = [name for name in accepted
                  if name not in OWN_PARAMETERS and not _is_secret(name)]
        kwargs: dict[str, Any] = {}
        for name, value in options.items():
            if _is_secret(name):
                raise UsageError(f"{name} holds a secret: give the key in {KEY_ENV} "
                                 "(or key=), never as an option")
            if name in OWN_PARAMETERS:
                raise UsageError(f"{name} is geofetch's to set (--timeout for the timeout)"
                                 if name == "timeout" else f"{name} cannot be an option")
            if name not in accepted:
                raise UsageError(f"geopy's {cls.__name__} takes no {name!r} option; it "
                                 f"takes: {', '.join(usable) or 'none'}")
            if isinstance(value, str):
                default = parameters[name].default
                try:
                    value = parse_value(value, default)
                except ValueError:
                    kind = {bool: "true or false", int: "a whole number"}.get(
                        type(default), "a number")
                    raise UsageError(f"option {name}={value!r}: not {kind}") from None
            kwargs[name] = value
        if base_url is not None:
            if "domain" not in accepted or "scheme" not in accepted:
                raise UsageError(f"geopy's {cls.__name__} takes no base URL (no domain)")
            if "domain" in kwargs or "scheme" in kwargs:
                raise UsageError("give a base URL or the domain and scheme options, not both")
            parts = urlsplit(base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise UsageError(f"not an http(s) base URL: {base_url!r}")
            kwargs["scheme"] = parts.scheme
            kwargs["domain"] = (parts.netloc + parts.path).rstrip("/")
        if "adapter_factory" in accepted:
            from .geopy_adapter import adapter_factory

            kwargs["adapter_factory"] = adapter_factory(self._secrets)
        if "user_agent" in accepted and "user_agent" not in kwargs:
            from ..http import DEFAULT_USER_AGENT  # geopy's default agent is refused by OSM

            kwargs["user_agent"] = user_agent or DEFAULT_USER_AGENT
        if self.key is not None:
            parameter = next((n for n in KEY_PARAMETERS if n in accepted), None)
            if parameter is None:
                logger.info("geopy's %s takes no key; %s is not used", cls.__name__, KEY_ENV)
            else:
                kwargs[parameter] = self.key
        return kwargs

    def _call_kwargs(self, method: Callable[..., Any], *, countries: bool) -> dict[str, Any]:
        """The keyword arguments each ``geocode`` (or ``reverse``) call gets."""
        accepted = inspect.signature(method).parameters
        kwargs: dict[str, Any] = {}
        if "exactly_one" in accepted:
            kwargs["exactly_one"] = True
        if "addressdetails" in accepted:  # Nominatim's address parts, for the fields
            kwargs["addressdetails"] = True
        if self.language is not None:
            if "language" in accepted:
                kwargs["language"] = self.language
            elif countries:
                raise UsageError(f"geopy's {self._class_name} takes no language")
        if self.countries is not None and countries:
            if "country_codes" in accepted:
                kwargs["country_codes"] = [c.lower() for c in self.countries]
            elif "country" in accepted:
                kwargs["country"] = [c.lower() for c in self.countries]
            else:
                raise UsageError(f"geopy's {self._class_name} cannot keep answers to "
                                 "countries")
        return kwargs

    def _build(self) -> Any:
        geopy = _geopy()
        try:
            geocoder = self._factory()
        except geopy.exc.ConfigurationError as exc:
            raise UsageError(f"geopy: {redact(str(exc), self.secrets())}") from None
        except TypeError as exc:  # a required argument missing (a key, a domain)
            raise UsageError(f"geopy: {redact(str(exc), self.secrets())}") from None
        if not isinstance(geocoder, geopy.geocoders.base.Geocoder):
            raise UsageError(f"the factory made {type(geocoder).__name__}, not a geopy geocoder")
        if self._own_adapter:
            adapter = getattr(geocoder, "adapter", None)
            if isinstance(adapter, geopy.adapters.BaseAsyncAdapter):
                raise UsageError("a geopy geocoder with an async adapter cannot run here: "
                                 "geofetch's workers call it synchronously")
            from .geopy_adapter import adapter_factory

            try:
                geocoder.adapter = adapter_factory(self.secrets())(
                    proxies=geocoder.proxies, ssl_context=geocoder.ssl_context)
            except geopy.exc.ConfigurationError as exc:
                raise UsageError(f"geopy: {exc}") from None
        return geocoder

    # -- the provider ---------------------------------------------------------------

    @property
    def name(self) -> str:  # type: ignore[override]
        """``geopy:NAME``: ``geopy:photon``."""
        return f"{PREFIX}{self.service}"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_geocoder"] = None  # each worker builds its own (open)
        return state

    def open(self) -> None:
        """Build this worker's geocoder (idempotent); mask the key in geopy's logs."""
        if self._geocoder is None:
            self._geocoder = self._build()
        secrets = self.secrets()
        if secrets:
            _LOG_FILTER.secrets = tuple(dict.fromkeys((*_LOG_FILTER.secrets, *secrets)))
            for name in ("geopy", "requests", "urllib3"):
                log = logging.getLogger(name)
                if _LOG_FILTER not in log.filters:
                    log.addFilter(_LOG_FILTER)

    def close(self) -> None:
        """Drop this worker's geocoder."""
        geocoder, self._geocoder = self._geocoder, None
        close = getattr(getattr(geocoder, "adapter", None), "close", None)
        if callable(close):  # geofetch's adapter: its kept-alive connections
            close()

    def geocode(self, query: str, *, timeout: float) -> Answer:
        """One call of the geocoder's ``geocode``: its first match, or not found."""
        if self._geocoder is None:
            self.open()
        location = self._call(self._geocoder.geocode, query, timeout, self._geocode_kwargs)
        return self._answer(location)

    def reverse(self, lat: float, lng: float, *, timeout: float) -> Answer:
        """One call of the geocoder's ``reverse``; an answer outside ``countries``
        (when its country is known) is not found."""
        if not self.supports_reverse:
            return super().reverse(lat, lng, timeout=timeout)
        if self._geocoder is None:
            self.open()
        location = self._call(self._geocoder.reverse, (lat, lng), timeout, self._reverse_kwargs)
        answer = self._answer(location)
        if (self.countries and answer.country_code is not None
                and answer.country_code not in self.countries):
            return NOT_FOUND
        return answer

    def _call(self, method: Callable[..., Any], query: Any, timeout: float,
              kwargs: dict[str, Any]) -> Any:
        try:
            return method(query, timeout=timeout, **kwargs)
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - every geopy outcome is mapped
            raise self.error_for(exc) from None  # the chain carries URLs with the key

    def error_for(self, exc: Exception) -> ProviderError:
        """The geofetch error for a geopy exception, with the key masked:

        ============================================  ============================
        ``GeocoderRateLimited`` (429)                 ``RateLimited`` (its Retry-After)
        ``GeocoderAuthenticationFailure`` (401, 407)  ``RequestDenied``: run aborted
        ``GeocoderInsufficientPrivileges`` (403)      ``RequestDenied``
        ``GeocoderQuotaExceeded`` (402)               ``RequestDenied``
        ``GeocoderQueryError`` (400, 412-414)         ``InvalidRequest``
        ``GeocoderParseError``                        ``InvalidAnswer``
        another 4xx geopy has no class for (404)      ``HTTPError``
        ``GeocoderTimedOut`` (no answer in time)      ``Timeout``
        ``GeocoderUnavailable`` (no connection)       ``ConnectionError``
        any other ``GeocoderServiceError`` (5xx)      ``ServerError``
        anything else (an answer of a shape the       ``InvalidAnswer``
        geocoder could not read)
        ============================================  ============================

        The status comes from the adapter's error geopy raises from; geopy's own
        503 and 504 (``GeocoderTimedOut``) are ``ServerError`` s.
        """
        geopy = _geopy()
        message = " ".join(redact(str(exc), self.secrets()).split()) or type(exc).__name__
        cause = exc.__cause__
        status = getattr(cause, "status_code", None)
        status = status if isinstance(status, int) else None
        text = f"{type(exc).__name__}: {message}"
        if isinstance(exc, geopy.exc.GeocoderRateLimited):
            return RateLimited(text, retry_after=exc.retry_after, status_code=status)
        if isinstance(exc, (geopy.exc.GeocoderAuthenticationFailure,
                            geopy.exc.GeocoderInsufficientPrivileges,
                            geopy.exc.GeocoderQuotaExceeded)):
            return RequestDenied(text, status_code=status)
        if isinstance(exc, geopy.exc.GeocoderQueryError):
            return InvalidRequest(text, status_code=status)
        if isinstance(exc, geopy.exc.GeocoderParseError):
            return InvalidAnswer(text, status_code=status)
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            # geopy's catch-all for a status it has no class for (404, 405, ...):
            # retrying cannot help
            return HTTPError(text, status_code=status)
        if isinstance(exc, geopy.exc.GeocoderTimedOut) and status is None:
            return Timeout(text)
        if isinstance(exc, geopy.exc.GeocoderUnavailable) and status is None:
            return ConnectionError(text)
        if isinstance(exc, geopy.exc.GeocoderServiceError):
            return ServerError(text, status_code=status)
        # not geopy's: a geocoder that could not read the answer's shape
        return InvalidAnswer(text, status_code=status)

    def _answer(self, location: Any) -> Answer:
        if location is None:
            return NOT_FOUND
        if isinstance(location, list):  # exactly_one not honoured
            if not location:
                return NOT_FOUND
            location = location[0]
        try:
            lat, lng = location.latitude, location.longitude
            address = location.address
            raw = location.raw
        except AttributeError as exc:
            raise InvalidAnswer(f"not a geopy Location: {exc}") from None
        return Answer(float(lat) if lat is not None else None,
                      float(lng) if lng is not None else None,
                      address if isinstance(address, str) else None, raw=raw,
                      **fields_of(self._class_name, raw))

    def policy_warning(self) -> str | None:
        """None: each service's policy is the user's to read (geopy's docs link them)."""
        return None

    def cache_namespace(self) -> str:
        """``geopy:NAME`` with the endpoint, options, countries and language."""
        return self._namespace

    def secrets(self) -> tuple[str, ...]:
        """The key, if any (``key``, ``$GEOFETCH_API_KEY`` or the geocoder's own)."""
        return self._secrets

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.service!r})"


def _is_secret(name: str) -> bool:
    """``api_key``, ``client_secret``, ``password``: not ``token_lifetime``."""
    lowered = name.lower()
    return lowered in KEY_PARAMETERS or lowered.rsplit("_", 1)[-1] in _SECRET_WORDS


def _service_name(cls: type) -> str:
    """The ``get_geocoder_for_service`` name of ``cls`` (its class name in lower case
    for a class geopy does not list)."""
    services = _geopy().geocoders.SERVICE_TO_GEOCODER
    names = sorted(name for name, value in services.items() if value is cls)
    return names[0] if names else cls.__name__.lower()


# ------------------------------------------------------------------ address fields

#: Photon's ``type`` -> precision (https://github.com/komoot/photon).
PHOTON_PRECISION = {
    "house": ROOFTOP, "street": STREET, "postcode": POSTCODE,
    **dict.fromkeys(("city", "locality", "district"), LOCALITY),
    **dict.fromkeys(("county", "state"), REGION),
    "country": COUNTRY,
}
#: Pelias' ``layer`` -> precision (https://github.com/pelias/documentation).
PELIAS_PRECISION = {
    "venue": ROOFTOP, "address": ROOFTOP, "street": STREET, "postalcode": POSTCODE,
    **dict.fromkeys(("neighbourhood", "borough", "locality", "localadmin"), LOCALITY),
    **dict.fromkeys(("county", "macrocounty", "region", "macroregion"), REGION),
    **dict.fromkeys(("country", "dependency"), COUNTRY),
}


def fields_of(class_name: str, raw: Any) -> dict[str, Any]:
    """The address fields geopy's raw answer holds, for the services whose answer
    shape is known (Nominatim and its kin, Photon, Pelias and Geocode Earth,
    GoogleV3); ``{}`` (every field empty) for the others."""
    if not isinstance(raw, dict):
        return {}
    if class_name in ("Nominatim", "LocationIQ", "PickPoint", "OpenMapQuest"):
        from .nominatim import nominatim_fields

        return nominatim_fields(raw)
    if class_name == "GoogleV3":
        from .google import google_fields

        return google_fields(raw)
    properties = raw.get("properties")
    if not isinstance(properties, dict):
        return {}
    if class_name == "Photon":
        return _photon_fields(properties)
    if class_name in ("Pelias", "GeocodeEarth"):
        return _pelias_fields(properties)
    return {}


def _text(properties: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = properties.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _code(value: str | None) -> str | None:
    return value.upper() if value and len(value) == 2 and value.isalpha() else None


def _photon_fields(p: dict[str, Any]) -> dict[str, Any]:
    osm_type, osm_id = _text(p, "osm_type"), p.get("osm_id")
    return {
        "country_code": _code(_text(p, "countrycode")),
        "country": _text(p, "country"),
        "admin1": _text(p, "state"),
        "locality": _text(p, "city", "locality", "town", "village"),
        "postcode": _text(p, "postcode"),
        "place_id": f"{osm_type[:1].upper()}{osm_id}" if osm_type and osm_id else None,
        "precision": PHOTON_PRECISION.get(str(p.get("type")), APPROXIMATE),
        "confidence": None,
    }


def _pelias_fields(p: dict[str, Any]) -> dict[str, Any]:
    confidence = p.get("confidence")
    return {
        "country_code": _code(_text(p, "country_code")),
        "country": _text(p, "country"),
        "admin1": _text(p, "region"),
        "locality": _text(p, "locality", "localadmin"),
        "postcode": _text(p, "postalcode"),
        "place_id": _text(p, "gid", "id"),
        "precision": PELIAS_PRECISION.get(str(p.get("layer")), APPROXIMATE),
        "confidence": (float(confidence) if isinstance(confidence, int | float)
                       and not isinstance(confidence, bool) else None),
    }
