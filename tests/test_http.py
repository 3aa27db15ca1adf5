"""geofetch.http against real loopback servers, well and badly behaved: the total
deadline, content codings, the error table, TLS, proxies, and what a client keeps.

Timing assertions are generous bounds against servers that would take far longer
(a 2 s deadline returns within 6 s from a server needing 12 s), never speeds.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import socket
import ssl
import subprocess
import time
import traceback
import warnings
import zlib

import brotli
import pytest
import urllib3

from geofetch import exceptions as exc
from geofetch.http import (
    ACCEPT_ENCODING,
    DEFAULT_USER_AGENT,
    HTTP_STATUS_ERRORS,
    HTTPClient,
    Response,
    error_for_response,
    retry_after_seconds,
)
from geofetch.http.deadline import COMPACT_AFTER, TICK_SECONDS, watchdog
from geofetch.http.decoding import decoder_for
from geofetch.testing.servers import Reply, ScriptedServer, TunnelProxy

pytestmark = pytest.mark.timeout(60)

KEY = "AIzaSECRET-HTTP-TEST-KEY"
PAGE = b"<html><head><title>Encoded</title></head><body>" + b"text " * 200 + b"</body></html>"


@pytest.fixture
def server():
    with ScriptedServer(Reply(body=b"hello")) as running:
        yield running


@pytest.fixture
def client():
    with HTTPClient(secrets=[KEY]) as c:
        yield c


def refused_port() -> int:
    with socket.socket() as s:  # bound, never listening: a connect is refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(call, *args, **kwargs):
    """``(exception raised, seconds taken)``."""
    started = time.monotonic()
    with pytest.raises(exc.ProviderError) as info:
        call(*args, **kwargs)
    return info.value, time.monotonic() - started


# -- plain answers ------------------------------------------------------------------------


def test_get_returns_status_headers_body_and_keeps_the_connection(server, client):
    server.script(Reply(201, b'{"a": 1}', [("Content-Type", "application/json")]))
    for _ in range(5):
        response = client.get(server.url + "/x?q=1#fragment", timeout=5)
        assert (response.status, response.reason, response.body) == (201, "Created", b'{"a": 1}')
        assert response.json() == {"a": 1} and response.complete
        assert response.content_type == "application/json"
        assert response.header("content-type") == "application/json"  # any case
        assert response.elapsed > 0
    assert server.connections == 1
    assert [seen.target for seen in server.requests] == ["/x?q=1"] * 5  # no fragment sent


def test_default_headers_and_overrides(server):
    with HTTPClient(headers={"Accept": "text/plain"}) as client:
        client.get(server.url + "/", timeout=5)
        client.get(server.url + "/", timeout=5, headers={"User-Agent": "other/1"})
    first, second = server.requests
    assert first.headers["user-agent"] == DEFAULT_USER_AGENT
    assert first.headers["accept-encoding"] == ACCEPT_ENCODING == "gzip, deflate, br"
    assert first.headers["accept"] == "text/plain"
    assert second.headers["user-agent"] == "other/1"


def test_redirect_is_an_answer_never_followed(server, client):
    server.script(Reply(302, headers=[("Location", "/next?a=1")]))
    response = client.get(server.url + "/first", timeout=5)
    assert response.status == 302 and response.is_redirect
    assert response.location == server.url + "/next?a=1"
    assert len(server.requests) == 1


def test_utf8_location_is_read_as_utf8():
    response = Response("http://x.test/a", 301,
                        headers={"Location": "/zaż".encode().decode("latin-1")})
    assert response.location == "http://x.test/zaż"


def test_a_connection_the_server_dropped_while_idle_is_replaced_not_an_error(server, client):
    server.script(Reply(body=b"first", hang_up=True), Reply(body=b"second"))
    assert client.get(server.url + "/", timeout=5).body == b"first"
    deadline = time.monotonic() + 10
    while server.connections < 1 or not _closed_by_server(server):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert client.get(server.url + "/", timeout=5).body == b"second"
    assert server.connections == 2


def _closed_by_server(server: ScriptedServer) -> bool:
    return len(server.requests) == 1 and not server.open_connections


def test_connect_timeout_is_a_timeout(client):
    """A listener whose backlog is full leaves a further connect unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    try:
        for _ in range(64):
            probe = socket.socket()
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                probe.close()
                break
            queued.append(probe)
        else:
            pytest.skip("this system answers connects beyond the listen backlog")
        error, took = timed(client.get, f"http://127.0.0.1:{port}/", timeout=0.5)
        assert type(error) is exc.Timeout and str(error) == "no answer within 0.5 s"
        assert took < 5
    finally:
        for probe in queued:
            probe.close()
        listener.close()


