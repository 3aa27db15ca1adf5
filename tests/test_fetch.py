"""`geofetch fetch` and `fetch_many` against the local test site: every column of
every row on the thread and process executors, robots.txt, the per-host cap,
redirects, retries, the size cap, timeouts, dedup, and the CLI's exit codes.

Assertions are on counts, values and order, never on how long anything took.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import socket
import time
import urllib.request

import pytest

from geofetch._version import __version__
from geofetch.exceptions import RobotsDisallowed, TooLarge, TooManyRedirects, UsageError
from geofetch.tasks.fetch import fetch_job, fetch_many, iter_fetch
from geofetch.tasks.fetch.html import parse_page
from geofetch.tasks.fetch.urls import check_url, url_key
from geofetch.testing.servers import Reply, ScriptedServer
from geofetch.testing.site import LocalSite, page

HTML = "text/html; charset=utf-8"
ITEMS = '<p class="item">one</p><p class="item">two</p>'


def _page_bytes(name: str) -> int:
    return len(page(f"Page {name}", f"Heading {name}", ITEMS))


def _status_bytes(text: str) -> int:
    return len(page(text))


def _refused_port() -> int:
    """A port nothing listens on: bound, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def site():
    with LocalSite() as running:
        yield running


# -- every column of every row -----------------------------------------------------


def _table(site: LocalSite, refused: int) -> list[tuple[str, dict]]:
    """(url, expected columns) for one run with timeout=1, retries=2, max_bytes=2000."""
    u = site.url
    none = dict(status_code=None, final_url=None, elapsed_ms=None, bytes=None,
                content_type=None, title=None, selected=None)
    return [
        (f"{u}/page/1", dict(status_code=200, final_url=f"{u}/page/1", bytes=_page_bytes("1"),
                             content_type=HTML, title="Page 1", selected=None, status="ok",
                             error=None)),
        (f"{u}/", dict(status_code=200, final_url=f"{u}/", content_type=HTML,
                       title="geofetch test site", status="ok", error=None)),
        (f"{u}/redirect/3", dict(status_code=200, final_url=f"{u}/page/end",
                                 bytes=_page_bytes("end"), content_type=HTML, title="Page end",
                                 status="ok", error=None)),
        (f"{u}/status/404", dict(status_code=404, final_url=f"{u}/status/404",
                                 bytes=_status_bytes("404 Not Found"), content_type=HTML,
                                 title=None, status="failed",
                                 error="HTTPError: 404 Not Found")),
        (f"{u}/flaky/a", dict(status_code=200, final_url=f"{u}/flaky/a", content_type=HTML,
                              title="Recovered a", status="ok", error=None)),
        (f"{u}/slow/30", dict(none, status="failed", error="Timeout: no answer within 1 s")),
        (f"{u}/big/5000", dict(status_code=200, final_url=f"{u}/big/5000", bytes=None,
                               content_type=HTML, title=None, status="failed",
                               error="TooLarge: body larger than the 2000-byte cap "
                                     "(Content-Length 5000)")),
        (f"{u}/big/5000?stream=1", dict(status_code=200, final_url=f"{u}/big/5000?stream=1",
                                        bytes=None, content_type=HTML, title=None,
                                        status="failed",
                                        error="TooLarge: body larger than the 2000-byte cap "
                                              "(more than 2000 bytes; stopped reading there)")),
        (f"{u}/private/secret", dict(none, status="invalid",
                                     error=f"RobotsDisallowed: {u}/robots.txt disallows "
                                           "/private/secret")),
        (f"http://127.0.0.1:{refused}/", dict(none, status="failed")),
        (f"{u}/data.json", dict(status_code=200, final_url=f"{u}/data.json", bytes=12,
                                content_type="application/json", title=None, status="ok",
                                error=None)),
        ("ftp://example.com/file", dict(none, status="invalid",
                                        error="InvalidURL: not an http(s) URL: "
                                              "'ftp://example.com/file'")),
        ("file:///etc/passwd", dict(none, status="invalid",
                                    error="InvalidURL: not an http(s) URL: 'file:///etc/passwd'")),
        ("not a url", dict(none, status="invalid",
                           error="InvalidURL: not an http(s) URL: 'not a url'")),
        ("", dict(none, status="invalid", error="InvalidURL: blank URL")),
    ]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("executor", "threads"), [("thread", 1), ("process", 1),
                                                   ("process", 4)])
