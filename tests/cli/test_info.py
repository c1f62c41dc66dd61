"""`abkit info`: the header counts datasets and runs in proper English, and names the dataset
that --dataset chose."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from abkit.cli import render
from abkit.cli.main import app

SMALL = ["--users", "200", "--items", "20", "--days", "2", "--pre-days", "1"]


def header(runner: CliRunner, db: Path, *args: str) -> str:
    result = runner.invoke(app, ["info", "--db", str(db), *args])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()[0]


def test_header_singular_plural_and_chosen_dataset(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render.console, "width", 250)  # the header on one line
    db = tmp_path / "s.duckdb"
    for name in ("one", "two"):
        made = runner.invoke(app, ["simulate", *SMALL, "--dataset", name, "--db", str(db)])
        assert made.exit_code == 0, made.output
        if name == "one":
            assert header(runner, db).endswith("), 1 dataset, 0 replay runs")
    assert header(runner, db).endswith("), 2 datasets, 0 replay runs")
    assert header(runner, db, "--dataset", "two").endswith(
        "), dataset two; 0 replay runs in the store"
    )
    replayed = runner.invoke(app, ["replay", "--db", str(db), "-d", "one", "-m", "popularity"])
    assert replayed.exit_code == 0, replayed.output
    assert header(runner, db).endswith("), 2 datasets, 1 replay run")
    assert header(runner, db, "--dataset", "one").endswith(
        "), dataset one; 1 replay run in the store"
    )
