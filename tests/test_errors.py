"""The error tree, the class names rows carry, exit statuses, and option checks."""

from __future__ import annotations

import builtins
import inspect
import pickle
import re

import pytest

from geofetch import RunOptions, UsageError, exceptions, fetch_many, geocode_many, iter_geocode
from geofetch.cli.env import EXIT_STATUS_FOR, ExitStatus, Terminated, exit_status_for

from .fakes import FakeProvider

CLASSES = {name: cls for name, cls in vars(exceptions).items()
           if inspect.isclass(cls) and issubclass(cls, BaseException)
           and cls.__module__ == exceptions.__name__}


def test_the_docstring_draws_every_class_of_the_tree_and_no_other():
    drawn = set(re.findall(r"[├└]── ([A-Za-z]+)", exceptions.__doc__ or ""))
    drawn.add("GeofetchError")
    assert drawn == set(CLASSES)


def test_a_leaf_named_after_a_builtin_is_one():
    clashes = {name for name in CLASSES if hasattr(builtins, name)}
    assert clashes == {"ConnectionError"} | ({"TimeoutError"} & clashes)
    for name in clashes:
        assert issubclass(CLASSES[name], getattr(builtins, name))
    assert issubclass(exceptions.Timeout, TimeoutError)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_error_survives_pickling(name):
    error = CLASSES[name]("some message")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == "some message"


@pytest.mark.timeout(120)
def test_every_class_name_a_row_carries_is_a_geofetch_error():
    rows = geocode_many(["Berlin", "boom", "", "x" * 1001, "exit", "unpicklable", "die",
                         "die"], provider=FakeProvider(), executor="process", workers=2)
    rows += fetch_many(["not a url", "", "ftp://example.com/", "http://127.0.0.1:9/x"],
                       retries=0, timeout=2, ignore_robots=True)
    errors = [r.error for r in rows if r.error]
    assert len(errors) == 11
    for error in errors:
        name = error.split(":", 1)[0]
        assert name in CLASSES, error
    assert "TaskError: RuntimeError: kaboom" in errors
    assert any(e.startswith("WorkerDied: ") for e in errors)
    assert any(e.startswith("UnpicklableResult: ") for e in errors)
    assert any(e.startswith("InvalidQuery: ") for e in errors)
    assert any(e.startswith("InvalidURL: ") for e in errors)
    assert any(e.startswith("ConnectionError: ") for e in errors)


# -- exit statuses ------------------------------------------------------------------------


def test_exit_statuses_come_from_one_table():
    assert exit_status_for(Terminated()) == ExitStatus.TERMINATED == 143
    assert exit_status_for(KeyboardInterrupt()) == ExitStatus.INTERRUPTED == 130
    assert exit_status_for(exceptions.RequestDenied("no")) == ExitStatus.ABORTED == 3
    assert exit_status_for(exceptions.InputError("no")) == ExitStatus.USAGE == 2
    assert exit_status_for(UsageError("no")) == ExitStatus.USAGE
    assert exit_status_for(ZeroDivisionError()) == ExitStatus.INTERNAL == 70
    assert [cls for cls, _ in EXIT_STATUS_FOR][0] is Terminated  # before KeyboardInterrupt


