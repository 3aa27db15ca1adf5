"""One table from an HTTP outcome to a :mod:`geofetch.exceptions` error.

Every service geofetch talks to fails the same way for the same cause: a non-2xx
status through :data:`HTTP_STATUS_ERRORS` (:func:`error_for_response`), a request
that got no answer through :func:`error_for_transport`, which names the origin as
``scheme://host:port`` (the default port too: ``http://example.com:80``), since
"connection refused" without the port is no clue. :func:`error_detail` is the
server's own explanation of an error answer, for the providers and ``geofetch
fetch`` alike: a JSON body's message, or the ``<title>`` of an HTML page answering
403 or 429 (a firewall's or a rate limiter's page: "Access denied", "Slow down").
Every message is
redacted (:mod:`geofetch.redact`), and so is every exception in the chain the
error is raised from, since tracebacks print the whole chain and urllib3's
messages repeat the URL, ``key=`` included. Also here: ``Retry-After`` parsing
and the log guard that masks keys in urllib3's log records.
"""

from __future__ import annotations

import http.client
import logging
import math
import re
import socket
import ssl
from collections.abc import Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import urllib3.exceptions as u3

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
from ..options import DEFAULT_USER_AGENT
from ..redact import RedactingFilter, redact
from .response import Response

__all__ = [
    "DEFAULT_USER_AGENT",
    "HTTP_STATUS_ERRORS",
    "TITLED_STATUSES",
    "check_base_url",
    "error_detail",
    "error_for_response",
    "error_for_transport",
    "guard_library_logs",
    "html_title",
    "origin_with_port",
    "retry_after_seconds",
    "scrub_chain",
]


#: HTTP status -> error for every answer a provider cannot use. Any other 5xx is a
#: ServerError, anything else (404, 3xx, ...) an HTTPError.
HTTP_STATUS_ERRORS: dict[int, type[ProviderError]] = {
    400: InvalidRequest,
    401: RequestDenied,
    403: RequestDenied,
    429: RateLimited,
}
#: Statuses whose HTML page's ``<title>`` is worth quoting in the error: a site's
#: firewall, bot wall or rate limiter says why there ("Access denied", "Slow down").
TITLED_STATUSES = frozenset((403, 429))
#: A quoted title is cut to this many characters (an ellipsis marks the cut).
TITLE_CHARS = 120
#: Bytes of an HTML body searched for its ``<title>``.
TITLE_SEARCH_BYTES = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_base_url(base_url: str) -> str:
    """Return ``base_url`` without a trailing slash; raise UsageError unless it is an
    http(s) URL with a host and, if it has one, a port from 1 to 65535."""
    problem = f"base URL must be an http:// or https:// URL with a host, not {base_url!r}"
    try:
        parts = urlsplit(base_url or "")
        port = parts.port  # a ValueError for a port that is no number or out of range
    except ValueError as exc:
        raise UsageError(f"{problem} ({exc})") from None
    host_port = parts.netloc.rpartition("@")[2]
    if (parts.scheme not in ("http", "https") or not parts.hostname or port == 0
            or not _HOST_PORT.fullmatch(host_port)):
        raise UsageError(problem)
    return base_url.rstrip("/")


# A host name, IPv4 address or [IPv6] literal, then an optional :port, and nothing else.
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\[\]:/]+)(:[0-9]{1,5})?")


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (RFC 9110 §10.2.3): delay-seconds
    or an HTTP-date.

    ``None`` when absent or unreadable; a date in the past, or a negative number, 0.
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


def error_for_response(response: Response, secrets: Iterable[str] = ()) -> ProviderError:
    """The error for an answer whose status a provider cannot use (per
    :data:`HTTP_STATUS_ERRORS`), with the service's own explanation from a JSON
    body and the ``Retry-After`` delay, if any."""
    code = response.status
    cls = HTTP_STATUS_ERRORS.get(code) or (ServerError if 500 <= code <= 599 else HTTPError)
    retry_after = retry_after_seconds(response.header("Retry-After"))
    message = f"HTTP {code} {response.reason or ''}".rstrip()
    if response.is_redirect:
        message += f" to {response.header('Location')} (redirects are not followed)"
    detail = error_detail(response)
    if detail:
        message += f": {detail}"
    if retry_after is not None:
        message += f" (retry after {retry_after:.3g} s)"
    return cls(redact(message, secrets), retry_after=retry_after, status_code=code)


