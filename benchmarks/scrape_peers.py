"""Scraping: geofetch against Scrapy, requests + ThreadPoolExecutor + BeautifulSoup
and aiohttp, on one local site, in one run.

The workload (issue 17): ``--pages`` distinct pages of about 20 KB (a head with a
script and a style, a nav list, a heading, paragraphs of linked text, a footer;
every title different) served by a local site in its own process (aiohttp, each
answer ``--latency`` seconds late, one host). Every contender fetches every page
and reads its title and the text of ``h1``; robots.txt is not asked and nothing
caps requests per host (Scrapy's per-domain limit is set to its global one).

Contenders, each in its own process, each run ``--rounds`` times, interleaved:

* ``geofetch``: ``fetch_many(select="h1", executor="process", workers=2,
  threads=64, per_host=None)`` (the best setting measured; ``--geofetch`` picks
  others: ``process:2x64``, ``thread:128``...). Its rows' ``selected`` is the h1
  and ``title`` the title.
* ``scrapy``: a Spider with ``CONCURRENT_REQUESTS`` 16, 64 and 128 (and the same per
  domain), title and h1 by Scrapy's selectors (parsel on lxml); its best is the
  one compared.
* ``requests+tpe+bs4``: ``ThreadPoolExecutor(64)`` of ``requests.get``, one
  ``Session`` per thread, BeautifulSoup with ``html.parser``.
* ``aiohttp+bs4``: 128 requests in flight on one ``ClientSession``,
  BeautifulSoup with ``html.parser`` in the event loop.
* ``aiohttp`` fetch only: the network path's ceiling on this machine.

For each run: pages/s from wall time, client CPU seconds (the contender's process
and every process it started: its own rusage, its waited children's, and the
live ones' /proc times, so a forkserver's reaped workers count), peak RSS (the sum
over its processes, sampled every 0.1 s), and whether every title (and h1) is
right. Measurements only; nothing is asserted. Needs the ``bench`` extra
(``pip install 'geofetch[bench]'``).

    python benchmarks/scrape_peers.py [--pages 2000] [--latency 0.05] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

WORDS = ("river stone cloud ember harbor meadow lantern copper violet orchard summit "
         "willow prairie canyon glacier thistle falcon marble quarry velvet").split()
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = 20_000


# -- the site ------------------------------------------------------------------------


def title_of(i: int) -> str:
    """Page ``i``'s title, as a reader should get it (entities decoded)."""
    rnd = random.Random(i)
    return f"Page {i}: {rnd.choice(WORDS).title()} & {rnd.choice(WORDS)} — report {i * 7 % 1000}"


def heading_of(i: int) -> str:
    return f"Heading {i} of the {random.Random(-i).choice(WORDS)} series"


def make_page(i: int) -> bytes:
    """About 20 KB of ordinary, well-formed HTML, different for every ``i``."""
    rnd = random.Random(i)
    nav = "".join(f'<li class="nav-item"><a href="/section/{w}">{w.title()}</a></li>'
                  for w in rnd.sample(WORDS, 8))
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{html.escape(title_of(i), quote=False)}</title>\n",
        '<link rel="stylesheet" href="/static/site.css">\n',
        "<style>body { font-family: sans-serif; } .item > a { color: #333; }</style>\n",
        "<script>window.dataLayer = window.dataLayer || []; if (a < b && c) { f(); }</script>\n",
        "</head>\n<body>\n",
        f'<header><nav><ul class="nav">{nav}</ul></nav></header>\n<main id="content">\n',
        f"<h1>{html.escape(heading_of(i), quote=False)}</h1>\n",
    ]
    size = sum(len(p) for p in parts)
    paragraph = 0
    while size < PAGE_SIZE - 400:
        words = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(25, 60)))
        link = rnd.randint(0, 99_999)
        text = (f'<p class="item" id="p{paragraph}">{words} <a href="/page/{link}?ref={i}">'
                f"see {link}</a> <em>{rnd.choice(WORDS)}</em>.</p>\n")
        parts.append(text)
        size += len(text)
        paragraph += 1
    parts.append(f'</main>\n<footer><p>&copy; 2026 Site {i % 13}</p></footer>\n'
                 "</body>\n</html>\n")
    return "".join(parts).encode("utf-8")


def serve(port_file: str, pages: int, latency: float) -> None:
    """Serve the site until killed; write the port to ``port_file`` once listening."""
    from aiohttp import web

    bodies = [make_page(i) for i in range(pages)]

    async def page(request: web.Request) -> web.Response:
        await asyncio.sleep(latency)
        i = int(request.match_info["n"])
        return web.Response(body=bodies[i], content_type="text/html", charset="utf-8")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/page/{n}", page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        with open(port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(port_file + ".tmp", port_file)
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the contenders (each runs in its own process) ---------------------------------------


