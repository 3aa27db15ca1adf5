"""Geocoding providers, one module per service, looked up by name.

``offline``, ``google`` and ``nominatim`` are geofetch's own; ``geopy:NAME`` runs
geopy's geocoder NAME (:mod:`geofetch.providers.geopy`, the ``geopy`` extra). The
classes are imported lazily so that ``import geofetch`` stays fast.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

from ..exceptions import UsageError
from .base import Answer, Provider

if TYPE_CHECKING:
    from .geopy import GeopyProvider
    from .google import GoogleProvider
    from .nominatim import NominatimProvider
    from .offline import OfflineProvider

__all__ = [
    "GEOPY_PREFIX",
    "Answer",
    "GeopyProvider",
    "GoogleProvider",
    "NominatimProvider",
    "OfflineProvider",
    "PROVIDERS",
    "Provider",
    "get_provider",
    "geopy_names",
]

#: Provider name -> (module, class name).
PROVIDERS = {
    "offline": ("offline", "OfflineProvider"),
    "google": ("google", "GoogleProvider"),
    "nominatim": ("nominatim", "NominatimProvider"),
}
_CLASSES = {cls: mod for mod, cls in PROVIDERS.values()} | {"GeopyProvider": "geopy"}
#: ``geopy:NAME`` names geopy's geocoder NAME (``geopy:photon``).
GEOPY_PREFIX = "geopy:"


def geopy_names() -> tuple[str, ...]:
    """The NAMEs ``geopy:NAME`` takes (geopy's ``get_geocoder_for_service`` names),
    sorted; a :class:`UsageError` when geopy is not installed."""
    from .geopy import geocoder_names

    return geocoder_names()


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        module = importlib.import_module(f"{__name__}.{_CLASSES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_provider(provider: str | Provider, **options: Any) -> Provider:
    """Return ``provider`` if it is an instance, else build the one named so.

    ``options`` (``key``, ``base_url``, ...) go to the class; ``None`` values are
    dropped so each class keeps its own defaults. ``"geopy:NAME"`` builds a
    :class:`~geofetch.providers.geopy.GeopyProvider` for geopy's geocoder NAME (its
    constructor arguments in ``options={...}``). Raises :class:`UsageError` for an
    unknown name (listing the valid ones) or an option the provider does not take.
    """
    if isinstance(provider, Provider):
        return provider
    given = {k: v for k, v in options.items() if v is not None}
    if isinstance(provider, str) and provider.lower().startswith(GEOPY_PREFIX):
        from .geopy import GeopyProvider

        _check_options(provider, GeopyProvider, given)
        return GeopyProvider(provider[len(GEOPY_PREFIX):], **given)
    if provider not in PROVIDERS:
        raise UsageError(
            f"unknown provider {provider!r}; choose one of: {', '.join(PROVIDERS)} "
            f"or {GEOPY_PREFIX}NAME"
        )
    if "options" in given:
        raise UsageError(f"provider options are for {GEOPY_PREFIX}NAME providers, "
                         f"not {provider}")
    module_name, class_name = PROVIDERS[provider]
    cls: type[Provider] = getattr(importlib.import_module(f"{__name__}.{module_name}"), class_name)
    _check_options(provider, cls, given)
    return cls(**given)


def _check_options(provider: str, cls: type[Provider], given: dict[str, Any]) -> None:
    accepted = inspect.signature(cls).parameters
    for name in given:
        if name not in accepted:
            raise UsageError(f"the {provider} provider takes no {name.replace('_', '-')} option")
