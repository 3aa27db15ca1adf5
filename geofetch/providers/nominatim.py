"""OpenStreetMap's Nominatim search API, through one ``requests.Session`` per worker.

One :meth:`NominatimProvider.geocode` is one ``GET {base_url}/search?q=...&format=json``
with a ``(connect, read)`` timeout and no redirects followed, so the engine's rate
limit and budget count every request the server sees. The public server asks for at
most 1 request/s and a User-Agent naming the application
(https://operations.osmfoundation.org/policies/nominatim/): hence ``default_rate``.

The second half of this module turns any HTTP answer or ``requests`` failure into a
:mod:`geofetch.exceptions` error, with every secret redacted; the Google provider
uses the same table, so both services fail the same way for the same HTTP status.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import MaxRetryError

from .._version import __version__
from ..exceptions import (
    ConnectionError,
    HTTPError,
    InvalidRequest,
    ProviderError,
    RateLimited,
    RequestDenied,
    ServerError,
    Timeout,
    UsageError,
)
from ..redact import RedactingFilter, redact
from .base import Answer, Provider

DEFAULT_USER_AGENT = f"geofetch/{__version__} (+https://github.com/geofetch/geofetch)"
NOMINATIM_URL = "https://nominatim.openstreetmap.org"


class NominatimProvider(Provider):
    """Nominatim's ``/search`` endpoint.

    ``base_url`` points at a self-hosted instance (no trailing ``/search``);
    ``user_agent`` replaces geofetch's own; ``email`` is sent as Nominatim's
    ``email`` parameter (its operators' preferred contact); ``language`` as
    ``accept-language``.
    """

    name = "nominatim"
    default_rate = 1.0
    uses_network = True
    cacheable = True

    def __init__(
        self,
        base_url: str = NOMINATIM_URL,
        user_agent: str | None = None,
        email: str | None = None,
        language: str | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        self.email = email
        self.language = language
        self._session: requests.Session | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_session"] = None  # a live session is built per worker, never pickled
        return state

    def open(self) -> None:
        """Build this worker's session (idempotent)."""
        if self._session is None:
            guard_library_logs(self.secrets())
            session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            session.headers["Accept"] = "application/json"
            self._session = session

    def close(self) -> None:
        """Close this worker's session."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def geocode(self, query: str, *, timeout: float) -> Answer:
        """One search request: the first match, or a not-found answer for ``[]``."""
        if self._session is None:
            self.open()
        assert self._session is not None
        params: dict[str, str | int] = {"q": query, "format": "json", "limit": 1}
        if self.language:
            params["accept-language"] = self.language
        if self.email:
            params["email"] = self.email
        try:
            response = self._session.get(
                f"{self.base_url}/search",
                params=params,
                timeout=(timeout, timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise error_for_exception(exc, timeout, self.secrets()) from exc
        if response.status_code != 200:
            raise error_for_response(response, self.secrets())
        try:
            body = response.json()
        except ValueError as exc:
            raise HTTPError(
                f"HTTP 200 with a body that is not JSON ({_content_type(response)})",
                status_code=200,
            ) from exc
        if not isinstance(body, list):
            raise HTTPError(
                f"expected a JSON list of places, got {type(body).__name__}: "
                + redact(str(body)[:200], self.secrets()),
                status_code=200,
            )
        if not body:
            return Answer(raw=body)
        first = body[0]
        try:
            lat, lng = float(first["lat"]), float(first["lon"])
        except (KeyError, TypeError, ValueError) as exc:
            raise HTTPError("first place has no usable lat/lon", status_code=200) from exc
        return Answer(lat=lat, lng=lng, formatted_address=first.get("display_name"), raw=body)

    def cache_namespace(self) -> str:
        """Provider, server and language: what besides the query decides the answer."""
        return f"nominatim|{self.base_url}|language={self.language or ''}"

    def __repr__(self) -> str:
        return f"NominatimProvider(base_url={self.base_url!r}, language={self.language!r})"


# -- HTTP outcomes, shared with the Google provider -------------------------------

#: HTTP status -> error for every answer that is not 200. Any other 5xx is a
#: ServerError, anything else (404, 3xx, ...) an HTTPError.
HTTP_STATUS_ERRORS: dict[int, type[ProviderError]] = {
    400: InvalidRequest,
    401: RequestDenied,
    403: RequestDenied,
    429: RateLimited,
}


def check_base_url(base_url: str) -> str:
    """Return ``base_url`` without a trailing slash; raise UsageError unless http(s)."""
    parts = urlsplit(base_url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"base URL must be an http:// or https:// URL, not {base_url!r}")
    return base_url.rstrip("/")


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delay-seconds or HTTP-date).

    ``None`` when absent or unreadable; a date in the past gives 0.
    """
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def error_for_response(response: requests.Response, secrets: Iterable[str] = ()) -> ProviderError:
    """The error for a non-200 HTTP answer, per :data:`HTTP_STATUS_ERRORS`."""
    code = response.status_code
    cls = HTTP_STATUS_ERRORS.get(code) or (ServerError if 500 <= code <= 599 else HTTPError)
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    message = f"HTTP {code} {response.reason or ''}".rstrip()
    if response.is_redirect:
        message += f" to {response.headers.get('Location', '?')} (redirects are not followed)"
    detail = _error_detail(response)
    if detail:
        message += f": {detail}"
    if retry_after is not None:
        message += f" (retry after {retry_after:.3g} s)"
    return cls(redact(message, secrets), retry_after=retry_after, status_code=code)


def error_for_exception(
    exc: requests.RequestException, timeout: float, secrets: Iterable[str] = ()
) -> ProviderError:
    """The error for a request that got no HTTP answer (timeout, refused, reset, ...).

    Also strips the secrets from ``exc`` and its chain, which the caller raises ``from``.
    """
    secrets = tuple(secrets)
    # requests' message repeats the URL (with key=); urllib3's reason says what went wrong
    reason = exc.args[0].reason if exc.args and isinstance(exc.args[0], MaxRetryError) else None
    message = redact(str(reason or exc), secrets) or type(exc).__name__
    scrub_chain(exc, secrets)
    if isinstance(exc, requests.Timeout):  # ConnectTimeout and ReadTimeout
        return Timeout(f"no answer within {timeout:g} s")
    transient = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
    if isinstance(exc, transient):
        return ConnectionError(message)
    return HTTPError(f"{type(exc).__name__}: {message}")


def scrub_chain(exc: BaseException, secrets: Iterable[str] = ()) -> None:
    """Redact the message of ``exc`` and of every exception it was raised from.

    Tracebacks print the whole ``__cause__``/``__context__`` chain, and ``requests``
    and ``urllib3`` messages carry the full URL (``key=`` included).
    """
    secrets = tuple(secrets)
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        error = stack.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        try:
            text = str(error)
        except Exception:  # a broken __str__ must not hide the real error
            text = ""
        clean = redact(text, secrets)
        inner = [a for a in error.args if isinstance(a, BaseException)]
        if clean != text:
            error.args = (clean,)
        stack += [error.__cause__, error.__context__, getattr(error, "base_exception", None)]
        stack += inner


# urllib3 logs every request line (with the query string) at DEBUG; a filter on the
# emitting loggers masks it whatever handlers the application installs.
_LIBRARY_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "requests",
    "googlemaps",
    "googlemaps.client",
    "geofetch",
)
_LOG_FILTER = RedactingFilter()


def guard_library_logs(secrets: Iterable[str] = ()) -> None:
    """Mask ``secrets`` and every ``key=`` value in the HTTP libraries' log records."""
    _LOG_FILTER.secrets = tuple(dict.fromkeys((*_LOG_FILTER.secrets, *(s for s in secrets if s))))
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


def _error_detail(response: requests.Response) -> str:
    """The service's own explanation in a JSON error body, if any."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    detail = body.get("error_message") or body.get("error") or body.get("message")
    if isinstance(detail, dict):
        detail = detail.get("message")
    return str(detail).strip()[:300] if detail else ""


def _content_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type") or "no Content-Type"
