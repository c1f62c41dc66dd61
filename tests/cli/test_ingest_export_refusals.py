"""`abkit ingest DIR --format abkit-parquet` refusals, one row per bad export folder: the
exact one-line message (naming the folder, the table and the missing columns), exit 2, no
traceback; a store that did not exist is not created, one that did is byte-identical."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from abkit.cli.main import app
from abkit.data.parquet import export_store
from tests._ab_store import build_store, day, hand_store
from tests.conftest import file_digest

EVENTS = "dataset, user_id, session_id, item_id, event_type, ts, value"
RUNS = (
    "run_id, name, dataset, model, kind, params, split, ks, fingerprint, code_version, "
    "created_at, users, summary"
)
ALL_TABLES = (
    "abkit_meta, datasets, ingests, events, impressions, impression_features, assignments, "
    "experiments, items, truth, runs, run_user_metrics, run_estimates, run_rounds"
)
DUCKDB = "<DuckDB's first line>"  # the one part of a message that is DuckDB's own text


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    out = root / "shop"
    export_store(hand_store(root / "h.duckdb"), out)
    return out


def _rewrite(path: Path, select: str) -> None:
    """Replace a Parquet file with ``select`` over its rows (``t``)."""
    con = duckdb.connect()
    tmp = path.with_name("new.parquet.tmp")
    con.execute(f"COPY (SELECT {select} FROM read_parquet('{path}') t) TO '{tmp}' (FORMAT PARQUET)")
    con.close()
    tmp.replace(path)


def _each(table: str, select: str) -> Callable[[Path], None]:
    def change(out: Path) -> None:
        for path in (out / table).rglob("*.parquet"):
            _rewrite(path, select)

    return change


def _remove(table: str) -> Callable[[Path], None]:
    def change(out: Path) -> None:
        shutil.rmtree(out / table)

    return change


def _empty_folder(table: str) -> Callable[[Path], None]:
    def change(out: Path) -> None:
        shutil.rmtree(out / table)
        (out / table).mkdir()

    return change


def _garbage(out: Path) -> None:
    (path,) = (out / "items").rglob("*.parquet")
    path.write_bytes(b"not parquet at all")


def _version(out: Path) -> None:
    _rewrite(
        out / "abkit_meta" / "part-0.parquet",
        "key, CASE WHEN key = 'schema_version' THEN '99' ELSE value END AS value",
    )


# (what the folder gets wrong, its change, the exact message; {out}: the folder)
REFUSALS = [
    (
        "events without ts",
        _each("events", "* EXCLUDE (ts)"),
        f"error: {{out}}/events: the export lacks column ts (expected the abkit schema v2 "
        f"columns: {EVENTS})",
    ),
    (
        "events without ts and value",
        _each("events", "* EXCLUDE (ts, value)"),
        f"error: {{out}}/events: the export lacks columns ts, value (expected the abkit schema "
        f"v2 columns: {EVENTS})",
    ),
    (
        "runs without run_id",
        _each("runs", "* EXCLUDE (run_id)"),
        f"error: {{out}}/runs: the export lacks column run_id (expected the abkit schema v2 "
        f"columns: {RUNS})",
    ),
    (
        "abkit_meta without value",
        _each("abkit_meta", "key"),
        "error: {out}/abkit_meta: the export lacks column value (expected the abkit schema v2 "
        "columns: key, value)",
    ),
    (
        "an empty table folder",
        _empty_folder("runs"),
        f"error: {{out}}/runs: the export has no Parquet file for table runs (expected the "
        f"abkit schema v2 columns: {RUNS})",
    ),
    (
        "a table folder missing",
        _remove("truth"),
        "error: {out}: has no table folder truth/; expected a folder written by `abkit export` "
        f"(one folder per table: {ALL_TABLES})",
    ),
    (
        "another schema version",
        _version,
        "error: {out}: abkit schema version 99, this abkit reads version 2; re-export it with "
        "a matching abkit",
    ),
    (
        "a file that is not Parquet",
        _garbage,
        f"error: {{out}}/items: cannot read its Parquet files ({DUCKDB})",
    ),
    (
        "a NULL where the schema has NOT NULL",
        _each("assignments", "* REPLACE (NULL::VARCHAR AS variant)"),
        f"error: {{out}}/assignments: cannot load it into the store ({DUCKDB})",
    ),
]


def _matches(message: str, line: str) -> bool:
    pattern = re.escape(message).replace(re.escape(DUCKDB), r"[^\n]+")
    return re.fullmatch(pattern, line) is not None


@pytest.mark.parametrize(
    ("change", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
@pytest.mark.parametrize("store", ["new", "existing"])
def test_refused_export_folders(
    runner: CliRunner,
    export: Path,
    tmp_path: Path,
    change: Callable[[Path], None],
    message: str,
    store: str,
) -> None:
    out = tmp_path / "bad"
    shutil.copytree(export, out)
    change(out)
    db = tmp_path / "s.duckdb"
    if store == "existing":
        build_store(db, dataset="other", assignments=[("u1", "control", day(0))])
    before = file_digest(db)
    result = runner.invoke(app, ["ingest", str(out), "--format", "abkit-parquet", "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert _matches(message.format(out=out), lines[0]), lines[0]
    assert file_digest(db) == before  # None: not created
    assert not db.with_name("s.duckdb.wal").exists()


def test_a_dataset_already_in_the_store_is_refused_and_changes_nothing(
    runner: CliRunner, export: Path, tmp_path: Path
) -> None:
    db = tmp_path / "s.duckdb"
    first = runner.invoke(
        app, ["ingest", str(export), "--format", "abkit-parquet", "--db", str(db)]
    )
    assert first.exit_code == 0, first.output
    before = file_digest(db)
    again = runner.invoke(
        app, ["ingest", str(export), "--format", "abkit-parquet", "--db", str(db)]
    )
    assert again.exit_code == 2
    assert again.stderr.splitlines() == [
        f"error: dataset 'shop' is already in {db}; drop it first (`abkit datasets drop shop`) "
        "or ingest into another --db"
    ]
    assert file_digest(db) == before
