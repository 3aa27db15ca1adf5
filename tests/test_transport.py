"""KeepAliveSession against a real loopback HTTP/1.1 server, compared with plain requests.

Which path a call took is read from the ``paths`` fixture: ``"short"`` when the
kept-alive ``http.client`` connection answered, ``"requests"`` per ``Session.send``.
A URL requests would rewrite (fragment, dot segments, escapes it normalises) is
left to requests; the tests check both that and the target the server saw.
"""

from __future__ import annotations

import gzip
import json
import logging
import select
import socket
import subprocess
import sys
import textwrap
import threading
import zlib
from collections import Counter
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from geofetch.providers import _transport
from geofetch.providers._transport import KeepAliveSession

pytestmark = pytest.mark.timeout(60)

BODY = json.dumps({"place": "Kraków", "lat": 50.06}).encode()
JSON_TYPE = ("Content-Type", "application/json")


# -- the loopback server ----------------------------------------------------------


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    target: str
    headers: Message
    connection: int
    body: bytes

    def header_items(self) -> list[tuple[str, str]]:
        return sorted((name.lower(), value) for name, value in self.headers.items())


class _Handler(BaseHTTPRequestHandler):
    """Answers per path (``/gzip``, ``/slow?seconds=2``, ...); anything else gets JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive

    def setup(self):
        super().setup()
        self.connection_number = self.server.connection_opened()

    def log_message(self, format, *args):
        """Quiet."""

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(
            Seen(self.command, self.path, self.headers, self.connection_number, body))
        parts = urlsplit(self.path)
        name = "route_" + parts.path.strip("/").replace("-", "_")
        getattr(self, name, self.route_json)(dict(parse_qsl(parts.query)))

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def reply(self, body=b"", status=200, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_json(self, query):
        self.reply(json.dumps({"target": self.path}).encode(), headers=[JSON_TYPE])

    def route_text(self, query):
        self.reply("café".encode("latin-1"), headers=[("Content-Type", "text/plain")])

    def route_gzip(self, query):
        self.reply(gzip.compress(BODY), headers=[JSON_TYPE, ("Content-Encoding", "gzip")])

    def route_deflate(self, query):
        self.reply(zlib.compress(BODY), headers=[JSON_TYPE, ("Content-Encoding", "deflate")])

    def route_raw_deflate(self, query):
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body = packer.compress(BODY) + packer.flush()
        self.reply(body, headers=[JSON_TYPE, ("Content-Encoding", "deflate")])

    def route_chunked(self, query):
        self.send_response(200)
        self.send_header(*JSON_TYPE)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in (BODY[:7], BODY[7:20], BODY[20:]):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def route_close(self, query):
        self.reply(BODY, headers=[JSON_TYPE, ("Connection", "close")])

    def route_idle_close(self, query):
        """A keep-alive answer, then the server drops the connection as if idle."""
        self.reply(BODY, headers=[JSON_TYPE])
        self.close_connection = True

    def route_slow(self, query):
        self.server.stopping.wait(float(query["seconds"]))
        self.reply(BODY, headers=[JSON_TYPE])

    def route_redirect(self, query):
        self.reply(status=int(query.get("status", 302)), headers=[("Location", "/json")])

    def route_cookie(self, query):
        self.reply(BODY, headers=[JSON_TYPE, ("Set-Cookie", "token=abc; Path=/")])

    def route_repeated_header(self, query):
        self.reply(BODY, headers=[JSON_TYPE, ("X-Multi", "a"), ("X-Multi", "b")])

    def route_multi_gzip(self, query):
        body = gzip.compress(b"abc") + gzip.compress(b"def")
        self.reply(body, headers=[("Content-Encoding", "gzip")])

    def route_odd_encoding(self, query):
        self.reply(b"plain", headers=[("Content-Encoding", "utf-8")])

    def route_drop_once(self, query):
        """The first request per ``key`` gets no answer: the connection is closed."""
        if query["key"] in self.server.dropped:
            self.reply(BODY, headers=[JSON_TYPE])
        else:
            self.server.dropped.add(query["key"])
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[Seen] = []
        self.dropped: set[str] = set()
        self.stopping = threading.Event()
        self.opened = self.closed = 0
        self._changed = threading.Condition()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def connection_opened(self) -> int:
        with self._changed:
            self.opened += 1
            return self.opened

    def shutdown_request(self, request):
        super().shutdown_request(request)
        with self._changed:
            self.closed += 1
            self._changed.notify_all()

    def wait_closed(self, count: int) -> bool:
        """Wait until ``count`` connections have ended on the server side."""
        with self._changed:
            return self._changed.wait_for(lambda: self.closed >= count, timeout=10)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):  # a client that hung up is expected
            super().handle_error(request, client_address)


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.stopping.set()
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


@pytest.fixture
def session(server):
    """The session under test, set up as ``worker_session`` does (``trust_env=False``)."""
    s = KeepAliveSession()
    s.trust_env = False
    yield s
    s.close()


@pytest.fixture
def plain(server):
    """Plain requests with the same default headers, for comparison."""
    s = requests.Session()
    s.trust_env = False
    s.headers["Accept-Encoding"] = _transport.ACCEPT_ENCODING
    yield s
    s.close()


@pytest.fixture
def paths(monkeypatch):
    """The path each KeepAliveSession call took: ``"short"`` or ``"requests"``."""
    taken = []
    original_get, original_send = KeepAliveSession._get, requests.Session.send

    def _get(self, *args, **kwargs):
        response = original_get(self, *args, **kwargs)
        if response is not None:
            taken.append("short")
        return response

    def send(self, request, **kwargs):
        taken.append("requests")
        return original_send(self, request, **kwargs)

    monkeypatch.setattr(KeepAliveSession, "_get", _get)
    monkeypatch.setattr(KeepAliveSession, "send", send)
    return taken


@pytest.fixture
def refused_port():
    """A port bound but not listening: a connect is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def unanswered_port():
    """A port whose listen backlog is full: a further connect gets no answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    try:
        for _ in range(64):
            probe = socket.socket()
            probe.settimeout(0.5)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                probe.close()
                break
            queued.append(probe)
        else:
            pytest.skip("this system answers connects beyond the listen backlog")
        yield port
    finally:
        for probe in queued:
            probe.close()
        listener.close()


def get(session, url, **kwargs):
    kwargs.setdefault("allow_redirects", False)
    kwargs.setdefault("timeout", 10)
    return session.get(url, **kwargs)


def targets(server):
    return [seen.target for seen in server.requests]


# -- the short path: answers like requests -----------------------------------------


@pytest.mark.parametrize(
    "route", ["/json", "/text", "/gzip", "/deflate", "/raw-deflate", "/chunked"])
def test_answer_matches_requests(server, session, plain, paths, route):
    expected = get(plain, server.base + route)
    got = get(session, server.base + route)
    assert paths == ["short"]
    assert got.status_code == expected.status_code == 200
    assert got.content == expected.content
    assert got.headers["Content-Type"] == expected.headers["Content-Type"]
    assert got.encoding == expected.encoding
    assert got.text == expected.text
    if route != "/text":
        assert got.json() == expected.json()
    assert isinstance(got, requests.Response)


def test_sequential_gets_reuse_one_connection(server, session, paths):
    for _ in range(5):
        assert get(session, server.base + "/json").status_code == 200
    assert paths == ["short"] * 5
    assert server.opened == 1
    assert len({seen.connection for seen in server.requests}) == 1


def test_each_thread_keeps_its_own_connection(server, session, paths):
    statuses = []

    def work():
        statuses.extend(get(session, server.base + "/json").status_code for _ in range(3))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [200] * 6
    assert paths == ["short"] * 6
    assert server.opened == 2
    assert sorted(Counter(seen.connection for seen in server.requests).values()) == [3, 3]


def test_connection_close_answer_closes_the_connection(server, session, paths):
    for _ in range(3):
        assert get(session, server.base + "/close").status_code == 200
    assert paths == ["short"] * 3
    assert server.opened == 3
    assert server.wait_closed(3)


def test_connection_closed_by_server_while_idle_reconnects(server, session, paths, monkeypatch):
    monkeypatch.setattr(_transport, "IDLE_CHECK_SECONDS", 0)
    assert get(session, server.base + "/idle-close").status_code == 200
    assert server.wait_closed(1)
    # The client end has seen the server's FIN before the next request goes out.
    (sock,) = [c.conn.sock for c in session._opened if c.conn.sock is not None]
    assert select.select([sock], [], [], 10)[0] == [sock]

    assert get(session, server.base + "/json").json() == {"target": "/json"}
    assert paths == ["short", "short"]
    assert server.opened == 2


def test_session_headers_merged_with_call_headers_like_requests(server, session, plain, paths):
    for s in (plain, session):
        s.headers.update({"X-Session": "s", "X-Both": "session"})
        get(s, server.base + "/json", headers={"x-both": "call", "X-Call": "c"})
    expected, got = server.requests
    assert paths == ["short"]
    assert got.header_items() == expected.header_items()
    assert got.headers.get_all("X-Both") == ["call"]
    assert got.headers["X-Session"] == "s" and got.headers["X-Call"] == "c"


def test_call_header_none_removes_session_header(server, session, plain, paths):
    for s in (plain, session):
        s.headers["X-Session"] = "s"
        get(s, server.base + "/json", headers={"x-session": None, "Accept": None})
    expected, got = server.requests
    assert paths == ["short"]
    for seen in (expected, got):
        assert "X-Session" not in seen.headers and "Accept" not in seen.headers


@pytest.mark.parametrize(
    ("path", "params", "taken"),
    [
        ("/json", {"q": "Kraków, ul. Długa 1", "limit": 1}, "short"),
        ("/json", [("a", "1"), ("a", "2"), ("b", "x y")], "short"),
        ("/json", {"a": ["1", "2"]}, "short"),
        ("/json?format=json", {"q": "a&b=c"}, "short"),
        pytest.param("/json", {"skip": None, "q": "1"}, "short", id="none-value"),
        pytest.param("/json", "q=1&limit=2", "short", id="string"),
        pytest.param("/json?", {"q": "1"}, "short", id="empty-query"),
        pytest.param("/json#top", {"q": "1"}, "requests", id="fragment"),
    ],
)
def test_params_encoded_like_requests(server, session, plain, paths, path, params, taken):
    get(plain, server.base + path, params=params)
    get(session, server.base + path, params=params)
    expected, got = targets(server)
    assert paths == [taken]
    assert got == expected


@pytest.mark.parametrize(
    ("suffix", "taken"),
    [
        ("", "short"),
        ("?q=1", "short"),
        ("/a%20b?q=%C5%BC", "short"),
        pytest.param("?next=/json", "short", id="query-with-slash-no-path"),
        # what requests would rewrite goes to requests
        ("/json#section", "requests"),
        ("/zażółć gęślą?q=jaźń i bąk", "requests"),
        pytest.param("#a/json", "requests", id="fragment-with-slash-no-path"),
        pytest.param("/%zz", "requests", id="invalid-percent"),
        pytest.param("/%7e", "requests", id="unreserved-percent"),
        pytest.param("/a%2fb", "requests", id="lower-case-escape"),
        pytest.param("/a/../json", "requests", id="dot-segments"),
        pytest.param("/a/./json", "requests", id="dot-segment"),
    ],
)
def test_request_target_matches_requests(server, session, plain, paths, suffix, taken):
    get(plain, server.base + suffix)
    got = get(session, server.base + suffix)
    expected_target, got_target = targets(server)
    assert paths == [taken]
    assert got_target == expected_target
    assert got.url == got.request.url


def test_upper_case_host_goes_to_requests(server, session, plain, paths):
    url = f"http://LOCALHOST:{server.server_port}/json"
    assert get(session, url).url == get(plain, url).url
    assert paths == ["requests"]


@pytest.mark.parametrize("timeout", [(5, 0.2), 0.2])
def test_read_timeout_raises_read_timeout_then_reconnects(server, session, paths, timeout):
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(session, server.base + "/slow?seconds=2", timeout=timeout)
    assert get(session, server.base + "/json").status_code == 200
    assert paths == ["short"]
    assert server.opened == 2


def test_connect_timeout_raises_connect_timeout(session, paths, unanswered_port):
    with pytest.raises(requests.exceptions.ConnectTimeout):
        get(session, f"http://127.0.0.1:{unanswered_port}/json", timeout=(0.2, 5))
    assert "requests" not in paths


def test_refused_connection_raises_connection_error(session, paths, refused_port):
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        get(session, f"http://127.0.0.1:{refused_port}/json")
    assert not isinstance(info.value, requests.exceptions.Timeout)
    assert "requests" not in paths


def test_set_cookie_is_stored_and_later_sent_by_requests(server, session, paths):
    assert get(session, server.base + "/cookie").status_code == 200
    assert session.cookies.get("token") == "abc"
    assert get(session, server.base + "/json").status_code == 200
    assert paths == ["short", "requests"]
    assert "Cookie" not in server.requests[0].headers
    assert server.requests[1].headers["Cookie"] == "token=abc"


@pytest.mark.parametrize(("session_hook", "call_hook", "runs"), [
    (True, False, ["session"]),
    (False, True, ["call"]),
    (True, True, ["call"]),  # requests' merge_hooks: the call's response hooks win
])
def test_response_hooks_run_as_requests_runs_them(server, session, plain, paths,
                                                  session_hook, call_hook, runs):
    for s in (plain, session):
        ran = []
        if session_hook:
            s.hooks["response"].append(lambda r, *a, ran=ran, **k: ran.append("session"))
        hooks = ({"response": lambda r, *a, ran=ran, **k: ran.append("call")}
                 if call_hook else None)
        get(s, server.base + "/json", hooks=hooks)
        assert ran == runs
    assert paths == ["short"]


def test_a_hook_gets_requests_keyword_arguments(server, session, plain, paths):
    seen = []
    for s in (plain, session):
        get(s, server.base + "/json", timeout=(3, 4),
            hooks={"response": lambda r, **kwargs: seen.append(sorted(kwargs))})
    assert seen[0] == seen[1]
    assert paths == ["short"]


@pytest.mark.parametrize("status", [301, 302])
def test_redirect_is_returned_not_followed(server, session, plain, paths, status):
    url = f"{server.base}/redirect?status={status}"
    expected, got = get(plain, url), get(session, url)
    assert paths == ["short"]
    assert got.status_code == expected.status_code == status
    assert got.headers["Location"] == expected.headers["Location"] == "/json"
    assert got.is_redirect
    assert len(server.requests) == 2


def test_request_line_logged_at_debug(server, session, paths, caplog):
    with caplog.at_level(logging.DEBUG, logger="geofetch.http"):
        get(session, server.base + "/json?q=1")
    records = [r for r in caplog.records if r.name == "geofetch.http"]
    assert paths == ["short"]
    assert [r.levelno for r in records] == [logging.DEBUG]
    assert '"GET /json?q=1 HTTP/1.1" 200' in records[0].getMessage()


def test_close_closes_every_connection(server, session, paths):
    worker = threading.Thread(target=get, args=(session, server.base + "/json"))
    worker.start()
    worker.join(timeout=30)
    get(session, server.base + "/json")
    assert paths == ["short", "short"]
    assert server.opened == 2 and server.closed == 0
    session.close()
    assert server.wait_closed(2)


# -- the requests path --------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"allow_redirects": True},
        {"data": "x"},
        {"json": {"a": 1}},
        {"files": {"f": ("f.txt", b"x")}},
        {"cookies": {"c": "1"}},
        {"auth": ("user", "secret")},
        {"stream": True},
    ],
    ids=lambda kwargs: next(iter(kwargs)),
)
def test_call_options_take_requests_path(server, session, paths, kwargs):
    response = get(session, server.base + "/json", **kwargs)
    assert response.json() == {"target": "/json"}
    assert "short" not in paths and "requests" in paths
    assert len(server.requests) == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_take_requests_path(server, session, paths, method):
    response = session.request(method, server.base + "/json", allow_redirects=False, timeout=10)
    assert response.status_code == 200
    assert paths == ["requests"]
    assert server.requests[0].method == method


@pytest.mark.parametrize(
    ("name", "value"),
    [("trust_env", True), ("auth", ("user", "secret")), ("params", {"k": "v"}), ("stream", True)],
    ids=["trust_env", "auth", "params", "stream"],
)
def test_session_options_take_requests_path(server, session, paths, name, value):
    setattr(session, name, value)
    assert get(session, server.base + "/json").status_code == 200
    assert paths == ["requests"]


def test_responses_mocking_still_intercepts(server, session, paths, mocked):
    mocked.get(server.base + "/json", json={"mocked": True})
    assert get(session, server.base + "/json").json() == {"mocked": True}
    assert "short" not in paths
    assert server.requests == []


def test_mounted_adapter_of_another_kind_sees_the_request(server, session, paths):
    sent = []

    class Recording(HTTPAdapter):
        def send(self, request, **kwargs):
            sent.append(request.url)
            return super().send(request, **kwargs)

    session.mount(server.base + "/", Recording())
    assert get(session, server.base + "/json").status_code == 200
    assert sent == [server.base + "/json"]
    assert paths == ["requests"]


def test_proxy_for_the_host_takes_requests_path(server, session, paths):
    session.proxies = {"http": server.base}  # the loopback server acts as the proxy
    assert get(session, "http://geo.invalid/json").status_code == 200
    assert targets(server) == ["http://geo.invalid/json"]
    assert "short" not in paths


def test_url_with_credentials_takes_requests_path(server, session, paths):
    url = f"http://user:secret@127.0.0.1:{server.server_port}/json"
    assert get(session, url).status_code == 200
    assert server.requests[0].headers["Authorization"].startswith("Basic ")
    assert "short" not in paths


# -- the short path: corners where requests has its own rules -----------------------


def test_repeated_response_headers_joined_like_requests(server, session, plain, paths):
    expected = get(plain, server.base + "/repeated-header")
    got = get(session, server.base + "/repeated-header")
    assert paths == ["short"]
    assert got.headers["X-Multi"] == expected.headers["X-Multi"] == "a, b"


def test_session_header_set_to_none_is_not_sent(server, session, paths):
    session.headers["X-Drop"] = None
    assert get(session, server.base + "/json").status_code == 200
    assert "X-Drop" not in server.requests[0].headers
    assert paths == ["short"]


def test_multi_member_gzip_fully_decoded(server, session, plain, paths):
    assert get(plain, server.base + "/multi-gzip").content == b"abcdef"
    assert get(session, server.base + "/multi-gzip").content == b"abcdef"
    assert paths == ["short"]


def test_unknown_content_encoding_left_as_is(server, session, plain, paths):
    assert get(plain, server.base + "/odd-encoding").content == b"plain"
    assert get(session, server.base + "/odd-encoding").content == b"plain"
    assert paths == ["short"]


def test_mounted_http_adapter_retries_are_used(server, session, plain, paths):
    for s in (plain, session):
        s.mount("http://", HTTPAdapter(max_retries=Retry(total=1, backoff_factor=0)))
    assert get(plain, server.base + "/drop-once?key=plain").status_code == 200
    assert get(session, server.base + "/drop-once?key=short").status_code == 200
    assert paths == ["requests"]  # a mounted adapter, even an HTTPAdapter, sees the call


def test_mock_detected_when_module_first_imported_under_the_mock(refused_port):
    # A fresh interpreter: here the module is already imported. The URL's port refuses
    # connections, so only the mock can answer it.
    script = textwrap.dedent(f"""
        import responses
        with responses.RequestsMock() as mock:
            from geofetch.providers._transport import KeepAliveSession
            url = "http://127.0.0.1:{refused_port}/json"
            mock.get(url, json={{"mocked": True}})
            session = KeepAliveSession()
            session.trust_env = False
            print(session.get(url, allow_redirects=False, timeout=10).json())
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert run.stdout.strip() == "{'mocked': True}", run.stderr


