"""One HTTP answer, read: what the providers parse and fetch writes into its rows."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

__all__ = ["REDIRECT_STATUSES", "Response"]

#: Statuses whose ``Location`` is a redirect (RFC 9110 §15.4), as requests counts them.
REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))


@dataclass
class Response:
    """An HTTP answer with its body read (and decoded from its content codings).

    ``headers`` is case-insensitive (urllib3's ``HTTPHeaderDict``; a plain dict works
    for hand-made answers in tests, with the names as written); ``body`` the decoded
    bytes, cut at the reader's cap when ``complete`` is False; ``elapsed`` seconds
    from sending the request to the last byte read; ``url`` the URL asked.
    """

    url: str
    status: int
    reason: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = True
    elapsed: float = 0.0

    def header(self, name: str) -> str | None:
        """A header's value (repeated headers joined with ``", "``), or None."""
        return self.headers.get(name)

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header, or None."""
        return self.headers.get("Content-Type")

    @property
    def declared_length(self) -> int | None:
        """The ``Content-Length`` header as a number of bytes, or None."""
        value = self.headers.get("Content-Length", "")
        return int(value) if value.isdigit() else None

    @property
    def is_redirect(self) -> bool:
        """A redirect status with a ``Location`` header."""
        return self.status in REDIRECT_STATUSES and "Location" in self.headers

    @property
    def location(self) -> str | None:
        """Where a redirect points, as an absolute URL; None if it is not one.

        Header bytes arrive as Latin-1 (as ``http.client`` reads them); a UTF-8
        ``Location`` is read as UTF-8, as requests and browsers do.
        """
        if not self.is_redirect:
            return None
        target = self.headers["Location"]
        try:
            target = target.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
        return urljoin(self.url, target) if target else None

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` when it is not JSON."""
        return json.loads(self.body)
