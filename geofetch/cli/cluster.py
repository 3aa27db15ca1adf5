"""The flags of a run on a cluster (``--scheduler``, ``--chunk``) and of the shared gate
(``--gate``, ``--gate-name``), with their environment variables."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from .argtypes import positive_int

#: The environment variable naming the gate when ``--gate`` is not given.
GATE_ENV = "GEOFETCH_REDIS_URL"
#: dask's own variable for the scheduler address (used with ``--executor dask``).
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``--scheduler``, ``--chunk``, ``--gate`` and ``--gate-name``."""
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="with --executor dask: run on this dask scheduler's workers "
                             f"(default: ${SCHEDULER_ENV}, else a local cluster of "
                             "--workers processes x --threads threads); needs --gate")
    parser.add_argument("--chunk", type=positive_int, metavar="N",
                        help="with --executor dask: rows per dask task (default 25)")
    parser.add_argument("--gate", metavar="redis://HOST:PORT/DB",
                        help="keep the rate limit, budget and abort on this Redis server, "
                             f"shared by every worker on every machine (default: ${GATE_ENV})")
    parser.add_argument("--gate-name", metavar="NAME",
                        help="runs with the same name share one rate limit (default: "
                             "the run's own)")


def cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~geofetch.options.RunOptions` fields these flags set (and, for a
    dask run without ``-v``, dask's own log lines silenced: stderr stays geofetch's)."""
    if args.executor == "dask" and not args.verbose:
        quiet_dask_logs()
    scheduler = args.scheduler
    if scheduler is None and args.executor == "dask":
        scheduler = os.environ.get(SCHEDULER_ENV) or None
    return {"scheduler": scheduler, "chunk": args.chunk,
            "gate": args.gate or os.environ.get(GATE_ENV) or None,
            "gate_name": args.gate_name}


def quiet_dask_logs() -> None:
    """Raise dask's loggers to CRITICAL: a worker lost and replaced, a scheduler gone,
    are reported by geofetch in its rows and its one line, not as dask tracebacks."""
    try:
        import distributed  # noqa: F401 - importing it sets its loggers' levels first
    except ImportError:
        return  # the run will say that the extra is missing
    for name in ("distributed", "distributed.client", "distributed.gc", "tornado",
                 "tornado.application"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
