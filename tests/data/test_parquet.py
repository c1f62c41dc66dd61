"""`abkit export` / `abkit ingest --format abkit-parquet`: the round trip is identical."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from abkit.data.parquet import (
    RUN_TABLES,
    append_runs,
    columns_of,
    export_store,
    ingest_export,
)
from abkit.data.schema import TABLES
from abkit.data.sql import quote_ident
from abkit.errors import InputError, StoreError
from abkit.replay.runner import replay
from tests._ab_store import build_store, day


def _contents(db: Path, table: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = ", ".join(quote_ident(c) for c in columns_of(table))
        return con.execute(f"SELECT {cols} FROM {quote_ident(table)} ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_round_trip_is_identical(sim_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    result = export_store(sim_db, out)
    assert result.datasets == ("sim",)
    assert (out / "events" / "dataset=sim").is_dir()
    back = tmp_path / "back.duckdb"
    loaded = ingest_export(out, back)
    for table in TABLES:
        if table == "abkit_meta":
            continue
        rows = _contents(sim_db, table)
        assert _contents(back, table) == rows, table
        assert loaded.rows[table] == len(rows)
        assert result.rows[table] == len(rows)


def test_export_command_round_trips_through_ingest(sim_db: Path, tmp_path: Path) -> None:
    """`abkit export` and `abkit ingest DIR --format abkit-parquet` as a user runs them."""
    import json

    from typer.testing import CliRunner

    from abkit.cli.main import app

    out, back = tmp_path / "shop", tmp_path / "copy.duckdb"
    runner = CliRunner()
    exported = runner.invoke(app, ["export", "--db", str(sim_db), "--out", str(out), "--json"])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["datasets"] == ["sim"]
    loaded = runner.invoke(
        app, ["ingest", str(out), "--format", "abkit-parquet", "--db", str(back), "--json"]
    )
    assert loaded.exit_code == 0, loaded.output
    assert _contents(back, "events") == _contents(sim_db, "events")
    again = runner.invoke(app, ["export", "--db", str(sim_db), "--out", str(out)])
    assert again.exit_code == 2  # the folder is no longer empty
    assert "Traceback" not in again.output


def test_odd_dataset_names_and_empty_tables_survive(tmp_path: Path) -> None:
    db = tmp_path / "odd.duckdb"
    name = "shop 1/2024=é%"
    build_store(
        db,
        dataset=name,
        assignments=[("u1", "control", None), ("u2", "treatment", day(1))],
        events=[("u1", "purchase", day(2), 3.5, "s1")],
    )
    out = tmp_path / "odd"
    export_store(db, out)
    assert list((out / "runs").iterdir()) == [out / "runs" / "part-0.parquet"]
    back = tmp_path / "back.duckdb"
    ingest_export(out, back)
    for table in ("datasets", "events", "assignments", "experiments", *RUN_TABLES):
        assert _contents(back, table) == _contents(db, table), table


def test_export_of_one_dataset_and_refusals(sim_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "two.duckdb"
    build_store(db, dataset="a", assignments=[("u1", "control", None)])
    build_store(db, dataset="b", assignments=[("u2", "control", None)])
    out = tmp_path / "only-b"
    assert export_store(db, out, dataset="b").datasets == ("b",)
    assert [p.name for p in (out / "datasets").iterdir()] == ["dataset=b"]
    with pytest.raises(InputError, match="is a folder that is not empty; expected a new or empty"):
        export_store(db, out)
    with pytest.raises(InputError, match=r"two.duckdb: is a file; expected a new or empty folder"):
        export_store(db, db)
    # b is already in the store it came from: nothing is written
    with pytest.raises(InputError, match="already in"):
        ingest_export(out, db)
    assert _contents(db, "assignments") == [
        ("a", "exp", "u1", "control", None),
        ("b", "exp", "u2", "control", None),
    ]
    with pytest.raises(InputError, match="no table folder"):
        ingest_export(tmp_path, tmp_path / "x.duckdb")


def test_another_schema_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "v.duckdb"
    build_store(db, assignments=[("u1", "control", None)])
    out = tmp_path / "v"
    export_store(db, out)
    meta = out / "abkit_meta" / "part-0.parquet"
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT key, CASE WHEN key = 'schema_version' THEN '99' ELSE value END AS value "
        f"FROM read_parquet('{meta}')) TO '{tmp_path / 'm.parquet'}' (FORMAT PARQUET)"
    )
    (tmp_path / "m.parquet").replace(meta)
    with pytest.raises(StoreError, match="schema version 99"):
        ingest_export(out, tmp_path / "y.duckdb")


def test_replay_runs_out_adds_the_run_to_an_export(sim_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_store(sim_db, out)
    kept: dict[str, object] = {}

    def keep(result, users, per_user):
        kept["rows"] = sorted(
            (str(u), metric, float(v))
            for metric, values in per_user.items()
            for u, v in zip(users, values, strict=True)
        )

    result = replay(sim_db, model="popularity", runs_out=out, name="pop", before_store=keep)
    assert (out / "runs" / f"run-{result.run_id}.parquet").is_file()
    # the folder reads back with the run in it, per-user values as computed
    back_then = tmp_path / "back.duckdb"
    ingest_export(out, back_then)
    with pytest.raises(InputError, match="already there"):
        append_runs(back_then, out, [result.run_id])
    rows = _contents(back_then, "run_user_metrics")
    assert sorted((u, m, v) for _, u, m, v in rows) == kept["rows"]
    assert _contents(back_then, "runs")[0][:2] == (result.run_id, "pop")
    assert _contents(sim_db, "runs") == []  # the store itself was not written
