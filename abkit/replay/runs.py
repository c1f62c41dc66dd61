"""Stored replay runs: list them, read one back, fetch its per-user or per-round values.

A run is written once by :func:`abkit.replay.runner.replay` and never changed. Its
``fingerprint`` identifies the evaluation data (training and test interactions or logged
rounds, the split and the seen-item rule), so two runs with equal fingerprints and splits were
evaluated on exactly the same users or rounds and can be compared pairwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abkit.errors import StoreError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["RunRecord", "get_run", "list_runs", "run_rounds", "run_user_values"]


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One row of the ``runs`` table, with its summary decoded."""

    run_id: str
    name: str | None
    dataset: str
    model: str
    kind: str
    params_json: str
    split: str
    ks: tuple[int, ...]
    fingerprint: str
    code_version: str
    created_at: datetime
    users: int | None
    summary_json: str | None

    @property
    def params(self) -> dict[str, Any]:
        return json.loads(self.params_json)

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.summary_json) if self.summary_json else {}

    def to_dict(self) -> dict[str, Any]:
        summary = self.summary
        return {
            "run_id": self.run_id,
            "name": self.name,
            "dataset": self.dataset,
            "model": self.model,
            "kind": self.kind,
            "params": self.params,
            "split": self.split,
            "k": list(self.ks),
            "users": self.users,
            "fingerprint": self.fingerprint,
            "code_version": self.code_version,
            "created_at": self.created_at.isoformat(),
            "metrics": summary.get("metrics", {}),
            "estimates": summary.get("estimates", {}),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRecord:
        return cls(
            run_id=row["run_id"],
            name=row["name"],
            dataset=row["dataset"],
            model=row["model"],
            kind=row["kind"],
            params_json=row["params"],
            split=row["split"],
            ks=tuple(int(k) for k in (row["ks"] or ())),
            fingerprint=row["fingerprint"],
            code_version=row["code_version"],
            created_at=row["created_at"],
            users=row["users"],
            summary_json=row["summary"],
        )


def list_runs(db: str | Path | None = None, *, dataset: str | None = None) -> list[RunRecord]:
    """Every stored run (oldest first), optionally of one dataset."""
    from abkit.data.replay_sql import select_runs
    from abkit.data.store import open_store

    with open_store(db) as store:
        if dataset is not None:
            dataset = store.resolve_dataset(dataset)
        return [RunRecord.from_row(r) for r in select_runs(store.con, dataset=dataset)]


def get_run(db: str | Path | None, run_id: str) -> RunRecord:
    """The run ``run_id``; a one-line error naming the closest id when unknown."""
    from abkit._util import unknown_choice
    from abkit.data.replay_sql import select_runs
    from abkit.data.store import open_store

    with open_store(db) as store:
        rows = select_runs(store.con, run_ids=[run_id])
        if not rows:
            known = [r["run_id"] for r in select_runs(store.con)]
            raise StoreError(f"{store.path}: " + unknown_choice("run", run_id, known))
        return RunRecord.from_row(rows[0])


def run_user_values(
    db: str | Path | None, run_id: str, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, values) of one per-user metric (e.g. ``ndcg@10``) of a run, by user id."""
    from abkit.data.replay_sql import select_run_user_metrics
    from abkit.data.store import open_store

    record = get_run(db, run_id)
    with open_store(db) as store:
        users, values = select_run_user_metrics(store.con, run_id, metric)
    if users.size == 0 and record.users:
        names = sorted(record.summary.get("metrics", {}))
        from abkit._util import unknown_choice

        raise StoreError(unknown_choice(f"per-user metric of run {run_id}", metric, names))
    return users, values


def run_rounds(db: str | Path | None, run_id: str) -> dict[str, np.ndarray]:
    """Per-round ``impression_id, weight, reward, q_logged, q_policy`` of an off-policy run."""
    from abkit.data.replay_sql import select_run_rounds
    from abkit.data.store import open_store

    record = get_run(db, run_id)
    if record.kind != "offpolicy":
        raise StoreError(f"run {run_id} is a {record.kind} run; it has no logged rounds")
    with open_store(db) as store:
        return select_run_rounds(store.con, run_id)