def test_every_column_of_every_row(site, executor, threads):
    refused = _refused_port()
    table = _table(site, refused)
    results = fetch_many([url for url, _ in table], executor=executor, workers=4,
                         threads=threads, timeout=1, retries=2, max_bytes=2000)
    assert [r.url for r in results] == [url for url, _ in table]
    for result, (url, expected) in zip(results, table, strict=True):
        for name, value in expected.items():
            assert getattr(result, name) == value, (url, name, result)
        if result.status_code is None:
            assert result.elapsed_ms is None
        else:
            assert isinstance(result.elapsed_ms, int) and result.elapsed_ms >= 0
        if result.status == "ok":
            assert result.error is None and result.bytes > 0
        else:
            assert result.error and result.title is None
    refused_row = results[9]
    assert refused_row.error.startswith("ConnectionError: ")
    assert "refused" in refused_row.error.lower()
    assert refused_row.error.endswith(f"(fetching http://127.0.0.1:{refused}/robots.txt)")
    hits = site.stats()["hits"]
    assert hits["/robots.txt"] == 1  # once per run, whatever the executor
    assert "/private/secret" not in hits  # disallowed: never asked
    assert hits["/flaky/a"] == 2  # a 500, retried to ok
    assert hits["/slow/30"] == 3  # three attempts, each timed out
    assert hits["/status/404"] == 1  # a 404 is not retried
    assert hits["/redirect/3"] == hits["/redirect/2"] == hits["/redirect/1"] == 1


@pytest.mark.timeout(120)
def test_ignore_robots_fetches_the_disallowed_page_and_never_asks_robots(site):
    refused = _refused_port()
    results = fetch_many([f"{site.url}/private/secret", f"http://127.0.0.1:{refused}/"],
                         ignore_robots=True, retries=0)
    assert results[0].status == "ok" and results[0].title == "Private secret"
    assert results[1].status == "failed"
    assert results[1].error.startswith("ConnectionError: ") and "robots" not in results[1].error
    assert "/robots.txt" not in site.stats()["hits"]


# -- robots.txt --------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_robots_rules_for_geofetch_and_a_redirect_into_a_disallowed_path():
    robots = ("User-agent: geofetch\nDisallow: /private/\nDisallow: /page/2\n\n"
              "User-agent: *\nDisallow: /\n")
    with LocalSite(robots=robots) as site:
        u = site.url
        urls = [f"{u}/page/1", f"{u}/page/2", f"{u}/goto/private/a", f"{u}/goto/page/3"]
        results = fetch_many(urls)
        hits = site.stats()["hits"]
    assert [r.status for r in results] == ["ok", "invalid", "failed", "ok"]
    assert results[1].error == f"RobotsDisallowed: {u}/robots.txt disallows /page/2"
    assert results[2].error == (f"RobotsDisallowed: redirected to {u}/private/a, which "
                                f"{u}/robots.txt disallows")
    assert results[2].status_code == 302 and results[2].final_url == f"{u}/goto/private/a"
    assert results[3].final_url == f"{u}/page/3" and results[3].title == "Page 3"
    assert "/page/2" not in hits and "/private/a" not in hits
    assert hits["/robots.txt"] == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("robots", [None, 403])
def test_robots_txt_that_is_missing_or_forbidden_allows_everything(robots):
    with LocalSite(robots=robots) as site:
        results = fetch_many([f"{site.url}/private/a", f"{site.url}/page/1"])
        assert site.stats()["hits"]["/robots.txt"] == 1
    assert [r.status for r in results] == ["ok", "ok"]


@pytest.mark.timeout(60)
def test_robots_txt_server_error_makes_the_origin_unreachable_without_page_requests():
    with LocalSite(robots=503) as site:
        results = fetch_many([f"{site.url}/page/1", f"{site.url}/page/2"], retries=1)
        hits = site.stats()["hits"]
    assert [r.status for r in results] == ["failed", "failed"]
    expected = f"ServerError: 503 Service Unavailable (fetching {site.url}/robots.txt)"
    assert [r.error for r in results] == [expected, expected]
    assert hits == {"/robots.txt": 2}  # one attempt and one retry, for both rows


