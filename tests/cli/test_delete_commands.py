"""`abkit runs delete`, `abkit datasets drop` / `list` and `abkit replay --replace` on the
command line: one line and exit 2 on every refusal, the store byte-identical afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from abkit.cli.main import app
from tests.conftest import file_digest
from tests.replay.helpers import structured_events, write_store


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db = write_store(tmp_path / "c.duckdb", events=structured_events(n_users=60, seed=4))
    return write_store(db, events=structured_events(n_users=30, seed=5), dataset="other")


def cli(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def replay_json(runner: CliRunner, db: Path, *args: str) -> dict:
    result = cli(runner, "replay", "--db", str(db), "--dataset", "t", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def run_ids(runner: CliRunner, db: Path) -> list[str]:
    listed = cli(runner, "runs", "--db", str(db), "--json")
    assert listed.exit_code == 0, listed.stderr
    return [r["run_id"] for r in json.loads(listed.stdout)["runs"]]


def one_line_error(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {message}\n"
    assert result.stdout == ""


@pytest.fixture
def tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("abkit.cli.common.stdin_is_tty", lambda: True)


# -- abkit runs delete ----------------------------------------------------------------------


def test_runs_delete_with_yes_and_json(runner, store: Path) -> None:
    a = replay_json(runner, store, "--model", "popularity", "--name", "a")
    b = replay_json(runner, store, "--model", "random")
    result = cli(runner, "runs", "delete", "a", "--db", str(store), "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["deleted"] is True
    assert [r["run_id"] for r in payload["runs"]] == [a["run_id"]]
    assert payload["rows"]["runs"] == 1
    assert run_ids(runner, store) == [b["run_id"]]


def test_runs_delete_human_output(runner, store: Path) -> None:
    a = replay_json(runner, store, "--model", "popularity", "--name", "a")
    result = cli(runner, "runs", "delete", a["run_id"], "--db", str(store), "-y")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"deleted 1 run(s): {a['run_id']} (a) (")


def test_runs_delete_without_a_terminal_needs_yes(runner, store: Path) -> None:
    replay_json(runner, store, "--model", "popularity", "--name", "a")
    before = file_digest(store)
    result = cli(runner, "runs", "delete", "a", "--db", str(store))
    one_line_error(
        result,
        "not deleting without confirmation: there is no terminal to ask on; pass --yes to delete",
    )
    assert file_digest(store) == before


def test_runs_delete_asks_on_a_terminal(runner, store: Path, tty) -> None:
    a = replay_json(runner, store, "--model", "popularity", "--name", "a")
    before = file_digest(store)
    declined = cli(runner, "runs", "delete", "a", "--db", str(store), input="n\n")
    assert declined.exit_code == 1
    assert f"Delete 1 run(s): {a['run_id']} (a) from {store}?" in declined.stderr
    assert "nothing deleted" in declined.stderr
    assert file_digest(store) == before
    accepted = cli(runner, "runs", "delete", "a", "--db", str(store), "--json", input="y\n")
    assert accepted.exit_code == 0, accepted.stderr
    # the prompt went to stderr; CliRunner echoes the typed answer onto stdout (a terminal
    # echoes it on the screen, not into a redirected stdout)
    echo, _, out = accepted.stdout.partition("\n")
    assert echo.strip() == "y"
    assert json.loads(out)["deleted"] is True
    assert run_ids(runner, store) == []


def test_runs_delete_is_all_or_nothing(runner, store: Path) -> None:
    replay_json(runner, store, "--model", "popularity", "--name", "a")
    before = file_digest(store)
    result = cli(runner, "runs", "delete", "a", "ab", "--db", str(store), "--yes")
    one_line_error(result, "unknown run 'ab' (did you mean 'a'?); list the runs with `abkit runs`")
    assert file_digest(store) == before


def test_runs_delete_dry_run(runner, store: Path) -> None:
    a = replay_json(runner, store, "--model", "popularity", "--name", "a")
    before = file_digest(store)
    result = cli(runner, "runs", "delete", "a", "--db", str(store), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"would delete 1 run(s): {a['run_id']} (a)")
    assert file_digest(store) == before


def test_options_before_the_subcommand_are_refused(runner, store: Path) -> None:
    """`abkit runs --db X delete RUN` would otherwise delete from ./abkit.duckdb."""
    replay_json(runner, store, "--model", "popularity", "--name", "a")
    result = cli(runner, "runs", "--db", str(store), "delete", "a", "--yes")
    one_line_error(
        result, "--db: put options after the subcommand, e.g. `abkit runs delete ... --db ...`"
    )
    assert len(run_ids(runner, store)) == 1


def test_runs_and_runs_list_are_the_same_listing(runner, store: Path) -> None:
    replay_json(runner, store, "--model", "popularity", "--name", "a")
    plain = cli(runner, "runs", "--db", str(store), "--json")
    listed = cli(runner, "runs", "list", "--db", str(store), "--json")
    assert plain.exit_code == listed.exit_code == 0
    assert plain.stdout == listed.stdout


# -- abkit replay --name / --replace --------------------------------------------------------


def test_replay_refuses_a_taken_name_unless_replace(runner, store: Path) -> None:
    first = replay_json(runner, store, "--model", "popularity", "--name", "a")
    before = file_digest(store)
    again = cli(runner, "replay", "--db", str(store), "-d", "t", "-m", "random", "--name", "a")
    one_line_error(
        again,
        f"{store}: a run named 'a' already exists ({first['run_id']}); pass --replace to "
        "replace it, choose another --name, or delete it with `abkit runs delete`",
    )
    assert file_digest(store) == before
    second = replay_json(runner, store, "--model", "random", "--name", "a", "--replace")
    assert run_ids(runner, store) == [second["run_id"]]
    compared = cli(runner, "compare", "a", "a", "--db", str(store), "--json")
    assert "ambiguous" not in compared.stderr


# -- abkit datasets -------------------------------------------------------------------------


def test_datasets_drop_names_the_runs_that_depend_on_it(runner, store: Path) -> None:
    a = replay_json(runner, store, "--model", "popularity", "--name", "a")
    before = file_digest(store)
    result = cli(runner, "datasets", "drop", "t", "--db", str(store), "--yes")
    one_line_error(
        result,
        f"{store}: dataset 't' has 1 replay run(s) that depend on it: {a['run_id']} (a); "
        "delete them first with `abkit runs delete RUN...`, or pass --with-runs to delete "
        "them with the dataset",
    )
    assert file_digest(store) == before
    dropped = cli(
        runner, "datasets", "drop", "t", "--db", str(store), "-y", "--with-runs", "--json"
    )
    assert dropped.exit_code == 0, dropped.stderr
    payload = json.loads(dropped.stdout)
    assert payload["dataset"] == "t"
    assert payload["runs"] == [a["run_id"]]
    assert payload["rows"]["datasets"] == 1
    assert payload["rows"]["events"] > 0
    info = json.loads(cli(runner, "info", "--db", str(store), "--json").stdout)
    assert [d["name"] for d in info["datasets"]] == ["other"]
    assert run_ids(runner, store) == []


def test_datasets_drop_human_output_and_prompt(runner, store: Path, tty) -> None:
    before = file_digest(store)
    declined = cli(runner, "datasets", "drop", "other", "--db", str(store), input="\n")
    assert declined.exit_code == 1  # the default answer is no
    assert f"Drop dataset 'other' from {store}?" in declined.stderr
    assert file_digest(store) == before
    result = cli(runner, "datasets", "drop", "other", "--db", str(store), input="y\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.endswith("dropped dataset other (480 events)\n")  # after the echo


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["datasets", "drop", "tt", "--yes"], "unknown dataset 'tt' (did you mean 't'?); expected one of: other, t"),  # noqa: E501
        (["datasets", "drop", "t"], "not deleting without confirmation: there is no terminal to ask on; pass --yes to delete"),  # noqa: E501
    ],
)  # fmt: skip
def test_datasets_drop_refusals_change_nothing(runner, store: Path, args, message) -> None:
    before = file_digest(store)
    result = cli(runner, *args, "--db", str(store))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert result.stderr.rstrip().endswith(message)
    assert file_digest(store) == before


def test_datasets_list_is_info(runner, store: Path) -> None:
    info = cli(runner, "info", "--db", str(store), "--json")
    for args in (["datasets", "list"], ["datasets"]):
        listed = cli(runner, *args, "--db", str(store), "--json")
        assert listed.exit_code == 0, listed.stderr
        assert listed.stdout == info.stdout
