"""`abkit ingest` reports what it kept: duplicate rows, implausible timestamps (warnings on
stderr, new keys in --json), --dedupe, the README's --split 50/50, and data that looks like
rich markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abkit.cli.main import app
from abkit.data.store import open_store
from tests.conftest import file_digest

HEADER = "user_id,variant,event_type,ts,item_id,value\n"
# Row 1 unique, rows 2-4 the same purchase three times, row 5 a placeholder timestamp.
ROWS = (
    "u0,control,view,2024-01-01T00:00:00,i0,\n"
    + "u1,control,purchase,2024-01-02T00:00:00,i1,5\n" * 3
    + "u2,treatment,view,0001-01-01,i2,\n"
)
SUMS = "expected percentages that sum to 100 (e.g. 50/50) or fractions that sum to 1 (e.g. 0.5/0.5)"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log.csv"
    path.write_text(HEADER + ROWS)
    return path


def _split(db: Path) -> list:
    with open_store(db) as store:
        return store.con.execute("SELECT split FROM experiments").fetchall()


def test_json_has_the_new_keys_and_warnings_go_to_stderr(runner, db_path, log) -> None:
    result = runner.invoke(app, ["ingest", str(log), "--db", str(db_path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["rows"] == 5
    assert payload["duplicate_rows"] == 2
    assert payload["first_duplicate_row"] == 3
    assert payload["duplicates_dropped"] == 0
    assert payload["duplicates_skipped"] == 0  # assignments already in the store: none
    assert payload["implausible_ts_rows"] == 1
    assert payload["first_implausible_ts_row"] == 5
    assert payload["warnings"] == [
        f"{log}: 2 row(s) are exact copies of an earlier row (the first: row 3, a copy of row "
        "2); they are kept, as repeated events can be genuine: pass --dedupe to drop them",
        f"{log}: 1 row(s) have an implausible timestamp (before 1990-01-01 or more than 1 day "
        "in the future); the first is row 5, column 'ts': '0001-01-01'; they are stored as "
        "they are",
    ]
    assert result.stderr.splitlines() == [f"warning: {w}" for w in payload["warnings"]]


def test_dedupe_is_reported_in_the_summary(runner, db_path, log) -> None:
    result = runner.invoke(app, ["ingest", str(log), "--db", str(db_path), "--dedupe"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "rows │ 3" in text
    assert "exact duplicate rows │ 2, dropped (--dedupe); the first is row 3" in text
    assert "implausible timestamps │ 1; the first is row 5" in text
    assert "0001-01-01 00:00 .. 2024-01-02 00:00" in text  # the year 1 reads as 0001
    assert "exact copies" not in result.stderr  # dropping them was asked for: no warning
    assert "implausible timestamp" in result.stderr


@pytest.mark.parametrize("split", ["50/50", "0.5,0.5", "control=50,treatment=50"])
def test_readme_split_forms_are_accepted(runner, db_path, log, split) -> None:
    result = runner.invoke(app, ["ingest", str(log), "--db", str(db_path), "--split", split])
    assert result.exit_code == 0, result.output
    assert _split(db_path) == [([0.5, 0.5],)]


def test_one_parser_for_ingest_simulate_and_compare(runner, db_path, log, sim_db) -> None:
    """The same --split gives the same one-line error in all three commands."""
    message = f"error: --split '50/40': the shares sum to 90; {SUMS}"
    ingest = runner.invoke(app, ["ingest", str(log), "--db", str(db_path), "--split", "50/40"])
    simulate = runner.invoke(app, ["simulate", "--db", str(db_path), "--split", "50/40"])
    before = file_digest(sim_db)
    compare = runner.invoke(app, ["compare", "--db", str(sim_db), "--split", "50/40"])
    for result in (ingest, simulate, compare):
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == message
    assert not db_path.exists()
    assert file_digest(sim_db) == before


def test_compare_accepts_what_ingest_accepts(runner, sim_db) -> None:
    result = runner.invoke(app, ["compare", "--db", str(sim_db), "--split", "0.5,0.5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["srm"]["split"] == [0.5, 0.5]


def test_markup_in_names_is_printed_as_text(runner, tmp_path, db_path) -> None:
    path = tmp_path / "[bold red]log.csv"  # markup would swallow the tag
    path.write_text("[/b]user,event_type,ts\nu1,view,2024-01-01\n")
    result = runner.invoke(
        app, ["ingest", str(path), "--db", str(db_path), "--map", "user_id=[/b]user"]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "user_id<-[/b]user" in text
    assert f"Ingested {path}" in text
