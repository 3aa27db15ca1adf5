"""``geofetch cache stats|clear``: look into or empty the answer cache."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cache import SQLiteCache, default_cache_path
from ..exceptions import InputError
from .env import Environment


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cache", help="show or clear the answer cache",
        description="Show entries per provider and size on disk, or delete every entry.",
    )
    parser.add_argument("action", choices=("stats", "clear"))
    parser.add_argument("--cache", metavar="PATH",
                        help="cache file (default: the one a run writing to stdout uses)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    path = Path(args.cache) if args.cache else default_cache_path(None)
    if not path.exists():
        if args.action == "clear":
            env.stdout.write(f"{path}: no cache, nothing to clear\n")
            return 0
        raise InputError(f"no cache at {path}")
    cache = SQLiteCache(path)
    try:
        if args.action == "clear":
            removed = cache.clear()
            env.stdout.write(f"{path}: removed {removed} entries\n")
            return 0
        stats = cache.stats()
    finally:
        cache.close()
    env.stdout.write(f"{stats['path']}: {stats['entries']} entries, "
                     f"{_size(stats['bytes'])} on disk\n")
    for namespace, count in stats["per_namespace"].items():
        env.stdout.write(f"  {namespace}: {count}\n")
    return 0


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
