"""robots.txt verdicts, decided once per origin per run (see :mod:`geofetch.tasks.fetch`).

The rules are read per RFC 9309 by ``protego``, not the standard library's
``urllib.robotparser``, which before Python 3.13 knows neither the ``*`` and ``$``
wildcards (``Disallow: /*.pdf$`` did not stop ``/report.pdf``) nor the longest-match
precedence (``Disallow: /a`` with ``Allow: /a/b`` refused ``/a/b``):

* only the first :data:`ROBOTS_MAX_BYTES` (500 KiB, the least RFC 9309 allows) of a
  longer file are parsed, whatever its ``Content-Length``, without the line the cut
  falls in (a cut ``Allow: /a/b`` must not read as ``Allow: /``);
* a UTF-8 byte order mark is dropped (it would hide the first line's rule);
* the group followed is the one whose ``User-agent`` names the product token
  (:func:`product_token`: ``geofetch``, case-insensitive), else ``*``;
* ``Crawl-delay`` of that group is a minimum gap between the run's requests to the
  origin (:class:`~geofetch.tasks.fetch.hosts.CrawlDelays`).
"""

from __future__ import annotations

import codecs
import fcntl
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from protego import Protego

from ...exceptions import ProviderError
from .urls import digest

ALLOW, RULES, UNREACHABLE = "allow", "rules", "unreachable"
#: Bytes of a robots.txt that are read and parsed (RFC 9309: at least 500 KiB).
ROBOTS_MAX_BYTES = 500 * 1024
#: The product token robots.txt groups are matched against by default.
PRODUCT_TOKEN = "geofetch"

_TOKEN = re.compile(r"\s*([A-Za-z_-]+)")


def product_token(user_agent: str) -> str:
    """The product token of a User-Agent (RFC 9309 §2.2.1: letters, ``_`` and ``-``),
    lower-cased: ``geofetch`` for geofetch's own, ``acmebot`` for ``AcmeBot/2.0 (...)``;
    :data:`PRODUCT_TOKEN` when the User-Agent starts with none."""
    match = _TOKEN.match(user_agent or "")
    return match.group(1).lower() if match else PRODUCT_TOKEN


def robots_text(body: bytes, complete: bool = True) -> str:
    """The text of a robots.txt as it is parsed: ``body`` (already cut at
    :data:`ROBOTS_MAX_BYTES` when ``complete`` is False) without the line the cut
    fell in, without a UTF-8 byte order mark, decoded as UTF-8 (bad bytes replaced)."""
    if not complete:
        end = max(body.rfind(b"\n"), body.rfind(b"\r"))
        body = body[: end + 1]
    if body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8):]
    return body.decode("utf-8", "replace")


@dataclass
class RobotsVerdict:
    """What an origin's robots.txt says: ``allow`` everything, the ``rules`` in
    ``text``, or ``unreachable`` with the error in ``text``."""

    kind: str
    text: str = ""
    parser: Protego | None = field(default=None, repr=False, compare=False)

    def _rules(self) -> Protego:
        if self.parser is None:
            self.parser = Protego.parse(self.text)
        return self.parser

    def allows(self, url: str, token: str) -> bool:
        """True if ``url`` may be fetched by the crawler named ``token``."""
        if self.kind != RULES:
            return self.kind == ALLOW
        return self._rules().can_fetch(url, token)

    def crawl_delay(self, token: str) -> float | None:
        """The ``Crawl-delay`` (seconds) of the group ``token`` follows; None if none."""
        if self.kind != RULES:
            return None
        delay = self._rules().crawl_delay(token)
        return delay if delay else None


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
