"""The bounds a number flag states are the bounds it checks: 0 refused by "more than
0" is not told "0 or more" for a negative (a wrapper once reported its inner check's
bound: --max-distance -1, --timeout -1, --fail-rate -0.5)."""

from __future__ import annotations

import argparse

import pytest

from geofetch.cli.argtypes import fraction, non_negative_float, positive_float


@pytest.mark.parametrize(("check", "text", "message"), [
    (positive_float, "-1", "must be more than 0, not -1"),
    (positive_float, "0", "must be more than 0, not 0"),
    (positive_float, "-0.0", "must be more than 0, not -0.0"),
    (non_negative_float, "-1", "must be 0 or more, not -1"),
    (fraction, "-0.5", "must be between 0 and 1, not -0.5"),
    (fraction, "1.5", "must be between 0 and 1, not 1.5"),
    (positive_float, "nan", "must be a finite number, not nan"),
    (fraction, "x", "not a number: 'x'"),
])
def test_a_refused_number_is_told_the_bound_checked(check, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        check(text)
    assert str(refused.value) == message


@pytest.mark.parametrize(("check", "text", "value"), [
    (positive_float, "0.5", 0.5), (non_negative_float, "0", 0.0), (fraction, "0", 0.0),
    (fraction, "1", 1.0),
])
def test_numbers_in_bounds_pass(check, text, value):
    assert check(text) == value


@pytest.mark.parametrize(("argv", "message"), [
    (["reverse", "data/coordinates.csv", "--max-distance", "-1"],
     "argument --max-distance: must be more than 0, not -1"),
    (["geocode", "-", "--timeout", "-2"], "argument --timeout: must be more than 0, not -2"),
    (["serve", "--fail-rate", "-0.5"], "argument --fail-rate: must be between 0 and 1, not -0.5"),
])
def test_cli_says_the_bound(cli, argv, message):
    out = cli(argv)
    assert out.status == 2 and len(out.stderr.splitlines()) == 1 and message in out.stderr
