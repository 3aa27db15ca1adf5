"""The small base every provider builds on.

A provider is a picklable description of a service (its options, never a live
connection). Each worker gets its own copy and calls :meth:`Provider.open` once
before its first request, so sessions and clients are built once per worker and
never pickled per task. :meth:`Provider.geocode` makes exactly one request: the
engine owns retries, the shared rate limit, the budget and timeouts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Answer:
    """A provider's answer to one query: a location, or ``None`` fields for no match."""

    lat: float | None = None
    lng: float | None = None
    formatted_address: str | None = None
    raw: Any = None

    @property
    def found(self) -> bool:
        """True when the answer holds coordinates."""
        return self.lat is not None and self.lng is not None


NOT_FOUND = Answer()


class Provider(ABC):
    """A geocoding service.

    Subclasses set ``name``, ``default_rate`` (requests per second, ``None`` for no
    limit), ``uses_network`` (requests count against the rate limit and budget) and
    ``cacheable`` (answers are worth keeping in the SQLite cache).
    """

    name: ClassVar[str]
    default_rate: ClassVar[float | None] = None
    #: The most requests per second the service allows (None: no limit known);
    #: a run asking for more is refused.
    max_rate: float | None = None
    uses_network: ClassVar[bool] = True
    cacheable: ClassVar[bool] = True

    def open(self) -> None:  # noqa: B027 - optional hook
        """Build per-worker state (sessions, clients, indexes). Called once per worker."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release per-worker state."""

    @abstractmethod
    def geocode(self, query: str, *, timeout: float) -> Answer:
        """Ask one question with one request.

        Returns an :class:`Answer` (``NOT_FOUND`` fields when nothing matches) or
        raises a :class:`geofetch.exceptions.ProviderError` subclass.
        """

    def policy_warning(self) -> str | None:
        """One line to warn a user whose run goes against the service's usage policy."""
        return None

    def cache_namespace(self) -> str:
        """What, besides the query, decides the answer (provider, base URL, ...)."""
        return self.name

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in output, logs or errors (API keys)."""
        return ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
