"""geofetch's one HTTP layer: the Google and Nominatim providers and ``geofetch
fetch`` send every request through an :class:`HTTPClient`, built on urllib3's
public API (``PoolManager``, ``Timeout``, ``HTTPResponse.read1``/``shutdown``).

::

    provider.open() / FetchWorker ──► HTTPClient (one per worker; never pickled)
        get(url, timeout=T)                │ a kept-alive pool per origin, or the
          │                                │ proxy's (HTTP(S)_PROXY, NO_PROXY)
          ├─ watchdog().arm(T) ─► deadline.py: the socket is shut at T, whatever
          │                       phase the request is in (connect, headers, body)
          ├─ status + headers ─► Exchange ─ read(max_bytes): body chunks, decoded
          │                                 (decoding.py: gzip, deflate, br; any
          │                                 other coding is ContentDecodingError)
          └─► Response(status, headers, body, complete, elapsed)
    no answer ─► errors.py: Timeout, ConnectionError naming scheme://host:port,
                 HTTPError (key redacted, chain scrubbed)
    provider: status != 200 ─► error_for_response(): HTTP_STATUS_ERRORS, Retry-After,
                 error_detail() (a JSON message; a 403/429 page's <title>; fetch too)

What each piece promises:

* **A total deadline.** ``timeout`` seconds bound connecting, sending, the headers
  and the body together (:mod:`geofetch.http.deadline`); a server trickling bytes
  fails the request with ``Timeout`` at the deadline, never an answer cut short.
* **Content codings.** ``Accept-Encoding: gzip, deflate, br`` is sent; a body in
  any coding that cannot be decoded (unknown, ``zstd``, corrupt) raises
  ``ContentDecodingError`` naming it, never passes for the content.
* **One error table.** :data:`HTTP_STATUS_ERRORS` for statuses, :func:`error_for_transport`
  for requests without an answer (naming ``scheme://host:port``), :func:`error_detail`
  for the server's own words, ``Retry-After`` as seconds or an HTTP-date.
* **Secrets** never in a message, the chain it is raised from, or urllib3's log
  records (:func:`guard_library_logs`).
* **Environment.** Proxies from ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``; the CA
  bundle from ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``/``SSL_CERT_FILE``, else
  certifi's.
* **No redirects followed**, no retries: the engine owns both, so its rate limit
  and budget see every request.
"""

from __future__ import annotations

from .client import CA_BUNDLE_VARIABLES, Exchange, HTTPClient, ca_bundle
from .decoding import ACCEPT_ENCODING
from .errors import (
    DEFAULT_USER_AGENT,
    HTTP_STATUS_ERRORS,
    TITLED_STATUSES,
    check_base_url,
    error_detail,
    error_for_response,
    error_for_transport,
    guard_library_logs,
    html_title,
    origin_with_port,
    retry_after_seconds,
    scrub_chain,
)
from .response import Response

__all__ = [
    "ACCEPT_ENCODING",
    "CA_BUNDLE_VARIABLES",
    "DEFAULT_USER_AGENT",
    "HTTP_STATUS_ERRORS",
    "Exchange",
    "HTTPClient",
    "Response",
    "TITLED_STATUSES",
    "ca_bundle",
    "check_base_url",
    "error_detail",
    "error_for_response",
    "error_for_transport",
    "guard_library_logs",
    "html_title",
    "origin_with_port",
    "retry_after_seconds",
    "scrub_chain",
]