def run_geofetch(urls: list[str], setting: str) -> list[tuple[str, str | None, str | None]]:
    from geofetch import fetch_many

    kind, _, shape = setting.partition(":")
    workers, _, threads = shape.partition("x")
    rows = fetch_many(urls, select="h1", executor=kind, workers=int(workers),
                      threads=int(threads or 1), per_host=None, ignore_robots=True, rate=0,
                      retries=1, timeout=30)
    return [(r.url, r.title, r.selected) for r in rows]


def run_scrapy(urls: list[str], concurrency: int) -> list[tuple[str, str | None, str | None]]:
    import logging

    import scrapy
    from scrapy.crawler import CrawlerProcess

    found: dict[str, tuple[str | None, str | None]] = {}

    class Pages(scrapy.Spider):  # type: ignore[misc]
        name = "pages"

        async def start(self) -> Any:  # Scrapy 2.13+: start(), not start_requests()
            for url in urls:
                yield scrapy.Request(url, dont_filter=True)

        def parse(self, response: Any) -> Any:
            title = response.css("title::text").get()
            heading = " ".join(response.css("h1 ::text").getall())
            found[response.url] = (fold(title) if title else None, fold(heading))
            return None

    process = CrawlerProcess(settings={
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "ROBOTSTXT_OBEY": False,
        "LOG_LEVEL": "ERROR",
        "TELNETCONSOLE_ENABLED": False,
        "COOKIES_ENABLED": False,
        "RETRY_TIMES": 1,
        "DOWNLOAD_TIMEOUT": 30,
        "REACTOR_THREADPOOL_MAXSIZE": 20,
    })
    logging.getLogger("scrapy").setLevel(logging.ERROR)
    process.crawl(Pages)
    process.start()
    return [(url, *found.get(url, (None, None))) for url in urls]


def _soup(body: bytes) -> tuple[str | None, str | None]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(body, "html.parser")
    title = soup.find("title")
    heading = soup.find("h1")
    return (fold(title.get_text()) if title else None,
            fold(heading.get_text()) if heading else None)


def run_requests(urls: list[str], threads: int) -> list[tuple[str, str | None, str | None]]:
    from concurrent.futures import ThreadPoolExecutor

    import requests

    local = threading.local()

    def get(url: str) -> tuple[str, str | None, str | None]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        response = session.get(url, timeout=30)
        return (url, *_soup(response.content))

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(get, urls))


def run_aiohttp(urls: list[str], in_flight: int, parse: bool
                ) -> list[tuple[str, str | None, str | None]]:
    import aiohttp

    async def main() -> list[tuple[str, str | None, str | None]]:
        limit = asyncio.Semaphore(in_flight)
        connector = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def one(url: str) -> tuple[str, str | None, str | None]:
                async with limit, session.get(url) as response:
                    body = await response.read()
                if not parse:
                    return url, title_of(int(url.rsplit("/", 1)[1])), None  # not read
                return (url, *_soup(body))

            return list(await asyncio.gather(*(one(url) for url in urls)))

    return asyncio.run(main())


CONTENDERS: dict[str, Callable[[list[str], str], list[tuple[str, str | None, str | None]]]] = {
    "geofetch": run_geofetch,
    "scrapy": lambda urls, arg: run_scrapy(urls, int(arg)),
    "requests+tpe+bs4": lambda urls, arg: run_requests(urls, int(arg)),
    "aiohttp+bs4": lambda urls, arg: run_aiohttp(urls, int(arg), parse=True),
    "aiohttp fetch only": lambda urls, arg: run_aiohttp(urls, int(arg), parse=False),
}


def fold(text: str) -> str:
    return " ".join(text.split())


# -- measuring one contender, from inside its process ---------------------------------


def _descendants() -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found: set[int] = set()
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found |= frontier
    return sorted(found)


def _proc_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of a live process, seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / TICKS


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def contender_main(name: str, arg: str, base: str, pages: int, out: str) -> None:
    urls = [f"{base}/page/{i}" for i in range(pages)]
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            total = _rss_kb(os.getpid()) + sum(_rss_kb(pid) for pid in _descendants())
            peak[0] = max(peak[0], total)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    rows = CONTENDERS[name](urls, arg)
    seconds = time.perf_counter() - started
    done.set()
    own = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime
    cpu += sum(_proc_cpu(pid) for pid in _descendants())  # a forkserver and its reaped workers
    wrong = 0
    for url, title, heading in rows:
        i = int(url.rsplit("/", 1)[1])
        if title != title_of(i) or (heading is not None and heading != heading_of(i)):
            wrong += 1
    with open(out, "w") as f:
        json.dump({"seconds": seconds, "cpu": cpu, "peak_rss_mb": peak[0] / 1024,
                   "pages": len(rows), "wrong": wrong}, f)
    sys.stdout.flush()
    os._exit(0)  # Scrapy's reactor and pools: no lingering at exit