def test_an_unexpected_exception_is_one_line_and_exit_70(cli, monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in geofetch")

    monkeypatch.setattr("geofetch.cli.common.open_table", broken)
    places = tmp_path / "p.txt"
    places.write_text("Berlin\n", encoding="utf-8")
    result = cli(["geocode", places])
    assert result.status == 70
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("geofetch: internal error: ZeroDivisionError: a bug in")
    assert "Traceback" not in result.stderr
    verbose = cli(["geocode", places, "-v"])
    assert verbose.status == 70
    assert "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.rstrip().splitlines()[-1].startswith("geofetch: internal error:")


# -- options are checked before anything runs ----------------------------------------------


@pytest.mark.parametrize(("option", "value"), [
    ("timeout", -1), ("timeout", 0), ("timeout", float("nan")), ("timeout", None),
    ("retries", -1), ("retries", None), ("retries", 1.5), ("retries", True),
    ("workers", 0), ("workers", "4"), ("rate", -2), ("rate", float("inf")),
    ("max_requests", -1), ("executor", "fork"), ("cache", 42), ("progress", "yes"),
])
def test_a_bad_option_is_a_usage_error_naming_it_before_any_request(option, value):
    asked = []

    class Recording(FakeProvider):
        def geocode(self, query, *, timeout):
            asked.append(query)
            return super().geocode(query, timeout=timeout)

    with pytest.raises(UsageError, match=rf"^{option} must be"):
        geocode_many(["Berlin"], provider=Recording(), **{option: value})
    with pytest.raises(UsageError, match=rf"^{option} must be"):
        iter_geocode(["Berlin"], provider=Recording(), **{option: value})
    with pytest.raises(UsageError, match=rf"^{option} must be"):
        RunOptions(**{option: value})
    assert asked == []


def test_rate_none_means_the_default_in_geocode_and_fetch_and_zero_none():
    from geofetch import fetch_job, geocode_job

    own = "http://nominatim.example.org"  # a self-hosted one: no policy caps its rate
    assert geocode_job([], provider="nominatim").rate == 1.0
    assert geocode_job([], provider="nominatim", base_url=own).rate == 1.0
    assert geocode_job([], provider="offline").rate is None
    assert geocode_job([], provider="nominatim", base_url=own,
                       options=RunOptions(rate=0)).rate is None
    assert geocode_job([], provider="nominatim", base_url=own,
                       options=RunOptions(rate=5)).rate == 5
    assert fetch_job([]).rate is None
    assert fetch_job([], options=RunOptions(rate=0)).rate is None
    assert fetch_job([], options=RunOptions(rate=3)).rate == 3


def test_public_signatures_are_keyword_only_and_typed():
    from geofetch import fetch_many, iter_fetch
    from geofetch.pandas import geocode_dataframe

    for function in (geocode_many, iter_geocode, fetch_many, iter_fetch, geocode_dataframe):
        signature = inspect.signature(function)
        kinds = [p.kind for p in signature.parameters.values()]
        assert inspect.Parameter.VAR_KEYWORD not in kinds, function.__name__
        assert kinds.count(inspect.Parameter.KEYWORD_ONLY) >= 8, function.__name__
        for parameter in signature.parameters.values():
            assert parameter.annotation is not inspect.Parameter.empty, (function, parameter)


@pytest.mark.parametrize("argv", [
    ["geocode", "x.csv", "--workers", "0"], ["geocode", "x.csv", "--timeout", "-1"],
    ["geocode", "x.csv", "--format", "bogus"], ["geocode", "x.csv", "--rate", "abc"],
    ["bench", "--workers", "0"], ["nope"], [],
])
def test_a_usage_error_is_one_line_and_exit_2(cli, argv):
    # Before: argparse printed its whole usage block above the error.
    result = cli(argv)
    assert result.status == 2
    assert result.stderr.count("\n") == 1
    assert ": error: " in result.stderr and "--help" in result.stderr


def test_a_second_column_is_joined_not_dropped(cli, tmp_path):
    # Issue 15: a repeated --column joins the cells (it was refused, and before that
    # silently dropped); a missing one names the columns that exist.
    path = tmp_path / "split.csv"
    path.write_text("a,b\nSpringfield,IL\n", encoding="utf-8")
    result = cli(["geocode", path, "--column", "a", "--column", "b"])
    assert result.status == 0, result.stderr
    assert "Springfield, Illinois, United States" in result.stdout
    missing = cli(["geocode", path, "--column", "a", "--column", "c"])
    assert missing.status == 2
    assert "no column 'c'" in missing.stderr and "columns are: a, b" in missing.stderr
