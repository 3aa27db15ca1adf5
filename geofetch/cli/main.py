"""Entry point: parse arguments, run a subcommand, map errors to exit codes.

Three layers, as in httpie: :func:`main` (the process: exit status, hard exit
after an interrupt), :func:`run_cli` (parsing; every exception becomes one line on
stderr and the exit status of :data:`~geofetch.cli.env.EXIT_STATUS_FOR`: 2 for
usage, input and cache errors, 70 with ``geofetch: internal error: ...`` for a bug,
the traceback only with ``-v``), and each subcommand's ``run(args, env)`` (the work).
Streams come in an :class:`~geofetch.cli.env.Environment`, so tests run the CLI
in-process.

Subcommand modules import only light modules at the top; each ``run`` imports what
its work needs, so ``geofetch serve`` never loads an HTTP client or HTML parser.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import select
import sys
import traceback
from collections.abc import Sequence
from typing import IO, NoReturn

from .._version import __version__
from ..exceptions import describe
from ..redact import redact
from .env import Environment, ExitStatus, exit_status_for

SUBCOMMANDS = ("geocode", "reverse", "fetch", "serve", "cache", "bench")


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (the usage block is ``--help``'s)."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {message} "
                                    f"(see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``geofetch`` parser with every subcommand."""
    parser = Parser(
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
    except BrokenPipeError as exc:
        if not reader_gone(env.stdout):
            # Some other pipe or socket (a dead forkserver's, a server's): a failure,
            # never `| head` going away, or a run would end 0 with rows not written.
            return report(exc, env, verbose=getattr(args, "verbose", 0))
        # The reader went away (| head): not an error of ours.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return ExitStatus.OK
    except BaseException as exc:  # noqa: BLE001 - every failure: one line and its status
        if isinstance(exc, SystemExit):
            raise
        return report(exc, env, verbose=getattr(args, "verbose", 0))


def reader_gone(stream: IO[str]) -> bool:
    """Whether ``stream`` is a pipe whose reading end was closed (``| head`` ended):
    ``poll`` reports ``POLLERR`` for it. False for a file, a terminal, a stream
    without a descriptor, and where ``poll`` is missing."""
    try:
        fd = stream.fileno()
        poller = select.poll()
    except (AttributeError, OSError, ValueError):
        return False
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def report(exc: BaseException, env: Environment, *, verbose: int = 0) -> int:
    """Write the one line an exception deserves; return its exit status."""
    status = exit_status_for(exc)
    if status in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
        env.stderr.write("geofetch: interrupted\n")
    elif status == ExitStatus.INTERNAL:
        if verbose:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            env.stderr.write(redact(text))
            env.stderr.write(f"geofetch: internal error: {redact(_plain(exc))}\n")
        else:
            env.stderr.write(f"geofetch: internal error: {redact(_plain(exc))} "
                             "(a bug: -v shows the traceback)\n")
    else:
        env.stderr.write(f"geofetch: error: {exc}\n")
    return status


def _plain(exc: BaseException) -> str:
    return describe(exc).removeprefix("TaskError: ")


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
