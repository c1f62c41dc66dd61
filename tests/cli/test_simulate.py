"""`abkit simulate`: option parsing, one-line errors, the report, and the acceptance command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import abkit.cli.simulate
from abkit.cli.main import app
from abkit.cli.simulate import parse_split
from abkit.errors import StoreError
from abkit.simulate import SimulationConfig
from tests.conftest import file_digest

SMALL = ["--users", "300", "--items", "40", "--days", "3", "--pre-days", "1"]


def test_options_become_the_exact_config(runner, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command only translates options: it passes this config to the library."""
    seen = {}

    def fake(config, db, *, on_progress=None, on_phase=None, wait=0.0):
        seen["config"], seen["db"], seen["wait"] = config, db, wait
        raise StoreError("stop here")

    monkeypatch.setattr(abkit.cli.simulate, "run_simulation", fake)
    args = [
        "simulate", "--users", "1234", "--items", "55", "--days", "9", "--pre-days", "3",
        "--arms", "a, b,c", "--split", "20/30/50", "--lift", "0.1", "--srm", "0.05",
        "--slots", "3", "--base-conversion", "0.1", "--seed", "42", "--dataset", "d1",
        "--experiment", "exp", "--db", "my.duckdb", "--wait", "2.5",
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: stop here"
    assert seen["config"] == SimulationConfig(
        users=1234, items=55, days=9, pre_days=3, arms=("a", "b", "c"), split=(0.2, 0.3, 0.5),
        lift=0.1, srm=0.05, slots=3, base_conversion=0.1, seed=42, dataset="d1",
        experiment="exp",
    )  # fmt: skip
    assert seen["db"] == Path("my.duckdb")
    assert seen["wait"] == 2.5


@pytest.mark.parametrize(
    ("text", "shares"),
    [("50/50", (0.5, 0.5)), ("0.5,0.5", (0.5, 0.5)), ("25/75", (0.25, 0.75)),
     (" 0.2 , 0.8 ", (0.2, 0.8)), ("1/99", (0.01, 0.99))],
)  # fmt: skip
def test_split_accepts_percentages_and_fractions(text: str, shares: tuple) -> None:
    assert parse_split(text) == pytest.approx(shares)


SHARES = (
    "expected percentages that sum to 100 (e.g. 50/50) or fractions that sum to 1 (e.g. 0.5/0.5)"
)
BAD_OPTIONS = [
    (["--users", "1"], "--users must be at least 2, got 1"),
    (["--items", "2"], "--items must be at least 4, got 2"),
    (["--days", "0"], "--days must be at least 1, got 0"),
    (["--split", "50/60"], f"--split '50/60': the shares sum to 110; {SHARES}"),
    (["--split", "0.5,0.6"], f"--split '0.5,0.6': the shares sum to 1.1; {SHARES}"),
    (
        ["--split", "half/half"],
        "--split 'half/half': expected shares separated by '/', e.g. 50/50 or 40/30/30",
    ),
    (["--split", "50/25/25"], "--split has 3 shares but --arms has 2 arms"),
    (["--arms", "control"], "--arms needs at least two arm names, got 'control'"),
    (["--arms", "a,a"], "--arms: duplicate arm name 'a'"),
    (
        ["--lift", "-2"],
        "--lift -2: a relative lift is a fraction; did you mean -0.02 (-2%)? Write -0.02 or -2%",
    ),
    (["--lift", "-150%"], "--lift must be a relative change of at least -1, got -1.5"),
    (["--srm", "1"], "--srm must be a fraction in [0, 1), got 1"),
    (["--base-conversion", "0"], "--base-conversion must be a probability in (0, 1), got 0"),
    (["--slots", "0"], "--slots must be at least 1, got 0"),
    (["--seed", "-1"], "--seed must be at least 0, got -1"),
    (["--dataset", ""], "--dataset must not be empty"),
]


@pytest.mark.parametrize(("args", "message"), BAD_OPTIONS)
def test_bad_options_give_one_line_and_write_nothing(
    runner, tmp_path: Path, args: list[str], message: str
) -> None:
    db = tmp_path / "s.duckdb"
    result = runner.invoke(app, ["simulate", "--db", str(db), *args])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {message}"
    assert not db.exists()


def test_report_and_json(runner, tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    result = runner.invoke(app, ["simulate", *SMALL, "--db", str(db), "--seed", "3"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Simulated dataset sim (experiment carousel)" in out
    for word in ("events", "impressions", "assignments", "control", "treatment", "20.0%"):
        assert word in out
    result = runner.invoke(
        app, ["simulate", *SMALL, "--db", str(db), "--dataset", "b", "--srm", "0.3", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["dataset"] == "b"
    assert payload["config"]["srm"] == 0.3
    assert payload["truth"]["lift"] == 0.2
    assert sum(payload["arm_users"].values()) == payload["assignments"] < 300
    assert set(payload) >= {"events", "impressions", "sessions", "elapsed_seconds", "truth"}


def test_existing_dataset_exits_2_and_leaves_the_file_unchanged(runner, tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    assert runner.invoke(app, ["simulate", *SMALL, "--db", str(db)]).exit_code == 0
    before = file_digest(db)
    result = runner.invoke(app, ["simulate", *SMALL, "--db", str(db)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {db}: dataset 'sim' already exists; choose another name with --dataset"
    )
    assert file_digest(db) == before


def test_db_from_the_environment(runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "env.duckdb"
    monkeypatch.setenv("ABKIT_DB", str(db))
    result = runner.invoke(app, ["simulate", *SMALL, "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["db"] == str(db)
    assert db.exists()


@pytest.mark.slow
def test_acceptance_command_then_info(runner, tmp_path: Path) -> None:
    """Issue 2's acceptance: simulate 20k users, then `abkit info --json` shows two arms near
    the designed split and the planted truth."""
    db = tmp_path / "x.duckdb"
    result = runner.invoke(
        app,
        ["simulate", "--users", "20000", "--days", "14", "--lift", "0.2", "--seed", "1",
         "--db", str(db)],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    info = runner.invoke(app, ["info", "--db", str(db), "--json"])
    assert info.exit_code == 0, info.stderr
    text = info.stdout
    for word in ('"control"', '"treatment"', "conversion_rate", "policy_ctr"):
        assert word in text
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    counts = dict(con.execute("SELECT variant, count(*) FROM assignments GROUP BY 1").fetchall())
    assert sum(counts.values()) == 20000
    assert abs(counts["treatment"] - 10000) < 4 * 70.7  # 4 binomial standard deviations
    lift = con.execute(
        "SELECT value FROM truth WHERE metric = 'lift' AND variant IS NULL"
    ).fetchone()[0]
    assert lift == 0.2
    # ~50 events per user: 1M users would write ~50M events.
    events = con.execute("SELECT count(*) FROM events").fetchone()[0]
    assert 40 * 20000 < events < 60 * 20000
