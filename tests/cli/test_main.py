"""The error boundary of ``abkit``: one line on stderr cut to a sane length, and with ``--json``
the same error as JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner, Result

import abkit.cli.info
import abkit.data.info
from abkit.cli import render
from abkit.cli.main import app
from abkit.errors import InputError

NO_DB = "error: {db}: no such database; create one with `abkit simulate` or `abkit ingest`"


def error_json(result: Result) -> dict:
    """The ``{"error": ...}`` object on stdout: the only thing there."""
    payload = json.loads(result.stdout)
    assert set(payload) == {"error"}
    return payload["error"]


@pytest.mark.parametrize(
    ("text", "limit", "clipped"),
    [
        ("short", 10, "short"),
        ("0123456789", 10, "0123456789"),
        ("0123456789A", 10, "0123...89A"),
        ("two\nlines", 20, "two lines"),
        ("a" * 200 + "z" * 200, 30, "a" * 18 + "..." + "z" * 9),
    ],
)
def test_clip_keeps_the_beginning_and_the_end(text: str, limit: int, clipped: str) -> None:
    assert render.clip(text, limit) == clipped
    assert len(render.clip(text, limit)) <= limit


def test_an_echoed_long_id_is_cut_in_the_middle(runner: CliRunner, sim_db: Path) -> None:
    run_id = "r" * 65_000
    result = runner.invoke(app, ["compare", run_id, "other", "--db", str(sim_db)])
    assert result.exit_code == 2
    assert result.stdout == ""
    line = result.stderr.removesuffix("\n")
    assert "\n" not in line
    assert len(line) == len("error: ") + render.ERROR_LIMIT
    head, tail = line.split("...")
    assert head == "error: unknown run '" + "r" * (len(head) - len("error: unknown run '"))
    end = "': the store holds no replay runs; create one with `abkit replay`"
    assert tail == "r" * (len(tail) - len(end)) + end


def test_a_short_error_is_unchanged(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "none.duckdb"
    result = runner.invoke(app, ["info", "--db", str(db)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == NO_DB.format(db=db) + "\n"


MODELS = "expected one of: als, ctr, logistic, lstm, popularity, random"


@pytest.mark.parametrize(
    ("args", "message", "kind"),
    [
        (["compare", "--alpha", "2"], "--alpha must be in (0, 1), got 2.0", "InputError"),
        (["info", "--dataset", "nope"], "{db}: unknown dataset 'nope'; expected one of: sim",
         "StoreError"),
        (["replay", "--model", "alss"], f"unknown model 'alss' (did you mean 'als'?); {MODELS}",
         "InputError"),
        (["baseline", "save", "nope"],
         "unknown run 'nope': the store holds no replay runs; create one with `abkit replay`",
         "StoreError"),
        (["power", "--baseline", "0.05", "--mde", "0.2", "--alpha", "0"],
         "--alpha must be in (0, 1), got 0.0", "InputError"),
        (["gate"], "abkit gate needs a SPEC, or both --baseline FILE and --run RUN",
         "InputError"),
    ],
)  # fmt: skip
def test_json_errors_of_several_commands(
    runner: CliRunner, sim_db: Path, args: list[str], message: str, kind: str
) -> None:
    """With --json, stdout holds the error object; stderr keeps the one line."""
    needs_db = args[0] not in ("power", "gate")
    argv = [*args, *(["--db", str(sim_db)] if needs_db else []), "--json"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    message = message.format(db=sim_db)
    assert error_json(result) == {"message": message, "kind": kind, "exit_code": 2}
    assert result.stderr == f"error: {message}\n"
    # without --json: the same line, nothing on stdout
    plain = runner.invoke(app, [a for a in argv if a != "--json"])
    assert plain.exit_code == 2
    assert plain.stdout == ""
    assert plain.stderr == result.stderr


def test_json_error_names_the_missing_store(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "none.duckdb"
    result = runner.invoke(app, ["info", "--json", "--db", str(db)])
    assert result.exit_code == 2
    message = NO_DB.format(db=db).removeprefix("error: ")
    assert error_json(result) == {"message": message, "kind": "StoreError", "exit_code": 2}


def test_json_error_of_a_long_value_is_cut_too(runner: CliRunner, sim_db: Path) -> None:
    result = runner.invoke(app, ["compare", "x" * 5000, "y", "--db", str(sim_db), "--json"])
    assert result.exit_code == 2
    error = error_json(result)
    assert len(error["message"]) == render.ERROR_LIMIT
    assert error["message"].startswith("unknown run 'xxx")
    assert "..." in error["message"]


@pytest.mark.parametrize(
    ("raised", "message", "kind", "code"),
    [
        (PermissionError(13, "Permission denied", "/srv/x.duckdb"),
         "/srv/x.duckdb: Permission denied", "PermissionError", 2),
        (duckdb.CatalogException("Catalog Error: Table x does not exist\nLINE 1: ..."),
         "database error: Catalog Error: Table x does not exist", "DatabaseError", 2),
        (KeyboardInterrupt(), "interrupted; nothing was written", "Interrupted", 130),
        (InputError("x.csv: row 3, column ts: expected a time"),
         "x.csv: row 3, column ts: expected a time", "InputError", 2),
    ],
)  # fmt: skip
def test_json_error_kind_of_os_database_and_interrupt(
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    raised: BaseException,
    message: str,
    kind: str,
    code: int,
) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(abkit.cli.info, "store_info", fail)
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == code
    assert error_json(result) == {"message": message, "kind": kind, "exit_code": code}
    assert result.stderr == f"error: {message}\n"


def test_usage_errors_with_json(runner: CliRunner) -> None:
    """typer's own usage message stays on stderr; --json adds the error object on stdout,
    also when the bad option comes before --json or is unknown."""
    bad_value = runner.invoke(app, ["compare", "--alpha", "nope", "--json"])
    assert bad_value.exit_code == 2
    error = error_json(bad_value)
    assert error["kind"] == "UsageError"
    assert error["exit_code"] == 2
    assert error["message"].startswith("Invalid value for '--alpha'")
    assert "Invalid value for '--alpha'" in bad_value.stderr

    unknown = runner.invoke(app, ["info", "--bogus", "--json"])
    assert unknown.exit_code == 2
    assert error_json(unknown) == {
        "message": "No such option: --bogus",
        "kind": "UsageError",
        "exit_code": 2,
    }
    assert "No such option: --bogus" in unknown.stderr

    plain = runner.invoke(app, ["info", "--bogus"])
    assert plain.exit_code == 2
    assert plain.stdout == ""


def test_json_as_an_option_value_is_not_the_flag(runner: CliRunner, tmp_path: Path) -> None:
    """``--dataset --json`` names a dataset: the error stays text only."""
    db = tmp_path / "none.duckdb"
    result = runner.invoke(app, ["info", "--dataset", "--json", "--db", str(db)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == NO_DB.format(db=db) + "\n"


def test_help_reflows_docstrings_and_keeps_brackets(runner: CliRunner) -> None:
    """Help is rendered as Markdown: a hard-wrapped docstring paragraph reads as one
    paragraph at any width, and bracketed text is not swallowed as rich markup."""
    result = runner.invoke(app, ["simulate", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.stdout.split())
    assert "[default: equal shares]" in text
    # the docstring's second paragraph fits on one 200-column line instead of its source breaks
    line = next(ln for ln in result.stdout.splitlines() if "Users with tastes browse" in ln)
    assert "logging policy differs by arm" in line


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (10312.43, "10,312.4"),  # an ESS: it read 1.031e+04
        (8356.53, "8,356.5"),  # a sample size: it read 8,357, above the units needed
        (8155.0, "8,155"),
        (12.3456, "12.35"),
        (0.01234, "0.0123"),
        (0.0000123, "1.23e-05"),
        (3, "3"),
        (float("nan"), "-"),
    ],
)
def test_table_cells(value, shown) -> None:
    assert render.fmt(value) == shown
