"""robots.txt per RFC 9309 (issue 16, case 7): wildcards and longest-match precedence
through protego, the group for the product token ``geofetch``, a UTF-8 byte order
mark, the first 500 KiB of a longer file parsed (not the file ignored), and
``Crawl-delay`` as a minimum gap between requests to an origin across every thread
and process of the run (``--ignore-robots`` ignores it too).

Real loopback servers; assertions on statuses, errors, what the server was asked,
and the gaps between the arrival times it recorded, never on how long a run took.
"""

from __future__ import annotations

import threading
import time

import pytest

from geofetch.tasks.fetch import fetch_many
from geofetch.testing.servers import Reply, ScriptedServer
from geofetch.testing.site import LocalSite, page

# The helpers' names are imported in the tests that use them, so that the tests of
# behaviour also run (and fail) against the code before issue 16.

#: RFC 9309's least size parsed: 500 KiB.
KIB_500 = 500 * 1024


def _statuses(results) -> list[str]:
    return [r.status for r in results]


def _refused(site: LocalSite, path: str) -> str:
    return f"RobotsDisallowed: {site.url}/robots.txt disallows {path}"


# -- the rules ------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_wildcards_dollar_and_the_longest_match_decide():
    robots = ("User-agent: *\n"
              "Disallow: /*.pdf$\n"
              "Disallow: /page/\n"
              "Allow: /page/open\n")
    with LocalSite(robots=robots) as site:
        u = site.url
        urls = [f"{u}/page/", f"{u}/files/report.pdf", f"{u}/files/report.pdf.html",
                f"{u}/page/open", f"{u}/page/shut"]
        results = fetch_many(urls, retries=0)
        hits = site.stats()["hits"]
    assert _statuses(results) == ["invalid", "invalid", "failed", "ok", "invalid"]
    assert results[1].error == _refused(site, "/files/report.pdf")  # '*' and '$'
    assert results[2].error == "HTTPError: 404 Not Found"  # '.pdf' not at the end: asked
    assert results[3].title == "Page open"  # Allow /page/open is longer than Disallow /page/
    assert results[4].error == _refused(site, "/page/shut")
    assert "/files/report.pdf" not in hits and "/page/shut" not in hits
    assert hits["/files/report.pdf.html"] == hits["/page/open"] == hits["/robots.txt"] == 1


@pytest.mark.timeout(60)
def test_the_group_for_the_product_token_geofetch_else_star():
    robots = ("User-agent: otherbot\nDisallow: /\n\n"
              "User-agent: GeoFetch\nDisallow: /page/2\n\n"
              "User-agent: *\nDisallow: /page/\n")
    with LocalSite(robots=robots) as site:
        u = site.url
        ours = fetch_many([f"{u}/page/1", f"{u}/page/2"], retries=0)
        email = fetch_many([f"{u}/page/1", f"{u}/page/2"], retries=0,
                           user_agent="geofetch/9 (+mailto:ops@example.org)")
        other = fetch_many([f"{u}/page/1", f"{u}/title?t=x"], retries=0,
                           user_agent="AcmeBot/2.0 (+https://acme.example)")
    assert _statuses(ours) == _statuses(email) == ["ok", "invalid"]
    assert ours[1].error == _refused(site, "/page/2")
    # another crawler's name: no group of its own, so '*'
    assert _statuses(other) == ["invalid", "ok"]


def test_product_token():
    from geofetch.tasks.fetch.robots import product_token

    assert product_token("geofetch/1.0 (+https://github.com/geofetch/geofetch)") == "geofetch"
    assert product_token("AcmeBot/2.0") == "acmebot"
    assert product_token("  ") == "geofetch"


@pytest.mark.timeout(60)
def test_a_utf8_byte_order_mark_does_not_hide_the_first_rule():
    with LocalSite(robots="\ufeffUser-agent: *\nDisallow: /private\n") as site:
        results = fetch_many([f"{site.url}/private/x", f"{site.url}/page/1"], retries=0)
        hits = site.stats()["hits"]
    assert _statuses(results) == ["invalid", "ok"]
    assert results[0].error == _refused(site, "/private/x")
    assert "/private/x" not in hits


def _padding(size: int) -> str:
    """Comment lines of exactly ``size`` characters (at least 2)."""
    lines = []
    while size > 0:
        width = min(size, 100) if size - min(size, 100) != 1 else 50
        lines.append("#" + "x" * (width - 2) + "\n")
        size -= width
    return "".join(lines)


@pytest.mark.timeout(60)
def test_a_robots_txt_over_500_kib_is_cut_there_and_obeyed():
    """A 2 MB robots.txt with its Content-Length: its first 500 KiB are the rules
    (its ``Disallow: /`` obeyed), a rule past the cut is not read."""
    robots = "User-agent: *\nDisallow: /\n" + _padding(2_000_000) + "Allow: /page/\n"
    with LocalSite(robots=robots) as site:
        results = fetch_many([f"{site.url}/page/1", f"{site.url}/"], retries=0)
        hits = site.stats()["hits"]
    assert _statuses(results) == ["invalid", "invalid"]
    assert results[0].error == _refused(site, "/page/1")
    assert hits == {"/robots.txt": 1}


