"""Issue 13, "Never lose, shift or swallow a row": the files a run writes.

Case 1: an output (or cache) that is the input is refused; ``-o`` files are written
to a temporary file and renamed at the end, while devices, FIFOs, descriptors and
symlinks are written as the user meant. Case 6: a write that fails (``/dev/full``,
a disk that fills, a cache that fills or stays locked) is one line and exit 2.
"""

from __future__ import annotations

import csv
import io
import os
import pty
import signal
import sqlite3
import stat
import subprocess
import threading
import time

import pytest

import geofetch.cache
from geofetch.cache import CacheEntry, SQLiteCache
from geofetch.exceptions import CacheError

from .rowtools import NominatimStub, chdir, one_line, place, run_geofetch, sha256

HEADER = "place,lat,lng,formatted_address,status,error"
BERLIN_ROW = 'Berlin,52.52437,13.41053,"Berlin, Germany",ok,'


def berlin_file(path, rows: int = 2000):
    path.write_text("place\n" + "Berlin\n" * rows, encoding="utf-8")
    return path


def stub_args(url: str, *more: str) -> list[str]:
    return ["--provider", "nominatim", "--base-url", url, "--rate", "0", "--retries", "0",
            "--no-progress", *more]


def listing(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0777", "tmpfs",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)])


# -- 1. the output is the input -------------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "dot", "absolute", "symlink", "hardlink"])
def test_an_output_that_is_the_input_is_refused(tmp_path, spelling):
    source = berlin_file(tmp_path / "in.csv")
    before = sha256(source)
    output = {"same": "in.csv", "dot": "./in.csv", "absolute": str(source),
              "symlink": "link.csv", "hardlink": "hard.csv"}[spelling]
    if spelling == "symlink":
        os.symlink("in.csv", tmp_path / "link.csv")
    if spelling == "hardlink":
        os.link(source, tmp_path / "hard.csv")
    try:
        # the old code read its own output without end: a child process, killed in time
        result = run_geofetch(["geocode", "in.csv", "-o", output], cwd=tmp_path, timeout=20)
        assert result.returncode == 2
        assert result.stdout == ""
        assert one_line(result.stderr) == (
            f"geofetch: error: the output {output} is the input (in.csv); writing it would "
            "destroy it: choose another output file")
        assert sha256(source) == before
    finally:
        for name in ("in.csv", "link.csv", "hard.csv"):
            (tmp_path / name).unlink(missing_ok=True)  # a runaway old run's gigabyte


def test_a_symlinked_input_is_caught_too(tmp_path):
    source = berlin_file(tmp_path / "in.csv")
    os.symlink("in.csv", tmp_path / "link.csv")
    before = sha256(source)
    try:
        result = run_geofetch(["geocode", "link.csv", "-o", "in.csv"], cwd=tmp_path,
                              timeout=20)
        assert result.returncode == 2
        assert "is the input (link.csv)" in one_line(result.stderr)
        assert sha256(source) == before
    finally:
        (tmp_path / "in.csv").unlink(missing_ok=True)


def test_standard_output_appended_to_the_input_is_refused(tmp_path):
    source = berlin_file(tmp_path / "in.csv")
    before = sha256(source)
    try:
        with open(source, "a", encoding="utf-8") as appended:
            result = run_geofetch(["geocode", "in.csv"], cwd=tmp_path, stdout=appended,
                                  timeout=20)
        assert result.returncode == 2
        assert one_line(result.stderr) == (
            "geofetch: error: standard output is the input (in.csv); writing it would "
            "destroy it: choose another output file (-o)")
        assert sha256(source) == before
    finally:
        source.unlink(missing_ok=True)


@pytest.mark.parametrize(("cache", "output", "message"), [
    ("out.csv", "out.csv", "the cache out.csv is the output (out.csv)"),
    ("./out.csv", "out.csv", "the cache ./out.csv is the output (out.csv)"),
    ("in.csv", "out.csv", "the cache in.csv is the input (in.csv)"),
    ("in.csv", None, "the cache in.csv is the input (in.csv)"),
])
@pytest.mark.parametrize("provider", ["nominatim", "offline"])
def test_a_cache_that_is_the_output_or_the_input_is_refused(cli, tmp_path, cache, output,
                                                             message, provider):
    source = berlin_file(tmp_path / "in.csv", rows=20)
    before = sha256(source)
    with NominatimStub() as stub, chdir(tmp_path):
        extra = stub_args(stub.url) if provider == "nominatim" else []
        result = cli(["geocode", "in.csv", "--cache", cache, *extra,
                      *(["-o", output] if output else [])])
    assert result.status == 2
    assert result.stdout == ""
    assert one_line(result.stderr) == (f"geofetch: error: {message}; writing it would "
                                       "destroy it: choose another cache file")
    assert stub.queries == []
    assert sha256(source) == before
    assert listing(tmp_path) == ["in.csv"]


def test_a_terminal_for_both_stdin_and_stdout_is_not_the_same_file(tmp_path):
    controller, terminal = pty.openpty()
    try:
        env = dict(os.environ, PYTHONPATH=run_geofetch.__globals__["PACKAGE_ROOT"])
        process = subprocess.Popen(
            [os.sys.executable, "-m", "geofetch", "geocode", "/dev/stdin", "-o", "/dev/stdout",
             "--no-progress"],
            stdin=terminal, stdout=terminal, stderr=subprocess.PIPE, text=True, env=env,
            cwd=tmp_path)
        os.write(controller, b"Berlin\n\x04")
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert one_line(err).startswith("1 rows: 1 ok,")
        seen = b""
        os.set_blocking(controller, False)
        deadline = time.monotonic() + 10
        while BERLIN_ROW.encode() not in seen and time.monotonic() < deadline:
            try:
                seen += os.read(controller, 65536)
            except BlockingIOError:
                time.sleep(0.05)
        assert f"{HEADER}\r\n{BERLIN_ROW}\r\n".encode() in seen
    finally:
        os.close(controller)
        os.close(terminal)


# -- 1. written to a temporary file, renamed at the end -------------------------------


def test_an_interrupted_run_keeps_the_old_file_then_renames_the_finished_rows(tmp_path):
    places = [f"Place {n}" for n in range(40)]
    source = tmp_path / "in.csv"
    source.write_text("place\n" + "\n".join(places) + "\n", encoding="utf-8")
    output = tmp_path / "out.csv"
    output.write_text("the previous, good output\n", encoding="utf-8")
    before = sha256(output)
    with NominatimStub(delay=0.2) as stub:
        env = dict(os.environ, PYTHONPATH=run_geofetch.__globals__["PACKAGE_ROOT"])
        process = subprocess.Popen(
            [os.sys.executable, "-m", "geofetch", "geocode", "in.csv", "-o", "out.csv",
             "--workers", "1", "--no-cache", *stub_args(stub.url)],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while len(stub.queries) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(stub.queries) >= 5
            # mid-run: the old file is untouched, the rows go to a temporary file
            assert sha256(output) == before
            partial = [n for n in listing(tmp_path) if n.endswith(".partial")]
            assert len(partial) == 1 and partial[0].startswith(".out.csv.")
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130, err
    assert out == ""
    summary, interrupted = err.splitlines()
    assert interrupted == "geofetch: interrupted; rows done so far are written"
    done = int(summary.split(" rows:")[0])
    assert summary.startswith(f"{done} rows: {done} ok, 0 not_found, 0 invalid, 0 failed")
    assert 1 <= done < len(places)
    rows = list(csv.reader(io.StringIO(output.read_text(encoding="utf-8"))))
    assert rows == [HEADER.split(","),
                    *([p, "52.5", "13.4", f"Found: {p}", "ok", ""] for p in places[:done])]
    assert listing(tmp_path) == ["in.csv", "out.csv"]


def test_a_failed_run_leaves_the_previous_output(cli, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("id,town\n1,Berlin\n", encoding="utf-8")
    output = tmp_path / "out.csv"
    output.write_text("good\n", encoding="utf-8")
    result = cli(["geocode", source, "-o", output])
    assert result.status == 2
    assert "columns are: id, town" in one_line(result.stderr)
    assert output.read_text(encoding="utf-8") == "good\n"
    assert listing(tmp_path) == ["in.csv", "out.csv"]


def test_the_output_keeps_its_permissions(cli, tmp_path):
    source = berlin_file(tmp_path / "in.csv", rows=2)
    output = tmp_path / "out.csv"
    output.write_text("old\n", encoding="utf-8")
    output.chmod(0o640)
    result = cli(["geocode", source, "-o", output])
    assert result.status == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o640
    assert output.read_text(encoding="utf-8") == f"{HEADER}\n{BERLIN_ROW}\n{BERLIN_ROW}\n"


@pytest.mark.parametrize("existing", [True, False])
def test_a_symlink_output_stays_a_link_and_its_target_gets_the_rows(cli, tmp_path, existing):
    source = berlin_file(tmp_path / "in.csv", rows=3)
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "target.csv"
    if existing:
        target.write_text("old rows\n", encoding="utf-8")
    link = tmp_path / "link.csv"
    os.symlink(os.path.join("real", "target.csv"), link)
    result = cli(["geocode", source, "-o", link])
    assert result.status == 0
    assert link.is_symlink()
    assert os.readlink(link) == os.path.join("real", "target.csv")
    assert target.read_text(encoding="utf-8") == f"{HEADER}\n" + f"{BERLIN_ROW}\n" * 3
    assert listing(tmp_path) == ["in.csv", "link.csv", "real"]
    assert listing(tmp_path / "real") == ["target.csv"]


def test_a_fifo_output_is_written_in_place(cli, tmp_path):
    source = berlin_file(tmp_path / "in.csv", rows=500)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received: list[str] = []

    def read() -> None:
        with open(fifo, encoding="utf-8") as handle:
            received.append(handle.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    result = cli(["geocode", source, "-o", fifo])
    reader.join(timeout=60)
    assert result.status == 0
    assert received == [f"{HEADER}\n" + f"{BERLIN_ROW}\n" * 500]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert listing(tmp_path) == ["in.csv", "out.fifo"]


def test_dev_stdout_into_a_pipe(tmp_path):
    berlin_file(tmp_path / "in.csv", rows=3)
    result = run_geofetch(["geocode", "in.csv", "-o", "/dev/stdout"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{HEADER}\n" + f"{BERLIN_ROW}\n" * 3
    assert one_line(result.stderr).startswith("3 rows: 3 ok,")
    assert listing(tmp_path) == ["in.csv"]


def test_dev_stdout_appended_to_a_file(tmp_path):
    berlin_file(tmp_path / "in.csv", rows=2)
    log = tmp_path / "log.txt"
    log.write_text("earlier line\n", encoding="utf-8")
    with open(log, "a", encoding="utf-8") as appended:
        result = run_geofetch(["geocode", "in.csv", "-o", "/dev/stdout"], cwd=tmp_path,
                              stdout=appended)
    assert result.returncode == 0, result.stderr
    assert log.read_text(encoding="utf-8") == (f"earlier line\n{HEADER}\n"
                                               + f"{BERLIN_ROW}\n" * 2)
    assert listing(tmp_path) == ["in.csv", "log.txt"]


@pytest.mark.parametrize("output", [[], ["-o", "/dev/stdout"]])
def test_a_pipe_whose_reader_goes_away_ends_quietly(tmp_path, output):
    berlin_file(tmp_path / "in.csv", rows=100_000)
    command = (f"PYTHONPATH={run_geofetch.__globals__['PACKAGE_ROOT']} "
               f"{os.sys.executable} -m geofetch geocode in.csv {' '.join(output)} "
               "| head -n 2; exit ${PIPESTATUS[0]}")
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout == f"{HEADER}\n{BERLIN_ROW}\n"
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr


# -- 6. write errors -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "geojson", "table"])
def test_dev_full_is_one_line(cli, tmp_path, fmt):
    source = berlin_file(tmp_path / "in.csv", rows=3000)
    result = cli(["geocode", source, "-o", "/dev/full", "--format", fmt])
    assert result.status == 2
    assert one_line(result.stderr) == (
        "geofetch: error: cannot write /dev/full: No space left on device")


def test_standard_output_on_dev_full_is_one_line(tmp_path):
    berlin_file(tmp_path / "in.csv", rows=3000)
    with open("/dev/full", "w") as full:
        result = run_geofetch(["geocode", "in.csv"], cwd=tmp_path, stdout=full)
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "geofetch: error: cannot write standard output: No space left on device")


def test_a_disk_that_fills_mid_run_leaves_the_previous_output(cli, tmp_path, small_disk):
    source = berlin_file(tmp_path / "in.csv", rows=5000)  # ~240 kB of output
    output = small_disk / "out.csv"
    output.write_text("the previous, good output\n", encoding="utf-8")
    before = sha256(output)
    result = cli(["geocode", source, "-o", output])
    assert result.status == 2
    assert one_line(result.stderr) == (
        f"geofetch: error: cannot write {output}: No space left on device")
    assert sha256(output) == before
    assert listing(small_disk) == ["out.csv"]


def test_standard_output_into_a_full_disk(tmp_path, small_disk):
    berlin_file(tmp_path / "in.csv", rows=5000)
    with open(small_disk / "stdout.csv", "w") as redirected:
        result = run_geofetch(["geocode", "in.csv"], cwd=tmp_path, stdout=redirected)
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "geofetch: error: cannot write standard output: No space left on device")


def test_a_cache_that_fills_its_disk_is_one_line(cli, tmp_path, small_disk):
    places = [f"Place {n}" for n in range(3000)]
    source = tmp_path / "in.csv"
    source.write_text("place\n" + "\n".join(places) + "\n", encoding="utf-8")
    cache = small_disk / "cache.sqlite"
    long_name = "x" * 400
    with NominatimStub(default=lambda q: place("1", "2", f"{q} {long_name}")) as stub:
        result = cli(["geocode", source, "-o", tmp_path / "out.csv", "--cache", cache,
                      *stub_args(stub.url)])
    assert result.status == 2
    assert one_line(result.stderr) == (
        f"geofetch: error: cache {cache}: database or disk is full")
    assert len(stub.queries) < len(places)
    # the rows done before the cache filled are whole and in order
    rows = list(csv.reader(io.StringIO((tmp_path / "out.csv").read_text(encoding="utf-8"))))
    assert rows[0] == HEADER.split(",")
    assert rows[1:] == [[p, "1.0", "2.0", f"{p} {long_name}", "ok", ""]
                        for p in places[:len(rows) - 1]]


def _new_cache(path) -> None:
    SQLiteCache(path).close()


class _Lock:
    """Another program holding the cache's write lock (``BEGIN EXCLUSIVE``) for up to
    ``seconds``, or until :meth:`release`."""

    def __init__(self, path, seconds: float) -> None:
        self.path, self.seconds = path, seconds
        self.held = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("BEGIN EXCLUSIVE")
            self.held.set()
            self.stop.wait(self.seconds)
            db.execute("COMMIT")
        finally:
            db.close()

    def __enter__(self) -> _Lock:
        self.thread.start()
        assert self.held.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_a_cache_locked_for_3_seconds_is_waited_for(cli, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("place\nAlpha\nBeta\nGamma\n", encoding="utf-8")
    cache = tmp_path / "cache.sqlite"
    _new_cache(cache)
    with NominatimStub() as stub, _Lock(cache, seconds=3):
        result = cli(["geocode", source, "--cache", cache, *stub_args(stub.url)])
    assert result.status == 0, result.stderr
    assert result.stdout.splitlines() == [
        HEADER, *(f"{q},52.5,13.4,Found: {q},ok," for q in ("Alpha", "Beta", "Gamma"))]
    assert one_line(result.stderr).startswith("3 rows: 3 ok,")
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 3


def test_a_cache_locked_longer_than_the_timeout_is_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(geofetch.cache, "LOCK_TIMEOUT_SECONDS", 1.0)
    source = tmp_path / "in.csv"
    source.write_text("place\nAlpha\nBeta\n", encoding="utf-8")
    cache = tmp_path / "cache.sqlite"
    _new_cache(cache)
    with NominatimStub() as stub, _Lock(cache, seconds=8):
        result = cli(["geocode", source, "--cache", cache, *stub_args(stub.url)])
    assert result.status == 2
    assert one_line(result.stderr) == (
        f"geofetch: error: cache {cache}: database is locked (waited up to 1 s if it "
        "was locked)")


def test_sqlite_cache_lock_timeout(tmp_path):
    cache = tmp_path / "cache.sqlite"
    _new_cache(cache)
    opened = SQLiteCache(cache, lock_timeout=0.3)
    try:
        with _Lock(cache, seconds=8):
            started = time.monotonic()
            with pytest.raises(CacheError, match=r"database is locked \(waited up to 0.3 s"):
                opened.put("ns", "q", CacheEntry("ok", 1.0, 2.0, "Q"))
            assert time.monotonic() - started < 8
    finally:
        opened.close()


def test_clearing_a_locked_cache_is_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(geofetch.cache, "LOCK_TIMEOUT_SECONDS", 0.5)
    cache = tmp_path / "cache.sqlite"
    _new_cache(cache)
    with _Lock(cache, seconds=8):
        result = cli(["cache", "clear", "--cache", cache])
    assert result.status == 2
    assert one_line(result.stderr) == (
        f"geofetch: error: cache {cache}: database is locked (waited up to 0.5 s if it "
        "was locked)")


@pytest.mark.timeout(60)
def test_dev_stdout_shares_the_shells_descriptor(tmp_path):
    # Before: geofetch opened /dev/stdout anew, so the shell's next write landed over
    # the start of its rows: `{ echo before; geofetch ... -o /dev/stdout; echo after; } > f`.
    import subprocess
    import sys

    places = tmp_path / "p.csv"
    places.write_text("place\nBerlin\nOsaka\n", encoding="utf-8")
    out = tmp_path / "f.txt"
    script = (f"{{ echo before; {sys.executable} -m geofetch geocode {places} -o /dev/stdout "
              f"--no-progress 2>/dev/null; echo after; }} > {out}")
    subprocess.run(["bash", "-c", script], check=True, timeout=50,
                   env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))})
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "before" and lines[-1] == "after"
    assert lines[1] == "place,lat,lng,formatted_address,status,error"
    assert [line.split(",")[0] for line in lines[2:4]] == ["Berlin", "Osaka"]
