"""A scripted HTTP/1.1 server on loopback, for tests of the HTTP layer: it answers
what it is told, well or badly.

:class:`ScriptedServer` listens on ``127.0.0.1``, port 0 (a free port), and answers
each request with the next :class:`Reply` of its script (the last one repeats). A
reply can misbehave in the ways a client must survive::

    Reply.json([...])                    a JSON answer
    Reply(body=b"[]", byte_delay=1.0)    the body one byte a second (a trickle)
    Reply(header_delay=1.0)              the status line and headers one byte a second
    Reply(headers=[("Content-Encoding", "br")], body=...)
                                         whatever bytes, under whatever coding
    Reply(action="stall")                read the request, never answer
    Reply(action="close")                read the request, hang up without a word
    Reply(length=False)                  no Content-Length: the body ends at close

Connections are kept alive (unless a reply closes them). Each request is recorded
(:attr:`ScriptedServer.requests`: method, target, headers), and so is the number of
connections accepted. ``tls`` (an ``ssl.SSLContext`` for a server) serves HTTPS.
Leaving the ``with`` block stops everything at once: every wait is cut short, every
connection shut, every thread joined.

:class:`TunnelProxy` is an HTTP proxy that only tunnels (``CONNECT host:port``), to
loopback targets only, for ``HTTPS_PROXY`` tests; it records the ``CONNECT`` targets.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = ["Reply", "ScriptedServer", "Seen", "TunnelProxy"]


@dataclass
class Reply:
    """One answer. ``action``: ``"answer"``, ``"stall"`` (never answer) or ``"close"``
    (hang up unanswered). ``delay`` seconds before answering; ``header_delay`` and
    ``byte_delay`` seconds between the bytes of the head and of the body; ``length``
    False sends no ``Content-Length`` and closes after the body; ``close`` True ends
    the connection after this answer (saying so: ``Connection: close``); ``hang_up``
    True ends it without a word, as a server's idle timeout does."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    reason: str | None = None
    action: str = "answer"
    delay: float = 0.0
    header_delay: float = 0.0
    byte_delay: float = 0.0
    length: bool = True
    close: bool = False
    hang_up: bool = False

    @classmethod
    def json(cls, document: Any, status: int = 200, **options: Any) -> Reply:
        """A JSON answer (``Content-Type: application/json``)."""
        headers = [("Content-Type", "application/json; charset=UTF-8"),
                   *options.pop("headers", [])]
        return cls(status, json.dumps(document).encode("utf-8"), headers, **options)


@dataclass
class Seen:
    """One request as the server read it."""

    method: str
    target: str
    headers: dict[str, str]  # names lower-cased
    connection: int  # 1 for the first connection accepted, ...
    at: float = field(default_factory=time.monotonic)  # when its head was read


class _Listener:
    """What both loopback servers here share: a listener on ``127.0.0.1`` port 0, an
    accept loop, a thread per connection, and a stop that cuts every wait short,
    shuts every connection and joins every thread. A subclass handles each accepted
    socket in :meth:`_accepted`."""

    _thread_name = "geofetch-loopback-server"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._port = 0

    def _listen(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.05)
        self._listener, self._port = listener, listener.getsockname()[1]
        self._spawn(self._accept)

    def stop(self) -> None:
        """Stop accepting, cut every wait short, shut every connection, join."""
        self._stopping.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=self._thread_name)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted(sock)

    def _accepted(self, sock: socket.socket) -> None:
        raise NotImplementedError