@pytest.mark.timeout(60)
def test_the_line_the_500_kib_cut_falls_in_is_not_read():
    """``Allow: /private/deep`` cut after ``Allow: /private/`` would allow all of
    /private/ (a tie goes to Allow): the partial line is dropped instead."""
    head = "User-agent: *\nDisallow: /private/\n"
    line = "Allow: /private/"
    robots = head + _padding(KIB_500 - len(head) - len(line)) + line + "deep\n"
    assert robots.index("deep") == KIB_500  # the cut falls just before it
    with LocalSite(robots=robots + _padding(1000)) as site:
        results = fetch_many([f"{site.url}/private/x", f"{site.url}/page/1"], retries=0)
    assert _statuses(results) == ["invalid", "ok"]


def test_robots_text():
    from geofetch.tasks.fetch.robots import ROBOTS_MAX_BYTES, RULES, RobotsVerdict, robots_text

    assert ROBOTS_MAX_BYTES == KIB_500
    cut = robots_text(b"User-agent: *\nDisallow: /a\nAllow: /a/lon", complete=False)
    assert cut == "User-agent: *\nDisallow: /a\n"
    assert robots_text(b"\xef\xbb\xbfUser-agent: *\n") == "User-agent: *\n"
    assert robots_text(b"a\r\nb: c", complete=False) == "a\r\n"
    assert robots_text(b"no line end at all", complete=False) == ""
    verdict = RobotsVerdict(RULES, "User-agent: *\nCrawl-delay: 2\nDisallow: /a\n")
    assert verdict.crawl_delay("geofetch") == 2.0
    assert not verdict.allows("http://h/a/b", "geofetch")
    assert verdict.allows("http://h/robots.txt", "geofetch")


# -- Crawl-delay ------------------------------------------------------------------------


def _gaps(server: ScriptedServer) -> list[float]:
    times = sorted(seen.at for seen in server.requests)
    return [b - a for a, b in zip(times, times[1:], strict=False)]


# Arrival times are read on the server after the request's head arrives, by a thread
# per connection: scheduling can shave a little off a gap the client kept.
SLACK = 0.1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_crawl_delay_spaces_every_request_to_the_origin_across_workers(executor):
    robots = ("User-agent: *\nCrawl-delay: 30\n\n"
              "User-agent: geofetch\nCrawl-delay: 0.5\nDisallow: /private\n")
    html = [("Content-Type", "text/html; charset=utf-8")]
    with ScriptedServer(Reply(body=robots.encode(), headers=[("Content-Type", "text/plain")]),
                        Reply(body=page("Paced"), headers=html)) as server:
        urls = [f"{server.url}/p/{i}" for i in range(5)]
        results = fetch_many(urls, executor=executor, workers=4, per_host=4, retries=0)
        targets = [seen.target for seen in sorted(server.requests, key=lambda s: s.at)]
        gaps = _gaps(server)
    assert _statuses(results) == ["ok"] * 5
    assert [r.title for r in results] == ["Paced"] * 5
    assert targets[0] == "/robots.txt"
    assert sorted(targets[1:]) == [f"/p/{i}" for i in range(5)]
    assert len(gaps) == 5
    # geofetch's own group (0.5 s), not '*' (30 s): every gap at least 0.5 s
    assert min(gaps) >= 0.5 - SLACK, gaps


@pytest.mark.timeout(60)
def test_ignore_robots_ignores_crawl_delay_too():
    robots = "User-agent: *\nCrawl-delay: 60\nDisallow: /private/\n"
    with LocalSite(robots=robots) as site:
        urls = [f"{site.url}/slow/1?n={i}" for i in range(4)] + [f"{site.url}/private/x"]
        results = fetch_many(urls, workers=5, per_host=5, ignore_robots=True, retries=0)
        stats = site.stats()
    assert _statuses(results) == ["ok"] * 5
    assert "/robots.txt" not in stats["hits"]
    assert max(stats["max_in_flight"].values()) >= 2  # not one at a time, 60 s apart


def test_crawl_delays_keep_the_gap_between_threads(tmp_path):
    from geofetch.tasks.fetch.hosts import CrawlDelays

    delays = CrawlDelays(str(tmp_path))
    went: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        delays.wait("http://h:80", 0.3)
        with lock:
            went.append(time.monotonic())

    delays.sent("http://h:80")  # a robots.txt just went
    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    went.sort()
    assert went[0] - started >= 0.3 - SLACK
    assert min(b - a for a, b in zip(went, went[1:], strict=False)) >= 0.3 - SLACK
    delays.wait("http://other:80", 0.3)  # another origin: its own record, no wait owed
    assert len(list(tmp_path.iterdir())) == 2
