"""argparse value types shared by every subcommand: numbers with their bounds."""

from __future__ import annotations

import argparse
import math


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number of at least 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number of at least 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (the message says so for 0 and for negatives alike)."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def fraction(text: str) -> float:
    """A number from 0 to 1."""
    value = _float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def port(text: str) -> int:
    """A TCP port number, 0 for any free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, not {text}")
    return value


def provider_name(text: str) -> str:
    """``offline``, ``google``, ``nominatim`` or ``geopy:NAME`` (NAME as geopy's
    ``get_geocoder_for_service`` knows it); any other lists the valid ones."""
    from ..exceptions import UsageError
    from ..providers import GEOPY_PREFIX, PROVIDERS, geopy_names

    if text in PROVIDERS:
        return text
    if text.lower().startswith(GEOPY_PREFIX):
        name = text[len(GEOPY_PREFIX):].lower()
        try:
            names = geopy_names()
        except UsageError as exc:  # geopy is not installed
            raise argparse.ArgumentTypeError(str(exc)) from None
        if name not in names:
            raise argparse.ArgumentTypeError(
                f"unknown geopy geocoder {name!r}; choose one of: {', '.join(names)}")
        return GEOPY_PREFIX + name
    raise argparse.ArgumentTypeError(
        f"unknown provider {text!r}; choose one of: {', '.join(PROVIDERS)} or "
        f"{GEOPY_PREFIX}NAME")


def provider_option(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (a geopy geocoder's constructor argument) as ``(KEY, VALUE)``;
    the value stays text (the provider reads it as its argument's type)."""
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals or not name.isidentifier():
        # the text itself is not echoed: it may be a key typed in the wrong place
        raise argparse.ArgumentTypeError("not KEY=VALUE (such as domain=127.0.0.1:8080)")
    return name, value
