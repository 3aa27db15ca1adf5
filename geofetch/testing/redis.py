"""A real ``redis-server`` on loopback for tests and benchmarks: :class:`RedisServer`.

It runs Debian's ``redis-server`` (or any on ``PATH``) on 127.0.0.1 on a free port,
with no persistence (``--save '' --appendonly no``), and stops it by its process
id. ``kill()`` ends it with SIGKILL, as a crash would, for tests of a lost gate.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

from ..exceptions import UsageError

#: Seconds to wait for the server to answer PING.
STARTUP_TIMEOUT = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """``with RedisServer() as url:`` yields ``redis://127.0.0.1:PORT/0``.

    Raises :class:`UsageError` when ``redis-server`` is not installed or does not
    start within :data:`STARTUP_TIMEOUT` seconds.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process is not None else None

    def start(self) -> str:
        """Start the server; return its URL once it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise UsageError("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UsageError(f"redis-server exited with code {self.process.returncode} "
                                 f"on port {self.port}")
            if self._pings():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise UsageError(f"redis-server did not answer on port {self.port} in "
                         f"{STARTUP_TIMEOUT:g} s")

    def _pings(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """End the server with SIGKILL (a crash) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """End the server (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