# -- the per-host cap ----------------------------------------------------------------


def _two_host_urls(site: LocalSite, per_host_count: int) -> list[str]:
    urls = []
    for i in range(per_host_count):
        for host in ("127.0.0.1", "localhost"):
            urls.append(f"http://{host}:{site.port}/slow/0.2?n={i}")
    return urls


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("executor", "workers", "threads"), [("thread", 8, 1),
                                                              ("process", 8, 1),
                                                              ("process", 2, 4)])
def test_per_host_cap_holds_across_workers(site, executor, workers, threads):
    results = fetch_many(_two_host_urls(site, 12), executor=executor, workers=workers,
                         threads=threads, per_host=2)
    assert [r.status for r in results] == ["ok"] * 24
    in_flight = site.stats()["max_in_flight"]
    assert set(in_flight) == {"127.0.0.1", "localhost"}
    assert all(n <= 2 for n in in_flight.values()), in_flight
    assert max(in_flight.values()) == 2


@pytest.mark.timeout(120)
def test_without_the_cap_a_host_sees_more_at_once(site):
    fetch_many(_two_host_urls(site, 12), workers=8, per_host=None)
    assert max(site.stats()["max_in_flight"].values()) > 2


# -- requests, retries, limits ----------------------------------------------------------


@pytest.mark.timeout(60)
def test_one_client_per_worker_reuses_its_connection_and_names_geofetch(site):
    results = fetch_many([f"{site.url}/page/{i}" for i in range(5)], executor="serial")
    assert [r.title for r in results] == [f"Page {i}" for i in range(5)]
    stats = site.stats()
    assert stats["connections"] == 1  # robots.txt and five pages on one connection
    (agent,) = stats["user_agents"]
    assert agent.startswith(f"geofetch/{__version__} ")


@pytest.mark.timeout(60)
def test_429_is_retried_and_too_many_redirects_fail(site):
    results = fetch_many([f"{site.url}/limited/a", f"{site.url}/redirect/11"])
    assert results[0].status == "ok" and results[0].title == "Allowed a"
    assert results[1].status == "failed" and results[1].status_code == 302
    assert results[1].error == (f"TooManyRedirects: more than 10 redirects "
                                f"(the last to {site.url}/page/end)")
    assert results[1].final_url == f"{site.url}/redirect/1"
    assert "/page/end" not in site.stats()["hits"]


@pytest.mark.timeout(60)
def test_a_trickling_body_cannot_outlast_the_timeout(site):
    (result,) = fetch_many([f"{site.url}/trickle/20"], timeout=1, retries=0)
    assert result.status == "failed"
    assert result.error == "Timeout: page not complete within 1 s"


@pytest.mark.timeout(60)
def test_a_page_one_byte_a_second_fails_at_the_deadline():
    """Each read gets a byte within the timeout; the request as a whole does not."""
    trickle = Reply(body=page("Slow"), headers=[("Content-Type", HTML)], byte_delay=1.0)
    with ScriptedServer(trickle) as slow:
        started = time.monotonic()
        (result,) = fetch_many([f"{slow.url}/"], timeout=2, retries=0, ignore_robots=True)
        took = time.monotonic() - started
    assert result.status == "failed"
    assert result.error == "Timeout: page not complete within 2 s"
    assert took < 6


@pytest.mark.timeout(60)
def test_content_codings_are_decoded_and_one_that_cannot_be_fails_the_row(site):
    """The fault: a ``Content-Encoding: br`` page that nothing decoded was written
    ``ok``, with an empty title and ``bytes`` the compressed size. A coding unknown
    to the client (what br was without brotli) fails the row, naming it."""
    u = site.url
    decodable = ["gzip", "deflate", "br"]
    undecodable = ["x-unknown", "zstd", "gzip-corrupt"]
    results = fetch_many([f"{u}/encoded/{c}" for c in decodable + undecodable], retries=0)
    for result, coding in zip(results[:3], decodable, strict=True):
        assert result.status == "ok", result
        assert result.title == f"Encoded {coding}"
        assert result.bytes == len(page(f"Encoded {coding}"))  # decoded, not on the wire
    for result, coding in zip(results[3:], undecodable, strict=True):
        assert result.status == "failed" and result.title is None
        assert result.error.startswith("ContentDecodingError: ")
        assert coding.replace("-corrupt", "") in result.error
        assert result.status_code == 200 and result.bytes is None
        assert result.content_type == HTML
    assert site.stats()["hits"]["/encoded/x-unknown"] == 1  # permanent: not retried


