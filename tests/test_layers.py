"""Layering rules checked on the source: what geofetch may use of other libraries.

``test_no_private_names_of_libraries`` keeps the private names (``_anything``) of
the HTTP and concurrency libraries out of ``geofetch/``: a private name can change
in any release (the fault fixed by the HTTP layer: a copy of CPython's
``HTTPResponse.begin``, ``http.client._read_headers``, requests'
``_encode_params`` and googlemaps' ``Client._request``). Three checks, each shown
to catch the old code in ``test_the_check_catches_what_it_must``:

* text: ``LIB(.sub)*._name``, ``from LIB(.sub)* import _name`` (also inside
  parentheses), ``import LIB._sub``, ``getattr(LIB..., "_name")``, and
  ``RequestEncodingMixin``;
* names bound by imports: ``from requests.models import RequestEncodingMixin as M``
  then ``M._encode_params``, ``import urllib3 as u`` then ``u._collections``;
* subclasses of a library's classes: ``self._name`` read in the class but never
  assigned or defined in it (``self._read_status()`` in a ``HTTPResponse``
  subclass) is the library's own private state;
* objects a library made or typed: ``response = requests.Response()`` then
  ``response._content``, ``self.client = googlemaps.Client(...)`` then
  ``self.client._request(...)``.

Dunder names (``__init__``, ``__name__``) are public.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "geofetch"

#: Libraries whose private names geofetch must not use.
LIBRARIES = ("http.client", "requests", "urllib3", "googlemaps", "multiprocessing",
             "concurrent.futures", "asyncio", "socket")
_LIB = "|".join(re.escape(name) for name in LIBRARIES)

_TEXT_RULES = [
    re.compile(rf"\b(?:{_LIB})(?:\.[A-Za-z0-9]+)*\._[A-Za-z0-9]"),
    re.compile(rf"^\s*from\s+(?:{_LIB})(?:\.[A-Za-z0-9_]+)*\s+import\s+[^#]*\b_[A-Za-z0-9]"),
    re.compile(rf"^\s*import\s+(?:{_LIB})(?:\.[A-Za-z0-9]+)*\._"),
    re.compile(rf"getattr\(\s*(?:{_LIB})[\w.]*\s*,\s*[\"']_[A-Za-z0-9]"),
    re.compile(r"\bRequestEncodingMixin\b"),
]


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _library(module: str | None) -> bool:
    return bool(module) and any(
        module == lib or module.startswith(lib + ".") for lib in LIBRARIES)  # type: ignore[union-attr]


def _text_findings(source: str) -> list[tuple[int, str]]:
    found = []
    lines = source.splitlines()
    for number, line in enumerate(lines, 1):
        if any(rule.search(line) for rule in _TEXT_RULES):
            found.append((number, line.strip()))
    # ``from LIB import (\n  a,\n  _b,\n)``: the names inside the parentheses
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _library(node.module):
            for alias in node.names:
                if _is_private(alias.name) and node.lineno not in {n for n, _ in found}:
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
    return found


def _bound_names(tree: ast.Module) -> set[str]:
    """Names an import binds to a library module or to one of its objects."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _library(alias.name):
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and _library(node.module):
            for alias in node.names:
                bound.add(alias.asname or alias.name)
    return bound


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _attribute_findings(tree: ast.Module, bound: set[str]) -> list[tuple[int, str]]:
    """``NAME._x`` or ``NAME.a._x`` where NAME is bound to a library."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            root = _root(node.value)
            if root in bound:
                found.append((node.lineno, f"{ast.unparse(node)}"))
    return found


def _subclass_findings(tree: ast.Module, bound: set[str]) -> list[tuple[int, str]]:
    """``self._x`` read in a subclass of a library class, ``_x`` not its own."""
    found = []
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        if not any(_root(base) in bound for base in cls.bases):
            continue
        own = set()
        for node in ast.walk(cls):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                  and isinstance(node.value, ast.Name) and node.value.id == "self"):
                own.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                own.add(node.target.id)
        for node in ast.walk(cls):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in ("self", "cls") and _is_private(node.attr)
                    and node.attr not in own):
                found.append((node.lineno, f"{cls.name}: {ast.unparse(node)}"))
    return found


def _key(node: ast.expr) -> str | None:
    """``name`` or ``self.name`` (what an instance of a library class may be held in)."""
    if isinstance(node, ast.Name):
        return node.id
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "self"):
        return f"self.{node.attr}"
    return None


def _instance_findings(tree: ast.Module, bound: set[str]) -> list[tuple[int, str]]:
    """``x._y`` where ``x`` (or ``self.x``) holds an object a library made or typed:
    ``x = requests.Response()``, ``self.client: googlemaps.Client = ...``. Names are
    matched across the module, not per scope: a reused name may be reported."""
    held = set()
    for node in ast.walk(tree):
        value, targets, annotation = None, [], None
        if isinstance(node, ast.Assign):
            value, targets = node.value, node.targets
        elif isinstance(node, ast.AnnAssign):
            value, targets, annotation = node.value, [node.target], node.annotation
        made = isinstance(value, ast.Call) and _root(value.func) in bound
        typed = annotation is not None and any(
            isinstance(n, ast.Name) and n.id in bound for n in ast.walk(annotation))
        if made or typed:
            held.update(k for k in map(_key, targets) if k)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            if _key(node.value) in held:
                found.append((node.lineno, ast.unparse(node)))
    return found


def private_uses(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` for each use of a library's private name in ``source``."""
    tree = ast.parse(source)
    bound = _bound_names(tree)
    found = _text_findings(source)
    found += _attribute_findings(tree, bound)
    found += _subclass_findings(tree, bound)
    found += _instance_findings(tree, bound)
    return sorted(set(found))


