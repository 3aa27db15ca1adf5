"""HTTP/1.1 on asyncio: requests parsed by h11, answered in order, each after its delay.

One :class:`HttpProtocol` per connection (an ``asyncio.BufferedProtocol``: no thread
per connection, no task per request); one :class:`Listener` accepts connections and
watches them::

    bytes ─▶ inbox ─(≤ 4 KiB at a time)─▶ h11 ─▶ Request [Data…] EndOfMessage
       └── a head h11 has read before ───────────────┐ │
                                                     ▼ ▼ App.handle(request, arrival)
    client ◀── transport.write ◀── loop.call_at(arrival + latency) ◀┘

Parsing: every request head and its body framing are read by ``h11`` (RFC 9112): a
malformed request line or header, a ``Content-Length`` that is not digits or two
that disagree (RFC 9112 §6.3), a missing ``Host`` are answered 400 and the
connection closed. Bytes reach the parser at most 4 KiB at a time, so the head limit
is exact: over :data:`MAX_HEAD` bytes is 431 (RFC 6585 §5), and a body over
:data:`MAX_BODY` (declared or chunked) 413 (RFC 9110 §15.5.14). After such an error
the server stops writing and keeps reading (discarding) for up to two seconds before
it closes, so the client reads the error rather than a reset.

Cost: each request is read by a fresh ``h11.Connection`` (fed what its predecessor
left over, ``trailing_data``) and its response is framed here from a per-second
cached head. h11's own response path (``send`` Response, Data, EndOfMessage,
``start_next_cycle``) would cost more than the parse itself, about 14 µs against
11 µs a request on CPython 3.11, for a head that is the same every time. And a head
identical, byte for byte, to one h11 has already accepted is not parsed again
(:meth:`Listener.remember_head`): a fresh parser reads a head from its bytes alone,
so the same bytes are the same request. Repeated requests thus cost neither parsing
nor, through the answer memo (:class:`~geofetch.server.app.AnswerMemo`), a lookup.

Timing: a request's answer is decided when it has arrived whole and written
``latency`` seconds later by ``loop.call_at``, aimed 0.5 ms early: asyncio rounds
epoll's wait up to the next whole millisecond, so a timer fires 0.5 ms late on
average from the rounding alone. Answers then leave 0.5 ms after their deadline on
average, none more than about 0.5 ms before it. A connection answers its requests
one at a time, in order (keep-alive and pipelining); concurrency comes from many
connections, as with any HTTP/1.1 client pool.

Connections: one idle for ``idle_timeout_seconds`` (no whole request being answered,
whether quiet or trickling a request) is closed (RFC 9112 §9.8 lets a server close
an idle connection at any time). The listener accepts connections itself rather than
through ``loop.create_server``, whose accept loop, out of descriptors (EMFILE), logs a
traceback for each of up to ``backlog`` attempts per wake-up and schedules as many
retries (measured: 7 MB of stderr in 3 s, new clients locked out). Here, at
``max_connections`` (by default the open-file limit less a reserve) the longest idle
connection is closed to admit a new one; and if the process still runs out of
descriptors, it says so in one line (at most every ten seconds), frees one if it can
and pauses accepting until a connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import errno
import http
import math
import resource
import socket
import time
from collections.abc import Callable

import h11

from .._version import __version__
from .app import App, Request, Response, error_response
from .config import ServerConfig

__all__ = ["MAX_BODY", "MAX_HEAD", "HttpProtocol", "Listener", "fd_budget"]

#: Largest request head (request line and headers, through the blank line), bytes.
MAX_HEAD = 64 * 1024
#: Largest request body, bytes.
MAX_BODY = 1024 * 1024
_FEED = 4096  # bytes handed to the parser at a time
_READ_BUFFER = 256 * 1024  # bytes one read may bring (asyncio's own read size)
_HEAD_MEMO_MAX = 2048  # longest request head whose reading is remembered
_HEADS_BYTES = 4 * 1024 * 1024  # bytes of remembered heads in all
_LISTEN_BACKLOG = 2048
_ACCEPT_BATCH = 16  # accepts per wake-up; well under the descriptor reserve
_TIMER_CENTRE = 0.0005
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 4 * MAX_BODY
_ACCEPT_RETRY_SECONDS = 0.5
_WARN_EVERY_SECONDS = 10.0
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

_JSON = b"application/json; charset=UTF-8"
_STATUS_LINES = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("latin-1") for s in http.HTTPStatus
}
_KEEP_ALIVE = b"\r\nConnection: keep-alive\r\n"
_CLOSE = b"\r\nConnection: close\r\n"
_SERVER = f"geofetch/{__version__}"


def fd_budget() -> int:
    """Connections to keep open at most: the soft ``RLIMIT_NOFILE`` less a reserve of
    ``max(32, limit / 16)`` descriptors for everything else (1,000,000 if unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(1, soft - max(32, soft // 16))


def _new_parser() -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)


class HttpProtocol(asyncio.BufferedProtocol):
    """One connection: parse requests in order, answer each after its delay.

    ``idle_since`` is the loop time since which the connection has had no request
    to answer (``None`` while it has one). Reads land in the listener's one read
    buffer (a ``BufferedProtocol``: no allocation per read) and are copied once,
    into the parser or, when the parser must wait, into this connection's inbox.
    """

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._app = listener.app
        self._loop = listener.loop
        self._transport: asyncio.Transport | None = None
        self._inbox = bytearray()  # received, not yet handed to the parser past _inpos
        self._inpos = 0
        self._parser = _new_parser()
        self._fed = 0  # bytes handed to the current parser
        self._starved = True  # the parser needs bytes before it can say more
        self._direct = False  # the last bytes fed came straight from a read, not the inbox
        self._head_key: bytes | None = None  # what the fresh parser got in one read
        self._request: Request | None = None  # head read, body still arriving
        self._keep_alive = True
        self._body_bytes = 0
        self._busy = False  # a request is being answered
        self._counted = False  # ... and counts as in flight
        self.closed = False
        self._write_paused = False
        self._read_paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._discarded = 0
        self.idle_since: float | None = self._loop.time()

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._listener.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.idle_since = None
        self._listener.forget(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._counted:
            self._counted = False
            self._app.stats.leave()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._listener.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = self._listener.read_buffer[:nbytes].tobytes()
        if self.closed:  # lingering after an error answer: drain, then close
            self._discarded += nbytes
            if self._discarded > _LINGER_BYTES and self._transport is not None:
                self._transport.abort()
            return
        if self._busy or self._write_paused:
            self._inbox += data
            if not self._read_paused and len(self._inbox) - self._inpos > MAX_HEAD + MAX_BODY:
                self._read_paused = True
                assert self._transport is not None
                self._transport.pause_reading()
            return
        if self._starved and self._inpos == len(self._inbox) and nbytes <= _FEED:
            # The usual case, a request or the rest of one: straight to the parser.
            if self._inpos:
                self._inbox.clear()
                self._inpos = 0
            if not self._fed and data.endswith(b"\r\n\r\n"):
                known = self._listener.heads.get(data)
                if known is not None:  # h11 has read these very bytes before
                    self._keep_alive = known[1]
                    self._answer(known[0])
                    return
                self._head_key = data  # one whole head, maybe: remember h11's reading
            else:
                self._head_key = None
            self._fed += nbytes
            self._parser.receive_data(data)
            self._starved = False
            self._direct = True
        else:
            self._inbox += data
        self._process()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._process()

    # -- for the listener

    def abort(self) -> None:
        """Drop the connection now (server closing)."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def close_idle(self) -> None:
        """Close a connection that has no request to answer (idle or shed)."""
        self.closed = True
        self.idle_since = None
        transport = self._transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            transport.abort()  # a client that does not read would hold it forever
        else:
            transport.close()

    # -- parsing

    def _process(self) -> None:
        """Parse and answer what has arrived, until a request must wait or bytes run out."""
        while not (self._busy or self.closed or self._write_paused):
            parser = self._parser
            if self._starved:
                inbox, pos = self._inbox, self._inpos
                if pos >= len(inbox):
                    if pos:
                        inbox.clear()
                        self._inpos = 0
                    if self._read_paused:
                        self._read_paused = False
                        assert self._transport is not None
                        self._transport.resume_reading()
                    return
                chunk = bytes(inbox[pos : pos + _FEED])
                self._inpos = pos + len(chunk)
                self._fed += len(chunk)
                parser.receive_data(chunk)
                self._starved = False
                self._direct = False
                self._head_key = None
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._reject(exc.error_status_hint, str(exc) or "malformed request")
                return
            kind = type(event)
            if kind is h11.Request:
                assert isinstance(event, h11.Request)
                self._read_head(event)
            elif event is h11.NEED_DATA:
                self._starved = True
            elif kind is h11.Data:
                assert isinstance(event, h11.Data)
                self._body_bytes += len(event.data)
                if self._body_bytes > MAX_BODY:
                    self._reject(413, f"request body over {MAX_BODY} bytes")
            elif kind is h11.EndOfMessage:
                request, self._request = self._request, None
                assert request is not None
                self._next_parser()
                self._answer(request)
            else:  # ConnectionClosed never comes (EOF is not fed); PAUSED cannot
                self._reject(400, f"unexpected {event!r}")

    def _read_head(self, event: h11.Request) -> None:
        """Check the head's size and body framing; answer now if there is no body."""
        self._listener.heads_parsed += 1
        if self._fed > MAX_HEAD:
            head = self._fed - len(self._parser.trailing_data[0])
            if head > MAX_HEAD:
                self._reject(431, f"request head over {MAX_HEAD} bytes")
                return
        keep_alive = event.http_version == b"1.1"
        has_body = False
        for raw_name, value in event.headers.raw_items():
            name = raw_name.lower()
            if name == b"connection":
                tokens = {token.strip() for token in value.lower().split(b",")}
                keep_alive = b"close" not in tokens if keep_alive else b"keep-alive" in tokens
            elif name == b"content-length":  # h11 has checked: digits, one value
                if int(value) > MAX_BODY:
                    self._reject(413, f"request body over {MAX_BODY} bytes")
                    return
                has_body = value != b"0"
            elif name == b"transfer-encoding":  # h11 has checked: chunked
                has_body = True
        self._keep_alive = keep_alive
        # h11 guarantees printable ASCII in the method and target.
        request = Request(event.method.decode("ascii").upper(), event.target.decode("ascii"))
        if has_body:
            self._request = request
            self._body_bytes = 0
            return
        # No body: EndOfMessage is certain, and this parser is not needed again.
        key = self._head_key
        if not self._next_parser() and key is not None:
            self._listener.remember_head(key, request, keep_alive)
        self._answer(request)

    def _next_parser(self) -> int:
        """A fresh parser for the next request; return the bytes the last one left over."""
        leftover = self._parser.trailing_data[0]  # the tail of the last bytes fed
        if leftover:
            if self._direct:  # the inbox was empty when they were fed
                self._inbox += leftover
            else:  # still in the inbox
                self._inpos -= len(leftover)
        self._parser = _new_parser()
        self._fed = 0
        self._starved = True
        self._head_key = None
        return len(leftover)

    # -- answering

    def _answer(self, request: Request) -> None:
        """Hand a whole request to the app; write its response now or when due."""
        now = self._loop.time()
        self._busy = True
        self.idle_since = None
        response = self._app.handle(request, now)
        self._counted = response.counted
        head_only = request.method == "HEAD"
        if response.delay > 0:
            self._timer = self._loop.call_at(
                now + response.delay - _TIMER_CENTRE, self._answer_later, response, head_only
            )
        else:
            self._send(response, head_only)

    def _answer_later(self, response: Response, head_only: bool) -> None:
        self._timer = None
        if not self.closed:
            self._send(response, head_only)
            self._process()

    def _send(self, response: Response, head_only: bool) -> None:
        if self._counted:
            self._counted = False
            self._app.stats.leave()
        keep_alive = self._keep_alive and not response.close and not self._listener.closing
        transport = self._transport
        assert transport is not None
        transport.write(self._listener.encode(response, keep_alive, head_only))
        self._busy = False
        if keep_alive:
            self.idle_since = self._loop.time()
        else:
            self.closed = True
            transport.close()

    def _reject(self, status: int, message: str) -> None:
        """Answer an unusable request and close, after draining what the client sends."""
        transport = self._transport
        assert transport is not None
        self._busy = False
        transport.write(self._listener.encode(error_response(status, message), False, False))
        self.closed = True
        self.idle_since = None
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()  # the answer, then FIN; reading goes on
            self._linger = self._loop.call_later(_LINGER_SECONDS, transport.close)
        else:
            transport.close()


class Listener:
    """The listening socket, its connections, and the watch on idle ones.

    ``warn`` receives one line when the process runs out of file descriptors (at
    most one every ten seconds).
    """

    def __init__(self, app: App, config: ServerConfig, warn: Callable[[str], None]) -> None:
        self.app = app
        self.config = config
        self.loop: asyncio.AbstractEventLoop  # set by start()
        self.connections: set[HttpProtocol] = set()
        self.closing = False
        self.port = 0
        self.max_connections = config.max_connections or fd_budget()
        self.shed = 0  # idle connections closed to admit new ones
        self.idle_closed = 0  # idle connections closed on timeout
        self.heads_parsed = 0  # request heads h11 has read and accepted (not remembered ones)
        self._warn = warn
        self._warned_at = -math.inf
        self._sock: socket.socket | None = None
        self._accepting = False
        self._retry: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._adopting: set[asyncio.Task[tuple[asyncio.Transport, HttpProtocol]]] = set()
        timeout = config.idle_timeout_seconds
        self._sweep_seconds = min(1.0, max(0.02, timeout / 4))
        self._date_second = -1
        self._head_prefix = b""
        # Every connection reads into this one buffer: asyncio calls get_buffer,
        # recv_into and buffer_updated in one go, and buffer_updated copies it out.
        self.read_buffer = memoryview(bytearray(_READ_BUFFER))
        #: Request heads h11 has read, byte for byte, and what it read: see remember_head.
        self.heads: dict[bytes, tuple[Request, bool]] = {}
        self._heads_bytes = 0
        app.connection_stats = self.snapshot

    def snapshot(self) -> dict[str, int]:
        """connections_shed (to admit new ones), connections_idle_closed (timed out),
        heads_parsed (read and accepted by h11), heads_remembered (see
        :meth:`remember_head`)."""
        return {
            "connections_shed": self.shed,
            "connections_idle_closed": self.idle_closed,
            "heads_parsed": self.heads_parsed,
            "heads_remembered": len(self.heads),
        }

    async def start(self, host: str, port: int) -> int:
        """Bind ``host:port`` (0: a free port), start accepting; return the port."""
        self.loop = asyncio.get_running_loop()
        infos = await self.loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(_LISTEN_BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._resume_accepting()
        self._sweeper = self.loop.call_later(self._sweep_seconds, self._sweep)
        return self.port

    async def close(self) -> None:
        """Stop accepting, drop every connection (answers still pending are lost)."""
        self.closing = True
        self._pause_accepting(None)
        for handle in (self._retry, self._sweeper):
            if handle is not None:
                handle.cancel()
        self._retry = self._sweeper = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for task in list(self._adopting):
            task.cancel()
        for connection in list(self.connections):
            connection.abort()
        await asyncio.sleep(0)  # let connection_lost run
        if self._adopting:
            await asyncio.gather(*self._adopting, return_exceptions=True)

    def forget(self, connection: HttpProtocol) -> None:
        """A connection is gone: its descriptor is free again, so accept again."""
        self.connections.discard(connection)
        if not self._accepting and not self.closing:
            if self._retry is not None:
                self._retry.cancel()
            self._resume_accepting()

    def remember_head(self, head: bytes, request: Request, keep_alive: bool) -> None:
        """Keep h11's reading of ``head``, a whole bodiless request head read in one go.

        h11 reads a head from its bytes alone (each request gets a fresh parser), so
        the same bytes again are the same request: a repeated request, which the answer
        memo already serves without lookup or encoding, then costs no parsing either.
        Only heads h11 accepted are kept (never an error), up to 2 KiB each and
        :data:`_HEADS_BYTES` in all (then the memo starts again empty).
        """
        size = len(head)
        if size > _HEAD_MEMO_MAX:
            return
        if self._heads_bytes + size > _HEADS_BYTES:
            self.heads.clear()
            self._heads_bytes = 0
        self.heads[head] = (request, keep_alive)
        self._heads_bytes += size

    def encode(self, response: Response, keep_alive: bool, head_only: bool) -> bytes:
        """The response's bytes: status line, Date, Server, Content-Type,
        Content-Length, Connection, its own headers, then the body (unless HEAD)."""
        second = int(time.time())
        if second != self._date_second:
            self._date_second = second
            date = email.utils.formatdate(second, usegmt=True)
            self._head_prefix = (
                f"Date: {date}\r\nServer: {_SERVER}\r\n".encode("latin-1")
                + b"Content-Type: "
                + _JSON
                + b"\r\nContent-Length: "
            )
        status = response.status
        status_line = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n".encode()
        body = response.body
        extra = (
            b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in response.headers)
            if response.headers
            else b""
        )
        return b"".join(
            (
                status_line,
                self._head_prefix,
                str(len(body)).encode(),
                _KEEP_ALIVE if keep_alive else _CLOSE,
                extra,
                b"\r\n",
                b"" if head_only else body,
            )
        )

    # -- accepting

    def _resume_accepting(self) -> None:
        self._retry = None
        if not self._accepting and not self.closing and self._sock is not None:
            self.loop.add_reader(self._sock.fileno(), self._accept)
            self._accepting = True

    def _pause_accepting(self, retry_seconds: float | None) -> None:
        if self._accepting and self._sock is not None:
            self.loop.remove_reader(self._sock.fileno())
        self._accepting = False
        if retry_seconds is not None and self._retry is None and not self.closing:
            self._retry = self.loop.call_later(retry_seconds, self._resume_accepting)

    def _accept(self) -> None:
        assert self._sock is not None
        for _ in range(_ACCEPT_BATCH):
            if len(self.connections) + len(self._adopting) >= self.max_connections:
                if not self._shed_one():
                    self._pause_accepting(_ACCEPT_RETRY_SECONDS)  # or sooner, see forget()
                    return
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                shed = False
                if exc.errno in _OUT_OF_RESOURCES:
                    shed = self._shed_one()
                    self._warn_once(
                        f"geofetch serve: cannot accept a connection ({exc.strerror}) with "
                        f"{len(self.connections)} open; "
                        + ("closed the longest idle one" if shed else "waiting for one to close")
                    )
                else:
                    self._warn_once(f"geofetch serve: accept failed: {exc}")
                self._pause_accepting(0.01 if shed else _ACCEPT_RETRY_SECONDS)
                return
            self._adopt(sock)

    def _adopt(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        task = self.loop.create_task(
            self.loop.connect_accepted_socket(lambda: HttpProtocol(self), sock)
        )
        self._adopting.add(task)

        def adopted(task: asyncio.Task[tuple[asyncio.Transport, HttpProtocol]]) -> None:
            self._adopting.discard(task)
            if task.cancelled() or task.exception() is not None:
                with contextlib.suppress(OSError):
                    sock.close()

        task.add_done_callback(adopted)

    def _shed_one(self) -> bool:
        """Close the connection idle the longest; False when none is idle."""
        idle = [c for c in self.connections if c.idle_since is not None and not c.closed]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since or 0.0)
        self.connections.discard(oldest)  # its descriptor is as good as free
        oldest.close_idle()
        self.shed += 1
        return True

    def _sweep(self) -> None:
        """Close the connections idle for ``idle_timeout_seconds``; runs periodically."""
        deadline = self.loop.time() - self.config.idle_timeout_seconds
        for connection in list(self.connections):
            since = connection.idle_since
            if since is not None and since <= deadline:
                connection.close_idle()
                self.idle_closed += 1
        self._sweeper = self.loop.call_later(self._sweep_seconds, self._sweep)

    def _warn_once(self, message: str) -> None:
        now = self.loop.time()
        if now - self._warned_at >= _WARN_EVERY_SECONDS:
            self._warned_at = now
            self._warn(message)
