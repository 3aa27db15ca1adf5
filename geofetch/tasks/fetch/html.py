"""The HTML a fetch reads: a page's title and the text of CSS-selected elements.

::

    body ─► decode (bs4's UnicodeDammit: header charset, BOM, <meta>, guess)
         ─► lxml (libxml2) tree ─► same shape as the source's own tags? ─ yes ─► title, --select
                                             │ no (or a construct below)
                                             ▼
                              BeautifulSoup("html.parser"): the reference

The reference is BeautifulSoup with Python's ``html.parser``: what geofetch always
returned. It costs about 8-20 ms of CPU for a 20 KB page, lxml about 0.25 ms, so
lxml reads every page whose tree it builds exactly as the reference does, and the
reference reads the rest. Decoding is shared (bs4's ``UnicodeDammit``, with the
``Content-Type`` charset as the definite encoding, as ``BeautifulSoup`` is given),
so both see the same text.

The two trees agree when the page's tags are balanced: every element the source
opens, it closes, in order, with none of libxml2's implied end tags (a ``<div>``
closing an open ``<p>``), no implied ``html``/``head``/``body``, and the title,
``textarea`` and raw text free of markup and unusual entities. That is checked,
not assumed: the source's start tags (a scan with one regular expression) and
lxml's elements must give the same tag names with the same parents, in the same
order. Constructs whose text the parsers read differently send the page to the
reference too: ``<![CDATA[``, a self-closing non-void tag (``<div/>``),
``<template>``, ``<frameset>``, control characters, numeric references to NUL,
C1 controls or past U+10FFFF, entities without their semicolon, and nesting
deeper than :data:`MAX_DEPTH`. A ``--select`` that cssselect cannot translate
(soupsieve's ``:has()``, ``:is()``, ``:-soup-contains()``) is matched by the
reference on every page.

Why lxml rather than selectolax: both are about 35x faster than the reference here
(0.23 and 0.22 ms per 20 KB page), but lexbor builds the HTML5 tree (it inserts
``<tbody>``, moves misplaced table content), which differs from the reference's
even on balanced pages, while libxml2 keeps the source's shape; and lxml reached
the higher rate in the issue's two-process probe (716 pages/s to 548).
"""

from __future__ import annotations

import html.entities
import re
import threading
from collections.abc import Callable
from typing import Any

from bs4 import BeautifulSoup
from bs4.dammit import UnicodeDammit

from ...exceptions import UsageError

_HTML_TYPES = ("text/html", "application/xhtml+xml")
#: Nesting past this goes to the reference (libxml2 caps depth at 256 by default).
MAX_DEPTH = 200

_VOID = frozenset("area base br col embed hr img input keygen link meta param source track "
                  "wbr".split())
_RAW = frozenset(("script", "style"))  # both parsers read their content as text
_TEXT_ONLY = _RAW | {"title", "textarea"}  # content up to the end tag, markup or not
# What sends a page to the reference before any parsing (see the module docstring).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_UNSAFE_TAGS = frozenset(("template", "frameset", "plaintext", "xmp", "noembed", "noframes",
                          "iframe"))
# One token: a comment, a doctype / declaration, a processing instruction, or a tag
# with its attributes (quoted values may hold ">").
_TOKEN = re.compile(r"<!--.*?-->|<![^>]*>|<\?[^>]*>|"
                    r"<(/?)([A-Za-z][^\s/>]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>", re.DOTALL)
_ENTITY = re.compile(r"&(#[0-9]+;?|#[xX][0-9A-Fa-f]+;?|[A-Za-z][A-Za-z0-9]*;?)?")
# The entity names HTML also knows without their semicolon ("&copy 2024"): text and
# attribute values read them differently, "&T" in "AT&T" they read alike.
_LEGACY = re.compile("|".join(sorted((name for name in html.entities.html5
                                      if not name.endswith(";")), key=len, reverse=True)))

def parse_page(body: bytes, content_type: str | None,
               select: str | None = None) -> tuple[str | None, str | None]:
    """``(title, selected)`` of an HTML body; ``(None, "" or None)`` for anything else.

    ``title`` is the first ``<title>``'s text with whitespace folded; ``selected`` the
    text of every element matching the CSS selector ``select``, each folded, empty
    ones left out, joined by `` | `` (None when ``select`` is None). The same values
    as BeautifulSoup with ``html.parser`` gives (see the module docstring).
    """
    empty = "" if select is not None else None
    if not _is_html(body, content_type):
        return None, empty
    charset = _charset(content_type)
    text = UnicodeDammit(body, [charset] if charset else [], is_html=True).unicode_markup
    if text is None:  # pragma: no cover - UnicodeDammit always decodes, with U+FFFD
        return None, empty
    matcher = _matcher(select) if select is not None else None
    if matcher is not None or select is None:
        document = _fast_tree(text)
        if document is not None:
            return _read_fast(document, select, matcher)
    return _read_reference(text, select)


def _read_fast(document: Any, select: str | None,
               matcher: Callable[[Any], list[Any]] | None) -> tuple[str | None, str | None]:
    found = document.find(".//title")
    text = _text()
    title = _fold(text(found)) if found is not None else ""
    selected = None
    if select is not None and matcher is not None:
        texts = (_fold(text(element)) for element in matcher(document))
        selected = " | ".join(text for text in texts if text)
    return title or None, selected


