"""Geocoding providers, one module per service, looked up by name.

The classes are imported lazily so that ``import geofetch`` stays fast.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

from ..exceptions import UsageError
from .base import Answer, Provider

if TYPE_CHECKING:
    from .google import GoogleProvider
    from .nominatim import NominatimProvider
    from .offline import OfflineProvider

__all__ = [
    "Answer",
    "GoogleProvider",
    "NominatimProvider",
    "OfflineProvider",
    "PROVIDERS",
    "Provider",
    "get_provider",
]

#: Provider name -> (module, class name).
PROVIDERS = {
    "offline": ("offline", "OfflineProvider"),
    "google": ("google", "GoogleProvider"),
    "nominatim": ("nominatim", "NominatimProvider"),
}
_CLASSES = {cls: mod for mod, cls in PROVIDERS.values()}


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        module = importlib.import_module(f"{__name__}.{_CLASSES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_provider(provider: str | Provider, **options: Any) -> Provider:
    """Return ``provider`` if it is an instance, else build the one named so.

    ``options`` (``key``, ``base_url``, ...) go to the class; ``None`` values are
    dropped so each class keeps its own defaults.
    """
    if isinstance(provider, Provider):
        return provider
    if provider not in PROVIDERS:
        raise UsageError(
            f"unknown provider {provider!r}; choose one of: {', '.join(PROVIDERS)}"
        )
    module_name, class_name = PROVIDERS[provider]
    cls: type[Provider] = getattr(importlib.import_module(f"{__name__}.{module_name}"), class_name)
    given = {k: v for k, v in options.items() if v is not None}
    accepted = inspect.signature(cls).parameters
    for name in given:
        if name not in accepted:
            raise UsageError(f"the {provider} provider takes no {name.replace('_', '-')} option")
    return cls(**given)
