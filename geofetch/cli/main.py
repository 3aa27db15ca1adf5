"""Entry point: parse arguments, run a subcommand, map errors to exit codes.

Three layers, as in httpie: :func:`main` (the process: exit status, hard exit
after an interrupt), :func:`run_cli` (parsing; usage, input and cache errors become
one line on stderr and exit 2), and each subcommand's ``run(args, env)`` (the work).
Streams come in an :class:`~geofetch.cli.env.Environment`, so tests run the CLI
in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from ..exceptions import GeofetchError
from .env import Environment, ExitStatus

SUBCOMMANDS = ("geocode", "fetch", "serve", "cache", "bench")


def build_parser() -> argparse.ArgumentParser:
    """The ``geofetch`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="geofetch",
        description="Parallel geocoding and scraping under one shared rate limit.",
    )
    parser.add_argument("--version", action="version", version=f"geofetch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    return parser


def run_cli(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run one command; return its exit status (never raises for bad input)."""
    env = env or Environment()
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(env.stdout), contextlib.redirect_stderr(env.stderr):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, or a usage error
        return int(exc.code or 0) if not isinstance(exc.code, str) else ExitStatus.USAGE
    try:
        return int(args.func(args, env))
    except GeofetchError as exc:
        env.stderr.write(f"geofetch: error: {exc}\n")
        return ExitStatus.USAGE
    except KeyboardInterrupt:
        env.stderr.write("geofetch: interrupted\n")
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (| head): not an error of ours.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return ExitStatus.OK


def main(argv: Sequence[str] | None = None) -> None:
    """The ``geofetch`` console script."""
    status = run_cli(argv)
    if status in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
        # Rows and cache are flushed; don't wait for worker threads stuck in a request.
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
