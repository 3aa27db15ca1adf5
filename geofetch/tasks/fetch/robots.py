"""robots.txt verdicts, decided once per origin per run (see :mod:`geofetch.tasks.fetch`)."""

from __future__ import annotations

import fcntl
import json
import os
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...exceptions import ProviderError
from .urls import digest

ALLOW, RULES, UNREACHABLE = "allow", "rules", "unreachable"


@dataclass
class RobotsVerdict:
    """What an origin's robots.txt says: ``allow`` everything, the ``rules`` in
    ``text``, or ``unreachable`` with the error in ``text``."""

    kind: str
    text: str = ""
    _parser: urllib.robotparser.RobotFileParser | None = None

    def allows(self, url: str, agent: str) -> bool:
        if self.kind != RULES:
            return self.kind == ALLOW
        if self._parser is None:
            parser = urllib.robotparser.RobotFileParser()
            parser.parse(self.text.splitlines())
            self._parser = parser
        return self._parser.can_fetch(agent, url)


#: A verdict (None if undecided), the requests made for it, and why it is undecided.
Decided = tuple[RobotsVerdict | None, int, ProviderError | None]


class RobotsBook:
    """Each origin's robots.txt verdict, decided once per run by whichever worker
    asks first, and kept in ``directory`` for every other worker. Picklable."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._known: dict[str, RobotsVerdict] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": self.directory, "_known": {}}

    def lookup(
        self,
        origin: str,
        download: Callable[[], Decided],
    ) -> Decided:
        """The verdict for ``origin``, with the requests this call made and the error
        that left it undecided (the run was aborted), if any."""
        known = self._known.get(origin)
        if known is not None:
            return known, 0, None
        path = os.path.join(self.directory, "robots-" + digest(origin))
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one asks; the others wait, then read
            verdict, attempts, error = self._read(path), 0, None
            if verdict is None:
                verdict, attempts, error = download()
                if verdict is not None:
                    self._write(path, verdict)
        finally:
            os.close(fd)
        if verdict is not None:
            self._known[origin] = verdict
        return verdict, attempts, error

    @staticmethod
    def _read(path: str) -> RobotsVerdict | None:
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
            return RobotsVerdict(record["kind"], record["text"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @staticmethod
    def _write(path: str, verdict: RobotsVerdict) -> None:
        partial = f"{path}.{os.getpid()}.tmp"
        with open(partial, "w", encoding="utf-8") as f:
            json.dump({"kind": verdict.kind, "text": verdict.text}, f)
        os.replace(partial, path)