def error_for_transport(exc: BaseException, *, timeout: float, origin: str,
                        secrets: Iterable[str] = ()) -> ProviderError:
    """The error for a request to ``origin`` that got no answer: refused, reset,
    timed out, TLS refused, ... (``exc`` from urllib3, ``http.client`` or the OS).

    Also strips the secrets from ``exc`` and its chain, which the caller raises
    ``from``.
    """
    secrets = tuple(secrets)
    scrub_chain(exc, secrets)
    origin = origin_with_port(origin)
    if isinstance(exc, u3.NewConnectionError):  # before TimeoutError: it is one too
        cause = exc.__cause__ or exc.__context__
        return ConnectionError(redact(f"cannot connect to {origin}: {_text(cause or exc)}",
                                      secrets))
    if isinstance(exc, (u3.TimeoutError, TimeoutError, socket.timeout)):
        return Timeout(f"no answer within {timeout:g} s")
    if isinstance(exc, (u3.SSLError, ssl.SSLError, ssl.CertificateError)):
        inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
        return ConnectionError(redact(f"TLS with {origin} failed: {_text(inner)}", secrets))
    if isinstance(exc, u3.ProxyError):
        return ConnectionError(redact(f"proxy for {origin} failed: {_protocol(exc)}", secrets))
    if isinstance(exc, (u3.ProtocolError, OSError, http.client.HTTPException)):
        return ConnectionError(redact(f"connection to {origin} broken: {_protocol(exc)}",
                                      secrets))
    if isinstance(exc, (u3.LocationValueError, ValueError)):
        return HTTPError(redact(f"cannot send that request: {_text(exc)}", secrets))
    return HTTPError(redact(f"{type(exc).__name__}: {_text(exc)}", secrets))


def origin_with_port(origin: str) -> str:
    """``scheme://host:port``, the default port written out (``https://example.com``
    is ``https://example.com:443``); anything unreadable as it is."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return origin
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if port is not None or default is None or not parts.hostname:
        return origin
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}:{default}"


def _text(exc: BaseException) -> str:
    """An exception's message; for an OS error its text alone (``Connection
    refused``, not ``[Errno 111] Connection refused``)."""
    if isinstance(exc, OSError) and exc.errno is not None and isinstance(exc.strerror, str) \
            and exc.strerror.strip():
        return exc.strerror.strip()
    return str(exc).strip() or type(exc).__name__


def _protocol(exc: BaseException) -> str:
    """urllib3's ``ProtocolError("Connection aborted.", RemoteDisconnected(...))`` as
    ``Connection aborted: Remote end closed connection without response``."""
    if len(exc.args) == 2 and isinstance(exc.args[1], BaseException):
        return f"{str(exc.args[0]).rstrip('.')}: {_text(exc.args[1])}"
    return _text(exc)


def scrub_chain(exc: BaseException, secrets: Iterable[str] = ()) -> None:
    """Redact the message of ``exc`` and of every exception it was raised from.

    Tracebacks print the whole ``__cause__``/``__context__`` chain, and urllib3's
    messages (and its exceptions' ``url`` attribute) carry the full URL.
    """
    secrets = tuple(secrets)
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        error = stack.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        inner = [a for a in error.args if isinstance(a, BaseException)]
        args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in error.args)
        if args != error.args:
            error.args = args
        url = getattr(error, "url", None)
        if isinstance(url, str) and redact(url, secrets) != url:
            try:
                error.url = redact(url, secrets)  # type: ignore[attr-defined]
            except AttributeError:
                pass
        stack += [error.__cause__, error.__context__, *inner]


# urllib3 logs every request line (with the query string) at DEBUG; a filter on the
# emitting loggers masks it whatever handlers the application installs.
_LIBRARY_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
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


def error_detail(response: Response) -> str:
    """The server's own explanation of an error answer, or ``""``: the message of a
    JSON body (``error_message``, ``error``, ``message``), else, for a status in
    :data:`TITLED_STATUSES`, the title of an HTML page (:func:`html_title`) unless
    it only repeats the status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("error_message") or body.get("error") or body.get("message")
        if isinstance(detail, dict):
            detail = detail.get("message")
        return str(detail).strip()[:300] if detail else ""
    if response.status not in TITLED_STATUSES:
        return ""
    title = html_title(response.body, response.content_type) or ""
    reason = " ".join((response.reason or "").split()).lower()
    if title.lower() in (reason, f"{response.status} {reason}".rstrip(), str(response.status)):
        return ""
    return title


def html_title(body: bytes, content_type: str | None) -> str | None:
    """The first ``<title>`` of an HTML body (the first :data:`TITLE_SEARCH_BYTES`),
    whitespace folded, cut to :data:`TITLE_CHARS` characters; None if ``body`` is
    not HTML (by its ``Content-Type``; sniffed when there is none) or has no title."""
    mime, _, params = (content_type or "").partition(";")
    mime = mime.strip().lower()
    if mime:
        if mime not in ("text/html", "application/xhtml+xml"):
            return None
    elif body.lstrip()[:1] != b"<":
        return None
    charset = "utf-8"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip("\"'"):
            charset = value.strip().strip("\"'")
    try:
        text = body[:TITLE_SEARCH_BYTES].decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        text = body[:TITLE_SEARCH_BYTES].decode("utf-8", "replace")
    finder = _TitleFinder()
    try:
        finder.feed(text)
        finder.close()
    except Exception:  # html.parser copes with nearly anything; never fail an error on it
        pass
    title = " ".join("".join(finder.parts).split())
    if not title:
        return None
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "\u2026"
    return title


class _TitleFinder(HTMLParser):
    """Collects the text of the first ``<title>`` element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.state = "before"  # "inside" the title, then "done"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and self.state == "before":
            self.state = "inside"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.state == "inside":
            self.state = "done"

    def handle_data(self, data: str) -> None:
        if self.state == "inside":
            self.parts.append(data)