def _read_reference(text: str, select: str | None) -> tuple[str | None, str | None]:
    soup = BeautifulSoup(text, "html.parser")
    tag = soup.find("title")
    title = _fold(tag.get_text()) if tag is not None else ""
    selected = None
    if select is not None:
        texts = (_fold(element.get_text()) for element in soup.select(select))
        selected = " | ".join(text for text in texts if text)
    return title or None, selected


def _fast_tree(text: str) -> Any | None:
    """lxml's tree of ``text`` if it has the reference's shape, else None."""
    if "<![" in text or _CONTROLS.search(text) or ("&" in text and not _plain_entities(text)):
        return None  # CDATA (or another <![ declaration), control characters, odd entities
    shape = _source_shape(text)
    if shape is None:
        return None
    import lxml.etree

    try:
        document = lxml.etree.fromstring(text.encode("utf-8", "surrogatepass"), _parser())
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError):
        return None
    if document is None:  # nothing but whitespace
        return None
    # Comments and processing instructions were dropped while parsing: every node
    # left is an element, and the elements in document order, each with its number of
    # children, are the tree.
    tree = [(element.tag, len(element)) for element in document.iter()]
    return document if tree == shape else None


def _source_shape(text: str) -> list[tuple[str, int]] | None:
    """The source's elements in document order, each with its number of children,
    if every element it opens it closes in order, and titles and textareas hold no
    markup; else None."""
    if "--!>" in text:
        return None  # a comment closed as only HTML5 closes it
    names: list[str] = []
    children: list[int] = []
    open_at: list[int] = []  # the index of each open element, innermost last
    raw = ""  # the element whose content is text up to its end tag
    for slash, name, attributes in _TOKEN.findall(text):  # one C loop, then plain tuples
        if raw:
            if slash and name.lower() == raw:
                raw = ""
                open_at.pop()
            elif raw not in _RAW:
                return None  # markup in a title or textarea: not markup to both parsers
            continue
        if not name:  # a comment, doctype or processing instruction
            continue
        name = name.lower()
        if slash:  # an end tag
            if not open_at or names[open_at[-1]] != name:
                return None
            open_at.pop()
            continue
        if name in _UNSAFE_TAGS:
            return None
        if open_at:
            children[open_at[-1]] += 1
        names.append(name)
        children.append(0)
        if name in _VOID:
            continue
        if attributes.endswith("/"):
            return None  # <div/>: an empty element to one parser, an open one to the other
        open_at.append(len(names) - 1)
        if len(open_at) > MAX_DEPTH:
            return None
        if name in _TEXT_ONLY:
            raw = name
    if open_at or raw:
        return None
    return list(zip(names, children, strict=True))


def _plain_entities(text: str) -> bool:
    """True when every character reference in ``text`` reads alike to both parsers:
    with its semicolon, decoding to a character other than NUL, a C1 control or past
    U+10FFFF; or without one, and no name HTML also reads without its semicolon
    ("&T" in "AT&T" is text to both, "&copy 2024" is not)."""
    for match in _ENTITY.finditer(text):
        reference = match.group(1)
        if reference is None:
            continue  # a bare "&": text to both
        if not reference.endswith(";"):
            if reference.startswith("#") or _LEGACY.match(reference):
                return False
            continue
        body = reference[:-1]
        if body.startswith("#"):
            code = int(body[2:], 16) if body[1:2] in ("x", "X") else int(body[1:])
            if code == 0 or 0x80 <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                return False
        elif reference not in html.entities.html5:
            return False
    return True


class _PerThread(threading.local):
    """lxml's parser and compiled XPath expressions, one set per thread (lxml
    serialises the threads sharing a parser and does not share XPath objects)."""

    def __init__(self) -> None:
        import lxml.etree

        # The text is handed over as UTF-8 bytes with the encoding named, so a <meta>
        # charset or an XML declaration in it changes nothing. Plain elements, not
        # lxml.html's: its element classes cost a Python call per element.
        self.parser = lxml.etree.HTMLParser(encoding="utf-8", remove_comments=True,
                                            remove_pis=True)
        # An element's text, its descendants' included, comments left out (XPath
        # string(), as lxml.html's text_content).
        self.text = lxml.etree.XPath("string()", smart_strings=False)
        self.selectors: dict[str, Callable[[Any], list[Any]] | None] = {}


_local = _PerThread()


def _mine() -> _PerThread:
    return _local


def _parser() -> Any:
    return _mine().parser


def _text() -> Callable[[Any], str]:
    return _mine().text  # type: ignore[no-any-return]


def _matcher(select: str) -> Callable[[Any], list[Any]] | None:
    """lxml's compiled ``select``, or None when cssselect cannot translate it."""
    selectors = _mine().selectors
    if select not in selectors:
        from cssselect import SelectorError
        from lxml.cssselect import CSSSelector

        if len(selectors) >= 64:
            selectors.clear()
        try:
            selectors[select] = CSSSelector(select, translator="html")
        except (SelectorError, ValueError, TypeError, NotImplementedError):
            selectors[select] = None
    return selectors[select]


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
