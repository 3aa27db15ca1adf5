"""The geofetch error tree.

Usage errors are raised to the caller; per-row failures are never raised out of a
run, they are captured in the row (``status="failed"``, ``error="Class: message"``).
The class name is what a row's ``error`` shows, so leaves are named for the reader::

    GeofetchError                     root of everything geofetch raises
    ├── UsageError(ValueError)        bad options (unknown provider, workers < 1, ...)
    ├── InputError                    unreadable input: no such file, missing column,
    │                                 undecodable bytes (CLI exit 2)
    ├── CacheError                    the cache file is unusable, full or locked (exit 2)
    ├── OutputError                   the output cannot be written (exit 2)
    ├── WorkerStartError              worker processes keep dying before any task
    ├── RowError                      why one row has no answer, though no request failed
    │   ├── InvalidQuery              blank, too long, or not text (status invalid)
    │   ├── InvalidURL                not an http(s) URL (status invalid, fetch)
    │   ├── MalformedRow              an input row whose field count is not the
    │   │                             header's (status invalid; its cells are kept)
    │   ├── WorkerDied                the worker process died under the row (twice)
    │   ├── WorkerTimeout             the row's worker sent nothing for longer than
    │   │                             the row may take (abandoned, or killed)
    │   ├── UnpicklableResult         the row's result could not be sent back
    │   └── TaskError                 the task raised something unexpected (a bug);
    │                                 the message starts with the original class
    └── ProviderError                 one request's outcome that is not an answer
        ├── TransientError            worth retrying (with backoff, Retry-After)
        │   ├── Timeout(TimeoutError) no whole answer within the request timeout
        │   ├── ConnectionError(builtins.ConnectionError)
        │   │                         refused, reset, DNS, ...
        │   ├── RateLimited           HTTP 429, Google OVER_QUERY_LIMIT
        │   └── ServerError           HTTP 5xx, Google UNKNOWN_ERROR
        ├── PermanentError            retrying cannot help
        │   ├── InvalidRequest        HTTP 400, Google INVALID_REQUEST
        │   ├── InvalidAnswer         coordinates that are not finite or out of range
        │   ├── HTTPError             any other unexpected HTTP status or body
        │   │   ├── TooManyRedirects  more than 10 redirects (fetch)
        │   │   └── ContentDecodingError
        │   │                         a body in a Content-Encoding that cannot be decoded
        │   ├── RobotsDisallowed      robots.txt forbids the URL (fetch)
        │   └── TooLarge              the body is over max_bytes (fetch)
        └── RunAborted                the whole run must stop asking (CLI exit 3)
            ├── RequestDenied         REQUEST_DENIED, OVER_DAILY_LIMIT, a spent daily
            │                         quota, HTTP 401/403
            ├── BudgetExhausted       --max-requests spent
            ├── Throttled             --max-throttled rate-limit answers in a row
            ├── WaitTooLong           a Retry-After longer than --max-wait
            ├── GateUnavailable       the shared gate's Redis cannot be reached
            └── SchedulerUnavailable  the dask scheduler cannot be reached

Every class name a row's ``error`` shows is a class of this module: an exception of
any other class raised by a task is written ``TaskError: OtherClass: message``.
A leaf named after a builtin inherits it (``Timeout`` is a ``TimeoutError``,
``ConnectionError`` a ``builtins.ConnectionError``), so ``except TimeoutError`` works.

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


class OutputError(GeofetchError):
    """The output cannot be written (no such directory, disk full, ``/dev/full``)."""


class WorkerStartError(GeofetchError):
    """Worker processes keep dying before they finish any task."""


class RowError(GeofetchError):
    """Why one row has no answer although no request failed (written in its ``error``)."""


class InvalidQuery(RowError):
    """The query cannot be asked: blank, longer than 1,000 characters, or not text."""


class InvalidURL(RowError):
    """The URL cannot be fetched: not http(s), no host, blank or too long."""


class MalformedRow(RowError):
    """An input row with more or fewer fields than the header: kept, never asked."""


class WorkerDied(RowError):
    """The worker process died (killed, segfault) while it held the row, twice."""


class WorkerTimeout(RowError):
    """The row's worker held it longer than any answer can take (timeout x attempts,
    backoff, Retry-After waits, the gate's queue, a margin): a thread is abandoned,
    a process killed and replaced."""


class UnpicklableResult(RowError):
    """The row's result could not be pickled back from its worker process."""


class TaskError(RowError):
    """The task raised an exception geofetch does not know (a bug in a provider or in
    geofetch); the message is ``"OriginalClass: message"``."""


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


class ConnectionError(TransientError, builtins.ConnectionError):  # noqa: A001
    """The connection could not be made or was lost (a ``builtins.ConnectionError``)."""


class RateLimited(TransientError):
    """The provider asked us to slow down (HTTP 429, OVER_QUERY_LIMIT)."""


class ServerError(TransientError):
    """The provider failed on its side (HTTP 5xx, UNKNOWN_ERROR)."""


class PermanentError(ProviderError):
    """A failure that retrying cannot fix."""


class InvalidRequest(PermanentError):
    """The provider rejected the request as malformed."""


class InvalidAnswer(PermanentError):
    """The provider answered with coordinates that are not finite numbers or lie
    outside -90..90 (lat) and -180..180 (lng)."""


class HTTPError(PermanentError):
    """An unexpected HTTP status or response body."""


class TooManyRedirects(HTTPError):
    """More redirects than a fetch follows (10)."""


class ContentDecodingError(HTTPError):
    """The body came in a ``Content-Encoding`` that cannot be decoded (unknown, or
    corrupt); the message names the encoding."""


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


class Throttled(RunAborted):
    """The provider answered ``max_throttled`` requests in a row with a rate limit
    (HTTP 429, 503 with Retry-After, ``OVER_QUERY_LIMIT``), however slowly asked."""


class WaitTooLong(RunAborted):
    """The provider asked (``Retry-After``) for a wait longer than ``max_wait``."""


class GateUnavailable(RunAborted):
    """The run's shared gate (``--gate redis://HOST:PORT``) cannot be reached: no
    request may go out unmetered, so the run stops; the message names the server,
    never its password."""


class SchedulerUnavailable(RunAborted):
    """The dask scheduler of the run (``--scheduler``, or the local cluster's) was lost:
    the rows it held cannot come back, so the run stops."""


def describe(exc: BaseException) -> str:
    """Return ``"ErrorClass: message"`` with a message that is never empty.

    An exception that is not a :class:`GeofetchError` is described as a
    :class:`TaskError`: ``"TaskError: ValueError: message"``.
    """
    if not isinstance(exc, GeofetchError):
        return f"TaskError: {_plain(exc)}"
    return _plain(exc)


def _plain(exc: BaseException) -> str:
    message = str(exc).strip()
    if not message:
        message = _DEFAULT_MESSAGES.get(type(exc).__name__, "no details given")
    return f"{type(exc).__name__}: {message}"


_DEFAULT_MESSAGES = {
    "Timeout": "no answer in time",
    "KeyboardInterrupt": "interrupted",
    "SystemExit": "task called exit",
}
