"""The streams a command runs against, injected so tests run the CLI in-process."""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from typing import IO


class ExitStatus(enum.IntEnum):
    """Exit codes of every geofetch command (see the contract)."""

    OK = 0
    FAILED_ROWS = 1
    USAGE = 2
    ABORTED = 3
    INTERRUPTED = 130
    TERMINATED = 143


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
