"""A write refused late (after DuckDB has put many rows into the store file) gives the space
back: DuckDB keeps a rolled-back transaction's blocks inside the file, free, so without
:meth:`abkit.data.store.Store._give_back` the file stays grown and, on a full disk, the next
small write fails too. When the space cannot be given back (a full disk), the one-line error
says how many MB the file kept and how they come back."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from abkit.cli.main import app
from abkit.data import ingest as ingest_module
from abkit.data.parquet import export_store, ingest_export
from abkit.data.store import Store
from abkit.errors import AbkitError, InputError
from tests._ab_store import build_store, day

ROWS = 400_000  # a few MB: DuckDB writes full row groups (122,880 rows) before the commit


def _small_store(path: Path) -> Path:
    return build_store(path, dataset="small", assignments=[("u1", "control", day(0))])


def _late_failing_export(tmp_path: Path) -> Path:
    """An export whose events (many rows) load, then whose assignments break a NOT NULL."""
    source = build_store(
        tmp_path / "source.duckdb",
        dataset="big",
        assignments=[("u1", "control", day(0))],
        events=[("u1", "purchase", day(1), 1.0, "s1")],
    )
    out = tmp_path / "export"
    export_store(source, out)
    con = duckdb.connect()
    (events,) = (out / "events").rglob("*.parquet")
    con.execute(
        "COPY (SELECT 'u' || (i % 5000) AS user_id, 's' || i AS session_id, 'i' || (i % 97) "
        "AS item_id, 'purchase' AS event_type, TIMESTAMP '2024-01-10' + i * INTERVAL 1 SECOND "
        f"AS ts, i * 0.5 AS value FROM range({ROWS}) r(i)) TO '{events}' (FORMAT PARQUET)"
    )
    (assignments,) = (out / "assignments").rglob("*.parquet")
    con.execute(
        "COPY (SELECT 'exp' AS experiment, 'u1' AS user_id, NULL::VARCHAR AS variant, "
        f"NULL::TIMESTAMP AS assigned_at) TO '{assignments}' (FORMAT PARQUET)"
    )
    con.close()
    return out


def _keep_the_space(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a full disk does: the space cannot be given back."""
    monkeypatch.setattr(Store, "_give_back", lambda self, size: self.path.stat().st_size - size)


def test_a_late_refused_export_ingest_gives_the_space_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _late_failing_export(tmp_path)
    db = _small_store(tmp_path / "s.duckdb")
    size = db.stat().st_size
    with pytest.raises(InputError, match=r"/assignments: cannot load it into the store"):
        ingest_export(out, db)
    assert db.stat().st_size == size
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone() == (0,)
    # the same refusal without the give-back leaves the file grown by the staged rows
    _keep_the_space(monkeypatch)
    with pytest.raises(AbkitError):
        ingest_export(out, db)
    assert db.stat().st_size > size + 2_000_000


def test_a_late_refused_file_ingest_gives_the_space_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log.parquet"
    with duckdb.connect() as con:
        con.execute(
            "COPY (SELECT 'u' || (i % 5000) AS user_id, 'purchase' AS event_type, "
            "TIMESTAMP '2024-01-10' + i * INTERVAL 1 SECOND AS ts, i * 0.5 AS value "
            f"FROM range({ROWS}) r(i)) TO '{log}' (FORMAT PARQUET)"
        )
    db = _small_store(tmp_path / "s.duckdb")
    size = db.stat().st_size

    def refused() -> None:
        # the rows are in the store when the last check finds the Parquet file changed
        stamps = iter([(1, 1)])
        monkeypatch.setattr(ingest_module, "_file_stamp", lambda path: next(stamps, (2, 2)))
        with pytest.raises(AbkitError, match="the file changed while it was ingested"):
            ingest_module.ingest_file(log, db)

    refused()
    assert db.stat().st_size == size
    _keep_the_space(monkeypatch)
    refused()
    assert db.stat().st_size > size + 2_000_000


def test_when_the_space_cannot_be_given_back_the_error_says_how_it_comes_back(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _late_failing_export(tmp_path)
    db = _small_store(tmp_path / "s.duckdb")
    twin = _small_store(tmp_path / "twin.duckdb")  # the same store, no failed write
    size = db.stat().st_size
    _keep_the_space(monkeypatch)
    result = runner.invoke(app, ["ingest", str(out), "--format", "abkit-parquet", "--db", str(db)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    kept = (db.stat().st_size - size) / 1e6
    assert re.fullmatch(
        rf"error: {re.escape(str(out))}/assignments: cannot load it into the store \(.+\); "
        rf"{re.escape(str(db))} kept the {kept:.1f} MB that the failed write took, as free "
        r"space inside it: the next abkit write to it gives them back once its disk has room",
        line,
    ), line
    # and it does: the next write (the space is there again) shrinks the file to the size
    # the same write gives a store that never failed
    monkeypatch.undo()
    grown = db.stat().st_size
    for store in (db, twin):
        build_store(store, dataset="next", assignments=[("u2", "control", day(0))])
    assert db.stat().st_size == twin.stat().st_size < grown