class ScriptedServer(_Listener):
    """See the module docstring. ``with ScriptedServer(Reply(...)) as server:``."""

    _thread_name = "geofetch-scripted-server"

    def __init__(self, *replies: Reply, tls: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.replies: list[Reply] = list(replies) or [Reply()]
        self.requests: list[Seen] = []
        self.connections = 0
        self.tls = tls
        #: How many requests were answered before the current script began.
        self.script_start = 0

    # -- the script --------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies`` (the last one repeats)."""
        with self._lock:
            self.replies = list(replies)
            self.script_start = len(self.requests)

    def _next_reply(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            index = len(self.requests) - 1 - self.script_start
            return self.replies[min(index, len(self.replies) - 1)]

    # -- lifecycle -----------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet ended on the server's side."""
        with self._lock:
            return len(self._sockets)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with ``tls``)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._port}"

    def start(self) -> ScriptedServer:
        self._listen()
        return self

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def _accepted(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            number = self.connections
            self._sockets.add(sock)
        self._spawn(self._serve, sock, number)

    # -- one connection --------------------------------------------------------------

    def _serve(self, sock: socket.socket, number: int) -> None:
        conn: socket.socket = sock
        try:
            conn.settimeout(30)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                conn = self.tls.wrap_socket(sock, server_side=True)
                with self._lock:  # the wrapped socket now owns the descriptor
                    self._sockets.discard(sock)
                    self._sockets.add(conn)
            reader = conn.makefile("rb")
            while not self._stopping.is_set():
                seen = self._read_request(reader, number)
                if seen is None:
                    return
                if not self._answer(conn, self._next_reply(seen)):
                    return
        except (OSError, ValueError):
            return  # the client hung up, or the server is stopping
        finally:
            with self._lock:
                self._sockets.discard(sock)
                self._sockets.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    @staticmethod
    def _read_request(reader: Any, number: int) -> Seen | None:
        line = reader.readline(65537)
        if not line:
            return None
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            header = reader.readline(65537)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if length:
            reader.read(length)
        return Seen(method, target, headers, number)

    def _answer(self, conn: socket.socket, reply: Reply) -> bool:
        """Send ``reply``; False when the connection must end."""
        if reply.action == "stall":
            self._stopping.wait()
            return False
        if reply.action == "close":
            return False
        if reply.delay and self._stopping.wait(reply.delay):
            return False
        reason = reply.reason if reply.reason is not None else _phrase(reply.status)
        lines = [f"HTTP/1.1 {reply.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in reply.headers]
        if reply.length:
            lines.append(f"Content-Length: {len(reply.body)}")
        closing = reply.close or not reply.length
        if closing:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not (reply.header_delay or reply.byte_delay):  # one segment: no Nagle stall
            conn.sendall(head + reply.body)
        elif not (self._send(conn, head, reply.header_delay)
                  and self._send(conn, reply.body, reply.byte_delay)):
            return False
        return not (closing or reply.hang_up)

    def _send(self, conn: socket.socket, data: bytes, byte_delay: float) -> bool:
        if not byte_delay:
            conn.sendall(data)
            return True
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
            if self._stopping.wait(byte_delay):
                return False
        return True


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class TunnelProxy(_Listener):
    """A ``CONNECT``-only proxy on loopback (see the module docstring). ``tunnels``
    lists each ``host:port`` asked for; a target off loopback is refused (403)."""

    _thread_name = "geofetch-tunnel-proxy"

    def __init__(self) -> None:
        super().__init__()
        self.tunnels: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> TunnelProxy:
        self._listen()
        return self

    def _accepted(self, sock: socket.socket) -> None:
        self._spawn(self._tunnel, sock)

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _tunnel(self, client: socket.socket) -> None:
        self._keep(client)
        upstream: socket.socket | None = None
        try:
            reader = client.makefile("rb")
            request = reader.readline(65537).decode("latin-1").split()
            while reader.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            target = request[1] if len(request) == 3 and request[0] == "CONNECT" else ""
            host, _, port = target.rpartition(":")
            with self._lock:
                self.tunnels.append(target)
            if host not in ("127.0.0.1", "localhost") or not port.isdigit():
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            upstream = socket.create_connection((host, int(port)), timeout=10)
            self._keep(upstream)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._spawn(self._pipe, upstream, client)
            self._pipe(client, upstream)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self._stopping.is_set():
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