@pytest.mark.timeout(60)
def test_the_size_cap_counts_decoded_bytes(site):
    (result,) = fetch_many([f"{site.url}/big/50000?gzip=1"], max_bytes=2000)
    assert result.status == "failed"
    with urllib.request.urlopen(f"{site.url}/big/50000?gzip=1", timeout=10) as raw:
        compressed = int(raw.headers["Content-Length"])  # not decoded by urllib
    assert compressed < 2000  # the compressed body is under the cap; decoded, it is not
    assert result.error == ("TooLarge: body larger than the 2000-byte cap (more than 2000 "
                            f"bytes once decoded; Content-Length {compressed} compressed (gzip))")


@pytest.mark.timeout(60)
def test_identical_urls_are_fetched_once_but_paths_keep_their_case(site):
    u = site.url
    urls = [f"{u}/page/x", f"{u}/page/x", f"  {u}/page/x#top", f"{u.upper()}/page/x",
            f"{u}/PAGE/x"]
    results = fetch_many(urls)
    assert [r.url for r in results] == urls
    assert [r.status for r in results] == ["ok", "ok", "ok", "ok", "failed"]
    hits = site.stats()["hits"]
    assert hits["/page/x"] == 1 and hits["/PAGE/x"] == 1


@pytest.mark.timeout(60)
def test_budget_stops_the_run(site):
    results = fetch_many([f"{site.url}/page/{i}" for i in range(5)], executor="serial",
                         max_requests=3)
    assert [r.status for r in results] == ["ok", "ok", "failed", "failed", "failed"]
    assert all(r.error.startswith("BudgetExhausted: ") for r in results[2:])
    assert sum(site.stats()["hits"].values()) == 3  # robots.txt and two pages


@pytest.mark.timeout(60)
def test_select_joins_the_matches_text(site):
    u = site.url
    results = fetch_many([f"{u}/page/1", f"{u}/", f"{u}/data.json"], select="p.item, h1")
    assert [r.selected for r in results] == ["Heading 1 | one | two", "Welcome", ""]
    assert results[0].title == "Page 1"


@pytest.mark.timeout(60)
def test_iter_fetch_streams_in_order_and_removes_its_directory(site):
    urls = [f"{site.url}/page/{i}" for i in range(10)]
    assert [r.url for r in iter_fetch(urls, workers=3)] == urls
    job = fetch_job(urls[:2])
    directory = job.work.directory()
    assert os.path.isdir(directory)
    assert [r.status for r in job] == ["ok", "ok"]
    assert not os.path.exists(directory)


def test_bad_options_are_usage_errors():
    for options in ({"select": "p["}, {"per_host": 0}, {"max_bytes": 0}, {"timeout": 0}):
        with pytest.raises(UsageError):
            fetch_many([], **options)


# -- units -------------------------------------------------------------------------


@pytest.mark.parametrize("url, problem", [
    ("http://example.com/", None),
    ("  HTTPS://Example.com/a?b=1  ", None),
    ("ftp://example.com/", "InvalidURL: not an http(s) URL: 'ftp://example.com/'"),
    ("javascript:alert(1)", "InvalidURL: not an http(s) URL: 'javascript:alert(1)'"),
    ("example.com", "InvalidURL: not an http(s) URL: 'example.com'"),
    ("http://", "InvalidURL: no host in 'http://'"),
    ("   ", "InvalidURL: blank URL"),
    ("http://example.com:port/", "InvalidURL: Port could not be cast to integer value as 'port'"),
    ("http://example.com/" + "a" * 1000, "InvalidURL: 1019 characters, the limit is 1000"),
])
def test_check_url(url, problem):
    assert check_url(url) == problem


def test_url_key_folds_scheme_and_host_only():
    assert url_key(" HTTP://Example.COM/A?b=C#frag ") == "http://example.com/A?b=C"
    assert url_key("http://example.com") == "http://example.com/"


