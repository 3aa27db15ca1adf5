"""Gate URLs and names (``--gate redis://HOST:PORT/DB``, ``--gate-name NAME``): checks
and the printable form that never shows a password. Light: the options check them
before anything imports redis."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .exceptions import UsageError

_NAME = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def check_gate_url(url: str) -> str:
    """Check a gate URL (``redis://[user:password@]HOST[:PORT][/DB]``, or
    ``rediss://``); return its printable form ``redis://HOST:PORT`` (no password).
    Raises :class:`UsageError` for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError as exc:
        raise UsageError(f"--gate: not a redis:// URL ({exc})") from None
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise UsageError("--gate must be a URL like redis://HOST:PORT/DB, not "
                         f"{printable(url)!r}")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise UsageError(f"--gate: the database must be a number, not {db!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def check_gate_name(name: str) -> None:
    """A gate name is 1 to 100 letters, digits and ``. _ : -``; raises UsageError."""
    if not _NAME.fullmatch(name):
        raise UsageError("--gate-name must be 1 to 100 letters, digits and . _ : -, "
                         f"not {name!r}")


def printable(url: str) -> str:
    """``url`` without its user and password."""
    try:
        parts = urlsplit(url)
        if parts.password is None and parts.username is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}{parts.path}"
    except ValueError:
        return "<unreadable URL>"