def test_close_delimited_body_is_read_to_the_end(server, client):
    server.script(Reply(body=b"x" * 100_000, length=False))
    response = client.get(server.url + "/", timeout=5)
    assert response.body == b"x" * 100_000 and response.complete


def test_cap_cuts_the_body_and_drops_the_connection(server, client):
    server.script(Reply(body=b"y" * 5000))
    declared = client.get(server.url + "/", timeout=5, max_bytes=1000)
    assert not declared.complete and declared.body == b""  # Content-Length says enough
    server.script(Reply(body=b"y" * 5000, length=False))
    streamed = client.get(server.url + "/", timeout=5, max_bytes=1000)
    assert not streamed.complete and streamed.body == b"y" * 1000
    server.script(Reply(body=b"ok"))
    assert client.get(server.url + "/", timeout=5).body == b"ok"
    assert server.connections == 3  # each cut answer cost its connection


# -- the total deadline (the fault: a trickle held a row 11 s and passed for an answer) ----


def test_trickling_body_fails_at_the_deadline(server, client):
    server.script(Reply(body=b"[          ]", byte_delay=1.0))  # 12 s to send
    error, took = timed(client.get, server.url + "/search", timeout=2)
    assert type(error) is exc.Timeout
    assert str(error) == "answer not complete within 2 s"
    assert 1.9 <= took < 6


def test_trickling_headers_fail_at_the_deadline(server, client):
    server.script(Reply(body=b"[]", header_delay=1.0))  # ~40 bytes of head: 40 s
    error, took = timed(client.get, server.url + "/search", timeout=2)
    assert type(error) is exc.Timeout and str(error) == "no answer within 2 s"
    assert 1.9 <= took < 6


def test_deadline_spans_headers_and_body_together(server, client):
    """Head and body each arrive within the timeout, both together do not: only a
    total deadline (not a timeout per read, nor per phase) catches it."""
    server.script(Reply(body=b"b" * 40, header_delay=0.03, byte_delay=0.03))  # ~1.2 s each
    error, took = timed(client.get, server.url + "/", timeout=2)
    assert type(error) is exc.Timeout
    assert str(error) == "answer not complete within 2 s"
    assert took < 6
    assert client.get(server.url + "/", timeout=10).body == b"b" * 40  # in time: whole


def test_no_answer_at_all_times_out(server, client):
    server.script(Reply(action="stall"))
    error, took = timed(client.get, server.url + "/", timeout=1)
    assert type(error) is exc.Timeout and str(error) == "no answer within 1 s"
    assert took < 5


def test_a_timed_out_connection_is_not_reused(server, client):
    server.script(Reply(body=b"slow", byte_delay=1.0), Reply(body=b"fast"))
    timed(client.get, server.url + "/", timeout=1)
    assert client.get(server.url + "/", timeout=5).body == b"fast"
    assert server.connections == 2


def test_open_exchange_reads_within_the_same_deadline(server, client):
    server.script(Reply(body=b"0123456789", byte_delay=0.5))
    with client.open(server.url + "/", timeout=2, what="page") as exchange:
        assert exchange.status == 200
        error, took = timed(exchange.read)
    assert type(error) is exc.Timeout and str(error) == "page not complete within 2 s"


def test_many_requests_leave_no_deadline_behind(server, client):
    """Deadlines of finished requests never fire: 200 quick requests with a short
    timeout, then a pause past every deadline, and the connection still serves."""
    for _ in range(200):
        assert client.get(server.url + "/", timeout=0.3).body == b"hello"
    time.sleep(0.3 + 5 * TICK_SECONDS)
    assert client.get(server.url + "/", timeout=5).body == b"hello"
    assert server.connections == 1