def test_no_private_names_of_libraries():
    offending = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20  # the scan sees the package
    for path in files:
        for line, text in private_uses(path.read_text(encoding="utf-8")):
            offending.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text}")
    assert not offending, "private names of other libraries:\n" + "\n".join(offending)


# Lines of the code the HTTP layer replaced: each must be caught.
_OLD_CODE = '''
import http.client
import googlemaps
import requests
from requests.models import RequestEncodingMixin
from urllib3.util import _has_ipv6
from concurrent.futures.process import (
    BrokenProcessPool,
    _ExceptionWithTraceback,
)
import urllib3 as u3

_encode_params = RequestEncodingMixin._encode_params
_read_headers = getattr(http.client, "_read_headers", None)

class LeanResponse(http.client.HTTPResponse):
    def begin(self):
        self._own = 1
        version, status, reason = self._read_status()
        self.will_close = self._check_close()
        return self._own

class Provider:
    def open(self):
        self.client = googlemaps.Client(key="k")

    def geocode(self):
        return self.client._request("/x", {})

def call(client):
    answer = requests.Response()
    answer._content_consumed = True
    http.client._read_headers(client.fp)
    response._content = requests.models.Response._content
    googlemaps.Client._request(client, "/x", {})
    u3._collections.HTTPHeaderDict()
    socket._GLOBAL_DEFAULT_TIMEOUT
'''


def test_the_check_catches_what_it_must():
    found = private_uses(_OLD_CODE)
    text = "\n".join(f"{line}: {what}" for line, what in found)
    lines = _OLD_CODE.splitlines()
    caught = {lines[line - 1].strip() for line, _ in found}
    for must in ("from requests.models import RequestEncodingMixin",
                 "from urllib3.util import _has_ipv6",
                 "_encode_params = RequestEncodingMixin._encode_params",
                 '_read_headers = getattr(http.client, "_read_headers", None)',
                 "version, status, reason = self._read_status()",
                 "self.will_close = self._check_close()",
                 "http.client._read_headers(client.fp)",
                 "response._content = requests.models.Response._content",
                 'googlemaps.Client._request(client, "/x", {})',
                 "u3._collections.HTTPHeaderDict()",
                 "socket._GLOBAL_DEFAULT_TIMEOUT",
                 'return self.client._request("/x", {})',
                 "answer._content_consumed = True"):
        assert must in caught, f"not caught: {must}\nfound:\n{text}"
    assert any("_ExceptionWithTraceback" in what for _, what in found), text
    assert "return self._own" not in caught  # the subclass's own attribute is fine


def test_public_and_dunder_names_pass():
    source = '''
import socket
import urllib3
from urllib3.connection import HTTPConnection

class Mine(HTTPConnection):
    def __init__(self, *a):
        super().__init__(*a)
        self._ticket = None
    def connect(self):
        self._note()
        return self._ticket
    def _note(self):
        pass

socket.socket.shutdown(sock, socket.SHUT_RDWR)
urllib3.PoolManager().pool_classes_by_scheme
name = urllib3.__name__
'''
    assert private_uses(source) == []
