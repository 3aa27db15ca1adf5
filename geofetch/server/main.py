"""``serve()``: run the server in the current thread until SIGINT or SIGTERM.

``geofetch serve`` (:mod:`geofetch.cli.serve`) calls it, and so does the child of
``LocalServer(subprocess=True)`` through ``python -m geofetch serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import IO

from .answers import Lookup
from .app import App, default_gazetteer
from .config import PARENT_ENV, ServerConfig
from .protocol import Listener
from .stats import format_per_second

__all__ = ["serve", "url_of"]


def url_of(host: str, port: int) -> str:
    """``http://HOST:PORT`` (IPv6 hosts in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    gazetteer: Lookup | None = None,
) -> int:
    """Serve in the current thread until SIGINT or SIGTERM, then log per-second counts.

    Prints ``geofetch serve: listening on URL`` to ``stdout`` once ready and the
    per-second counts (:func:`~geofetch.server.stats.format_per_second`) to ``stderr``
    on exit; returns 0, or 2 when the address cannot be bound. Also stops when the
    process named by ``$GEOFETCH_SERVE_PARENT_PID`` is no longer its parent.
    """
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    return asyncio.run(_serve_main(config, host, port, stdout, stderr, gazetteer))


async def _serve_main(
    config: ServerConfig,
    host: str,
    port: int,
    stdout: IO[str],
    stderr: IO[str],
    gazetteer: Lookup | None,
) -> int:
    loop = asyncio.get_running_loop()
    app = App(config, gazetteer if gazetteer is not None else default_gazetteer())

    def warn(line: str) -> None:
        print(line, file=stderr, flush=True)

    listener = Listener(app, config, warn)
    try:
        bound = await listener.start(host, port)
    except OSError as exc:
        print(
            f"geofetch serve: cannot listen on {host}:{port}: {exc.strerror or exc}",
            file=stderr,
            flush=True,
        )
        return 2
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, stop.set)  # main thread only
    watcher = asyncio.ensure_future(_watch_parent(stop))
    app.reset()
    print(f"geofetch serve: listening on {url_of(host, bound)}", file=stdout, flush=True)
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(signum)
        await listener.close()
        stderr.write(format_per_second(app.stats.snapshot()))
        stderr.flush()
    return 0


async def _watch_parent(stop: asyncio.Event) -> None:
    """Stop when the process that asked for this server (subprocess mode) is gone."""
    try:
        parent = int(os.environ.get(PARENT_ENV, ""))
    except ValueError:
        return
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    stop.set()
