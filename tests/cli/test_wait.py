"""``--wait`` on the writing commands: a locked store is refused before the work (naming the
holder and the option), and waited for with ``--wait``."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import abkit.data.ingest
import abkit.data.replay_sql
import abkit.data.store
import abkit.simulate.core
from abkit.cli.main import app
from tests.conftest import ReleaseOnFirstRetry, file_digest, holding_write_lock

# Each command, and the function where its work starts (it must not run on a locked store).
WORK = {
    "simulate": (abkit.simulate.core, "_generate"),
    "ingest": (abkit.data.ingest, "_stage"),
    "replay": (abkit.data.replay_sql, "load_split"),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny simulated store and a CSV export of its events."""
    from abkit.data.store import open_store
    from abkit.simulate import SimulationConfig, simulate

    folder = tmp_path_factory.mktemp("wait")
    db = folder / "tiny.duckdb"
    simulate(SimulationConfig(users=300, items=50, days=3, pre_days=1), db)
    csv = folder / "events.csv"
    with open_store(db) as store:
        store.con.execute(
            "COPY (SELECT user_id, event_type, ts, item_id FROM events ORDER BY ALL) "
            "TO '" + str(csv).replace("'", "''") + "' (HEADER)"
        )
    return db, csv


def _args(name: str, db: Path, csv: Path) -> list[str]:
    return {
        "simulate": ["simulate", "--users", "300", "--items", "50", "--days", "3", "-d", "new"],
        "ingest": ["ingest", str(csv), "--dataset", "new"],
        "replay": ["replay", "--model", "popularity"],
    }[name] + ["--db", str(db)]


@pytest.mark.parametrize("name", list(WORK))
def test_a_locked_store_is_refused_before_the_work(
    runner, tiny, tmp_path, monkeypatch, name: str
) -> None:
    db = tmp_path / "store.duckdb"
    db.write_bytes(tiny[0].read_bytes())
    before = file_digest(db)
    module, function = WORK[name]
    monkeypatch.setattr(module, function, lambda *a, **k: pytest.fail("the work started"))
    with holding_write_lock(db) as pid:
        result = runner.invoke(app, _args(name, db, tiny[1]))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {db}: the database is locked by process {pid} (")
    assert result.stderr.endswith("); pass --wait SECONDS to wait for it, or another --db\n")
    assert result.stderr.count("\n") == 1
    assert file_digest(db) == before


@pytest.mark.parametrize("name", list(WORK))
def test_wait_retries_until_the_holder_is_gone(runner, tiny, tmp_path, monkeypatch, name) -> None:
    db = tmp_path / "store.duckdb"
    db.write_bytes(tiny[0].read_bytes())
    with holding_write_lock(db) as pid:
        clock = ReleaseOnFirstRetry(lambda: os.kill(pid, signal.SIGKILL))
        monkeypatch.setattr(abkit.data.store, "time", clock)
        result = runner.invoke(app, [*_args(name, db, tiny[1]), "--wait", "60"])
    assert result.exit_code == 0, result.output
    assert f"warning: {db}: locked by process {pid}" in result.stderr
    assert "waiting up to 60 s for it" in result.stderr
    assert clock.sleeps >= 1


def test_a_new_store_needs_no_lock(runner, tmp_path) -> None:
    db = tmp_path / "fresh.duckdb"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--users",
            "300",
            "--items",
            "50",
            "--days",
            "3",
            "--db",
            str(db),
            "--wait",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert db.exists()
