"""Remove a dataset from the store: ``abkit datasets drop NAME``.

A dataset is its rows in every dataset-keyed table (``datasets``, ``ingests``, ``events``,
``impressions``, ``assignments``, ``experiments``, ``items``, ``truth``). Replay runs depend on
the dataset they were evaluated on, so :func:`drop_dataset` refuses while runs of it exist,
naming them, unless ``with_runs`` deletes them too. Everything is deleted in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abkit.data.replay_sql import run_row_counts
from abkit.data.runs_sql import all_runs
from abkit.data.sql import quote_ident
from abkit.data.store import _DATASET_TABLES, open_store
from abkit.errors import InputError, StoreError

__all__ = ["DroppedDataset", "drop_dataset"]

#: How many dependent runs a refusal names before it says "and N more".
_RUNS_NAMED = 10


@dataclass(frozen=True, kw_only=True)
class DroppedDataset:
    """What :func:`drop_dataset` deleted (or, with ``dry_run``, would delete): the dataset,
    its rows per table, and the ids of the replay runs deleted with it."""

    dataset: str
    rows: dict[str, int]
    runs: tuple[str, ...]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "dropped": not self.dry_run,
            "dry_run": self.dry_run,
            "rows": dict(self.rows),
            "runs": list(self.runs),
        }


def _dataset_tables() -> tuple[str, ...]:

    return tuple(t for t in _DATASET_TABLES if t != "runs")


def _rows(con: Any, dataset: str, run_ids: list[str]) -> dict[str, int]:

    out: dict[str, int] = {}
    for table in reversed(_dataset_tables()):  # datasets, ingests, events, ... truth
        row = con.execute(
            f"SELECT count(*) FROM {quote_ident(table)} WHERE dataset = ?", [dataset]
        ).fetchone()
        out[table] = int(row[0]) if row else 0
    out.update(run_row_counts(con, run_ids))
    return out


def _dependent_runs(store: Any, dataset: str, *, with_runs: bool) -> list[str]:
    """The ids of the runs of ``dataset``; refuses when there are any and not ``with_runs``."""

    records = all_runs(store.con, dataset=dataset)
    if records and not with_runs:
        named = ", ".join(
            f"{r.run_id} ({r.name})" if r.name else r.run_id for r in records[:_RUNS_NAMED]
        )
        more = f" and {len(records) - _RUNS_NAMED} more" if len(records) > _RUNS_NAMED else ""
        raise StoreError(
            f"{store.path}: dataset '{dataset}' has {len(records)} replay run(s) that depend "
            f"on it: {named}{more}; delete them first with `abkit runs delete RUN...`, or pass "
            "--with-runs to delete them with the dataset"
        )
    return [r.run_id for r in records]


def drop_dataset(
    db: str | Path | None, name: str, *, with_runs: bool = False, dry_run: bool = False
) -> DroppedDataset:
    """Delete the dataset ``name`` and all its rows from the store at ``db``.

    Refused with a one-line :class:`StoreError` naming the dependent runs while replay runs of
    the dataset exist, unless ``with_runs`` (then they are deleted in the same transaction).
    The checks run on a read-only store first, so an unknown dataset or a refusal leaves the
    file untouched; the deletion is one transaction (all or nothing). ``dry_run`` only
    reports what would be deleted. Returns the rows deleted per table.
    """

    if not isinstance(name, str) or not name:
        raise InputError("name the dataset to drop; list them with `abkit datasets list`")
    with open_store(db) as store:
        dataset = store.resolve_dataset(name)
        run_ids = _dependent_runs(store, dataset, with_runs=with_runs)
        rows = _rows(store.con, dataset, run_ids)
    if not dry_run:
        with open_store(db, write=True) as store:
            # checked again once this process holds the write lock (no other process can
            # write until it is released): runs may have been added since the first look
            dataset = store.resolve_dataset(name)
            run_ids = _dependent_runs(store, dataset, with_runs=with_runs)
            rows = _rows(store.con, dataset, run_ids)
            store.drop_dataset(dataset)
    return DroppedDataset(dataset=dataset, rows=rows, runs=tuple(run_ids), dry_run=dry_run)
