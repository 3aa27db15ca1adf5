"""One fetch worker: a URL, hop by hop, through robots.txt, the host cap, the gate
and retries, to one :class:`~geofetch.models.FetchResult` (see :mod:`geofetch.tasks.fetch`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ...core.gate import Gate
from ...core.redis_gate import RedisGate
from ...core.retry import Attempted, RetryPolicy, call_with_retries
from ...exceptions import (
    ContentDecodingError,
    HTTPError,
    RateLimited,
    RobotsDisallowed,
    RunAborted,
    ServerError,
    TooLarge,
    TooManyRedirects,
    describe,
)
from ...http import DEFAULT_USER_AGENT, HTTPClient, Response, error_detail, retry_after_seconds
from ...models import FAILED, INVALID, OK, FetchResult
from .hosts import CrawlDelays, HostSlots
from .html import parse_page
from .robots import (
    ALLOW,
    ROBOTS_MAX_BYTES,
    RULES,
    UNREACHABLE,
    Decided,
    RobotsBook,
    RobotsVerdict,
    product_token,
    robots_text,
)
from .shared import SharedCrawlDelays, SharedHostSlots, SharedRobotsBook
from .urls import check_url, origin_of

#: Redirect hops followed for a page, and for a robots.txt (RFC 9309: at least 5).
MAX_REDIRECTS = 10
ROBOTS_REDIRECTS = 5
#: Bytes of a non-2xx body read to keep the connection; a longer one drops it.
ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class FetchOptions:
    """What to fetch and how politely: see :func:`fetch_many`."""

    select: str | None = None
    per_host: int | None = 4
    max_bytes: int = 10_000_000
    ignore_robots: bool = False
    user_agent: str = DEFAULT_USER_AGENT


@dataclass
class _Page:
    """One HTTP response, read."""

    url: str
    status_code: int
    reason: str
    content_type: str | None
    body: bytes
    complete: bool  # False: cut at the cap
    declared: int | None  # Content-Length
    coding: str | None  # Content-Encoding
    detail: str  # the server's own explanation of an error answer (a 403 page's title)
    location: str | None  # where a redirect points, absolute
    retry_after: str | None  # the Retry-After header
    elapsed: float  # seconds from sending to the last byte read


class FetchWorker:
    """One worker's task function: fetch one URL, never raise."""

    def __init__(self, options: FetchOptions, directory: str, gate: Gate | None,
                 policy: RetryPolicy, timeout: float) -> None:
        self.options = options
        self.gate = gate
        self.policy = policy
        self.timeout = timeout
        self.slots: HostSlots | SharedHostSlots
        self.robots: RobotsBook | SharedRobotsBook
        self.delays: CrawlDelays | SharedCrawlDelays
        if isinstance(gate, RedisGate):  # workers on many machines: Redis, not files
            self.slots = SharedHostSlots(gate, options.per_host)
            self.robots = SharedRobotsBook(gate)
            self.delays = SharedCrawlDelays(gate)
        else:
            self.slots = HostSlots(directory, options.per_host)
            self.robots = RobotsBook(directory)
            self.delays = CrawlDelays(directory)
        self.token = product_token(options.user_agent)
        self.client = HTTPClient(headers={
            "User-Agent": options.user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
        })

    def __call__(self, url: str) -> FetchResult:
        started = time.perf_counter()
        try:
            result = self._fetch(url.strip())
        except Exception as exc:  # a bug: still this row's failure only
            result = FetchResult(url, status=FAILED, error=describe(exc))
        result.url = url
        result.elapsed = time.perf_counter() - started
        return result

    def close(self) -> None:
        """Close this worker's connections."""
        self.client.close()

    # -- the page, hop by hop ---------------------------------------------------

    def _fetch(self, url: str) -> FetchResult:
        attempts = 0
        elapsed = 0.0
        last: _Page | None = None
        current = url
        for hop in range(MAX_REDIRECTS + 1):
            if hop and (problem := check_url(current)) is not None:
                error = f"HTTPError: redirected to a URL that cannot be fetched ({problem})"
                return self._failed(last, error, attempts, elapsed)
            delay = None
            if not self.options.ignore_robots:
                refusal, spent, delay = self._robots_refusal(current, redirected=hop > 0)
                attempts += spent
                if refusal is not None:
                    status, error = refusal
                    if status == INVALID:
                        return FetchResult(url, status=INVALID, error=error, attempts=attempts)
                    return self._failed(last, error, attempts, elapsed)
            attempted, page = self._hop(current, self.options.max_bytes, delay=delay)
            attempts += attempted.attempts
            if page is not None:
                last = page
                elapsed += page.elapsed
            if attempted.error is not None:
                error = describe(attempted.error)
                if hop:
                    error += f" (redirected to {current})"
                return self._failed(last, error, attempts, elapsed)
            page = attempted.value
            assert page is not None
            if page.location is None:
                break
            current = page.location
        else:
            error = f"more than {MAX_REDIRECTS} redirects (the last to {current})"
            return self._failed(last, describe(TooManyRedirects(error)), attempts, elapsed)
        if not 200 <= page.status_code <= 299:
            error = describe(HTTPError(_status_text(page)))
            return self._failed(page, error, attempts, elapsed)
        if not page.complete:
            error = describe(TooLarge(_too_large(page, self.options.max_bytes)))
            return self._failed(page, error, attempts, elapsed)
        return self._ok(page, attempts, elapsed)

    def _ok(self, page: _Page, attempts: int, elapsed: float) -> FetchResult:
        title, selected = parse_page(page.body, page.content_type, self.options.select)
        return FetchResult(
            page.url,
            status_code=page.status_code,
            final_url=page.url,
            elapsed_ms=round(elapsed * 1000),
            bytes=len(page.body),
            content_type=page.content_type,
            title=title,
            selected=selected,
            status=OK,
            attempts=attempts,
        )

    @staticmethod
    def _failed(page: _Page | None, error: str, attempts: int, elapsed: float) -> FetchResult:
        """A failed row: ``error`` is ``"Class: message"``; ``page`` the last response."""
        if page is None:
            return FetchResult("", status=FAILED, error=error, attempts=attempts)
        return FetchResult(
            "",
            status_code=page.status_code,
            final_url=page.url,
            elapsed_ms=round(elapsed * 1000),
            bytes=len(page.body) if page.complete else None,
            content_type=page.content_type,
            status=FAILED,
            error=error,
            attempts=attempts,
        )

    # -- one hop: host slot, gate, retries ------------------------------------------

    def _hop(self, url: str, cap: int, *, truncate: bool = False,
             delay: float | None = None) -> tuple[Attempted[Any], _Page | None]:
        """One request with its retries, each attempt ``delay`` seconds (robots.txt's
        ``Crawl-delay``) after the run's previous request to the origin; also the
        last response seen (for a failure). ``truncate``: see :meth:`_get`."""
        seen: list[_Page] = []
        origin = origin_of(url)

        def request() -> _Page:
            if delay:
                self.delays.wait(origin, delay, self.gate)
            page = self._get(url, cap, seen, truncate=truncate)
            code = page.status_code
            if code == 429 or 500 <= code <= 599:
                retry_after = retry_after_seconds(page.retry_after)
                cls = RateLimited if code == 429 else ServerError
                message = _status_text(page)
                if retry_after is not None:
                    message += f" (retry after {retry_after:.3g} s)"
                raise cls(message, retry_after=retry_after, status_code=code)
            return page

        try:
            with self.slots.hold(urlsplit(url).hostname or "", self.gate):
                attempted = call_with_retries(request, self.policy, self.gate)
        except RunAborted as error:  # stopped while waiting for a host slot
            return Attempted(error=error), None
        return attempted, (seen[0] if seen else None)

    def _get(self, url: str, cap: int, seen: list[_Page], *, truncate: bool = False) -> _Page:
        """One GET, redirects not followed, the body decoded and read to at most
        ``cap`` bytes (:data:`ERROR_BODY_BYTES` for a non-2xx answer), and with
        ``truncate`` its first ``cap`` bytes even when its ``Content-Length`` says
        it is longer; the timeout bounds the whole request (see
        :class:`~geofetch.http.HTTPClient`). The page is also left in ``seen``; a
        body that cannot be decoded leaves its headers there (the row keeps the
        status and type), then raises."""
        with self.client.open(url, timeout=self.timeout, what="page") as exchange:
            ok = 200 <= exchange.status <= 299
            try:
                response = exchange.read(cap if ok else min(cap, ERROR_BODY_BYTES),
                                         truncate=truncate)
            except ContentDecodingError:
                seen[:] = [self._page(Response(url, exchange.status, exchange.reason,
                                               exchange.headers, complete=False,
                                               elapsed=exchange.elapsed))]
                raise
        seen[:] = [self._page(response)]
        return seen[0]

    @staticmethod
    def _page(response: Response) -> _Page:
        return _Page(
            url=response.url,
            status_code=response.status,
            reason=response.reason,
            content_type=response.content_type,
            body=response.body,
            complete=response.complete,
            declared=response.declared_length,
            coding=_coding(response.header("Content-Encoding")),
            detail="" if 200 <= response.status <= 299 else error_detail(response),
            location=response.location,
            retry_after=response.header("Retry-After"),
            elapsed=response.elapsed,
        )

    # -- robots.txt -----------------------------------------------------------------

    def _robots_refusal(self, url: str, redirected: bool
                        ) -> tuple[tuple[str, str] | None, int, float | None]:
        """``(status, error)`` if robots.txt stops ``url``, else None; the requests
        made; and the origin's ``Crawl-delay`` for geofetch, if any."""
        origin = origin_of(url)
        verdict, attempts, error = self.robots.lookup(origin, lambda: self._download_robots(origin))
        if verdict is None:
            return (FAILED, describe(error or RunAborted("run stopped"))), attempts, None
        if verdict.kind == UNREACHABLE:
            return (FAILED, verdict.text), attempts, None
        delay = verdict.crawl_delay(self.token)
        if verdict.allows(url, self.token):
            return None, attempts, delay
        if redirected:
            refusal = RobotsDisallowed(f"redirected to {url}, which {origin}/robots.txt disallows")
            return (FAILED, describe(refusal)), attempts, delay
        path = urlsplit(url).path or "/"
        refusal = RobotsDisallowed(f"{origin}/robots.txt disallows {path}")
        return (INVALID, describe(refusal)), attempts, delay

    def _download_robots(self, origin: str) -> Decided:
        """Ask ``origin`` for its robots.txt (RFC 9309): 2xx, the rules, the first
        :data:`ROBOTS_MAX_BYTES` of a longer file; 4xx, a redirect out of http(s) or
        too many, everything allowed; 5xx or no answer, the origin is unreachable."""
        url = f"{origin}/robots.txt"
        attempts = 0
        for _ in range(ROBOTS_REDIRECTS + 1):
            attempted, page = self._hop(url, ROBOTS_MAX_BYTES, truncate=True)
            attempts += attempted.attempts
            error = attempted.error
            if isinstance(error, RunAborted):
                return None, attempts, error  # undecided: the run is stopping
            if error is not None:
                note = f"{describe(error)} (fetching {url})"
                return RobotsVerdict(UNREACHABLE, note), attempts, None
            page = attempted.value
            assert page is not None
            if page.location is None:
                break
            if check_url(page.location) is not None:
                return RobotsVerdict(ALLOW), attempts, None
            url = page.location
        else:  # RFC 9309: too many redirects, robots.txt is unavailable
            return RobotsVerdict(ALLOW), attempts, None
        if 200 <= page.status_code <= 299:
            verdict = RobotsVerdict(RULES, robots_text(page.body, page.complete))
            if verdict.crawl_delay(self.token):
                # robots.txt was a request too: the first page waits the delay after
                # it. Noted before the verdict is written, while every other worker
                # still waits for it.
                self.delays.sent(origin)
            return verdict, attempts, None
        return RobotsVerdict(ALLOW), attempts, None  # 4xx (and stray 3xx): unavailable


def _status_text(page: _Page) -> str:
    """``429 Too Many Requests``, with the server's own explanation if it gave one
    (``: Slow down, please``: a JSON message, a 403 or 429 page's title)."""
    text = f"{page.status_code} {page.reason}".rstrip()
    return f"{text}: {page.detail}" if page.detail else text


def _too_large(page: _Page, cap: int) -> str:
    """Why a 2xx body cut at ``cap`` is too large, in decoded bytes (what the cap
    counts): from an identity ``Content-Length`` over the cap, the body unread; or
    "more than" the cap, where reading stopped, with the compressed length if any."""
    if page.coding is None and page.declared is not None and page.declared > cap:
        return f"body larger than the {cap}-byte cap (Content-Length {page.declared})"
    if page.coding is None:
        size = f"more than {cap} bytes; stopped reading there"
    else:
        size = f"more than {cap} bytes once decoded"
        if page.declared is not None:
            size += f"; Content-Length {page.declared} compressed ({page.coding})"
    return f"body larger than the {cap}-byte cap ({size})"


def _coding(content_encoding: str | None) -> str | None:
    """The content codings of a ``Content-Encoding`` value, ``identity`` left out;
    None when there is none."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    return ", ".join(codings) or None
