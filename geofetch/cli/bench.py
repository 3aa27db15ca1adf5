"""``geofetch bench``: not built yet."""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    subparsers.add_parser("bench", help="(not built yet)")
