"""``LocalServer``: the server in a background thread or a child process, for tests
and benchmarks; a context manager that yields the base URL."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import queue
import re
import subprocess as _subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any

from ..exceptions import UsageError
from .answers import Lookup
from .app import App, default_gazetteer
from .config import (
    DEFAULT_IDLE_TIMEOUT_SECONDS,
    DEFAULT_MEMO_BYTES,
    KEY_ENV,
    PARENT_ENV,
    RESET_PATH,
    STATS_PATH,
    ServerConfig,
)
from .main import url_of
from .protocol import Listener
from .stats import format_per_second, stats_from_json

__all__ = ["LocalServer"]

logger = logging.getLogger("geofetch.server")

_LISTENING = re.compile(r"listening on (http://\S+)")
# The directory that holds the geofetch package: the child imports this very copy.
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LocalServer:
    """A local geocoding server for tests and benchmarks; a context manager.

    ``with LocalServer(latency=0.05) as url:`` yields the base URL
    (``http://127.0.0.1:PORT``). ``latency`` is seconds added per request,
    ``fail_rate`` the fraction answered with HTTP 500 (reproducible with ``seed``),
    ``rate_limit`` requests per second before ``OVER_QUERY_LIMIT`` / HTTP 429,
    ``key`` the API key Google requests must carry (``None``: any). ``port=0`` picks
    a free port. By default the server runs in a background thread; with
    ``subprocess=True`` it is ``python -m geofetch serve`` in a child process, so a
    client does not share its GIL. ``log``, if given, receives the per-second
    counts when the server stops (and any warning while it runs). ``gazetteer``
    replaces the offline gazetteer; ``idle_timeout_seconds``, ``memo_bytes`` and
    ``max_connections`` are :class:`ServerConfig`'s (these four in thread mode only:
    the child takes the command line's defaults).
    """

    def __init__(
        self,
        latency: float = 0.05,
        fail_rate: float = 0.0,
        rate_limit: float | None = None,
        key: str | None = None,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        subprocess: bool = False,
        log: IO[str] | None = None,
        gazetteer: Lookup | None = None,
        startup_timeout: float = 60.0,
        idle_timeout_seconds: float = DEFAULT_IDLE_TIMEOUT_SECONDS,
        memo_bytes: int = DEFAULT_MEMO_BYTES,
        max_connections: int | None = None,
    ) -> None:
        self.config = ServerConfig(
            latency,
            fail_rate,
            rate_limit,
            key,
            seed,
            idle_timeout_seconds=idle_timeout_seconds,
            memo_bytes=memo_bytes,
            max_connections=max_connections,
        )
        if not 0 <= port <= 65535:  # 0: the system picks a free port
            raise UsageError(f"port must be between 0 and 65535, not {port}")
        if subprocess and gazetteer is not None:
            raise UsageError("a custom gazetteer cannot be used with subprocess=True")
        if subprocess and (
            idle_timeout_seconds != DEFAULT_IDLE_TIMEOUT_SECONDS
            or memo_bytes != DEFAULT_MEMO_BYTES
            or max_connections is not None
        ):
            raise UsageError(
                "idle_timeout_seconds, memo_bytes and max_connections cannot be set "
                "with subprocess=True"
            )
        self.host = host
        self.port = port
        self.subprocess = subprocess
        self.log = log
        self.startup_timeout = startup_timeout
        self._gazetteer = gazetteer
        self._url: str | None = None
        # thread mode
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: Listener | None = None
        # subprocess mode
        self._process: _subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._child_log: IO[str] | None = None
        self._final_stats: dict[str, Any] | None = None

    def __repr__(self) -> str:
        mode = "subprocess" if self.subprocess else "thread"
        return f"<LocalServer {self._url or 'stopped'} ({mode}) {self.config!r}>"

    @property
    def url(self) -> str:
        """The base URL, ``http://HOST:PORT``; only while running."""
        if self._url is None:
            raise RuntimeError("the server is not running; call start() first")
        return self._url

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._url is not None

    def start(self) -> str:
        """Start serving; return the base URL. Idempotent while running."""
        if self._url is not None:
            return self._url
        try:
            if self.subprocess:
                self._start_child()
            else:
                self._start_thread()
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Stop serving and release everything (thread joined, child reaped). Idempotent."""
        try:
            if self.subprocess:
                self._stop_child()
            else:
                self._stop_thread()
        finally:
            self._url = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The child's process id in subprocess mode while running, else ``None``."""
        return self._process.pid if self._process is not None else None

    def stats(self) -> dict[str, Any]:
        """A snapshot: total, per_query (Counter), arrivals (``time.monotonic()``
        at each arrival), per_second ({second since start or reset: count}),
        max_in_flight, in_flight; the answer memo's memo_bytes, memo_entries,
        memo_hits, memo_misses; the listener's connections_shed,
        connections_idle_closed, heads_parsed, heads_remembered. After stop(), the
        counts as they were at the end."""
        if self._url is None:
            if self._final_stats is None:
                raise RuntimeError("the server has not run; call start() first")
            return self._final_stats
        if self.subprocess:
            return stats_from_json(self._control("GET", STATS_PATH))
        assert self._listener is not None
        return self._listener.app.snapshot()

    def reset(self) -> None:
        """Zero the counters, restart the seeded failure sequence and the rate window."""
        self._control("POST", RESET_PATH)

    def _control(self, method: str, path: str, timeout: float = 30.0) -> dict[str, Any]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{method} {path} answered HTTP {response.status}")
            stats: dict[str, Any] = json.loads(body)
            return stats
        finally:
            connection.close()

    def _warn(self, line: str) -> None:
        if self.log is not None:
            self.log.write(line + "\n")
            self.log.flush()
        else:
            logger.warning("%s", line)

    # -- thread mode

    def _start_thread(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []
        gazetteer = self._gazetteer if self._gazetteer is not None else default_gazetteer()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def main() -> None:
            asyncio.set_event_loop(loop)
            listener = Listener(App(self.config, gazetteer), self.config, self._warn)
            try:
                port = loop.run_until_complete(listener.start(self.host, self.port))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            self._listener = listener
            self._url = url_of(self.host, port)
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(listener.close())
                loop.close()

        self._thread = threading.Thread(target=main, name="geofetch-serve", daemon=True)
        self._thread.start()
        if not ready.wait(self.startup_timeout):
            raise RuntimeError(f"the server did not start within {self.startup_timeout} s")
        if failure:
            raise failure[0]

    def _stop_thread(self) -> None:
        thread, loop, listener = self._thread, self._loop, self._listener
        self._thread = self._loop = self._listener = None
        if thread is None:
            return
        if loop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(loop.stop)
        thread.join()
        if listener is not None:
            self._final_stats = listener.app.snapshot()
            if self.log is not None:
                self.log.write(format_per_second(self._final_stats))
                self.log.flush()

    # -- subprocess mode

    def _command(self) -> list[str]:
        config = self.config
        command = [
            sys.executable,
            "-m",
            "geofetch",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--latency",
            repr(config.latency_seconds),
            "--fail-rate",
            repr(config.fail_rate),
        ]
        if config.rate_limit is not None:
            command += ["--rate-limit", repr(config.rate_limit)]
        if config.seed is not None:
            command += ["--seed", str(config.seed)]
        return command

    def _start_child(self) -> None:
        env = dict(os.environ)
        env.pop(KEY_ENV, None)
        if self.config.key is not None:
            env[KEY_ENV] = self.config.key  # never on the command line (ps shows it)
        env[PARENT_ENV] = str(os.getpid())
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self._child_log = tempfile.TemporaryFile("w+", encoding="utf-8")
        process = _subprocess.Popen(
            self._command(),
            stdin=_subprocess.DEVNULL,
            stdout=_subprocess.PIPE,
            stderr=self._child_log,
            env=env,
            text=True,
            encoding="utf-8",
        )
        self._process = process
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:  # drain stdout so the child can never block on it
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put("")

        self._reader = threading.Thread(target=read, name="geofetch-serve-stdout", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(
                    f"geofetch serve did not start within {self.startup_timeout} s"
                ) from None
            match = _LISTENING.search(line)
            if match:
                self._url = match.group(1)
                return
            if not line:
                raise RuntimeError(
                    f"geofetch serve exited with status {process.wait()}: "
                    f"{self._read_child_log().strip()[-2000:]}"
                )

    def _read_child_log(self) -> str:
        if self._child_log is None:
            return ""
        self._child_log.seek(0)
        return self._child_log.read()

    def _stop_child(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None and self._url is not None:
                with contextlib.suppress(OSError, RuntimeError, ValueError):
                    self._final_stats = stats_from_json(self._control("GET", STATS_PATH, 5.0))
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except _subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            if self._reader is not None:
                self._reader.join(timeout=10)
                self._reader = None
            if process.stdout is not None:
                process.stdout.close()
            if self.log is not None:
                self.log.write(self._read_child_log())
                self.log.flush()
            if self._child_log is not None:
                self._child_log.close()
                self._child_log = None