def test_finished_requests_with_long_timeouts_do_not_pile_up(server, client):
    """Disarmed deadlines an hour away are dropped from the watchdog's heap once
    they outnumber the live ones: memory follows the requests in flight."""
    for _ in range(3 * COMPACT_AFTER):
        client.get(server.url + "/", timeout=3600)
    assert watchdog().pending <= 2 * COMPACT_AFTER + 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_deadline_works_in_a_forked_child(server, client):
    client.get(server.url + "/", timeout=5)  # the parent's watchdog is running
    assert watchdog() is watchdog()
    server.script(Reply(body=b"[          ]", byte_delay=1.0))
    pid = os.fork()
    if pid == 0:  # the child: its own watchdog must cut the trickle at 1 s
        status = 1
        try:
            with HTTPClient() as child:
                started = time.monotonic()
                try:
                    child.get(server.url + "/", timeout=1)
                except exc.Timeout:
                    status = 0 if time.monotonic() - started < 5 else 2
        finally:
            os._exit(status)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        assert time.monotonic() < deadline, "the forked child hung"
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0


# -- content codings (the fault: a br page passed as ok with the compressed bytes) --------


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(("coding", "encoded"), [
    ("gzip", gzip.compress(PAGE)),
    ("x-gzip", gzip.compress(PAGE)),
    ("GZIP", gzip.compress(PAGE)),
    ("deflate", zlib.compress(PAGE)),
    pytest.param("deflate", _raw_deflate(PAGE), id="raw-deflate"),
    ("br", brotli.compress(PAGE)),
    ("identity", PAGE),
    pytest.param("gzip", gzip.compress(PAGE[:100]) + gzip.compress(PAGE[100:]),
                 id="multi-member-gzip"),
    pytest.param("gzip, br", brotli.compress(gzip.compress(PAGE)), id="gzip-then-br"),
])
def test_encoded_bodies_are_decoded(server, client, coding, encoded):
    server.script(Reply(body=encoded, headers=[("Content-Encoding", coding)]))
    response = client.get(server.url + "/", timeout=5)
    assert response.body == PAGE and response.complete


@pytest.mark.parametrize("trickled", [False, True], ids=["whole", "byte-by-byte"])
def test_decoding_works_chunk_by_chunk(server, client, trickled):
    encoded = gzip.compress(PAGE)[:60]  # a few bytes at a time, cut short of the end
    server.script(Reply(body=encoded, headers=[("Content-Encoding", "gzip")],
                        byte_delay=0.001 if trickled else 0))
    assert PAGE.startswith(client.get(server.url + "/", timeout=10).body)


@pytest.mark.parametrize("coding", ["x-unknown", "zstd", "compress", "gzip, x-unknown"])
def test_a_coding_that_cannot_be_decoded_is_an_error_naming_it(server, client, coding):
    """What a missing brotli did to ``br``: any coding unknown to the layer."""
    server.script(Reply(body=b"\x28\xb5\x2f\xfd compressed?", headers=[
        ("Content-Encoding", coding)]), Reply(body=b"plain"))
    with pytest.raises(exc.ContentDecodingError) as info:
        client.get(server.url + "/", timeout=5)
    assert coding.split(", ")[-1] in str(info.value)
    assert isinstance(info.value, exc.HTTPError)  # permanent: not retried
    assert client.get(server.url + "/", timeout=5).status == 200  # the client carries on


@pytest.mark.parametrize(("coding", "body"), [
    ("gzip", b"\x1f\x8b\x08\x00" + b"definitely not gzip" * 3),
    ("gzip", b"plain text, no gzip header"),
    ("deflate", b"not deflate either, nor zlib"),
    ("br", b"\xff" * 40),
])
def test_a_corrupt_body_is_an_error_naming_its_coding(server, client, coding, body):
    server.script(Reply(body=body, headers=[("Content-Encoding", coding)]))
    with pytest.raises(exc.ContentDecodingError) as info:
        client.get(server.url + "/", timeout=5)
    assert f"Content-Encoding: {coding}" in str(info.value)