def test_header_lines_read_as_the_email_parser_reads_them():
    import io
    from http.client import parse_headers

    block = (b"Content-Type:  application/json; charset=UTF-8\r\n"
             b"X-Multi: a\r\n"
             b"x-multi: b \r\n"
             b"X-Folded: first\r\n"
             b"\tsecond\r\n"
             b"Content-Length: 12\r\n"
             b"Empty:\r\n"
             b"\r\n")
    stock = parse_headers(io.BytesIO(block))
    lean = _transport._HeaderLines.parse(_transport._read_headers(io.BytesIO(block)))
    for name in ("content-type", "X-MULTI", "Content-Length", "Empty", "Missing"):
        assert lean.get(name) == stock.get(name)
        assert lean.get_all(name) == stock.get_all(name)
        assert (name in lean) == (name in stock)
    assert lean.keys() == stock.keys()
    assert lean.get("X-Folded").split() == stock.get("X-Folded").split() == ["first", "second"]
    assert len(lean) == len(stock)


# -- https ---------------------------------------------------------------------------


@pytest.fixture
def https_server(tmp_path):
    """The same server behind TLS, with a self-signed certificate for 127.0.0.1."""
    import shutil
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    srv = _Server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv, f"https://127.0.0.1:{srv.server_port}", str(cert)
    srv.stopping.set()
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


def test_https_verifies_with_the_given_bundle_and_keeps_the_connection(https_server, session,
                                                                       plain, paths):
    srv, base, cert = https_server
    for _ in range(3):
        assert get(session, base + "/gzip", verify=cert).json() == json.loads(BODY)
    assert paths == ["short"] * 3
    assert srv.opened == 1
    session.verify = cert  # the session's own setting, as worker_session sets it
    assert get(session, base + "/json").json() == get(plain, base + "/json", verify=cert).json()


def test_https_refuses_an_untrusted_certificate_unless_told_not_to_verify(https_server, session,
                                                                          paths):
    srv, base, _ = https_server
    with pytest.raises(requests.exceptions.SSLError):
        get(session, base + "/json")  # verify=True: requests' CA bundle does not know it
    assert get(session, base + "/json", verify=False).status_code == 200
    assert paths == ["short"]  # the refused call raised before a path could record it
    assert [seen.target for seen in srv.requests] == ["/json"]
