"""The fast HTML path (lxml) gives exactly what BeautifulSoup with html.parser gives:
the title and every ``--select`` result, on a corpus of pages built to differ
(tests/html_corpus: charsets from the header, from <meta>, BOMs, latin-1, cp1252,
UTF-16, broken bytes, malformed and mismatched markup, entities, nested selectors,
whitespace) and on the test site's own pages."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from geofetch.tasks.fetch import html
from geofetch.testing.site import page

CORPUS = Path(__file__).resolve().parent / "html_corpus"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
PAGES: dict[str, str] = MANIFEST["pages"]
SELECTORS: list[str] = MANIFEST["selectors"]

#: Pages the fast path must take itself (balanced markup, in every encoding).
FAST = ["plain.html", "whitespace.html", "latin1-header.html", "cp1252-meta.html",
        "meta-charset-latin1.html", "header-wins-over-meta.html", "utf8-bom.html",
        "utf16-bom.html", "quoted-charset.html", "no-content-type.html", "bad-utf8.html",
        "xhtml-decl.xhtml", "nested-selectors.html", "attributes-unquoted.html",
        "uppercase-tags.html", "gb2312-meta.html", "shift-jis-header.html", "comments.html"]
#: Pages whose trees the parsers build differently: they must go to the reference.
REFERENCE = ["unclosed-tags.html", "stray-end-tags.html", "mismatched-nesting.html",
             "title-with-markup.html", "unclosed-title.html", "no-html-head.html",
             "void-and-selfclosing.html", "template-noscript.html", "frameset.html",
             "comments-cdata-script.html", "entities.html", "nul-and-controls.html",
             "deep-nesting.html", "query-links.html", "textarea-pre.html"]


def beautifulsoup(body: bytes, content_type: str, select: str | None):
    """What geofetch returned before the fast path: BeautifulSoup on the bytes."""
    if not html._is_html(body, content_type):
        return None, "" if select is not None else None
    soup = BeautifulSoup(body, "html.parser", from_encoding=html._charset(content_type))
    tag = soup.find("title")
    title = html._fold(tag.get_text()) if tag is not None else ""
    selected = None
    if select is not None:
        texts = (html._fold(element.get_text()) for element in soup.select(select))
        selected = " | ".join(text for text in texts if text)
    return title or None, selected


@pytest.fixture(autouse=True)
def _quiet_dammit():
    # "Some characters could not be decoded": the broken-bytes pages, on purpose.
    logging.getLogger("bs4.dammit").setLevel(logging.ERROR)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_page_and_selector_reads_as_beautifulsoup_reads_it(name):
    body = (CORPUS / name).read_bytes()
    content_type = PAGES[name]
    for select in [None, *SELECTORS]:
        assert html.parse_page(body, content_type, select) == beautifulsoup(
            body, content_type, select), (name, select)


def _decoded(name: str) -> str:
    body = (CORPUS / name).read_bytes()
    charset = html._charset(PAGES[name])
    return html.UnicodeDammit(body, [charset] if charset else [], is_html=True).unicode_markup


@pytest.mark.parametrize("name", FAST)
def test_balanced_pages_take_the_fast_path(name):
    assert html._fast_tree(_decoded(name)) is not None


@pytest.mark.parametrize("name", REFERENCE)
def test_pages_the_parsers_read_differently_go_to_the_reference(name):
    assert html._fast_tree(_decoded(name)) is None


def test_the_corpus_covers_both_paths_and_every_listed_page():
    assert set(FAST) | set(REFERENCE) <= set(PAGES)
    assert not set(FAST) & set(REFERENCE)


def test_the_test_sites_pages_take_the_fast_path_and_read_the_same():
    body = page("Page 7 &amp; more", "Heading 7", '<p class="item">one</p>')
    assert html._fast_tree(body.decode("utf-8")) is not None
    for select in ("h1", "p.item", "title"):
        assert html.parse_page(body, "text/html; charset=utf-8", select) == beautifulsoup(
            body, "text/html; charset=utf-8", select)


def test_a_selector_cssselect_cannot_translate_is_matched_by_the_reference():
    body = (CORPUS / "nested-selectors.html").read_bytes()
    for select in ('p:-soup-contains("Intro")', "li:nth-child(2 of .tag)"):
        assert html._matcher(select) is None  # soupsieve's own, or CSS 4 cssselect lacks
        assert html.parse_page(body, "text/html", select) == beautifulsoup(body, "text/html",
                                                                           select)
    assert html.parse_page(body, "text/html", 'p:-soup-contains("Intro")')[1] == (
        "Intro bold it")
