"""HTTP outcomes shared by every service geofetch talks to over ``requests``.

One table turns an HTTP answer or a ``requests`` failure into a
:mod:`geofetch.exceptions` error, with every secret redacted, so the Google and
Nominatim providers (and ``geofetch fetch``) fail the same way for the same cause;
plus ``Retry-After`` parsing, the default User-Agent, and the log guard that masks
keys in the HTTP libraries' log records.
"""

from __future__ import annotations

import functools
import logging
import math
import os
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

DEFAULT_USER_AGENT = f"geofetch/{__version__} (+https://github.com/geofetch/geofetch)"

#: HTTP status -> error for every geocoding answer that is not 200. Any other 5xx is a
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
    "geofetch.http",
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


def content_type(response: requests.Response) -> str:
    """The answer's Content-Type header, for messages."""
    return response.headers.get("Content-Type") or "no Content-Type"


def worker_session(base_url: str) -> requests.Session:
    """A session for one worker talking to one service.

    Proxy and CA-bundle settings are read from the environment once, here (and
    remembered while the environment's proxy and CA variables stay the same), and
    the session then stops re-reading them on every request (``trust_env=False``):
    requests otherwise looks up proxies and ``.netrc`` per request, a fifth of a
    busy worker's CPU. It is a :class:`~geofetch.providers._transport.KeepAliveSession`,
    so a plain GET skips requests' per-call machinery.
    """
    from ._transport import KeepAliveSession

    proxies, verify = _environment_settings(base_url, _environment_key())
    session = KeepAliveSession()
    session.proxies.update(proxies)
    session.verify = verify
    session.trust_env = False
    return session


def _environment_key() -> tuple[tuple[str, str], ...]:
    """The environment variables requests reads for proxies and CA bundles."""
    return tuple(
        (name, value) for name, value in os.environ.items()
        if name.lower().endswith("_proxy") or name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    )


@functools.lru_cache(maxsize=64)
def _environment_settings(
    base_url: str, _environment: tuple[tuple[str, str], ...]
) -> tuple[dict[str, str], Any]:
    with requests.Session() as session:
        settings = session.merge_environment_settings(base_url, {}, None, None, None)
    return dict(settings.get("proxies") or {}), settings.get("verify", True)
