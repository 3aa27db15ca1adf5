"""The answer cache: SQLite on disk, so runs resume where they stopped.

A cache file that is locked by another program is waited for up to
``lock_timeout`` seconds (default :data:`LOCK_TIMEOUT_SECONDS`, read when the cache
is opened); one that stays locked, fills its disk or breaks raises
:class:`~geofetch.exceptions.CacheError` naming the file and SQLite's reason (the
CLI's one line, exit 2).

Only ``ok`` and ``not_found`` answers are kept, keyed by a namespace (provider and
the settings that change its answers, such as the base URL) and the normalised
query. Only the parent process reads and writes the cache; writes are committed
in batches of ``batch_size`` answers (default 1: a commit in WAL mode costs about
0.1 ms, nothing beside a network request) or every ``batch_seconds``, so a run
killed by SIGKILL loses at most its last batch, and re-running the same command
asks the provider only for what is missing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exceptions import CacheError

#: Format 2 added the ``fields`` column (the address fields, JSON); a format-1 file is
#: upgraded in place when opened (its entries have no fields).
SCHEMA_VERSION = 2
_SELECT_WITH_RAW = ("SELECT status, lat, lng, formatted_address, raw, fields FROM answers "
                    "WHERE namespace = ? AND query = ?")
_SELECT_WITHOUT_RAW = ("SELECT status, lat, lng, formatted_address, NULL, fields FROM answers "
                       "WHERE namespace = ? AND query = ?")
DEFAULT_FILENAME = ".geofetch-cache.sqlite"
#: Seconds a locked cache file is waited for before the run gives up on it.
LOCK_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class CacheEntry:
    """One stored answer; ``fields`` the address fields by name (None: none kept)."""

    status: str
    lat: float | None
    lng: float | None
    formatted_address: str | None
    raw: Any = None
    fields: dict[str, Any] | None = None


class SQLiteCache:
    """Answers in a SQLite file (WAL mode), committed in small batches."""

    def __init__(self, path: str | os.PathLike[str], *, batch_size: int = 1,
                 batch_seconds: float = 1.0,
                 lock_timeout: float | None = None) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        # read when the cache is opened, not when this module was imported
        self.lock_timeout = LOCK_TIMEOUT_SECONDS if lock_timeout is None else lock_timeout
        self._unsaved = 0
        self._last_commit = time.monotonic()
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), isolation_level="DEFERRED",
                                       timeout=self.lock_timeout)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._prepare()
        except sqlite3.OperationalError as exc:
            raise self._error(exc) from None
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"cache {self.path} is not a usable geofetch cache ({exc}); "
                             "remove it or pass --no-cache") from None
        except OSError as exc:
            raise CacheError(f"cannot open cache {self.path}: {exc.strerror or exc}") from None

    def _prepare(self) -> None:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables - {"meta"}:
                raise CacheError(f"cache {self.path} was not written by geofetch; "
                                 "remove it or pass --no-cache")
            db.execute(
                "CREATE TABLE answers (namespace TEXT NOT NULL, query TEXT NOT NULL, "
                "status TEXT NOT NULL, lat REAL, lng REAL, formatted_address TEXT, raw TEXT, "
                "stored_at REAL NOT NULL, fields TEXT, PRIMARY KEY (namespace, query))"
            )
            db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            db.commit()
        elif row[0] == "1":
            db.execute("ALTER TABLE answers ADD COLUMN fields TEXT")
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                       (str(SCHEMA_VERSION),))
            db.commit()
        elif row[0] != str(SCHEMA_VERSION):
            raise CacheError(f"cache {self.path} has format {row[0]}, this geofetch reads "
                             f"format {SCHEMA_VERSION}; remove it or pass --cache NEWPATH")

    def _error(self, exc: sqlite3.Error) -> CacheError:
        return CacheError(f"cache {self.path}: {exc} (waited up to "
                          f"{self.lock_timeout:g} s if it was locked)"
                          if "locked" in str(exc) else f"cache {self.path}: {exc}")

    def get(self, namespace: str, key: str, *, raw: bool = True) -> CacheEntry | None:
        """The stored answer, or None; ``raw=False`` skips decoding the provider's JSON."""
        try:
            row = self._db.execute(
                _SELECT_WITH_RAW if raw else _SELECT_WITHOUT_RAW, (namespace, key)
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        if row is None:
            return None
        decoded = json.loads(row[4]) if raw and row[4] else None
        fields = json.loads(row[5]) if row[5] else None
        return CacheEntry(row[0], row[1], row[2], row[3], decoded,
                          fields if isinstance(fields, dict) else None)

    def put(self, namespace: str, key: str, entry: CacheEntry) -> None:
        """Store one answer (committed in batches); raise CacheError if it cannot be."""
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO answers (namespace, query, status, lat, lng, "
                "formatted_address, raw, stored_at, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (namespace, key, entry.status, entry.lat, entry.lng, entry.formatted_address,
                 json.dumps(entry.raw, ensure_ascii=False) if entry.raw is not None else None,
                 time.time(),
                 json.dumps(entry.fields, ensure_ascii=False) if entry.fields else None),
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        self._unsaved += 1
        if (self._unsaved >= self.batch_size
                or time.monotonic() - self._last_commit >= self.batch_seconds):
            self.flush()

    def flush(self) -> None:
        """Commit what is not yet on disk."""
        if self._unsaved:
            try:
                self._db.commit()
            except sqlite3.Error as exc:
                raise self._error(exc) from None
        self._unsaved = 0
        self._last_commit = time.monotonic()

    def stats(self) -> dict[str, Any]:
        """Entries per namespace and the size on disk in bytes."""
        try:
            per_namespace = dict(self._db.execute(
                "SELECT namespace, COUNT(*) FROM answers GROUP BY namespace ORDER BY namespace"))
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        size = sum(p.stat().st_size for p in self._files() if p.exists())
        return {"path": str(self.path), "entries": sum(per_namespace.values()),
                "per_namespace": per_namespace, "bytes": size}

    def clear(self) -> int:
        """Delete every entry; return how many there were."""
        try:
            count = self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            self._db.execute("DELETE FROM answers")
            self._db.commit()
            self._db.execute("VACUUM")
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        return int(count)

    def _files(self) -> list[Path]:
        return [self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")]

    def close(self) -> None:
        """Commit and close (a failed commit still closes, then raises CacheError)."""
        try:
            self.flush()
        finally:
            try:
                self._db.close()
            except sqlite3.ProgrammingError:
                pass


Cache = SQLiteCache


def user_cache_dir() -> Path:
    """``$GEOFETCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/geofetch``, else ``~/.cache/geofetch``."""
    if os.environ.get("GEOFETCH_CACHE_DIR"):
        return Path(os.environ["GEOFETCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "geofetch"


def default_cache_path(output: str | None) -> Path:
    """Beside OUTPUT when writing to a file, else in the user cache directory."""
    if output and output != "-":
        return Path(output).resolve().parent / DEFAULT_FILENAME
    return user_cache_dir() / "cache.sqlite"


def open_cache(cache: Any) -> Cache | None:
    """Library ``cache=``: a path opens a SQLite cache, ``None``/``False`` none at all."""
    if cache is None or cache is False:
        return None
    if isinstance(cache, SQLiteCache):
        return cache
    if isinstance(cache, str | os.PathLike):
        return SQLiteCache(cache)
    raise CacheError(f"cache must be a path, None or False, not {type(cache).__name__}")
