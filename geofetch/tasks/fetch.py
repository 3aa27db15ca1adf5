"""Fetching web pages on the job engine: :func:`fetch_many`, :func:`iter_fetch`, and
what ``geofetch fetch`` runs.

One URL, as a worker sees it (each worker has its own ``requests.Session``)::

    url ── not http(s), blank, too long? (parent) ──────────► invalid, no request
     │
     ▼ worker
    robots.txt of the URL's origin: asked once per run ─ disallowed ─► invalid, no request
     │
     ▼  (each redirect hop again: robots, host slot, gate; at most 10 hops)
    host slot (≤ per_host in flight per host name) ─► gate (rate, budget, abort)
     ─► GET, body streamed and cut at max_bytes ─► 3xx with Location? next hop
     │
     ├─ 2xx, whole body ─► ok: title (and ``selected``) parsed with BeautifulSoup
     └─ anything else ──► failed: ``HTTPError: 404 Not Found``, ``TooLarge: ...``

Decisions:

* **Too large.** A 2xx body over ``max_bytes`` (default 10 MB) is a ``failed`` row
  with ``TooLarge: ...`` (a permanent error, not retried): a cut page is not the
  page, and ``error`` stays empty for ``ok`` rows, so a truncated ``ok`` row would
  pass silently for a whole one. This is what ``curl --max-filesize`` and Scrapy's
  ``DOWNLOAD_MAXSIZE`` do. A ``Content-Length`` over the cap stops the request
  before any body is read, otherwise reading stops at the cap and the connection is
  dropped. The row keeps ``status_code``, ``final_url``, ``content_type`` and
  ``elapsed_ms``; ``bytes`` and ``title`` stay empty. The cap counts decoded bytes,
  so a compressed body cannot expand past it.
* **robots.txt** is honoured unless ``ignore_robots``, per RFC 9309, for every hop
  (a redirect into a disallowed path is refused too). Each origin's robots.txt is
  asked once per run, by whichever worker needs it first, under a file lock in the
  run's directory; the others (threads or processes) wait for that lock and read the
  verdict it wrote, so hosts are looked up in parallel, not one by one in the parent.
  It is an ordinary request: through the host slot and the gate, so it counts
  against the rate and ``max_requests``. Verdicts: 2xx, the rules (the first
  500 KiB, matched for the product token ``geofetch``); 4xx, everything allowed;
  5xx or no answer after the retries, the origin is *unreachable* and each of its
  URLs is ``failed`` with that error, no request (RFC 9309 forbids crawling a site
  whose robots.txt cannot be read; a dead host so reads ``ConnectionError``, not a
  refusal). A disallowed URL is ``invalid`` with ``RobotsDisallowed: ...`` and no
  request; a redirect into a disallowed URL is ``failed`` (a request was made).
* **Per-host cap.** ``per_host`` lock files per host name in the run's temporary
  directory; a request holds one, taken with ``flock(LOCK_EX | LOCK_NB)``, for its
  attempts and backoff, so the host sees at most ``per_host`` requests from the
  whole run at once, whatever the executor. The kernel drops the lock of a worker
  that dies. A worker finding no free slot polls (every 5 to 20 ms) and notices an
  aborted run. The slot is taken *before* the gate, so a rate slot is never spent
  waiting for a host.
* **Redirects** are followed here, not by ``requests``, so each hop is one request
  through the host slot and the gate (rate and budget see every request), to at most
  10; more is ``failed`` with ``TooManyRedirects``.
* **Timeout.** ``timeout`` seconds bound connecting, each read, and the whole
  response (headers and body) of one request, so a server trickling bytes cannot
  stall a worker; ``Timeout`` is retried like any transient error.
* **Columns of failed rows.** ``status_code``, ``final_url``, ``elapsed_ms``,
  ``bytes`` and ``content_type`` describe the last HTTP response received for the
  row (empty when none was); ``title`` and ``selected`` are set on ``ok`` rows only.
  ``elapsed_ms`` is the time from sending to the last byte, summed over the
  redirect hops (waits for the gate, a host slot or a retry are not in it).
* **Dedup.** Identical URLs in flight are fetched once; a URL's key folds only the
  case of its scheme and host and drops the fragment (a path is case-sensitive).
  Fetch results are never cached.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
import urllib.robotparser
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import urllib3
from bs4 import BeautifulSoup

from ..cache import CacheEntry
from ..core.job import Job, progress_option
from ..core.ratelimit import RequestGate
from ..core.retry import Attempted, RetryPolicy, call_with_retries
from ..exceptions import (
    ConnectionError,
    HTTPError,
    ProviderError,
    RateLimited,
    RobotsDisallowed,
    RunAborted,
    ServerError,
    Timeout,
    TooLarge,
    TooManyRedirects,
    UsageError,
    describe,
)
from ..models import FAILED, INVALID, MAX_QUERY_LENGTH, OK, FetchResult
from ..providers._http import DEFAULT_USER_AGENT, error_for_exception, retry_after_seconds

#: Redirect hops followed for a page, and for a robots.txt (RFC 9309: at least 5).
MAX_REDIRECTS = 10
ROBOTS_REDIRECTS = 5
#: Bytes of a robots.txt that are read and parsed (RFC 9309: at least 500 KiB).
ROBOTS_MAX_BYTES = 500 * 1024
#: Bytes of a non-2xx body read to keep the connection; a longer one drops it.
_ERROR_BODY_BYTES = 64 * 1024
_CHUNK = 64 * 1024
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_SLOT_POLL = (0.005, 0.02)  # first and longest wait, seconds, for a free host slot


@dataclass(frozen=True)
class FetchOptions:
    """What to fetch and how politely: see :func:`fetch_many`."""

    select: str | None = None
    per_host: int | None = 4
    max_bytes: int = 10_000_000
    ignore_robots: bool = False
    user_agent: str = DEFAULT_USER_AGENT


# -- URLs ----------------------------------------------------------------------


def check_url(url: object) -> str | None:
    """Why ``url`` cannot be fetched (``"InvalidURL: ..."``), or None if it can."""
    if not isinstance(url, str):
        return f"InvalidURL: not text but {type(url).__name__}"
    text = url.strip()
    if not text:
        return "InvalidURL: blank URL"
    if len(text) > MAX_QUERY_LENGTH:
        return f"InvalidURL: {len(text)} characters, the limit is {MAX_QUERY_LENGTH}"
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"InvalidURL: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"InvalidURL: not an http(s) URL: {text[:200]!r}"
    if not host:
        return f"InvalidURL: no host in {text[:200]!r}"
    return None


def url_key(url: str) -> str:
    """The URL as asked: scheme and host case-folded, fragment dropped."""
    parts = urlsplit(url.strip())
    userinfo, _, host = parts.netloc.rpartition("@")
    netloc = f"{userinfo}@{host.lower()}" if userinfo else host.lower()
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


# -- the per-host cap ------------------------------------------------------------


class HostSlots:
    """At most ``per_host`` requests in flight per host name, across threads and
    processes: ``per_host`` lock files per host in ``directory`` (see the module
    docstring). ``per_host=None`` is no cap. Picklable."""

    def __init__(self, directory: str, per_host: int | None) -> None:
        self.directory = directory
        self.per_host = per_host

    @contextlib.contextmanager
    def hold(self, host: str, gate: RequestGate | None = None) -> Iterator[None]:
        """Hold one of ``host``'s slots; raise the run's abort error while waiting."""
        if not self.per_host:
            yield
            return
        prefix = os.path.join(self.directory, "host-" + _digest(host.lower()))
        wait = _SLOT_POLL[0]
        first = random.randrange(self.per_host)  # spread the workers over the slots
        while True:
            for i in range(self.per_host):
                fd = os.open(f"{prefix}.{(first + i) % self.per_host}", os.O_RDWR | os.O_CREAT,
                             0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                        continue
                    raise
                try:
                    yield
                finally:
                    os.close(fd)  # closing the descriptor releases the lock
                return
            if gate is not None:
                gate.check()
            time.sleep(wait)
            wait = min(wait * 2, _SLOT_POLL[1])


# -- robots.txt ------------------------------------------------------------------

ALLOW, RULES, UNREACHABLE = "allow", "rules", "unreachable"


@dataclass
class RobotsVerdict:
    """What an origin's robots.txt says: ``allow`` everything, the ``rules`` in
    ``text``, or ``unreachable`` with the error in ``text``."""

    kind: str
    text: str = ""
    _parser: urllib.robotparser.RobotFileParser | None = None

    def allows(self, url: str, agent: str) -> bool:
        if self.kind != RULES:
            return self.kind == ALLOW
        if self._parser is None:
            parser = urllib.robotparser.RobotFileParser()
            parser.parse(self.text.splitlines())
            self._parser = parser
        return self._parser.can_fetch(agent, url)


#: A verdict (None if undecided), the requests made for it, and why it is undecided.
Decided = tuple[RobotsVerdict | None, int, ProviderError | None]


class RobotsBook:
    """Each origin's robots.txt verdict, decided once per run by whichever worker
    asks first, and kept in ``directory`` for every other worker. Picklable."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._known: dict[str, RobotsVerdict] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory, "_known": {}}

    def lookup(
        self,
        origin: str,
        download: Callable[[], Decided],
    ) -> Decided:
        """The verdict for ``origin``, with the requests this call made and the error
        that left it undecided (the run was aborted), if any."""
        known = self._known.get(origin)
        if known is not None:
            return known, 0, None
        path = os.path.join(self.directory, "robots-" + _digest(origin))
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one asks; the others wait, then read
            verdict, attempts, error = self._read(path), 0, None
            if verdict is None:
                verdict, attempts, error = download()
                if verdict is not None:
                    self._write(path, verdict)
        finally:
            os.close(fd)
        if verdict is not None:
            self._known[origin] = verdict
        return verdict, attempts, error

    @staticmethod
    def _read(path: str) -> RobotsVerdict | None:
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
            return RobotsVerdict(record["kind"], record["text"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @staticmethod
    def _write(path: str, verdict: RobotsVerdict) -> None:
        partial = f"{path}.{os.getpid()}.tmp"
        with open(partial, "w", encoding="utf-8") as f:
            json.dump({"kind": verdict.kind, "text": verdict.text}, f)
        os.replace(partial, path)


# -- one worker ------------------------------------------------------------------


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
    location: str | None  # where a redirect points, absolute
    retry_after: str | None  # the Retry-After header
    elapsed: float  # seconds from sending to the last byte read


class FetchWorker:
    """One worker's task function: fetch one URL, never raise."""

    def __init__(self, options: FetchOptions, directory: str, gate: RequestGate | None,
                 policy: RetryPolicy, timeout: float) -> None:
        self.options = options
        self.gate = gate
        self.policy = policy
        self.timeout = timeout
        self.slots = HostSlots(directory, options.per_host)
        self.robots = RobotsBook(directory)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = options.user_agent
        self.session.headers["Accept"] = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"

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
        """Close this worker's session."""
        self.session.close()

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
            if not self.options.ignore_robots:
                refusal, spent = self._robots_refusal(current, redirected=hop > 0)
                attempts += spent
                if refusal is not None:
                    status, error = refusal
                    if status == INVALID:
                        return FetchResult(url, status=INVALID, error=error, attempts=attempts)
                    return self._failed(last, error, attempts, elapsed)
            attempted, page = self._hop(current, self.options.max_bytes)
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
            error = describe(HTTPError(f"{page.status_code} {page.reason}".rstrip()))
            return self._failed(page, error, attempts, elapsed)
        if not page.complete:
            size = f"Content-Length {page.declared}" if page.declared is not None else (
                "stopped reading there")
            error = f"body larger than the {self.options.max_bytes}-byte cap ({size})"
            return self._failed(page, describe(TooLarge(error)), attempts, elapsed)
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

    def _hop(self, url: str, cap: int) -> tuple[Attempted[Any], _Page | None]:
        """One request with its retries; also the last response seen (for a failure)."""
        seen: list[_Page] = []

        def request() -> _Page:
            page = self._get(url, cap)
            seen[:] = [page]
            code = page.status_code
            if code == 429 or 500 <= code <= 599:
                retry_after = retry_after_seconds(page.retry_after)
                cls = RateLimited if code == 429 else ServerError
                message = f"{code} {page.reason}".rstrip()
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

    def _get(self, url: str, cap: int) -> _Page:
        """One GET, redirects not followed, the body read to at most ``cap`` bytes."""
        started = time.perf_counter()
        try:
            response = self.session.get(url, timeout=(self.timeout, self.timeout),
                                        allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            raise error_for_exception(exc, self.timeout) from exc
        try:
            ok = 200 <= response.status_code <= 299
            body, complete = self._read(response, cap if ok else min(cap, _ERROR_BODY_BYTES),
                                        started + self.timeout)
        finally:
            response.close()
        location = None
        if response.is_redirect:
            target = self.session.get_redirect_target(response)
            location = urljoin(response.url, target) if target else None
        declared = response.headers.get("Content-Length", "")
        return _Page(
            url=response.url,
            status_code=response.status_code,
            reason=response.reason or "",
            content_type=response.headers.get("Content-Type"),
            body=body,
            complete=complete,
            declared=int(declared) if declared.isdigit() else None,
            location=location,
            retry_after=response.headers.get("Retry-After"),
            elapsed=time.perf_counter() - started,
        )

    def _read(self, response: requests.Response, cap: int, deadline: float) -> tuple[bytes, bool]:
        """The (decoded) body, at most ``cap`` bytes, and whether it is whole."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            return b"", False
        raw = response.raw
        read = getattr(raw, "read1", None) or raw.read  # read1: urllib3 2
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                if time.perf_counter() > deadline:
                    raise Timeout(f"page not complete within {self.timeout:g} s")
                chunk = read(_CHUNK, decode_content=True)
                if not chunk:
                    break
                if size + len(chunk) > cap:
                    chunks.append(chunk[: cap - size])
                    return b"".join(chunks), False
                chunks.append(chunk)
                size += len(chunk)
        except ProviderError:
            raise  # our own Timeout is an OSError too: keep it as it is
        except urllib3.exceptions.ReadTimeoutError:
            raise Timeout(f"no answer within {self.timeout:g} s") from None
        except urllib3.exceptions.DecodeError as exc:
            raise HTTPError(f"cannot decode the body: {exc}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ConnectionError(f"connection lost while reading the body: {exc}") from None
        raw.release_conn()  # read to the end: the connection goes back for the next request
        return b"".join(chunks), True

    # -- robots.txt -----------------------------------------------------------------

    def _robots_refusal(self, url: str, redirected: bool) -> tuple[tuple[str, str] | None, int]:
        """``(status, error)`` if robots.txt stops ``url``, else None; and the requests made."""
        origin = _origin(url)
        verdict, attempts, error = self.robots.lookup(origin, lambda: self._download_robots(origin))
        if verdict is None:
            return (FAILED, describe(error or RunAborted("run stopped"))), attempts
        if verdict.kind == UNREACHABLE:
            return (FAILED, verdict.text), attempts
        if verdict.allows(url, self.options.user_agent):
            return None, attempts
        if redirected:
            refusal = RobotsDisallowed(f"redirected to {url}, which {origin}/robots.txt disallows")
            return (FAILED, describe(refusal)), attempts
        path = urlsplit(url).path or "/"
        refusal = RobotsDisallowed(f"{origin}/robots.txt disallows {path}")
        return (INVALID, describe(refusal)), attempts

    def _download_robots(self, origin: str) -> Decided:
        url = f"{origin}/robots.txt"
        attempts = 0
        for _ in range(ROBOTS_REDIRECTS + 1):
            attempted, page = self._hop(url, ROBOTS_MAX_BYTES)
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
            return RobotsVerdict(RULES, page.body.decode("utf-8", "replace")), attempts, None
        return RobotsVerdict(ALLOW), attempts, None  # 4xx (and stray 3xx): unavailable


def parse_page(body: bytes, content_type: str | None,
               select: str | None = None) -> tuple[str | None, str | None]:
    """``(title, selected)`` of an HTML body; ``(None, "" or None)`` for anything else.

    ``title`` is the first ``<title>``'s text with whitespace folded; ``selected`` the
    text of every element matching the CSS selector ``select``, each folded, empty
    ones left out, joined by `` | `` (None when ``select`` is None).
    """
    empty = "" if select is not None else None
    if not _is_html(body, content_type):
        return None, empty
    soup = BeautifulSoup(body, "html.parser", from_encoding=_charset(content_type))
    tag = soup.find("title")
    title = _fold(tag.get_text()) if tag is not None else ""
    selected = None
    if select is not None:
        texts = (_fold(element.get_text()) for element in soup.select(select))
        selected = " | ".join(text for text in texts if text)
    return title or None, selected


def _is_html(body: bytes, content_type: str | None) -> bool:
    if content_type:
        return content_type.split(";", 1)[0].strip().lower() in _HTML_TYPES
    return body.lstrip()[:1] == b"<"  # no Content-Type: sniff, as browsers do


def _charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


def _fold(text: str) -> str:
    return " ".join(text.split())


def check_selector(select: str | None) -> None:
    """Raise :class:`UsageError` unless ``select`` is a CSS selector (or None)."""
    if select is None:
        return
    try:
        BeautifulSoup("", "html.parser").select(select)
    except Exception as exc:  # soupsieve's SelectorSyntaxError, and kin
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"invalid CSS selector {select!r}: {first}") from None


# -- the work, for the Job -------------------------------------------------------


class FetchWork:
    """The fetching rules a :class:`~geofetch.job.Job` needs.

    The run's temporary directory (host slots, robots verdicts) is made when the
    job builds its workers and removed by :meth:`close` (or when the work is
    garbage collected).
    """

    namespace = "fetch"
    uses_network = True
    cacheable = False
    secrets: tuple[str, ...] = ()

    def __init__(self, options: FetchOptions | None = None) -> None:
        self.options = options or FetchOptions()
        self._directory: str | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def key(self, query: str) -> str:
        """Exact-URL deduplication (paths are case-sensitive)."""
        return url_key(query)

    def invalid(self, query: str) -> FetchResult | None:
        problem = check_url(query)
        if problem is None:
            return None
        return FetchResult(query if isinstance(query, str) else str(query), status=INVALID,
                           error=problem)

    def failed(self, query: str, error: str) -> FetchResult:
        return FetchResult(query, status=FAILED, error=error)

    def from_cache(self, query: str, entry: CacheEntry) -> FetchResult:
        return FetchResult(query, status=entry.status)  # never called: nothing is stored

    def to_cache(self, result: FetchResult) -> CacheEntry | None:
        return None

    def for_query(self, result: FetchResult, query: str) -> FetchResult:
        return result if result.url == query else replace(result, url=query)

    def worker_factory(self, gate: RequestGate | None, policy: RetryPolicy,
                       timeout: float) -> Callable[[], FetchWorker]:
        return functools.partial(FetchWorker, self.options, self.directory(), gate, policy,
                                 timeout)

    def directory(self) -> str:
        """The run's temporary directory, made on first use."""
        if self._directory is None:
            base = "/dev/shm" if os.path.isdir("/dev/shm") else None
            self._directory = tempfile.mkdtemp(prefix="geofetch-fetch-", dir=base)
            self._finalizer = weakref.finalize(self, shutil.rmtree, self._directory, True)
        return self._directory

    def close(self) -> None:
        """Remove the run's temporary directory."""
        if self._finalizer is not None:
            self._finalizer()
        self._directory = self._finalizer = None


#: A fetching job is a plain :class:`~geofetch.job.Job` of :class:`FetchResult`.
FetchJob = Job[FetchResult]


# -- public calls ----------------------------------------------------------------


def fetch_job(
    urls: Iterable[str],
    *,
    executor: str = "thread",
    workers: int | None = None,
    rate: float | None = None,
    retries: int = 3,
    timeout: float = 10.0,
    cache: Any = None,
    max_requests: int | None = None,
    select: str | None = None,
    per_host: int | None = 4,
    max_bytes: int = 10_000_000,
    ignore_robots: bool = False,
    progress: Callable[[FetchResult], None] | None = None,
    user_agent: str | None = None,
    window: int | None = None,
) -> FetchJob:
    """Build (but do not start) a fetching job; options as :func:`fetch_many`."""
    del cache  # accepted for symmetry with geocoding: fetched pages are never cached
    if per_host is not None and per_host < 1:
        raise UsageError(f"per_host must be at least 1 (or None for no cap), not {per_host}")
    if max_bytes < 1:
        raise UsageError(f"max_bytes must be at least 1, not {max_bytes}")
    if not timeout > 0:
        raise UsageError(f"timeout must be more than 0 seconds, not {timeout}")
    check_selector(select)
    options = FetchOptions(select=select, per_host=per_host, max_bytes=max_bytes,
                           ignore_robots=ignore_robots,
                           user_agent=user_agent or DEFAULT_USER_AGENT)
    return Job(urls, FetchWork(options), executor=executor, workers=workers, rate=rate,
                    retries=retries, timeout=timeout, max_requests=max_requests,
                    progress=progress, window=window)


def iter_fetch(urls: Iterable[str], **options: Any) -> Iterator[FetchResult]:
    """Fetch ``urls`` lazily: results in input order, bounded memory.

    Options as :func:`fetch_many`.
    """
    with progress_option(options) as options:
        yield from fetch_job(urls, **options)


def fetch_many(urls: Iterable[str], **options: Any) -> list[FetchResult]:
    """Fetch every URL; return one :class:`FetchResult` per URL, in order.

    ``executor`` ``"thread"``, ``"process"`` or ``"serial"``; ``workers`` its size;
    ``rate`` requests per second for the whole run (default None: no limit);
    ``retries`` more attempts for 429, 5xx, timeouts and lost connections;
    ``timeout`` seconds per request (connect, each read, and the whole response);
    ``max_requests`` the run's request budget (robots.txt included); ``select`` a
    CSS selector whose matches' text fills ``selected``; ``per_host`` requests in
    flight per host name at most (None: no cap); ``max_bytes`` the body cap (a
    bigger page is ``failed``, ``TooLarge``); ``ignore_robots`` skips robots.txt;
    ``progress`` is called with each result; ``cache`` is accepted and ignored.
    """
    return list(iter_fetch(urls, **options))
