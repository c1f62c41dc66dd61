"""Dropping a dataset (:func:`abkit.data.datasets.drop_dataset`): every row of it, nothing of
the others, all or nothing; refused while replay runs depend on it, unless ``with_runs``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from abkit.data.datasets import drop_dataset
from abkit.data.ingest import ingest_file
from abkit.data.schema import TABLES
from abkit.data.store import open_store
from abkit.errors import InputError, StoreError
from abkit.replay.runner import replay
from tests.conftest import file_digest
from tests.replay.helpers import structured_events, write_store

EVENTS = Path(__file__).parents[1] / "fixtures" / "events_ab.csv"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Dataset 't' (events only, for replay) and dataset 'shop' (an ingested A/B test)."""
    db = write_store(tmp_path / "d.duckdb", events=structured_events(n_users=60, seed=2))
    ingest_file(EVENTS, db, dataset="shop", control="control")
    return db


def _rows_per_dataset(db: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    with open_store(db) as s:
        for table, columns in TABLES.items():
            if "dataset VARCHAR" not in columns:
                continue
            for dataset, n in s.con.execute(
                f"SELECT dataset, count(*) FROM {table} GROUP BY dataset"
            ).fetchall():
                out.setdefault(dataset, {})[table] = n
    return out


def test_drop_removes_every_row_of_the_dataset_and_nothing_else(store: Path) -> None:
    before = _rows_per_dataset(store)
    assert set(before) == {"t", "shop"}

    dropped = drop_dataset(store, "shop")

    assert _rows_per_dataset(store) == {"t": before["t"]}
    assert {t: n for t, n in dropped.rows.items() if n} == before["shop"]
    assert dropped.runs == ()
    assert dropped.to_dict()["dropped"] is True
    # the ingest record went too, so the same file can be ingested again
    ingest_file(EVENTS, store, dataset="shop", control="control")
    assert _rows_per_dataset(store)["shop"] == before["shop"]


def test_runs_of_the_dataset_block_the_drop_and_are_named(store: Path) -> None:
    a = replay(store, model="popularity", dataset="t", name="pop")
    b = replay(store, model="random", dataset="t")
    before = file_digest(store)
    with pytest.raises(StoreError) as info:
        drop_dataset(store, "t")
    assert str(info.value) == (
        f"{store}: dataset 't' has 2 replay run(s) that depend on it: {a.run_id} (pop), "
        f"{b.run_id}; delete them first with `abkit runs delete RUN...`, or pass --with-runs "
        "to delete them with the dataset"
    )
    assert file_digest(store) == before
    # the other dataset has no runs and can go
    drop_dataset(store, "shop")


def test_with_runs_deletes_the_runs_in_the_same_transaction(store: Path) -> None:
    run = replay(store, model="popularity", dataset="t", name="pop")
    dropped = drop_dataset(store, "t", with_runs=True)
    assert dropped.runs == (run.run_id,)
    assert dropped.rows["runs"] == 1
    assert dropped.rows["run_user_metrics"] > 0
    with open_store(store) as s:
        for table in ("runs", "run_user_metrics", "run_estimates", "run_rounds"):
            assert s.con.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
    assert set(_rows_per_dataset(store)) == {"shop"}


def test_a_failure_inside_the_transaction_leaves_everything(store: Path, monkeypatch) -> None:
    replay(store, model="popularity", dataset="t")
    before = _rows_per_dataset(store)
    import abkit.data.datasets as datasets_module
    import abkit.data.store as store_module

    # the last table of the drop fails (the counting before it does not): the runs and the
    # tables deleted before it must come back
    counted = datasets_module._dataset_tables()
    monkeypatch.setattr(datasets_module, "_dataset_tables", lambda: counted)
    monkeypatch.setattr(store_module, "_DATASET_TABLES", (*store_module._DATASET_TABLES, "nope"))
    with pytest.raises(Exception, match="nope"):
        drop_dataset(store, "t", with_runs=True)
    assert _rows_per_dataset(store) == before
    with open_store(store) as s:
        assert s.con.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_dry_run_reports_without_deleting(store: Path) -> None:
    replay(store, model="popularity", dataset="t")
    before = file_digest(store)
    plan = drop_dataset(store, "t", with_runs=True, dry_run=True)
    assert plan.rows["events"] > 0
    assert len(plan.runs) == 1
    assert plan.to_dict()["dry_run"] is True
    assert file_digest(store) == before


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("sho", StoreError, "unknown dataset 'sho' (did you mean 'shop'?); expected one of: shop, t"),  # noqa: E501
        ("", InputError, "name the dataset to drop; list them with `abkit datasets list`"),
    ],
)  # fmt: skip
def test_unknown_dataset_changes_nothing(store: Path, name, error, message) -> None:
    before = file_digest(store)
    with pytest.raises(error, match=re.escape(message)):
        drop_dataset(store, name)
    assert file_digest(store) == before


def test_missing_store_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none.duckdb"
    with pytest.raises(StoreError, match="no such database"):
        drop_dataset(path, "x")
    assert not path.exists()
