"""Stored replay runs: list them, read one back, fetch its per-user or per-round values.

A run is written once by :func:`abkit.replay.runner.replay` and never changed. Its
``fingerprint`` identifies the evaluation data (training and test interactions or logged
rounds, the split and the seen-item rule), so two runs with equal fingerprints and splits were
evaluated on exactly the same users or rounds and can be compared pairwise.

These functions open the store at ``db`` and call :mod:`abkit.data.runs_sql`, which holds the
SQL, the one :class:`RunRecord` type and the one lookup rule (a run id, or a unique run name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abkit._util import unknown_choice
from abkit.data.replay_sql import delete_runs as delete_sql
from abkit.data.replay_sql import run_row_counts
from abkit.data.runs_sql import RunRecord, all_runs, fetch_run, stored_rounds, user_values
from abkit.data.store import open_store
from abkit.errors import InputError, StoreError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DeletedRuns",
    "RunRecord",
    "delete_runs",
    "get_run",
    "list_runs",
    "run_rounds",
    "run_user_values",
]


def list_runs(db: str | Path | None = None, *, dataset: str | None = None) -> list[RunRecord]:
    """Every stored run (oldest first), optionally of one dataset."""

    with open_store(db) as store:
        if dataset is not None:
            dataset = store.resolve_dataset(dataset)
        return all_runs(store.con, dataset=dataset)


def get_run(db: str | Path | None, run_id: str) -> RunRecord:
    """The run with id (or unique name) ``run_id``; see :func:`abkit.data.runs_sql.fetch_run`
    for the errors."""

    with open_store(db) as store:
        return fetch_run(store.con, run_id)


def run_user_values(
    db: str | Path | None, run_id: str, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, values) of one per-user metric (e.g. ``ndcg@10``) of a run, by user id."""

    with open_store(db) as store:
        record = fetch_run(store.con, run_id)
        users, values = user_values(store.con, record.run_id, metric)
    if users.size == 0 and record.users:
        names = sorted(record.summary.get("metrics", {}))
        raise StoreError(unknown_choice(f"per-user metric of run {run_id}", metric, names))
    return users, values


def run_rounds(db: str | Path | None, run_id: str) -> dict[str, np.ndarray]:
    """Per-round ``impression_id, weight, reward, q_logged, q_policy`` of an off-policy run."""

    with open_store(db) as store:
        record = fetch_run(store.con, run_id)
        if record.kind != "offpolicy":
            raise StoreError(f"run {run_id} is a ranking run; it has no logged rounds")
        return stored_rounds(store.con, record.run_id)


@dataclass(frozen=True, kw_only=True)
class DeletedRuns:
    """What :func:`delete_runs` deleted (or, with ``dry_run``, would delete): the runs and
    their rows per table (``runs``, ``run_user_metrics``, ``run_estimates``, ``run_rounds``)."""

    runs: tuple[RunRecord, ...]
    rows: dict[str, int]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "deleted": not self.dry_run,
            "dry_run": self.dry_run,
            "runs": [r.to_provenance_dict() for r in self.runs],
            "rows": dict(self.rows),
        }


def delete_runs(
    db: str | Path | None, runs: Sequence[str], *, dry_run: bool = False
) -> DeletedRuns:
    """Delete the stored runs ``runs`` (each a run id or a unique run name, looked up as
    :func:`get_run` does) with their per-user values, estimates and logged rounds.

    All or nothing: every run is looked up first, on a read-only store, so an unknown or
    ambiguous one raises :class:`StoreError` and leaves the file untouched; then all are
    deleted in one transaction. A run named twice is deleted once. ``dry_run`` only reports
    what would be deleted. Datasets are not touched, and nothing else refers to a run (a
    baseline file keeps its own copy of what it needs).
    """

    if not runs:
        raise InputError(
            "give at least one run (id or name) to delete; list them with `abkit runs`"
        )
    with open_store(db) as store:
        found: dict[str, RunRecord] = {}
        for run in runs:
            record = fetch_run(store.con, run)
            found.setdefault(record.run_id, record)
        rows = run_row_counts(store.con, list(found))
    if not dry_run:
        with open_store(db, write=True) as store, store.transaction() as con:
            # looked up again by id: another process may have changed the store meanwhile
            records = [fetch_run(con, run_id) for run_id in found]
            rows = run_row_counts(con, list(found))
            delete_sql(con, [r.run_id for r in records])
    return DeletedRuns(runs=tuple(found.values()), rows=rows, dry_run=dry_run)