def test_parse_page():
    html = b"<html><head><title>\n  Caf\xe9\n  Menu </title></head><body><h1>A</h1></body></html>"
    assert parse_page(html, "text/html; charset=iso-8859-1") == ("Café Menu", None)
    assert parse_page(html, None, "h1") == ("Café Menu", "A")  # sniffed as HTML
    assert parse_page(b"<p>no title</p>", "text/html") == (None, None)
    assert parse_page(b'{"a": 1}', "application/json", "h1") == (None, "")


def test_new_errors_survive_pickling():
    for cls in (RobotsDisallowed, TooLarge, TooManyRedirects):
        error = pickle.loads(pickle.dumps(cls("why", status_code=200)))
        assert type(error) is cls and str(error) == "why" and error.status_code == 200


# -- the command line ------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_cli_csv_with_url_column_keeps_every_input_column(cli, site, tmp_path):
    source = tmp_path / "links.csv"
    source.write_text(f"name,link\none,{site.url}/page/1\ntwo,{site.url}/private/x\n"
                      f"three,mailto:a@b.c\n", encoding="utf-8")
    result = cli(["fetch", source])
    assert result.status == 0, result.stderr
    rows = _csv(result.stdout)
    assert list(rows[0]) == ["name", "link", "status_code", "final_url", "elapsed_ms", "bytes",
                             "content_type", "title", "status", "error"]
    assert [r["name"] for r in rows] == ["one", "two", "three"]
    assert [r["status"] for r in rows] == ["ok", "invalid", "invalid"]
    assert rows[0]["title"] == "Page 1" and rows[0]["status_code"] == "200"
    assert rows[0]["bytes"] == str(_page_bytes("1")) and rows[0]["error"] == ""
    assert rows[1]["status_code"] == "" and rows[1]["error"].startswith("RobotsDisallowed: ")
    assert "3 rows: 1 ok, 0 not_found, 2 invalid, 0 failed in " in result.stderr


@pytest.mark.timeout(60)
def test_cli_select_replaces_title_and_failed_rows_exit_1(cli, site):
    stdin = f"{site.url}/page/1\n{site.url}/status/404\n"
    result = cli(["fetch", "-", "--select", "p.item", "--format", "jsonl"], stdin=stdin)
    assert result.status == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert list(records[0]) == ["url", "status_code", "final_url", "elapsed_ms", "bytes",
                                "content_type", "selected", "status", "error"]
    assert records[0]["selected"] == "one | two" and records[0]["status_code"] == 200
    assert records[1]["status"] == "failed" and records[1]["error"] == "HTTPError: 404 Not Found"
    assert records[1]["selected"] is None


@pytest.mark.timeout(60)
def test_cli_table_on_a_terminal(cli, site):
    stdin = f"{site.url}/page/2\n{site.url}/private/a\n"
    result = cli(["fetch", "-", "--column", "url"], stdin=f"url\n{stdin}", tty=True)
    assert result.status == 0
    assert result.stdout.splitlines() == [
        f"{site.url}/page/2: 200 Page 2",
        f"{site.url}/private/a: invalid "
        f"RobotsDisallowed: {site.url}/robots.txt disallows /private/a",
    ]


@pytest.mark.timeout(60)
def test_cli_options_and_exit_codes(cli, site, tmp_path):
    stdin = "".join(f"{site.url}/page/{i}\n" for i in range(4))
    budget = cli(["fetch", "-", "--executor", "serial", "--max-requests", "2"], stdin=stdin)
    assert budget.status == 3
    assert [r["status"] for r in _csv(budget.stdout)] == ["ok", "failed", "failed", "failed"]
    small = cli(["fetch", "-", "--max-bytes", "100", "--per-host", "1", "--ignore-robots"],
                stdin=f"{site.url}/page/1\n")
    assert small.status == 1
    assert _csv(small.stdout)[0]["error"].startswith("TooLarge: body larger than the 100-byte")
    bad = cli(["fetch", "-", "--select", "p["], stdin=stdin)
    assert bad.status == 2 and "invalid CSS selector 'p['" in bad.stderr
    source = tmp_path / "two.csv"
    source.write_text("a,b\n1,2\n", encoding="utf-8")
    missing = cli(["fetch", source])
    assert missing.status == 2 and "columns are: a, b" in missing.stderr
    assert cli(["fetch", "-", "--per-host", "0"], stdin=stdin).status == 2


