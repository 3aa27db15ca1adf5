"""A tiny website on loopback, for tests and examples of ``geofetch fetch``.

:class:`LocalSite` serves a handful of fixed routes from a
``http.server.ThreadingHTTPServer`` on ``127.0.0.1``, port 0 (a free port), in a
background thread, and always shuts down on leaving its ``with`` block: the listening
socket is closed and every open keep-alive connection is shut, so no handler thread
outlives it. It counts what it sees: hits per path, connections, the user agents,
and the most requests it ever had in flight at once per ``Host`` name (how tests
check ``--per-host``).

Routes (HTML unless said otherwise; every body has a ``Content-Length`` and
connections are kept alive, except ``/big/N?stream=1``)::

    /robots.txt          the ``robots`` text given (default: disallow /private/),
                         or those bytes as they are; 404 when ``robots=None``,
                         that status when an int
    /                    an index page
    /page/NAME           title "Page NAME", h1 "Heading NAME", two <p class="item">
    /private/NAME        a page robots.txt disallows by default
    /redirect/N          302 to /redirect/N-1; /redirect/1 to /page/end
    /goto/PATH           302 to /PATH
    /status/CODE         that HTTP status, with a small HTML body; ?title=TEXT
                         makes TEXT (HTML-escaped) the page's title
    /flaky/NAME?fails=K  HTTP 500 for the first K requests (default 1), then a page
    /limited/NAME        HTTP 429 with Retry-After: 0 the first time, then a page
    /slow/SECONDS        waits that long (cut short on shutdown), then a page
    /trickle/N           a page sent in N pieces, 0.2 s apart
    /big/N               an N-byte page; ?stream=1 sends it without Content-Length;
                         ?gzip=1 sends it gzip-compressed (Content-Length compressed)
    /encoded/CODING      page "Encoded CODING" under Content-Encoding CODING: gzip,
                         deflate and br really encoded; any other name (x-unknown,
                         zstd) labels the plain bytes; gzip-corrupt is gzip's label
                         on bytes that are not gzip
    /data.json           a small JSON document
    /title?t=TEXT        a page whose title, and one <p class="item">, is TEXT
                         (HTML-escaped in the page, so a parser reads TEXT back)
    anything else        404 Not Found

Run ``python -m geofetch.testing.site [--port N]`` to serve it in the foreground.
"""

from __future__ import annotations

import argparse
import gzip
import html
import http
import json
import socket
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_ROBOTS = "User-agent: *\nDisallow: /private/\n"

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>
  {title}