def test_the_cap_counts_decoded_bytes(server, client):
    bomb = gzip.compress(b"\0" * 10_000_000)  # ~10 KB that expand to 10 MB
    server.script(Reply(body=bomb, headers=[("Content-Encoding", "gzip")]))
    response = client.get(server.url + "/", timeout=5, max_bytes=1000)
    assert not response.complete and response.body == b"\0" * 1000
    assert len(bomb) < 1000 * 100


def test_decoder_limit_bounds_each_chunk():
    decoder = decoder_for("br")
    assert decoder is not None
    out = decoder.decode(brotli.compress(b"a" * 10_000_000), limit=5000)
    assert 5000 <= len(out) <= 5000 + 64 * 1024  # brotli stops at its next buffer


def test_trailing_garbage_after_the_last_gzip_member_is_ignored(server, client):
    server.script(Reply(body=gzip.compress(PAGE) + b"\0\0junk", headers=[
        ("Content-Encoding", "gzip")]))
    assert client.get(server.url + "/", timeout=5).body == PAGE


# -- the error table --------------------------------------------------------------------------


def test_refused_connection_is_a_connection_error(client):
    url = f"http://127.0.0.1:{refused_port()}/geocode?key={KEY}"
    with pytest.raises(exc.ConnectionError) as info:
        client.get(url, timeout=2)
    assert "refused" in str(info.value).lower()
    assert isinstance(info.value, ConnectionRefusedError.__mro__[1])  # builtins.ConnectionError
    for text in traceback.format_exception(info.value):
        assert KEY not in text


def test_closed_without_an_answer_is_a_connection_error_with_a_clean_chain(server, client):
    server.script(Reply(action="close"))
    with pytest.raises(exc.ConnectionError) as info:
        client.get(server.url + f"/x?key={KEY}", timeout=5)
    assert "Remote end closed connection without response" in str(info.value)
    assert info.value.__cause__ is not None
    for text in traceback.format_exception(info.value):
        assert KEY not in text


def test_timeout_chain_is_clean(server, client):
    server.script(Reply(action="stall"))
    with pytest.raises(exc.Timeout) as info:
        client.get(server.url + f"/x?key={KEY}", timeout=0.5)
    for text in traceback.format_exception(info.value):
        assert KEY not in text


@pytest.mark.parametrize("url", ["geo.test/x", "ftp://geo.test/x", "http://:80/x",
                                 "http://geo.test:99999/x"])
def test_a_url_that_cannot_be_requested_is_a_permanent_error(client, url):
    with pytest.raises(exc.HTTPError):
        client.get(url, timeout=1)


@pytest.mark.parametrize(("code", "cls"), [
    (400, exc.InvalidRequest), (401, exc.RequestDenied), (403, exc.RequestDenied),
    (404, exc.HTTPError), (429, exc.RateLimited), (500, exc.ServerError),
    (503, exc.ServerError), (599, exc.ServerError), (301, exc.HTTPError), (418, exc.HTTPError),
])
def test_status_table(code, cls):
    response = Response("http://x", code, "Reason",
                        {"Retry-After": "4", "Content-Type": "application/json"},
                        b'{"error_message": "said the server, key=%s"}' % KEY.encode())
    error = error_for_response(response, [KEY])
    assert type(error) is cls and error.status_code == code and error.retry_after == 4.0
    assert str(error) == f"HTTP {code} Reason: said the server, key=REDACTED (retry after 4 s)"
    assert HTTP_STATUS_ERRORS.get(code, cls) is cls


def test_retry_after_forms():
    assert retry_after_seconds("0") == 0.0
    assert retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT") == 0.0  # long past
    assert retry_after_seconds("Sunday, 06-Nov-94 08:49:37 GMT") is not None  # RFC 850
    assert retry_after_seconds("soon") is None


# -- TLS, against a certificate made with openssl -------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