# -- the URL column (issue 16, case 8) ----------------------------------------------------


def _fetch_rows(cli, argv, **kw):
    result = cli(["fetch", *argv], **kw)
    return result, _csv(result.stdout)


@pytest.mark.timeout(60)
def test_cli_takes_the_website_column_not_the_address(cli, site, tmp_path):
    u = site.url
    source = tmp_path / "shops.csv"
    source.write_text(f'name,address,website\nOne,1 Main St,{u}/page/1\n'
                      f'Two,"2 High St, Leeds",{u}/page/2\n', encoding="utf-8")
    result, rows = _fetch_rows(cli, [source])
    assert result.status == 0, result.stderr
    assert list(rows[0])[:4] == ["name", "address", "website", "status_code"]
    assert [(r["address"], r["status"], r["title"]) for r in rows] == [
        ("1 Main St", "ok", "Page 1"), ("2 High St, Leeds", "ok", "Page 2")]
    assert "2 rows: 2 ok, 0 not_found, 0 invalid, 0 failed in " in result.stderr


@pytest.mark.timeout(60)
def test_cli_url_column_names_in_order_case_insensitive(cli, site, tmp_path):
    u = site.url
    # every column holds a URL; the header's names alone decide
    cases = [("Homepage,Website,LINK,URL", "4"), ("homepage,website,href,notes", "3"),
             ("homepage,Website,a,b", "2"), ("HomePage,a,b,c", "1")]
    for header, wanted in cases:
        source = tmp_path / "links.csv"
        source.write_text(f"{header}\n{u}/page/1,{u}/page/2,{u}/page/3,{u}/page/4\n",
                          encoding="utf-8")
        result, rows = _fetch_rows(cli, [source])
        assert result.status == 0, (header, result.stderr)
        assert [r["title"] for r in rows] == [f"Page {wanted}"], header


@pytest.mark.timeout(60)
def test_cli_without_a_known_name_takes_the_first_column_of_urls(cli, site, tmp_path):
    u = site.url
    source = tmp_path / "targets.csv"
    source.write_text(f"id,notes,target,mirror\n1,hello,{u}/page/1,{u}/page/m\n"
                      f"2,,{u}/page/2,{u}/page/m\n3,see {u}/,not a url,{u}/page/m\n",
                      encoding="utf-8")
    result, rows = _fetch_rows(cli, [source])
    assert result.status == 0, result.stderr
    assert [(r["target"], r["status"]) for r in rows] == [
        (f"{u}/page/1", "ok"), (f"{u}/page/2", "ok"), ("not a url", "invalid")]
    assert rows[2]["error"] == "InvalidURL: not an http(s) URL: 'not a url'"
    # standard input, no .csv name: the column of URLs makes it a CSV all the same
    result, rows = _fetch_rows(cli, ["-"], stdin=f"name,page\nOne,{u}/page/1\nTwo,{u}/page/2\n")
    assert result.status == 0, result.stderr
    assert list(rows[0])[:3] == ["name", "page", "status_code"]
    assert [(r["name"], r["title"]) for r in rows] == [("One", "Page 1"), ("Two", "Page 2")]


@pytest.mark.timeout(60)
def test_cli_a_list_of_urls_with_commas_is_still_a_list(cli, site):
    u = site.url
    result, rows = _fetch_rows(cli, ["-"], stdin=f"{u}/page/1?a=1,2\n{u}/page/2?b=3,4\n")
    assert result.status == 0, result.stderr
    assert [(r["url"], r["title"]) for r in rows] == [
        (f"{u}/page/1?a=1,2", "Page 1"), (f"{u}/page/2?b=3,4", "Page 2")]


@pytest.mark.timeout(60)
def test_cli_no_url_column_is_still_the_error_naming_the_columns(cli, tmp_path):
    source = tmp_path / "places.csv"
    source.write_text("name,address\nOne,1 Main St\nTwo,2 High St\n", encoding="utf-8")
    result = cli(["fetch", source])
    assert result.status == 2 and result.stdout == ""
    assert result.stderr == (f"geofetch: error: cannot tell which column of {source} holds the "
                             "URLs; columns are: name, address; choose one with --column\n")
