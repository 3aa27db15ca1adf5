"""``ServerConfig``: how the local server behaves, and the paths it answers."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..exceptions import UsageError

__all__ = [
    "DEFAULT_IDLE_TIMEOUT_SECONDS",
    "DEFAULT_MEMO_BYTES",
    "GOOGLE_PATH",
    "KEY_ENV",
    "NOMINATIM_PATH",
    "NOMINATIM_REVERSE_PATH",
    "PARENT_ENV",
    "RESET_PATH",
    "STATS_PATH",
    "ServerConfig",
]

GOOGLE_PATH = "/maps/api/geocode/json"
NOMINATIM_PATH = "/search"
NOMINATIM_REVERSE_PATH = "/reverse"
#: Kilometres beyond which the nearest city answers no reverse request (mid-ocean).
REVERSE_MAX_KM = 50.0
STATS_PATH = "/_geofetch/stats"
RESET_PATH = "/_geofetch/reset"
#: The environment variable ``geofetch serve`` reads its key from (never argv: ps shows it).
KEY_ENV = "GEOFETCH_SERVE_KEY"
#: Set by ``LocalServer(subprocess=True)``: the child stops when this parent is gone.
PARENT_ENV = "GEOFETCH_SERVE_PARENT_PID"

DEFAULT_IDLE_TIMEOUT_SECONDS = 30.0
DEFAULT_MEMO_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """How the server behaves.

    ``latency_seconds`` is added to every API request; ``fail_rate`` (0 to 1) is the
    fraction answered with HTTP 500, drawn from ``random.Random(seed)`` in arrival
    order; ``rate_limit`` is requests per second (``None``: unlimited; a token bucket
    of one second's worth, see :class:`~geofetch.server.app.TokenBucket`), past which
    Google gets ``OVER_QUERY_LIMIT`` and Nominatim HTTP 429; ``key`` (``None``: any)
    is the API key Google requests must carry.

    ``idle_timeout_seconds`` (default 30) closes a connection that has had no whole
    request to answer for that long (kept-alive and idle, or trickling a request);
    ``memo_bytes`` (default 32 MiB) bounds the memo of encoded answers, counted as
    the bytes of each query plus its answer; ``max_connections`` (``None``: the
    process's open-file limit less a reserve) is how many connections are kept
    before the longest idle one is closed to admit a new one.
    """

    latency_seconds: float = 0.0
    fail_rate: float = 0.0
    rate_limit: float | None = None
    key: str | None = None
    seed: int | None = None
    idle_timeout_seconds: float = DEFAULT_IDLE_TIMEOUT_SECONDS
    memo_bytes: int = DEFAULT_MEMO_BYTES
    max_connections: int | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.latency_seconds) or self.latency_seconds < 0:
            raise UsageError(f"latency must be 0 or more seconds, not {self.latency_seconds}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise UsageError(f"fail rate must be between 0 and 1, not {self.fail_rate}")
        if self.rate_limit is not None and (
            not math.isfinite(self.rate_limit) or self.rate_limit <= 0
        ):
            raise UsageError(
                f"rate limit must be a positive number of requests per second, "
                f"not {self.rate_limit}"
            )
        if not math.isfinite(self.idle_timeout_seconds) or self.idle_timeout_seconds <= 0:
            raise UsageError(
                f"idle timeout must be a positive number of seconds, "
                f"not {self.idle_timeout_seconds}"
            )
        if self.memo_bytes < 0:
            raise UsageError(f"memo size must be 0 or more bytes, not {self.memo_bytes}")
        if self.max_connections is not None and self.max_connections < 1:
            raise UsageError(f"max connections must be 1 or more, not {self.max_connections}")

    def __repr__(self) -> str:  # never show the key
        key = "None" if self.key is None else "'***'"
        return (
            f"ServerConfig(latency_seconds={self.latency_seconds!r}, "
            f"fail_rate={self.fail_rate!r}, rate_limit={self.rate_limit!r}, "
            f"key={key}, seed={self.seed!r}, "
            f"idle_timeout_seconds={self.idle_timeout_seconds!r}, "
            f"memo_bytes={self.memo_bytes!r}, max_connections={self.max_connections!r})"
        )
