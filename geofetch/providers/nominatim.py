"""OpenStreetMap's Nominatim search API, through one ``requests.Session`` per worker.

One :meth:`NominatimProvider.geocode` is one ``GET {base_url}/search?q=...&format=json``
with a ``(connect, read)`` timeout and no redirects followed, so the engine's rate
limit and budget count every request the server sees. The public server asks for at
most 1 request/s and a User-Agent naming the application
(https://operations.osmfoundation.org/policies/nominatim/): hence ``default_rate``.

Any HTTP answer or ``requests`` failure becomes a :mod:`geofetch.exceptions` error
through the table in :mod:`geofetch.providers._http`, which the Google provider
shares, so both services fail the same way for the same HTTP status.
"""

from __future__ import annotations

from typing import Any

import requests

from ..exceptions import HTTPError
from ..redact import redact
from ._http import (
    DEFAULT_USER_AGENT,
    check_base_url,
    content_type,
    error_for_exception,
    error_for_response,
    guard_library_logs,
    worker_session,
)
from .base import Answer, Provider

NOMINATIM_URL = "https://nominatim.openstreetmap.org"


class NominatimProvider(Provider):
    """Nominatim's ``/search`` endpoint.

    ``base_url`` points at a self-hosted instance (no trailing ``/search``);
    ``user_agent`` replaces geofetch's own; ``email`` is sent as Nominatim's
    ``email`` parameter (its operators' preferred contact); ``language`` as
    ``accept-language``.
    """

    name = "nominatim"
    default_rate = 1.0
    uses_network = True
    cacheable = True

    def __init__(
        self,
        base_url: str = NOMINATIM_URL,
        user_agent: str | None = None,
        email: str | None = None,
        language: str | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        self.email = email
        self.language = language
        self._session: requests.Session | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_session"] = None  # a live session is built per worker, never pickled
        return state

    def open(self) -> None:
        """Build this worker's session (idempotent)."""
        if self._session is None:
            guard_library_logs(self.secrets())
            session = worker_session(self.base_url)
            session.headers["User-Agent"] = self.user_agent
            session.headers["Accept"] = "application/json"
            self._session = session

    def close(self) -> None:
        """Close this worker's session."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def geocode(self, query: str, *, timeout: float) -> Answer:
        """One search request: the first match, or a not-found answer for ``[]``."""
        if self._session is None:
            self.open()
        assert self._session is not None
        params: dict[str, str | int] = {"q": query, "format": "json", "limit": 1}
        if self.language:
            params["accept-language"] = self.language
        if self.email:
            params["email"] = self.email
        try:
            response = self._session.get(
                f"{self.base_url}/search",
                params=params,
                timeout=(timeout, timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise error_for_exception(exc, timeout, self.secrets()) from exc
        if response.status_code != 200:
            raise error_for_response(response, self.secrets())
        try:
            body = response.json()
        except ValueError as exc:
            raise HTTPError(
                f"HTTP 200 with a body that is not JSON ({content_type(response)})",
                status_code=200,
            ) from exc
        if not isinstance(body, list):
            raise HTTPError(
                f"expected a JSON list of places, got {type(body).__name__}: "
                + redact(str(body)[:200], self.secrets()),
                status_code=200,
            )
        if not body:
            return Answer(raw=body)
        first = body[0]
        try:
            lat, lng = float(first["lat"]), float(first["lon"])
        except (KeyError, TypeError, ValueError) as exc:
            raise HTTPError("first place has no usable lat/lon", status_code=200) from exc
        return Answer(lat=lat, lng=lng, formatted_address=first.get("display_name"), raw=body)

    def cache_namespace(self) -> str:
        """Provider, server and language: what besides the query decides the answer."""
        return f"nominatim|{self.base_url}|language={self.language or ''}"

    def __repr__(self) -> str:
        return f"NominatimProvider(base_url={self.base_url!r}, language={self.language!r})"