@pytest.fixture
def tls_server(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with ScriptedServer(Reply(body=gzip.compress(PAGE), headers=[("Content-Encoding", "gzip")]),
                        tls=context) as running:
        yield running


def test_tls_verified_with_the_given_bundle_on_one_connection(tls_server, certificate):
    with HTTPClient(verify=certificate[0]) as client:
        for _ in range(3):
            assert client.get(tls_server.url + "/", timeout=10).body == PAGE
    assert tls_server.url.startswith("https://")
    assert tls_server.connections == 1


def test_tls_bundle_from_the_environment(tls_server, certificate, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificate[0])
    with HTTPClient() as client:
        assert client.get(tls_server.url + "/", timeout=10).body == PAGE


def test_tls_untrusted_certificate_is_refused(tls_server, monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    with HTTPClient() as client, pytest.raises(exc.ConnectionError) as info:
        client.get(tls_server.url + "/", timeout=10)
    assert "certificate verify failed" in str(info.value)


def test_tls_accepted_unverified_when_told(tls_server):
    with HTTPClient(verify=False) as client, warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        assert client.get(tls_server.url + "/", timeout=10).body == PAGE


def test_tls_trickle_fails_at_the_deadline(tls_server, certificate):
    tls_server.script(Reply(body=b"[          ]", byte_delay=1.0))
    with HTTPClient(verify=certificate[0]) as client:
        error, took = timed(client.get, tls_server.url + "/", timeout=2)
        assert type(error) is exc.Timeout and took < 6
        tls_server.script(Reply(body=b"after"))
        assert client.get(tls_server.url + "/", timeout=10).body == b"after"


# -- proxies ------------------------------------------------------------------------------------


def test_http_proxy_from_the_environment_and_no_proxy(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", server.url)  # the scripted server plays the proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with HTTPClient() as client:
        assert client.get("http://geo.invalid/a?b=1", timeout=5).body == b"hello"
        assert client.get(server.url + "/direct", timeout=5).body == b"hello"
    proxied, direct = server.requests
    assert proxied.target == "http://geo.invalid/a?b=1"  # absolute form: via the proxy
    assert proxied.headers["host"] == "geo.invalid"
    assert direct.target == "/direct"


def test_explicit_proxies_replace_the_environment(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # would be refused
    with HTTPClient(proxies={"http": server.url}) as client:
        assert client.get("http://geo.invalid/x", timeout=5).status == 200
    assert server.requests[0].target == "http://geo.invalid/x"


def test_https_proxy_tunnels_and_the_deadline_still_holds(tls_server, certificate,
                                                         monkeypatch):
    monkeypatch.setenv("NO_PROXY", "")
    with TunnelProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        with HTTPClient(verify=certificate[0]) as client:
            assert client.get(tls_server.url + "/", timeout=10).body == PAGE
            tls_server.script(Reply(body=b"[          ]", byte_delay=1.0))
            error, took = timed(client.get, tls_server.url + "/", timeout=2)
        assert type(error) is exc.Timeout and took < 6
        port = tls_server.url.rsplit(":", 1)[1]
        assert proxy.tunnels and set(proxy.tunnels) == {f"127.0.0.1:{port}"}


def test_an_unsupported_proxy_scheme_is_a_connection_error(monkeypatch):
    with HTTPClient(proxies={"http": "socks5://127.0.0.1:1080"}) as client:
        with pytest.raises(exc.ConnectionError, match="socks5"):
            client.get("http://geo.invalid/", timeout=1)


# -- what a client is ---------------------------------------------------------------------------


def test_a_client_is_never_pickled(client):
    with pytest.raises(TypeError, match="per worker"):
        pickle.dumps(client)


def test_close_then_use_opens_new_connections(server, client):
    client.get(server.url + "/", timeout=5)
    client.close()
    assert client.get(server.url + "/", timeout=5).body == b"hello"
    assert server.connections == 2


def test_threads_share_a_client(server, client):
    import threading

    bodies = []

    def work():
        for _ in range(20):
            bodies.append(client.get(server.url + "/", timeout=5).body)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert bodies == [b"hello"] * 160
    assert server.connections <= 8
