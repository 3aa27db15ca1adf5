"""Helpers for the row-safety tests (issue 13): a Nominatim-style stub server on
loopback whose answers the test chooses, strict JSON parsing, and running the
``geofetch`` command in a child process of the geofetch being tested."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import geofetch

#: The directory holding the ``geofetch`` package under test (so a child process
#: runs the same code: the working tree, or an old worktree).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(geofetch.__file__)))


def sha256(path: Any) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _no_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses ``NaN``, ``Infinity`` and ``-Infinity``."""
    return json.loads(text, parse_constant=_no_constant)


def strict_jsonl(text: str) -> list[dict[str, Any]]:
    return [strict_json(line) for line in text.splitlines()]


def run_geofetch(args: list[str], *, cwd: Any = None, timeout: float = 60, stdin: Any = None,
                 stdout: Any = subprocess.PIPE, input_text: str | None = None
                 ) -> subprocess.CompletedProcess[str]:
    """``python -m geofetch ARGS`` in a child process; killed after ``timeout``
    (then the result's returncode is None)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_ROOT
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY",
                 "all_proxy"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "geofetch", *map(str, args)], cwd=cwd, env=env,
        stdin=stdin if input_text is None else subprocess.PIPE, stdout=stdout,
        stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return subprocess.CompletedProcess(process.args, None, out, err)  # type: ignore[arg-type]
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def one_line(stderr: str) -> str:
    """The single line of ``stderr``; fail if there are more or none."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


Answer = Callable[[str], tuple[int, bytes]]


def place(lat: Any, lon: Any, name: str) -> bytes:
    """A Nominatim ``/search`` body with one place (lat and lon as given: strings
    are JSON strings, as Nominatim sends them)."""
    return json.dumps([{"lat": lat, "lon": lon, "display_name": name}]).encode()


class NominatimStub:
    """``/search?q=...`` on loopback; ``answers`` maps a query to a raw body, and
    any other query gets ``default(query)`` (a place named ``Found: QUERY``);
    each answer waits ``delay`` seconds first."""

    def __init__(self, answers: dict[str, bytes] | None = None,
                 default: Callable[[str], bytes] | None = None, delay: float = 0.0) -> None:
        self.answers = answers or {}
        self.delay = delay
        self._stopping = threading.Event()
        self.default = default or (lambda q: place("52.5", "13.4", f"Found: {q}"))
        self.queries: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                query = parse_qs(url.query).get("q", [""])[0]
                stub.queries.append(query)
                stub._stopping.wait(stub.delay)
                body = stub.answers.get(query)
                if body is None:
                    body = stub.default(query)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> NominatimStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def chdir(path: Any) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)
