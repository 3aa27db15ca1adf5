"""Error messages that say what happened (issue 16, case 9): a connection error
names ``scheme://host:port`` (the default port too) and the OS's words without
``[Errno N]``; a 403 or 429 answered with an HTML page quotes its ``<title>``
(folded, cut to 120 characters), for the geocode providers and ``geofetch fetch``
alike; a page over ``--max-bytes`` names the decoded size it reached, not its
compressed ``Content-Length``.

Real loopback servers (port 0); exact messages asserted.
"""

from __future__ import annotations

import gzip
import random
import socket
from urllib.parse import quote

import pytest
import urllib3.exceptions

from geofetch import exceptions as exc
from geofetch.http import HTTPClient, Response, error_for_response, error_for_transport
from geofetch.tasks.fetch import fetch_many
from geofetch.tasks.geocode import geocode_many
from geofetch.testing.servers import Reply, ScriptedServer
from geofetch.testing.site import LocalSite, page

KEY = "AIzaSECRETSECRETSECRET"
HTML = [("Content-Type", "text/html; charset=utf-8")]


def _refused_port() -> int:
    """A port nothing listens on: bound, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- connection errors name scheme://host:port ------------------------------------------


@pytest.mark.timeout(60)
def test_a_refused_connection_names_the_origin_and_port_in_fetch_and_geocode():
    port = _refused_port()
    (fetched,) = fetch_many([f"http://127.0.0.1:{port}/page"], ignore_robots=True, retries=0)
    assert fetched.status == "failed"
    assert fetched.error == (f"ConnectionError: cannot connect to http://127.0.0.1:{port}: "
                             "Connection refused")
    (robots,) = fetch_many([f"http://127.0.0.1:{port}/page"], retries=0)
    assert robots.error == (f"ConnectionError: cannot connect to http://127.0.0.1:{port}: "
                            f"Connection refused (fetching http://127.0.0.1:{port}/robots.txt)")
    (geocoded,) = geocode_many(["Berlin"], provider="nominatim",
                               base_url=f"http://127.0.0.1:{port}", retries=0, cache=None)
    assert geocoded.status == "failed"
    assert geocoded.error == (f"ConnectionError: cannot connect to http://127.0.0.1:{port}: "
                              "Connection refused")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("scheme, port", [("http", 80), ("https", 443)])
def test_a_default_port_is_written_out(scheme, port):
    if _listening(port):
        pytest.skip(f"something listens on 127.0.0.1:{port}")
    with HTTPClient() as client, pytest.raises(exc.ConnectionError) as info:
        client.get(f"{scheme}://127.0.0.1/x?key={KEY}", timeout=5)
    assert str(info.value) == f"cannot connect to {scheme}://127.0.0.1:{port}: Connection refused"


def test_every_transport_error_names_the_origin_with_its_port():
    refused = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    unknown = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection")
    unknown.__cause__ = socket.gaierror(-2, "Name or service not known")
    reset = urllib3.exceptions.ProtocolError(
        "Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    tls = urllib3.exceptions.SSLError(OSError(1, "certificate verify failed"))
    cases = [
        (refused, "https://example.com", "cannot connect to https://example.com:443: "
                                         "Connection refused"),
        (unknown, "http://nowhere.invalid", "cannot connect to http://nowhere.invalid:80: "
                                            "Name or service not known"),
        (reset, "http://[::1]", "connection to http://[::1]:80 broken: Connection aborted: "
                                "Connection reset by peer"),
        (tls, "https://example.com:8443", "TLS with https://example.com:8443 failed: "
                                          "certificate verify failed"),
    ]
    for error, origin, message in cases:
        made = error_for_transport(error, timeout=5, origin=origin)
        assert type(made) is exc.ConnectionError
        assert str(made) == message


@pytest.mark.timeout(30)
def test_a_connection_closed_without_an_answer_names_the_origin():
    with ScriptedServer(Reply(action="close")) as server, HTTPClient() as client:
        with pytest.raises(exc.ConnectionError) as info:
            client.get(server.url + "/x", timeout=5)
    assert str(info.value) == (f"connection to {server.url} broken: Connection aborted: "
                               "Remote end closed connection without response")


# -- a 403 or 429 page's title ---------------------------------------------------------------


def _titled(status: int, reason: str, title: str, **headers: str) -> Response:
    return Response("https://maps.example/geocode?key=" + KEY, status, reason,
                    {"Content-Type": "text/html; charset=utf-8", **headers},
                    page(title))


def test_error_for_response_quotes_the_title_of_a_403_or_429_page():
    limited = error_for_response(_titled(429, "Too Many Requests", "Slow down, please"))
    assert type(limited) is exc.RateLimited
    assert str(limited) == "HTTP 429 Too Many Requests: Slow down, please"
    denied = error_for_response(_titled(403, "Forbidden", "Access\n\t denied &amp; logged"))
    assert type(denied) is exc.RequestDenied
    assert str(denied) == "HTTP 403 Forbidden: Access denied & logged"
    waited = error_for_response(_titled(429, "Too Many Requests", "Wait", **{"Retry-After": "2"}))
    assert str(waited) == "HTTP 429 Too Many Requests: Wait (retry after 2 s)"
    long = error_for_response(_titled(403, "Forbidden", "word " * 100))
    detail = str(long).split(": ", 1)[1]
    assert len(detail) == 120 and detail.endswith("\u2026") and detail.startswith("word word")
    # a title that only repeats the status, another status, not HTML, a JSON message
    assert str(error_for_response(_titled(403, "Forbidden", "403 Forbidden"))) == (
        "HTTP 403 Forbidden")
    assert str(error_for_response(_titled(404, "Not Found", "Gone away"))) == "HTTP 404 Not Found"
    plain = Response("https://x/", 429, "Too Many Requests", {"Content-Type": "text/plain"},
                     b"<title>no</title>")
    assert str(error_for_response(plain)) == "HTTP 429 Too Many Requests"
    assert str(error_for_response(_titled(403, "Forbidden", f"key={KEY} refused"), [KEY])) \
        .count(KEY) == 0


@pytest.mark.timeout(60)
def test_a_provider_quotes_the_page_title_of_a_429():
    body = page("Slow down, please")
    with ScriptedServer(Reply(429, body, HTML)) as server:
        (result,) = geocode_many(["Berlin"], provider="nominatim", base_url=server.url,
                                 retries=0, cache=None)
    assert result.status == "failed"
    assert result.error == "RateLimited: HTTP 429 Too Many Requests: Slow down, please"


@pytest.mark.timeout(60)
def test_fetch_quotes_the_page_title_of_a_403_or_429():
    with LocalSite() as site:
        u = site.url
        urls = [f"{u}/status/429?title={quote('Slow down, please')}",
                f"{u}/status/403?title={quote(' Access  denied ')}",
                f"{u}/status/403",
                f"{u}/status/404?title=Gone",
                f"{u}/status/403?title={quote('x' * 300)}"]
        results = fetch_many(urls, retries=0)
    assert [r.status for r in results] == ["failed"] * 5
    assert results[0].error == "RateLimited: 429 Too Many Requests: Slow down, please"
    assert results[1].error == "HTTPError: 403 Forbidden: Access denied"
    assert results[2].error == "HTTPError: 403 Forbidden"  # its title is "403 Forbidden"
    assert results[3].error == "HTTPError: 404 Not Found"
    assert results[4].error == "HTTPError: 403 Forbidden: " + "x" * 119 + "\u2026"
    assert [r.status_code for r in results] == [429, 403, 403, 404, 403]


@pytest.mark.timeout(60)
def test_fetch_quotes_the_title_before_retry_after():
    reply = Reply(429, page("Too fast"), [*HTML, ("Retry-After", "0")])
    with ScriptedServer(reply) as server:
        (result,) = fetch_many([server.url + "/"], ignore_robots=True, retries=0)
    assert result.error == "RateLimited: 429 Too Many Requests: Too fast (retry after 0 s)"


# -- a body over the cap: its decoded size -----------------------------------------------------


def _gzipped(size: int, *, noise: bool) -> bytes:
    filler = (random.Random(16).randbytes(size).hex()[:size] if noise else "x" * size)
    return gzip.compress(f"<html><title>t</title>{filler}</html>".encode())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("noise", [False, True], ids=["compressed-under-cap", "over-cap"])
def test_too_large_names_the_decoded_size_not_the_compressed_length(noise):
    body = _gzipped(20_000, noise=noise)
    assert (len(body) < 1000) is not noise  # either side of the cap
    reply = Reply(body=body, headers=[*HTML, ("Content-Encoding", "gzip")])
    with ScriptedServer(reply) as server:
        (result,) = fetch_many([server.url + "/"], ignore_robots=True, retries=0,
                               max_bytes=1000)
    assert result.status == "failed" and result.status_code == 200 and result.bytes is None
    assert result.error == ("TooLarge: body larger than the 1000-byte cap (more than 1000 "
                            f"bytes once decoded; Content-Length {len(body)} compressed (gzip))")


@pytest.mark.timeout(60)
def test_too_large_without_a_coding():
    with ScriptedServer(Reply(body=page("x" * 5000), headers=HTML),
                        Reply(body=page("y" * 5000), headers=HTML, length=False)) as server:
        declared, streamed = fetch_many([server.url + "/a", server.url + "/b"],
                                        ignore_robots=True, retries=0, max_bytes=1000,
                                        executor="serial")
    size = len(page("x" * 5000))
    assert declared.error == f"TooLarge: body larger than the 1000-byte cap (Content-Length {size})"
    assert streamed.error == ("TooLarge: body larger than the 1000-byte cap "
                              "(more than 1000 bytes; stopped reading there)")
