"""`geofetch serve --help` names every endpoint the server answers: forward and
reverse, Google and Nominatim, and the country filters."""

from __future__ import annotations

from geofetch.server import GOOGLE_PATH, NOMINATIM_PATH
from geofetch.server.config import REVERSE_MAX_KM


def test_serve_help_describes_forward_and_reverse_endpoints(cli):
    out = cli(["serve", "--help"])
    assert out.status == 0
    text = " ".join(out.stdout.split())
    for part in (GOOGLE_PATH, "?address=", "?latlng=", NOMINATIM_PATH, "/reverse?lat=&lon=",
                 "components=country:", "countrycodes=", f"{REVERSE_MAX_KM:g} km"):
        assert part in text, part
