"""Stored replay runs: list them, read one back, fetch its per-user or per-round values.

A run is written once by :func:`abkit.replay.runner.replay` and never changed. Its
``fingerprint`` identifies the evaluation data (training and test interactions or logged
rounds, the split and the seen-item rule), so two runs with equal fingerprints and splits were
evaluated on exactly the same users or rounds and can be compared pairwise.

These functions open the store at ``db`` and call :mod:`abkit.data.runs_sql`, which holds the
SQL, the one :class:`RunRecord` type and the one lookup rule (a run id, or a unique run name).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from abkit._util import unknown_choice
from abkit.data.runs_sql import RunRecord, all_runs, fetch_run, stored_rounds, user_values
from abkit.data.store import open_store
from abkit.errors import StoreError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["RunRecord", "get_run", "list_runs", "run_rounds", "run_user_values"]


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
            raise StoreError(f"run {run_id} is a {record.kind} run; it has no logged rounds")
        return stored_rounds(store.con, record.run_id)