# -- the runner ------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--geofetch", default="process:2x64",
                        help="geofetch settings, comma-separated (default process:2x64)")
    parser.add_argument("--only", help="contenders to run, comma-separated")
    parser.add_argument("--json", action="store_true", help="print the runs as JSON too")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--contender", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.pages, args.latency)
        return
    if args.contender:
        name, arg, base, out = args.contender
        contender_main(name, arg, base, args.pages, out)
        return
    plan = [("geofetch", setting) for setting in args.geofetch.split(",")]
    plan += [("scrapy", "16"), ("scrapy", "64"), ("scrapy", "128"), ("requests+tpe+bs4", "64"),
             ("aiohttp+bs4", "128"),
             ("aiohttp fetch only", "128")]
    if args.only:
        wanted = set(args.only.split(","))
        plan = [p for p in plan if p[0] in wanted]
    with tempfile.TemporaryDirectory(prefix="scrape-peers-") as tmp:
        port_file = os.path.join(tmp, "port")
        site = subprocess.Popen([sys.executable, __file__, "--serve", port_file,
                                 "--pages", str(args.pages), "--latency", str(args.latency)])
        try:
            while not os.path.exists(port_file):
                time.sleep(0.05)
            with open(port_file) as f:
                base = f"http://127.0.0.1:{f.read().strip()}"
            runs: list[dict[str, Any]] = []
            for round_ in range(args.rounds):
                for name, arg in plan:
                    out = os.path.join(tmp, "out.json")
                    done = subprocess.run([sys.executable, __file__, "--pages", str(args.pages),
                                           "--contender", name, arg, base, out],
                                          capture_output=True, text=True)
                    if done.returncode != 0 or not os.path.exists(out):
                        print(f"{name} {arg}: failed: {done.stderr.strip()[-400:]}",
                              file=sys.stderr)
                        continue
                    with open(out) as f:
                        run = {"contender": name, "setting": arg, "round": round_ + 1,
                               **json.load(f)}
                    os.unlink(out)
                    runs.append(run)
                    print(f"round {round_ + 1}: {name} {arg}: "
                          f"{run['pages'] / run['seconds']:.0f} pages/s, "
                          f"cpu {run['cpu']:.1f} s", file=sys.stderr, flush=True)
        finally:
            site.kill()
            site.wait()
    report(runs, args.pages, args.latency)
    if args.json:
        print(json.dumps(runs, indent=1))


def report(runs: list[dict[str, Any]], pages: int, latency: float) -> None:
    print(f"{pages} distinct ~20 KB pages, {latency * 1000:g} ms latency, "
          f"{os.cpu_count()} CPUs; each contender's runs in order")
    print("| contender | setting | pages/s | client CPU s | CPU ms/page | peak RSS MB "
          "| titles right |")
    print("|---|---|--:|--:|--:|--:|--:|")
    order = list(dict.fromkeys((r["contender"], r["setting"]) for r in runs))
    best: dict[str, float] = {}
    for key in order:
        mine = [r for r in runs if (r["contender"], r["setting"]) == key]
        speeds = [r["pages"] / r["seconds"] for r in mine]
        best[key[0]] = max(best.get(key[0], 0.0), *speeds)
        cpu = [r["cpu"] for r in mine]
        per_page = [f"{1000 * c / r['pages']:.2f}" for c, r in zip(cpu, mine, strict=True)]
        rss = [f"{r['peak_rss_mb']:.0f}" for r in mine]
        right = [f"{r['pages'] - r['wrong']}/{r['pages']}" for r in mine]
        print(f"| {key[0]} | {key[1]} | {' / '.join(f'{s:,.0f}' for s in speeds)} | "
              f"{' / '.join(f'{c:.1f}' for c in cpu)} | {' / '.join(per_page)} | "
              f"{' / '.join(rss)} | {' / '.join(right)} |")
    if "geofetch" in best and "scrapy" in best:
        print(f"\ngeofetch's best / Scrapy's best: {best['geofetch'] / best['scrapy']:.2f}x")


if __name__ == "__main__":
    main()
