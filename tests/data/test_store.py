"""The store: creation, schema versioning, and the one-line errors for unusable files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from abkit.cli.main import app
from abkit.data.schema import SCHEMA_VERSION, TABLES
from abkit.data.sql import quote_ident
from abkit.data.store import open_store
from abkit.errors import StoreError, StoreLockedError
from tests.conftest import file_digest, holding_write_lock


def test_new_store_has_every_table_and_the_version(db_path: Path) -> None:
    with open_store(db_path, write=True) as store:
        tables = {
            r[0] for r in store.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        version = store.con.execute(
            "SELECT value FROM abkit_meta WHERE key = 'schema_version'"
        ).fetchone()
    assert tables == set(TABLES)
    assert version == (str(SCHEMA_VERSION),)


def test_transaction_rolls_back_on_error(db_path: Path) -> None:
    with open_store(db_path, write=True) as store:

        def failing_write() -> None:
            with store.transaction():
                store.add_dataset("a", source="ingest")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            failing_write()
        assert store.datasets() == []


def test_quote_ident_escapes_quotes() -> None:
    assert quote_ident('we"ird') == '"we""ird"'
    with pytest.raises(ValueError, match="invalid SQL identifier"):
        quote_ident("")


def test_resolve_dataset_suggests_the_closest_name(db_path: Path) -> None:
    with open_store(db_path, write=True) as store:
        store.add_dataset("obd-all", source="ingest")
        store.add_dataset("sim", source="simulate")
        with pytest.raises(
            StoreError, match=r"unknown dataset 'obd-al' \(did you mean 'obd-all'\?\)"
        ):
            store.resolve_dataset("obd-al")
        with pytest.raises(StoreError, match="holds several datasets"):
            store.resolve_dataset(None)
        assert store.resolve_dataset("sim") == "sim"


def _bad_text(path: Path) -> None:
    path.write_text("user_id,item\n1,2\n")


def _other_version(path: Path) -> None:
    with open_store(path, write=True) as store:
        store.con.execute("UPDATE abkit_meta SET value = '999' WHERE key = 'schema_version'")


def _foreign_duckdb(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE orders (id INTEGER)")
    con.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_bad_text, "not a DuckDB database (expected a store written by abkit)"),
        (
            _other_version,
            f"store schema version 999, but this abkit reads version {SCHEMA_VERSION}; "
            "re-create it with this version of abkit",
        ),
        (_foreign_duckdb, "a DuckDB database but not an abkit store (it has no abkit_meta table)"),
    ],
    ids=["text-file", "schema-version", "foreign-duckdb"],
)
def test_unusable_store_one_line_error_and_file_unchanged(runner, db_path, make, message) -> None:
    make(db_path)
    before = file_digest(db_path)
    result = runner.invoke(app, ["info", "--db", str(db_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {db_path}: {message}"
    assert "Traceback" not in result.output
    assert file_digest(db_path) == before


def test_missing_store_says_how_to_create_one(runner, db_path) -> None:
    result = runner.invoke(app, ["info", "--db", str(db_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {db_path}: no such database; create one with `abkit simulate` or `abkit ingest`"
    )
    assert not db_path.exists()


def test_locked_store_names_the_holder(runner, db_path) -> None:
    with open_store(db_path, write=True):
        pass
    before = file_digest(db_path)
    with holding_write_lock(db_path) as pid:
        with pytest.raises(StoreLockedError) as info:
            open_store(db_path, write=True)
        assert str(info.value).startswith(f"{db_path}: the database is locked by process {pid}")
        assert str(info.value).endswith("wait for it to finish or pass another db")
        result = runner.invoke(app, ["info", "--db", str(db_path)])
        assert result.exit_code == 2
        assert f"locked by process {pid}" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert file_digest(db_path) == before


def test_info_on_an_empty_store(runner, db_path) -> None:
    with open_store(db_path, write=True):
        pass
    result = runner.invoke(app, ["info", "--db", str(db_path), "--json"])
    assert result.exit_code == 0, result.output
    import json

    payload = json.loads(result.stdout)
    assert payload["schema_version"] == SCHEMA_VERSION
    assert payload["datasets"] == []


def test_drop_dataset_removes_only_that_dataset(db_path: Path) -> None:
    with open_store(db_path, write=True) as store:
        with store.transaction() as con:
            for name in ("a", "b"):
                store.add_dataset(name, source="ingest")
                con.execute(
                    "INSERT INTO events VALUES "
                    "(?, 'u1', NULL, 'i1', 'view', TIMESTAMP '2024-01-01', NULL)",
                    [name],
                )
                con.execute(
                    "INSERT INTO runs VALUES (?, NULL, ?, 'random', 'ranking', '{}', 'temporal',"
                    " [10],"
                    " 'fp', '0', TIMESTAMP '2024-01-01', 1, NULL)",
                    [f"run-{name}", name],
                )
                con.execute(
                    "INSERT INTO run_user_metrics VALUES (?, 'u1', 'ndcg@10', 0.5)", [f"run-{name}"]
                )
        store.drop_dataset("a")
        assert store.datasets() == ["b"]
        assert store.con.execute("SELECT DISTINCT dataset FROM events").fetchall() == [("b",)]
        assert store.con.execute("SELECT run_id FROM run_user_metrics").fetchall() == [("run-b",)]


def test_a_holder_is_described_on_one_line() -> None:
    # A notebook or `python -c` script holding the lock has newlines in its command line;
    # the --wait warning printed them as they were, across several lines.
    import subprocess
    import sys

    from abkit.data.store import _holder

    script = "import time\nprint('ready', flush=True)\nfor _ in range(600):\n\ttime.sleep(0.1)"
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"  # its command line is set by now
        described = _holder(str(child.pid))
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert described.startswith(f"process {child.pid} (")
    assert "\n" not in described
    assert "\t" not in described
    # (the interpreter's path comes first, and the description is cut at 80 characters)
    assert described.endswith(")")
