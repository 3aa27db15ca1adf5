"""Request counters: what tests and benchmarks read back, and the exit log."""

from __future__ import annotations

import threading
import time
from array import array
from collections import Counter
from typing import Any

__all__ = ["Stats", "format_per_second", "stats_from_json", "stats_to_json"]

#: Distinct queries counted by name until their lengths add up to this many characters;
#: later new ones only add to ``per_query_dropped`` (a flood of long distinct queries
#: must not grow the process without bound).
PER_QUERY_MAX_CHARS = 16 * 1024 * 1024


class Stats:
    """Request counters, written by the event loop and read from any thread.

    Times are ``time.monotonic()`` seconds; ``per_second`` keys count whole seconds
    since the start (or the last reset).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Zero every counter but ``in_flight`` (requests still being answered)."""
        with self._lock:
            self.start = time.monotonic()
            self.total = 0
            self.per_query: Counter[str] = Counter()
            self.per_query_chars = 0
            self.per_query_dropped = 0
            self.arrivals: array[float] = array("d")
            self.per_second: Counter[int] = Counter()
            self.max_in_flight = self.in_flight

    def arrive(self, now: float, query: str | None) -> None:
        """Count one API request arriving at ``now``, now in flight."""
        with self._lock:
            self.total += 1
            self.arrivals.append(now)
            self.per_second[int(now - self.start)] += 1
            if query is not None:
                per_query = self.per_query
                if query in per_query:
                    per_query[query] += 1
                elif self.per_query_chars + len(query) <= PER_QUERY_MAX_CHARS:
                    per_query[query] = 1
                    self.per_query_chars += len(query)
                else:
                    self.per_query_dropped += 1
            self.in_flight += 1
            if self.in_flight > self.max_in_flight:
                self.max_in_flight = self.in_flight

    def leave(self) -> None:
        """One request was answered (or its connection lost)."""
        with self._lock:
            self.in_flight -= 1

    def snapshot(self) -> dict[str, Any]:
        """A copy: total, per_query (Counter), per_query_dropped, arrivals (list),
        per_second ({second: count}), max_in_flight, in_flight."""
        with self._lock:
            return {
                "total": self.total,
                "per_query": Counter(self.per_query),
                "per_query_dropped": self.per_query_dropped,
                "arrivals": self.arrivals.tolist(),
                "per_second": dict(sorted(self.per_second.items())),
                "max_in_flight": self.max_in_flight,
                "in_flight": self.in_flight,
            }


def format_per_second(stats: dict[str, Any]) -> str:
    """The exit log: a total line, then one line per second that saw requests."""
    per_second: dict[int, int] = stats["per_second"]
    span = (max(per_second) + 1) if per_second else 0
    lines = [
        f"geofetch serve: {stats['total']} requests over {span} s, "
        f"at most {stats['max_in_flight']} in flight"
    ]
    lines += [f"geofetch serve:   second {s:>5}: {n} requests" for s, n in per_second.items()]
    return "\n".join(lines) + "\n"


def stats_to_json(stats: dict[str, Any]) -> dict[str, Any]:
    """A snapshot as JSON-ready values (``per_second`` keys become strings)."""
    out = dict(stats)
    out["per_query"] = dict(stats["per_query"])
    out["per_second"] = {str(k): v for k, v in stats["per_second"].items()}
    return out


def stats_from_json(payload: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`stats_to_json`."""
    out = dict(payload)
    out["per_query"] = Counter(payload["per_query"])
    out["per_second"] = {int(k): v for k, v in payload["per_second"].items()}
    return out
