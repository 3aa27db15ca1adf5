"""The streams a command runs against (injected so tests run the CLI in-process), and
the one table of exit statuses."""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from typing import IO

from ..exceptions import GeofetchError, RunAborted


class ExitStatus(enum.IntEnum):
    """Exit codes of every geofetch command (see the contract)."""

    OK = 0
    FAILED_ROWS = 1  # the run finished and some rows are failed
    USAGE = 2  # bad usage or unreadable input: one line names the problem
    ABORTED = 3  # credentials refused, quota or --max-requests spent
    INTERNAL = 70  # a bug in geofetch (EX_SOFTWARE, sysexits.h): one line, -v for more
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    TERMINATED = 143  # SIGTERM (128 + SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C but with exit status 143."""


#: Exception -> exit status, first match wins; anything else is ``INTERNAL``.
EXIT_STATUS_FOR: tuple[tuple[type[BaseException], ExitStatus], ...] = (
    (Terminated, ExitStatus.TERMINATED),
    (KeyboardInterrupt, ExitStatus.INTERRUPTED),
    (RunAborted, ExitStatus.ABORTED),
    (GeofetchError, ExitStatus.USAGE),
)


def exit_status_for(exc: BaseException) -> ExitStatus:
    """The exit status an exception that ended a command stands for."""
    for cls, status in EXIT_STATUS_FOR:
        if isinstance(exc, cls):
            return status
    return ExitStatus.INTERNAL


@dataclass
class Environment:
    """Standard streams and whether each is a terminal."""

    stdin: IO[str] = field(default_factory=lambda: sys.stdin)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)

    @property
    def stdout_isatty(self) -> bool:
        return _isatty(self.stdout)

    @property
    def stderr_isatty(self) -> bool:
        return _isatty(self.stderr)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
