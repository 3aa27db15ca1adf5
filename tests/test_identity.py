"""geofetch names itself, and keeps the public Nominatim's usage policy (issue 16, 6)."""

from __future__ import annotations

import pytest

from geofetch import __version__, geocode_many
from geofetch.exceptions import UsageError
from geofetch.testing.servers import Reply, ScriptedServer


def _one_place(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("Berlin\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("rate", ["5", "1.5", "0"])
def test_the_public_nominatim_refuses_more_than_one_request_a_second(cli, tmp_path, rate):
    result = cli(["geocode", _one_place(tmp_path), "--provider", "nominatim",
                  "--rate", rate, "--email", "me@example.org"])
    assert result.status == 2
    assert result.stderr.count("\n") == 1
    assert "more than this service allows (1 per second, by its usage policy)" in result.stderr
    with pytest.raises(UsageError, match="1 per second"):
        geocode_many(["Berlin"], provider="nominatim", rate=float(rate))


def test_the_public_nominatim_warns_a_run_that_does_not_identify_itself(cli, tmp_path):
    missing = tmp_path / "missing.txt"  # the run stops there: no request leaves
    result = cli(["geocode", missing, "--provider", "nominatim"])
    lines = result.stderr.splitlines()
    assert result.status == 2
    assert lines[0].startswith("geofetch: warning: the public Nominatim asks each "
                               "application to identify itself")
    assert "operations.osmfoundation.org/policies/nominatim" in lines[0]
    assert lines[1].startswith("geofetch: error: no such file")
    quiet = cli(["geocode", missing, "--provider", "nominatim", "--email", "me@example.org"])
    assert "warning" not in quiet.stderr


@pytest.mark.timeout(60)
def test_user_agent_and_email_reach_nominatim_from_flags_or_environment(cli, tmp_path,
                                                                        monkeypatch):
    with ScriptedServer(Reply.json([])) as server:
        cli(["geocode", _one_place(tmp_path), "--provider", "nominatim", "--base-url",
             server.url, "--no-cache"])
        cli(["geocode", _one_place(tmp_path), "--provider", "nominatim", "--base-url",
             server.url, "--no-cache", "--user-agent", "atlas/2.0 (ops@example.org)",
             "--email", "me@example.org"])
        monkeypatch.setenv("GEOFETCH_USER_AGENT", "envbot/1.0")
        monkeypatch.setenv("GEOFETCH_EMAIL", "env@example.org")
        cli(["geocode", _one_place(tmp_path), "--provider", "nominatim", "--base-url",
             server.url, "--no-cache"])
        seen = list(server.requests)
    assert len(seen) == 3
    assert seen[0].headers["user-agent"].startswith(f"geofetch/{__version__} ")
    assert "email=" not in seen[0].target
    assert seen[1].headers["user-agent"] == "atlas/2.0 (ops@example.org)"
    assert "email=me%40example.org" in seen[1].target
    assert seen[2].headers["user-agent"] == "envbot/1.0"
    assert "email=env%40example.org" in seen[2].target


@pytest.mark.timeout(60)
def test_fetch_sends_the_user_agent_and_the_contact(cli, tmp_path):
    with ScriptedServer(Reply(status=404), Reply(body=b"<title>x</title>",
                                                headers=[("Content-Type", "text/html")])
                        ) as server:
        urls = tmp_path / "urls.txt"
        urls.write_text(f"{server.url}/page\n", encoding="utf-8")
        result = cli(["fetch", urls, "--user-agent", "atlas/2.0", "--email", "me@example.org"])
        agents = [request.headers["user-agent"] for request in server.requests]
    assert result.status == 0, result.stderr
    assert agents == ["atlas/2.0 (+mailto:me@example.org)"] * 2  # robots.txt, then the page


def test_the_google_provider_takes_no_user_agent(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", "AIzaSyTEST-identity-key")
    result = cli(["geocode", _one_place(tmp_path), "--provider", "google",
                  "--user-agent", "x/1"])
    assert result.status == 2
    assert "the google provider takes no user-agent option" in result.stderr
