"""``--user-agent`` and ``--email``: how geofetch names itself to the servers it asks
(Nominatim's usage policy asks for one or the other; sites' operators look for a
contact in a crawler's User-Agent)."""

from __future__ import annotations

import argparse

from ..options import DEFAULT_USER_AGENT

#: Environment variables that stand in for the flags.
USER_AGENT_ENV = "GEOFETCH_USER_AGENT"
EMAIL_ENV = "GEOFETCH_EMAIL"
DEFAULT_AGENT = DEFAULT_USER_AGENT


def add_identity_options(parser: argparse.ArgumentParser) -> None:
    """The ``--user-agent`` and ``--email`` flags."""
    parser.add_argument("--user-agent", metavar="UA",
                        help=f"User-Agent to send (default: {DEFAULT_USER_AGENT!r}; "
                             f"or ${USER_AGENT_ENV})")
    parser.add_argument("--email", metavar="ADDRESS",
                        help=f"a contact address for the servers' operators (or "
                             f"${EMAIL_ENV}): Nominatim's email parameter; for fetch, in "
                             "the User-Agent")
