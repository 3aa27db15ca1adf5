"""geopy's HTTP on geofetch's one HTTP layer: :class:`GeofetchAdapter`.

geopy lets a geocoder's HTTP client be swapped through its public adapter API
(``geopy.adapters.BaseSyncAdapter``: ``get_text`` and ``get_json``; geopy's docs,
"Adapters"). geopy's own adapters (requests', urllib's) apply ``timeout`` to each
socket operation, so a server that trickles its answer a byte at a time holds a row
for ever, and requests' adapter re-sends twice by itself, unseen by the rate limit
and the budget. This adapter sends each request through
:class:`geofetch.http.HTTPClient` instead: one request per call, ``timeout``
seconds for the request as a whole (connecting, headers and body), gzip, deflate
and br decoded, proxies and the CA bundle from the environment, the key masked in
every error.

Errors: an answer with status >= 400 raises geopy's ``AdapterHTTPError`` (status,
headers, text), so each geocoder class maps it as it always does
(``GeocoderRateLimited`` with the Retry-After, ``GeocoderAuthenticationFailure``, ...).
No answer raises geofetch's own :class:`~geofetch.exceptions.Timeout`,
:class:`~geofetch.exceptions.ConnectionError` or
:class:`~geofetch.exceptions.HTTPError` (geopy passes an adapter's other exceptions
through unchanged), so the row's error says exactly what happened (``Timeout: no
answer within 10 s``). A body that is not JSON raises ``GeocoderParseError``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

import geopy.adapters
import geopy.exc

from ..http import HTTPClient
from ..http.response import Response

__all__ = ["GeofetchAdapter", "adapter_factory"]


class GeofetchAdapter(geopy.adapters.BaseSyncAdapter):  # type: ignore[misc]
    """A geopy adapter sending each request through :class:`~geofetch.http.HTTPClient`.

    ``proxies``: geopy's (a mapping of scheme to proxy URL; None or empty: the
    environment's). ``ssl_context``: refused unless None, because geofetch checks
    certificates against the CA bundle it finds (``$SSL_CERT_FILE``, certifi, the
    system's). ``secrets``: strings masked in every error (the API key).
    """

    def __init__(self, *, proxies: Mapping[str, str] | None, ssl_context: Any,
                 secrets: Iterable[str] = ()) -> None:
        super().__init__(proxies=proxies, ssl_context=ssl_context)
        if ssl_context is not None:
            raise geopy.exc.ConfigurationError(
                "geofetch sends geopy's requests itself: it checks certificates against "
                "its CA bundle (SSL_CERT_FILE), not an ssl_context")
        self.client = HTTPClient(proxies=dict(proxies) if proxies else None,
                                 secrets=secrets)

    def get_text(self, url: str, *, timeout: float, headers: Mapping[str, str]) -> str:
        """GET ``url`` within ``timeout`` seconds in all: the body as text (the
        charset of its Content-Type, else UTF-8)."""
        response = self.client.get(url, timeout=timeout, headers=headers)
        text = _text(response)
        if response.status >= 400:
            raise geopy.adapters.AdapterHTTPError(
                f"Non-successful status code {response.status}",
                status_code=response.status, headers=response.headers, text=text)
        return text

    def get_json(self, url: str, *, timeout: float, headers: Mapping[str, str]) -> Any:
        """GET ``url`` as :meth:`get_text`, parsed as JSON (``GeocoderParseError`` if
        it is not JSON)."""
        text = self.get_text(url, timeout=timeout, headers=headers)
        try:
            return json.loads(text)
        except ValueError:
            raise geopy.exc.GeocoderParseError(
                f"Could not deserialize the answer as JSON: {text[:80]!r}") from None

    def close(self) -> None:
        """Close the kept-alive connections."""
        self.client.close()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def adapter_factory(secrets: Iterable[str] = ()) -> Any:
    """geopy's ``adapter_factory`` argument: builds a :class:`GeofetchAdapter` that
    masks ``secrets`` (geopy calls it with ``proxies=`` and ``ssl_context=``). A
    ``functools.partial`` of the class, so a provider carrying it pickles to worker
    processes."""
    return functools.partial(GeofetchAdapter, secrets=tuple(secrets))


def _text(response: Response) -> str:
    content_type = response.content_type or ""
    charset = "utf-8"
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        return response.body.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return response.body.decode("utf-8", errors="replace")
