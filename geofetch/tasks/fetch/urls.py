"""URLs for fetching: which can be fetched, and the key a URL is deduplicated by."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

from ...models import MAX_QUERY_LENGTH


def check_url(url: object) -> str | None:
    """Why ``url`` cannot be fetched (``"InvalidURL: ..."``), or None if it can."""
    if not isinstance(url, str):
        return f"InvalidURL: not text but {type(url).__name__}"
    text = url.strip()
    if not text:
        return "InvalidURL: blank URL"
    if len(text) > MAX_QUERY_LENGTH:
        return f"InvalidURL: {len(text)} characters, the limit is {MAX_QUERY_LENGTH}"
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"InvalidURL: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"InvalidURL: not an http(s) URL: {text[:200]!r}"
    if not host:
        return f"InvalidURL: no host in {text[:200]!r}"
    return None


def url_key(url: str) -> str:
    """The URL as asked: scheme and host case-folded, fragment dropped."""
    parts = urlsplit(url.strip())
    userinfo, _, host = parts.netloc.rpartition("@")
    netloc = f"{userinfo}@{host.lower()}" if userinfo else host.lower()
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
