"""The HTML a fetch reads: a page's title and the text of CSS-selected elements."""

from __future__ import annotations

from bs4 import BeautifulSoup

from ...exceptions import UsageError

_HTML_TYPES = ("text/html", "application/xhtml+xml")


def parse_page(body: bytes, content_type: str | None,
               select: str | None = None) -> tuple[str | None, str | None]:
    """``(title, selected)`` of an HTML body; ``(None, "" or None)`` for anything else.

    ``title`` is the first ``<title>``'s text with whitespace folded; ``selected`` the
    text of every element matching the CSS selector ``select``, each folded, empty
    ones left out, joined by `` | `` (None when ``select`` is None).
    """
    empty = "" if select is not None else None
    if not _is_html(body, content_type):
        return None, empty
    soup = BeautifulSoup(body, "html.parser", from_encoding=_charset(content_type))
    tag = soup.find("title")
    title = _fold(tag.get_text()) if tag is not None else ""
    selected = None
    if select is not None:
        texts = (_fold(element.get_text()) for element in soup.select(select))
        selected = " | ".join(text for text in texts if text)
    return title or None, selected


def _is_html(body: bytes, content_type: str | None) -> bool:
    if content_type:
        return content_type.split(";", 1)[0].strip().lower() in _HTML_TYPES
    return body.lstrip()[:1] == b"<"  # no Content-Type: sniff, as browsers do


def _charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


def _fold(text: str) -> str:
    return " ".join(text.split())


def check_selector(select: str | None) -> None:
    """Raise :class:`UsageError` unless ``select`` is a CSS selector (or None)."""
    if select is None:
        return
    try:
        BeautifulSoup("", "html.parser").select(select)
    except Exception as exc:  # soupsieve's SelectorSyntaxError, and kin
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"invalid CSS selector {select!r}: {first}") from None
