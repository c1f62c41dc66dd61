"""Relative options typed the way people type them: ``--claim 20%`` is ``--claim 0.2``.

The rule (:func:`abkit._util.parse_relative`, the same for compare / report / power --claim,
power --mde, gate --max-drop, simulate / demo --lift and the spec keys): a bare number is a
fraction in (-1, 1); a value with ``%`` is divided by 100 and may be any size; ``--claim 20``
is refused (exit 2, one line) with "did you mean 0.2 (+20%)?" instead of read as +2000%. With
``--absolute`` (power --mde, gate --max-drop) a bare number is taken as it is and ``%`` is
refused. Every refusal happens while the options are parsed, before any work.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from abkit._util import parse_relative
from abkit.cli.main import app
from abkit.errors import InputError
from tests._ab_store import hand_store

# -- the rule itself -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.2", 0.2),
        ("20%", 0.2),
        (" 20 % ", 0.2),
        ("+20%", 0.2),
        ("-0.05", -0.05),
        ("-5%", -0.05),
        ("150%", 1.5),
        ("1000%", 10.0),
        ("1.1%", 0.011),  # exactly the float of 0.011, not 1.1 / 100
        ("0", 0.0),
        ("0%", 0.0),
        ("1e-1", 0.1),
        (0.01, 0.01),  # a default, or a TOML number
        (-0.999, -0.999),
    ],
)
def test_accepted_values(value: str | float, expected: float) -> None:
    assert parse_relative(value) == expected


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        ("20", {}, "a relative lift is a fraction; did you mean 0.2 (+20%)? Write 0.2 or 20%"),
        (
            "1.5",
            {},
            "a relative lift is a fraction; did you mean 0.015 (+1.5%)? Write 0.015 or 1.5%; "
            "for +150% write 150%",
        ),
        (
            "1",
            {},
            "a relative lift is a fraction; did you mean 0.01 (+1%)? Write 0.01 or 1%; "
            "for +100% write 100%",
        ),
        ("-2", {}, "a relative lift is a fraction; did you mean -0.02 (-2%)? Write -0.02 or -2%"),
        ("-1", {}, "a relative lift is a fraction; did you mean -0.01 (-1%)? Write -0.01 or -1%"),
        ("150", {}, "a relative lift is a fraction; did you mean 1.5 (+150%)? Write 150%"),
        (5, {}, "did you mean 0.05 (+5%)? Write 0.05 or 5%; for +500% write 500%"),
        ("abc", {}, "expected a fraction such as 0.2 or a percentage such as 20%"),
        ("nan", {}, "expected a fraction such as 0.2 or a percentage such as 20%"),
        ("inf%", {}, "expected a fraction such as 0.2 or a percentage such as 20%"),
        ("%", {}, "expected a fraction such as 0.2 or a percentage such as 20%"),
        (True, {}, "expected a number, got True"),
        (
            "5",
            {"noun": "drop", "signed": False},
            "a relative drop is a fraction; did you mean 0.05 (5%)? Write 0.05 or 5%",
        ),
        (
            "20",
            {"quote_percent": True},
            'a relative lift is a fraction; did you mean 0.2 (+20%)? Write 0.2 or "20%"',
        ),
        (
            "1%",
            {"noun": "effect", "absolute": True, "absolute_hint": " (hint)"},
            "an absolute effect is a difference in the metric's own units, not a percentage; "
            "write it without % (hint)",
        ),
        ("x", {"absolute": True}, "expected a number such as 0.01"),
    ],
)
def test_refused_values(value: str | float, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_relative(value, **kwargs)
    assert str(caught.value).endswith(message)


def test_absolute_values_and_negative_drops_are_left_as_they_are() -> None:
    # a difference in the metric's own units may be any size
    assert parse_relative("5", absolute=True) == 5.0
    assert parse_relative("-20", absolute=True) == -20.0
    # a negative drop is the caller's range check to refuse (never "did you mean -0.05")
    assert parse_relative("-5", noun="drop", signed=False) == -5.0


# -- the same JSON from either spelling --------------------------------------------------------


def _json(runner: CliRunner, args: list[str]) -> str:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.fixture
def hand_db(tmp_path: Path) -> Path:
    return hand_store(tmp_path / "hand.duckdb")


@pytest.mark.parametrize(
    ("percent", "fraction"),
    [("20%", "0.2"), ("-5%", "-0.05"), ("0%", "0"), ("12.5 %", "0.125")],
)
def test_compare_claim_in_percent_equals_the_fraction(
    runner: CliRunner, hand_db: Path, percent: str, fraction: str
) -> None:
    base = ["compare", "--db", str(hand_db), "--claim"]
    as_percent = _json(runner, [*base, percent])
    assert as_percent == _json(runner, [*base, fraction])
    assert json.loads(as_percent)["claim"]["claim"] == float(fraction)


def test_compare_claim_of_150_percent(runner: CliRunner, hand_db: Path) -> None:
    payload = json.loads(_json(runner, ["compare", "--db", str(hand_db), "--claim", "150%"]))
    assert payload["claim"]["claim"] == 1.5


@pytest.mark.parametrize(
    ("percent", "fraction"),
    [
        (["--mde", "20%"], ["--mde", "0.2"]),
        (["--n", "10000", "--mde", "5%"], ["--n", "10000", "--mde", "0.05"]),
        (["--mde", "30%", "--claim", "10%"], ["--mde", "0.3", "--claim", "0.1"]),
    ],
)
def test_power_in_percent_equals_the_fraction(
    runner: CliRunner, percent: list[str], fraction: list[str]
) -> None:
    base = ["power", "--baseline", "0.05"]
    assert _json(runner, [*base, *percent]) == _json(runner, [*base, *fraction])


def test_power_mde_of_150_percent_and_absolute_numbers(runner: CliRunner) -> None:
    base = ["power", "--baseline", "0.05"]
    assert json.loads(_json(runner, [*base, "--mde", "150%"]))["mde_relative"] == pytest.approx(1.5)
    # --absolute: bare numbers as they are, wherever --absolute stands
    first = json.loads(_json(runner, [*base, "--absolute", "--mde", "0.01"]))
    last = json.loads(_json(runner, [*base, "--mde", "0.01", "--absolute"]))
    assert first == last
    assert first["mde_absolute"] == pytest.approx(0.01)
    mean = ["power", "--baseline", "40", "--metric", "mean", "--sd", "30", "--absolute"]
    assert json.loads(_json(runner, [*mean, "--mde", "2"]))["mde_absolute"] == 2


# -- refusals: exit 2, one line on stderr, before any work -------------------------------------

LIFT_20 = "a relative lift is a fraction; did you mean 0.2 (+20%)? Write 0.2 or 20%"
ABSOLUTE = "not a percentage; write it without % (or leave out --absolute for a relative"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "--claim", "20"], f"--claim 20: {LIFT_20}"),
        (
            ["compare", "--claim", "1.5"],
            "--claim 1.5: a relative lift is a fraction; did you mean 0.015 (+1.5%)? Write "
            "0.015 or 1.5%; for +150% write 150%",
        ),
        (
            ["compare", "--claim", "-2"],
            "--claim -2: a relative lift is a fraction; did you mean -0.02 (-2%)? Write -0.02 "
            "or -2%",
        ),
        (
            ["compare", "--claim", "abc"],
            "--claim abc: expected a fraction such as 0.2 or a percentage such as 20%",
        ),
        (["compare", "RUN_A", "RUN_B", "--claim", "20"], f"--claim 20: {LIFT_20}"),
        (["report", "--claim", "20"], f"--claim 20: {LIFT_20}"),
        (
            ["power", "--baseline", "0.05", "--mde", "20"],
            "--mde 20: a relative effect is a fraction; did you mean 0.2 (+20%)? Write 0.2 or 20%",
        ),
        (
            ["power", "--baseline", "0.05", "--mde", "0.3", "--claim", "20"],
            f"--claim 20: {LIFT_20}",
        ),
        (
            ["power", "--baseline", "0.05", "--absolute", "--mde", "1%"],
            f"--mde 1%: an absolute effect is a difference in the metric's own units, {ABSOLUTE} "
            "1%)",
        ),
        (
            ["power", "--baseline", "0.05", "--mde", "1%", "--absolute"],
            f"--mde 1%: an absolute effect is a difference in the metric's own units, {ABSOLUTE} "
            "1%)",
        ),
        (
            ["gate", "--baseline", "b.json", "--run", "r", "--max-drop", "5"],
            "--max-drop 5: a relative drop is a fraction; did you mean 0.05 (5%)? Write 0.05 or 5%",
        ),
        (
            ["gate", "--baseline", "b.json", "--run", "r", "--max-drop", "5%", "--absolute"],
            f"--max-drop 5%: an absolute drop is a difference in the metric's own units, "
            f"{ABSOLUTE} 5%)",
        ),
        (["simulate", "--lift", "20"], f"--lift 20: {LIFT_20}"),
        (["demo", "--lift", "20"], f"--lift 20: {LIFT_20}"),
    ],
)
def test_refusals_are_one_line_before_any_work(
    runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    db = tmp_path / "untouched.duckdb"
    store = [] if args[0] == "power" else ["--db", str(db)]  # power reads no store
    result = runner.invoke(app, [*args, *store])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {message}\n"
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert not db.exists()  # refused while parsing: no store opened, nothing written


def test_a_refusal_with_json_is_json(runner: CliRunner) -> None:
    result = runner.invoke(app, ["compare", "--claim", "20", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "error": {"message": f"--claim 20: {LIFT_20}", "kind": "InputError", "exit_code": 2}
    }


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("compare", "--claim"),
        ("report", "--claim"),
        ("power", "--mde"),
        ("power", "--claim"),
        ("gate", "--max-drop"),
        ("simulate", "--lift"),
        ("demo", "--lift"),
    ],
)
def test_help_shows_both_spellings(runner: CliRunner, command: str, option: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert any(
        line.strip("│ ").split()[:2] == [option, "FRACTION|PCT%"]
        for line in result.stdout.splitlines()
    ), result.stdout
