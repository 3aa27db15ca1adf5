"""OpenStreetMap's Nominatim search API, over :mod:`geofetch.http`.

One :meth:`NominatimProvider.geocode` is one ``GET {base_url}/search?q=...&format=json``
bounded as a whole by the request timeout (connect, headers and body), with no
redirect followed, so the engine's rate limit and budget count every request the
server sees. The public server asks for at most 1 request/s and a User-Agent
naming the application (https://operations.osmfoundation.org/policies/nominatim/):
hence ``default_rate``.

Any HTTP answer or failure becomes a :mod:`geofetch.exceptions` error through the
table in :mod:`geofetch.http`, which the Google provider shares, so both services
fail the same way for the same HTTP status.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

from ..exceptions import HTTPError, InvalidAnswer
from ..http import (
    DEFAULT_USER_AGENT,
    HTTPClient,
    Response,
    check_base_url,
    error_for_response,
    guard_library_logs,
)
from ..redact import redact
from .base import Answer, Provider

NOMINATIM_URL = "https://nominatim.openstreetmap.org"
#: The public server's host, and its usage policy: at most 1 request per second, an
#: identifying User-Agent (or a contact), no distributed or heavy use.
PUBLIC_HOST = "nominatim.openstreetmap.org"
POLICY_URL = "https://operations.osmfoundation.org/policies/nominatim/"


class NominatimProvider(Provider):
    """Nominatim's ``/search`` endpoint.

    ``base_url`` points at a self-hosted instance (no trailing ``/search``);
    ``user_agent`` replaces geofetch's own; ``email`` is sent as Nominatim's
    ``email`` parameter (its operators' preferred contact); ``language`` as
    ``accept-language``.

    Against the public server (:data:`PUBLIC_HOST`) ``max_rate`` is 1 request per
    second, as its usage policy (:data:`POLICY_URL`) says: a run asking for more is
    a :class:`~geofetch.exceptions.UsageError`.
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
        self.public = urlsplit(self.base_url).hostname == PUBLIC_HOST
        #: The most requests per second this server allows (None: no limit known).
        self.max_rate = 1.0 if self.public else None
        self.custom_agent = bool(user_agent)
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        self.email = email
        self.language = language
        self._client: HTTPClient | None = None
        # the URL around the query, built once: a request only quotes the query
        extra: list[tuple[str, str]] = [("format", "json"), ("limit", "1")]
        if language:
            extra.append(("accept-language", language))
        if email:
            extra.append(("email", email))
        self._url_head = f"{self.base_url}/search?q="
        self._url_tail = "&" + urlencode(extra)

    def policy_warning(self) -> str | None:
        """A warning when the public server is asked with no way to reach us."""
        if not self.public or self.email or self.custom_agent:
            return None
        return (f"the public Nominatim asks each application to identify itself: give "
                f"--email ADDRESS or --user-agent 'app/1.0 (contact)' ({POLICY_URL})")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None  # a live client is built per worker, never pickled
        return state

    def open(self) -> None:
        """Build this worker's HTTP client (idempotent)."""
        if self._client is None:
            guard_library_logs(self.secrets())
            self._client = HTTPClient(
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
                secrets=self.secrets())

    def close(self) -> None:
        """Close this worker's connections."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def geocode(self, query: str, *, timeout: float) -> Answer:
        """One search request: the first match, or a not-found answer for ``[]``."""
        if self._client is None:
            self.open()
        assert self._client is not None
        url = self._url_head + quote_plus(query) + self._url_tail
        return self.parse(self._client.get(url, timeout=timeout))

    def parse(self, response: Response) -> Answer:
        """The answer a ``/search`` response stands for, or the error it is."""
        if response.status != 200:
            raise error_for_response(response, self.secrets())
        try:
            body = response.json()
        except ValueError as exc:
            raise HTTPError(
                "HTTP 200 with a body that is not JSON "
                f"({response.content_type or 'no Content-Type'})",
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
            raise InvalidAnswer("first place has no usable lat/lon", status_code=200) from exc
        return Answer(lat=lat, lng=lng, formatted_address=first.get("display_name"), raw=body)

    def cache_namespace(self) -> str:
        """Provider, server and language: what besides the query decides the answer."""
        return f"nominatim|{self.base_url}|language={self.language or ''}"

    def __repr__(self) -> str:
        return f"NominatimProvider(base_url={self.base_url!r}, language={self.language!r})"
