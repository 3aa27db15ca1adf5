"""The local server against bad and greedy clients: malformed and oversized requests,
idle connections past the open-file limit, floods of long distinct queries.

Bad requests go over raw loopback sockets; after each one, the server must still
answer a normal request. Counts and statuses only, never speed.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from geofetch.server import MAX_BODY, MAX_HEAD, NOMINATIM_PATH, LocalServer

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
SEARCH = f"{NOMINATIM_PATH}?q=Berlin&format=json"


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def exchange(url: str, *parts: bytes, pause: float = 0.2) -> tuple[bytes, bool]:
    """Send ``parts`` (pausing between them), read until the server closes.

    Returns what was read and whether the server closed the connection within 10 s.
    """
    with socket.create_connection(address(url), timeout=10) as sock:
        for n, part in enumerate(parts):
            if n:
                time.sleep(pause)
            sock.sendall(part)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            return data, False
        except ConnectionResetError:  # counts as closed, but the answer must be there
            return data, True
    return data, True


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    return int(answer.split(b" ", 2)[1])


def assert_still_serving(url: str) -> None:
    response = requests.get(url + SEARCH, timeout=30)
    assert response.status_code == 200
    assert response.json()[0]["display_name"] == "Berlin, Germany"


@pytest.fixture(scope="module")
def url():
    with LocalServer(latency=0.0) as url:
        yield url


# ------------------------------------------------------------ 1. malformed: 400


def head(*headers: str, target: str = SEARCH) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: x", *headers, "", ""]
    return "\r\n".join(lines).encode()


MALFORMED = {
    "garbage-line": b"GARBAGE\r\n\r\n",
    "tls-hello": bytes.fromhex("16030100a5010000a10303") + os.urandom(40),
    "two-lengths": head("Content-Length: 5", "Content-Length: 7") + b"1234567",
    "listed-lengths": head("Content-Length: 5, 7") + b"1234567",
    "plus-length": head("Content-Length: +5") + b"12345",
    "underscore-length": head("Content-Length: 1_0") + b"1234567890",
    "nul-in-value": head("X-Note: a\x00b"),
    "space-before-colon": head("X-Note : b"),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_is_400_and_closed(url, raw):
    answer, closed = exchange(url, raw)
    assert status_of(answer) == 400
    assert b"Connection: close\r\n" in answer
    assert closed
    assert_still_serving(url)


def test_equal_duplicate_lengths_are_one_length(url):
    # RFC 9110 section 8.6 lets a recipient take identical repeated values as one.
    answer, closed = exchange(url, head("Content-Length: 3", "Content-Length: 3",
                                        "Connection: close") + b"abc")
    assert status_of(answer) == 200 and closed


# ------------------------------------------------------------- 2. oversized


def test_a_head_over_the_limit_in_one_write_is_431(url):
    answer, closed = exchange(url, head("X-Big: " + "a" * 100_000))
    assert status_of(answer) == 431
    assert closed
    assert_still_serving(url)


def test_a_head_over_the_limit_in_two_writes_is_431(url):
    # The first part alone is under the limit, the whole head over it.
    raw = head("X-Big: " + "a" * 100_000)
    answer, closed = exchange(url, raw[:60_000], raw[60_000:])
    assert status_of(answer) == 431
    assert closed
    assert_still_serving(url)


def test_a_head_at_the_limit_is_read(url):
    raw = head("Connection: close")
    padding = "X-Pad: " + "a" * (MAX_HEAD - len(raw) - len("X-Pad: \r\n"))
    raw = head("Connection: close", padding)
    assert len(raw) == MAX_HEAD
    answer, closed = exchange(url, raw)
    assert status_of(answer) == 200 and closed


def test_a_declared_body_over_the_limit_is_413(url):
    answer, closed = exchange(url, head(f"Content-Length: {MAX_BODY + 1}"))
    assert status_of(answer) == 413
    assert closed
    assert_still_serving(url)


def test_a_chunked_body_over_the_limit_is_413(url):
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    chunks = chunk * (MAX_BODY // (64 * 1024) + 2) + b"0\r\n\r\n"
    answer, closed = exchange(url, head("Transfer-Encoding: chunked"), chunks)
    assert status_of(answer) == 413
    assert closed
    assert_still_serving(url)


def test_a_body_within_the_limit_is_read_and_the_connection_kept(url):
    body = b"x" * 1000
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(head(f"Content-Length: {len(body)}") + body + head("Connection: close"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 2


# --------------------------------------------------------------- 3. idle connections


def test_idle_connections_are_closed_after_the_timeout():
    server = LocalServer(latency=0.0, idle_timeout_seconds=0.5)
    with server as url:
        quiet = socket.create_connection(address(url), timeout=10)
        trickling = socket.create_connection(address(url), timeout=10)
        used = socket.create_connection(address(url), timeout=10)
        trickling.sendall(b"GET /search?q=Ber")  # and never the rest
        used.sendall(head())
        assert b"200 OK" in used.recv(65536)
        for sock in (quiet, trickling, used):
            assert sock.recv(100) == b""  # closed by the server, well within 10 s
            sock.close()
        assert server.stats()["connections_idle_closed"] == 3
        assert_still_serving(url)


def test_a_request_slower_than_the_idle_timeout_is_still_answered():
    with LocalServer(latency=1.0, idle_timeout_seconds=0.2) as url:
        with socket.create_connection(address(url), timeout=10) as sock:
            sock.sendall(head("Connection: close"))
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    assert status_of(data) == 200


SERVE_WITH_FEW_FILES = """
import resource, sys
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
from geofetch.server import ServerConfig, serve
config = ServerConfig(idle_timeout_seconds=1.0, max_connections=int(sys.argv[1]) or None)
sys.exit(serve(config, "127.0.0.1", 0))
"""


@pytest.mark.parametrize(
    "max_connections", [0, 100_000], ids=["capped-below-the-limit", "out-of-descriptors"]
)
def test_more_idle_connections_than_open_files(max_connections):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            [sys.executable, "-c", SERVE_WITH_FEW_FILES, str(max_connections)],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        held: list[socket.socket] = []
        try:
            assert child.stdout is not None
            url = child.stdout.readline().split()[-1]
            for _ in range(400):  # more than the server may open
                held.append(socket.create_connection(address(url), timeout=10))
            # A new client is served, without waiting for the whole idle timeout.
            response = requests.get(url + SEARCH, timeout=15)
            assert response.json()[0]["display_name"] == "Berlin, Germany"
            # Every idle connection is closed by the server, shed or timed out.
            waiting, deadline = list(held), time.monotonic() + 30
            while waiting and time.monotonic() < deadline:
                readable, _, _ = select.select(waiting, [], [], 1.0)
                for sock in readable:
                    assert sock.recv(100) == b""
                    waiting.remove(sock)
            assert not waiting
            assert_still_serving(url)
            err.seek(0, os.SEEK_END)
            assert err.tell() < 10_000  # one line at most, never a log per retry
        finally:
            for sock in held:
                sock.close()
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
                if child.stdout is not None:
                    child.stdout.close()
        assert child.returncode == 0
        err.seek(0)
        assert b"geofetch serve: 2 requests" in err.read()


# --------------------------------------------------------------- 4. memory


def test_the_answer_memo_is_bounded_in_bytes_and_still_memoises():
    bound = 256 * 1024
    server = LocalServer(latency=0.0, memo_bytes=bound)
    with server as url:
        session = requests.Session()
        for i in range(100):
            response = session.get(
                url + NOMINATIM_PATH, params={"q": f"{'x' * 8000} {i}"}, timeout=30
            )
            assert response.json() == []
        stats = server.stats()
        assert stats["memo_misses"] == 100
        assert 0 < stats["memo_bytes"] <= bound
        assert stats["memo_entries"] < 100  # the oldest were dropped
        for _ in range(3):
            assert session.get(url + SEARCH, timeout=30).json()[0]["name"] == "Berlin"
        after = server.stats()
    assert after["memo_misses"] == 101 and after["memo_hits"] == 2
    assert after["memo_bytes"] <= bound


def test_the_memo_keeps_the_most_recently_used():
    server = LocalServer(latency=0.0, memo_bytes=64 * 1024)
    with server as url:
        session = requests.Session()

        def ask(query: str) -> None:
            session.get(url + NOMINATIM_PATH, params={"q": query}, timeout=30).raise_for_status()

        ask("Berlin")
        for i in range(40):  # ~2 KB each: about 30 fit
            ask(f"{'y' * 2000} {i}")
            ask("Berlin")  # used again and again, so never the least recently used
        stats = server.stats()
    assert stats["memo_misses"] == 41 and stats["memo_hits"] == 40


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_long_distinct_queries_do_not_grow_the_process():
    # 3,000 distinct 60 KB queries: 180 MB of queries, of which the server keeps at
    # most its memo's 32 MiB and its per-query counts' 16 MiB.
    server = LocalServer(latency=0.0, subprocess=True)
    with server as url:
        assert server.pid is not None
        with socket.create_connection(address(url), timeout=30) as sock:
            sock.sendall(head(target=f"{NOMINATIM_PATH}?q=warm&format=json"))
            sock.recv(65536)
            before = rss_bytes(server.pid)
            for i in range(3000):
                query = f"{i:05d}" + "z" * 60_000
                sock.sendall(head(target=f"{NOMINATIM_PATH}?q={query}&format=json"))
                answer = sock.recv(65536)
                assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:200]
            grown = rss_bytes(server.pid) - before
        stats = server.stats()
    assert stats["total"] == 3001
    assert grown < 100 * 1024 * 1024, f"grew {grown / 2**20:.0f} MiB"
    assert stats["memo_bytes"] <= 32 * 1024 * 1024


# --------------------------------------------------------------- imports


def test_the_server_imports_no_client_stack():
    code = (
        "import sys, geofetch.server\n"
        "banned = ('requests', 'urllib3', 'bs4', 'geofetch.core', 'geofetch.tasks',\n"
        "          'geofetch.http', 'geofetch.providers')\n"
        "print(sorted(m for m in sys.modules if m in banned or m.startswith(\n"
        "    tuple(b + '.' for b in banned))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert done.stdout.strip() == "[]", done.stdout
