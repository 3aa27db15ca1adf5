"""The geofetch error tree.

Usage errors are raised to the caller; per-row failures are never raised out of a
run, they are captured in the row (``status="failed"``, ``error="Class: message"``).
The class name is what a row's ``error`` shows, so leaves are named for the reader::

    GeofetchError                     root of everything geofetch raises
    ├── UsageError(ValueError)        bad options (unknown provider, workers < 1, ...)
    ├── InputError                    unreadable input: no such file, missing column,
    │                                 undecodable bytes (CLI exit 2)
    ├── CacheError                    the cache file is corrupt or from another version
    └── ProviderError                 one request's outcome that is not an answer
        ├── TransientError            worth retrying (with backoff, Retry-After)
        │   ├── Timeout(TimeoutError) no answer within the request timeout
        │   ├── ConnectionError       refused, reset, DNS, ...
        │   ├── RateLimited           HTTP 429, Google OVER_QUERY_LIMIT
        │   └── ServerError           HTTP 5xx, Google UNKNOWN_ERROR
        ├── PermanentError            retrying cannot help
        │   ├── InvalidRequest        HTTP 400, Google INVALID_REQUEST
        │   ├── HTTPError             any other unexpected HTTP status or body
        │   │   └── TooManyRedirects  more than 10 redirects (fetch)
        │   ├── RobotsDisallowed      robots.txt forbids the URL (fetch)
        │   └── TooLarge              the body is over max_bytes (fetch)
        └── RunAborted                the whole run must stop asking (CLI exit 3)
            ├── RequestDenied         REQUEST_DENIED, OVER_DAILY_LIMIT, HTTP 401/403
            └── BudgetExhausted       --max-requests spent

Every extra field is an optional keyword argument, so every exception survives a
pickle round trip across a process boundary (tested).
"""

from __future__ import annotations

import builtins
from typing import Any


class GeofetchError(Exception):
    """Root of every exception geofetch raises."""


class UsageError(GeofetchError, ValueError):
    """An option or argument that cannot be used."""


class InputError(GeofetchError):
    """Input that cannot be read: missing file, missing column, bad encoding."""


class CacheError(GeofetchError):
    """A cache file that cannot be used."""


class ProviderError(GeofetchError):
    """The outcome of one request that is not an answer.

    ``retry_after`` is the delay in seconds the server asked for, if any;
    ``status_code`` the HTTP status, if any.
    """

    def __init__(
        self,
        message: str = "",
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status_code = status_code

    def __reduce__(self) -> tuple[Any, ...]:  # keep the keyword fields across pickling
        return (
            _rebuild,
            (type(self), str(self), self.retry_after, self.status_code),
        )


def _rebuild(
    cls: type[ProviderError], message: str, retry_after: float | None, status_code: int | None
) -> ProviderError:
    return cls(message, retry_after=retry_after, status_code=status_code)


class TransientError(ProviderError):
    """A failure worth retrying."""


class Timeout(TransientError, builtins.TimeoutError):
    """No answer within the request timeout."""


class ConnectionError(TransientError):  # noqa: A001 - mirrors requests.ConnectionError
    """The connection could not be made or was lost."""


class RateLimited(TransientError):
    """The provider asked us to slow down (HTTP 429, OVER_QUERY_LIMIT)."""


class ServerError(TransientError):
    """The provider failed on its side (HTTP 5xx, UNKNOWN_ERROR)."""


class PermanentError(ProviderError):
    """A failure that retrying cannot fix."""


class InvalidRequest(PermanentError):
    """The provider rejected the request as malformed."""


class HTTPError(PermanentError):
    """An unexpected HTTP status or response body."""


class TooManyRedirects(HTTPError):
    """More redirects than a fetch follows (10)."""


class RobotsDisallowed(PermanentError):
    """The site's robots.txt disallows the URL for geofetch."""


class TooLarge(PermanentError):
    """The body is larger than ``max_bytes``."""


class RunAborted(ProviderError):
    """The whole run must stop sending requests."""


class RequestDenied(RunAborted):
    """Credentials refused or quota spent: asking again cannot help."""


class BudgetExhausted(RunAborted):
    """The run's request budget (``max_requests``) is spent."""


def describe(exc: BaseException) -> str:
    """Return ``"ErrorClass: message"`` with a message that is never empty."""
    message = str(exc).strip()
    if not message:
        message = _DEFAULT_MESSAGES.get(type(exc).__name__, "no details given")
    return f"{type(exc).__name__}: {message}"


_DEFAULT_MESSAGES = {
    "Timeout": "no answer in time",
    "KeyboardInterrupt": "interrupted",
    "SystemExit": "task called exit",
}
