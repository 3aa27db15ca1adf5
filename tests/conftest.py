"""Shared fixtures: an isolated cache directory, no proxies, and the CLI in-process."""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass

import pytest

from geofetch.cli.env import Environment
from geofetch.cli.main import run_cli

# One cache directory for the whole session: the offline index is built once,
# and no test reads or writes the user's own cache.
_SESSION_CACHE = tempfile.mkdtemp(prefix="geofetch-test-cache-")
os.environ["GEOFETCH_CACHE_DIR"] = _SESSION_CACHE


def pytest_sessionstart(session):
    """Build the offline index once, before any test's timeout starts counting."""
    from geofetch.providers.offline import Gazetteer

    Gazetteer.load()


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    """Loopback traffic must never go through a proxy from the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("GOOGLE_MAPS_API_KEY", raising=False)


class _Stream(io.StringIO):
    def __init__(self, text: str = "", tty: bool = False) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@dataclass
class CLIResult:
    status: int
    stdout: str
    stderr: str


@pytest.fixture
def cli():
    """Run ``geofetch`` in-process: ``cli(["geocode", path], stdin="...")``."""

    def run(argv, *, stdin: str = "", tty: bool = False) -> CLIResult:
        env = Environment(stdin=_Stream(stdin), stdout=_Stream(tty=tty),
                          stderr=_Stream(tty=False))
        status = run_cli([str(a) for a in argv], env)
        return CLIResult(status, env.stdout.getvalue(), env.stderr.getvalue())

    return run