</title></head>
<body><h1>{heading}</h1>{body}</body></html>
"""


def page(title: str, heading: str = "", body: str = "") -> bytes:
    """A small HTML page (UTF-8)."""
    return _PAGE.format(title=title, heading=heading or title, body=body).encode("utf-8")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    site: LocalSite

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (a timeout, a cut body) is not the site's error


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "geofetch-testsite"
    timeout = 30  # an idle keep-alive connection is dropped after this many seconds
    # Headers and body in one segment: no Nagle / delayed-ACK stall between them.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.site._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.site._closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        site = self.server.site
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        site._started(host, self.path, self.headers.get("User-Agent") or "")
        try:
            self._route(site, urlsplit(self.path))
        finally:
            site._ended(host)

    def _send(self, code: int, body: bytes, content_type: str = "text/html; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _status(self, code: int, headers: dict[str, str] | None = None) -> None:
        phrase = http.HTTPStatus(code).phrase
        self._send(code, page(f"{code} {phrase}"), headers=headers)

    def _route(self, site: LocalSite, url: Any) -> None:
        parts = [p for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        first = parts[0] if parts else ""
        arg = "/".join(parts[1:])
        if url.path == "/robots.txt":
            if site.robots is None:
                self._status(404)
            elif isinstance(site.robots, int):
                self._status(site.robots)
            else:
                body = site.robots if isinstance(site.robots, bytes) else site.robots.encode()
                self._send(200, body, "text/plain; charset=utf-8")
        elif url.path == "/":
            links = "".join(f'<a href="/page/{n}">Page {n}</a>' for n in (1, 2, 3))
            self._send(200, page("geofetch test site", "Welcome", links))
        elif first == "page" and arg:
            items = '<p class="item">one</p><p class="item">two</p>'
            self._send(200, page(f"Page {arg}", f"Heading {arg}", items))
        elif first == "private" and arg:
            self._send(200, page(f"Private {arg}"))
        elif first == "redirect" and arg.isdigit():
            hops = int(arg)
            target = f"/redirect/{hops - 1}" if hops > 1 else "/page/end"
            self._send(302, b"", headers={"Location": target})
        elif first == "goto":
            self._send(302, b"", headers={"Location": "/" + arg})
        elif first == "status" and arg.isdigit() and 200 <= int(arg) <= 599:
            if "title" in query:
                title = html.escape(query["title"][0])
                self._send(int(arg), page(title, f"Status {arg}"))
            else:
                self._status(int(arg))
        elif first == "flaky" and arg:
            fails = int(query.get("fails", ["1"])[0])
            if site._count(self.path) <= fails:
                self._status(500)
            else:
                self._send(200, page(f"Recovered {arg}"))
        elif first == "limited" and arg:
            if site._count(self.path) <= 1:
                self._status(429, headers={"Retry-After": "0"})
            else:
                self._send(200, page(f"Allowed {arg}"))
        elif first == "trickle" and arg.isdigit():
            self._trickle(page("Trickled page"), int(arg))
        elif first == "slow" and arg:
            site._stopping.wait(float(arg))
            self._send(200, page("Slow page"))
        elif first == "big" and arg.isdigit():
            self._big(int(arg), stream=query.get("stream", ["0"])[0] == "1",
                      compress=query.get("gzip", ["0"])[0] == "1")
        elif first == "encoded" and arg:
            self._encoded(arg)
        elif url.path == "/title":
            text = html.escape(query.get("t", [""])[0])
            self._send(200, page(text, "Title", f'<p class="item">{text}</p>'))
        elif url.path == "/data.json":
            self._send(200, json.dumps({"ok": True}).encode(), "application/json")
        else:
            self._status(404)

    def _trickle(self, body: bytes, pieces: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        step = -(-len(body) // max(1, pieces))
        for start in range(0, len(body), step):
            self.wfile.write(body[start:start + step])
            self.wfile.flush()
            if self.server.site._stopping.wait(0.2):
                return

    def _encoded(self, coding: str) -> None:
        body = page(f"Encoded {coding}")
        if coding == "gzip":
            body = gzip.compress(body)
        elif coding == "deflate":
            body = zlib.compress(body)
        elif coding == "br":
            import brotli  # type: ignore[import-untyped]

            body = brotli.compress(body)
        elif coding == "gzip-corrupt":
            coding, body = "gzip", b"\x1f\x8b\x08\x00" + b"not gzip at all" * 4
        self._send(200, body, headers={"Content-Encoding": coding})

    def _big(self, size: int, *, stream: bool, compress: bool = False) -> None:
        head = page("Big page")[:-len(b"</body></html>\n")]
        tail = b"</body></html>\n"
        filler = max(0, size - len(head) - len(tail))
        body = head + b"x" * filler + tail
        if compress:
            self._send(200, gzip.compress(body), headers={"Content-Encoding": "gzip"})
            return
        if not stream:
            self._send(200, body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for start in range(0, len(body), 4096):
            self.wfile.write(body[start:start + 4096])
            self.wfile.flush()


class LocalSite:
    """The test site, running while the ``with`` block lasts.

    ``robots`` is the robots.txt text, or its bytes (``None``: robots.txt answers 404;
    an int: that HTTP status); ``port`` 0
    picks a free port. ``url`` is the base URL without a trailing slash.
    """

    def __init__(self, *, robots: str | bytes | int | None = DEFAULT_ROBOTS,
                 host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.robots = robots
        self._address = (host, port)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._server: _Server | None = None
        self._url = ""
        self._thread: threading.Thread | None = None
        self.reset()

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> LocalSite:
        """Bind and serve in a background thread."""
        self._stopping.clear()
        server = _Server(self._address, _Handler)
        server.site = self
        self._server = server
        self._url = f"http://{self._address[0]}:{server.server_port}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="geofetch-testsite", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalSite:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (still known after :meth:`stop`)."""
        if not self._url:
            raise RuntimeError("the site has not been started")
        return self._url

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    # -- what it saw ------------------------------------------------------------

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self.hits: Counter[str] = Counter()
            self.user_agents: Counter[str] = Counter()
            self.connections = 0
            self._in_flight: Counter[str] = Counter()
            self.max_in_flight: dict[str, int] = {}

    def stats(self) -> dict[str, Any]:
        """A snapshot: ``hits`` per path, ``connections``, ``user_agents``,
        ``max_in_flight`` per Host name."""
        with self._lock:
            return {
                "hits": dict(self.hits),
                "connections": self.connections,
                "user_agents": dict(self.user_agents),
                "max_in_flight": dict(self.max_in_flight),
            }

    def _opened(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self._sockets.add(sock)

    def _closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _started(self, host: str, path: str, agent: str) -> None:
        with self._lock:
            self.hits[path] += 1
            self.user_agents[agent] += 1
            self._in_flight[host] += 1
            self.max_in_flight[host] = max(self.max_in_flight.get(host, 0),
                                           self._in_flight[host])

    def _ended(self, host: str) -> None:
        with self._lock:
            self._in_flight[host] -= 1

    def _count(self, path: str) -> int:
        with self._lock:
            return self.hits[path]


def main(argv: list[str] | None = None) -> None:
    """Serve the site in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m geofetch.testing.site",
                                     description="Serve geofetch's test website on loopback.")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = parser.parse_args(argv)
    with LocalSite(port=args.port) as site:
        print(f"serving {site.url}/ (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
