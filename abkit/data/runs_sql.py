"""SQL that reads replay runs back for paired comparisons and baselines.

The replay runner (``abkit.replay``) writes ``runs``, ``run_user_metrics``, ``run_estimates``
and ``run_rounds``; this module only reads them. Pairing happens here, in DuckDB: users (or
logged rounds) are inner-joined across runs and returned as one column per run in the same
row order, so the statistics never loop over rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from abkit._util import did_you_mean
from abkit.data.sql import quote_ident
from abkit.errors import StoreError

if TYPE_CHECKING:
    import duckdb
    import numpy as np

__all__ = [
    "PairedRounds",
    "PairedUsers",
    "RunRecord",
    "fetch_run",
    "fetch_runs",
    "paired_rounds",
    "paired_user_metrics",
    "run_estimator_names",
    "run_metric_names",
    "run_user_count",
]


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One row of ``runs``: what was replayed, on which data and split."""

    run_id: str
    name: str | None
    dataset: str
    model: str
    kind: str
    params: dict[str, Any]
    split: str
    ks: tuple[int, ...]
    fingerprint: str
    code_version: str
    created_at: str
    users: int | None
    summary: dict[str, Any] | None

    @property
    def label(self) -> str:
        """``name`` when the run has one, else ``model`` (what tables show)."""
        return self.name or self.model

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "dataset": self.dataset,
            "model": self.model,
            "kind": self.kind,
            "params": self.params,
            "split": self.split,
            "ks": list(self.ks),
            "fingerprint": self.fingerprint,
            "code_version": self.code_version,
            "created_at": self.created_at,
            "users": self.users,
        }


_RUN_COLUMNS = (
    "run_id, name, dataset, model, kind, params, split, ks, fingerprint, code_version, "
    "CAST(created_at AS VARCHAR), users, summary"
)


def _json(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"raw": text}


def _record(row: tuple[Any, ...]) -> RunRecord:
    params = _json(row[5])
    return RunRecord(
        run_id=row[0],
        name=row[1],
        dataset=row[2],
        model=row[3],
        kind=row[4],
        params=params if isinstance(params, dict) else {},
        split=row[6],
        ks=tuple(int(k) for k in (row[7] or ())),
        fingerprint=row[8],
        code_version=row[9],
        created_at=row[10],
        users=row[11],
        summary=_json(row[12]),
    )


def fetch_run(con: duckdb.DuckDBPyConnection, run: str) -> RunRecord:
    """The run whose ``run_id`` is ``run`` or, failing that, whose unique ``name`` is ``run``.

    Raises :class:`StoreError` naming the closest run id or name when there is none, or
    listing the candidates when a name is ambiguous.
    """
    row = con.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", [run]).fetchone()
    if row is not None:
        return _record(row)
    rows = con.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE name = ? ORDER BY created_at", [run]
    ).fetchall()
    if len(rows) == 1:
        return _record(rows[0])
    if len(rows) > 1:
        ids = ", ".join(r[0] for r in rows)
        raise StoreError(f"run name '{run}' is ambiguous ({ids}); pass a run id")
    known = [r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()]
    known += [
        r[0]
        for r in con.execute("SELECT DISTINCT name FROM runs WHERE name IS NOT NULL").fetchall()
    ]
    if not known:
        raise StoreError(
            f"no run '{run}': the store holds no replay runs; create one with `abkit replay`"
        )
    raise StoreError(f"no run '{run}'{did_you_mean(run, known)}; list the runs with `abkit runs`")


def fetch_runs(con: duckdb.DuckDBPyConnection, runs: list[str]) -> list[RunRecord]:
    """:func:`fetch_run` for each name, in order."""
    return [fetch_run(con, r) for r in runs]


def run_metric_names(con: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """The per-user metrics a run recorded, sorted."""
    rows = con.execute(
        "SELECT DISTINCT metric FROM run_user_metrics WHERE run_id = ? ORDER BY metric", [run_id]
    ).fetchall()
    return [r[0] for r in rows]


def run_estimator_names(con: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """The off-policy estimators a run reported (``run_estimates``), sorted."""
    rows = con.execute(
        "SELECT DISTINCT estimator FROM run_estimates WHERE run_id = ? ORDER BY estimator",
        [run_id],
    ).fetchall()
    return [r[0] for r in rows]


def run_user_count(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    row = con.execute(
        "SELECT count(DISTINCT user_id) FROM run_user_metrics WHERE run_id = ?", [run_id]
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True, kw_only=True, eq=False)
class PairedUsers:
    """Per-user values of one metric for several runs, on the users every run scored.

    ``values[:, j]`` belongs to ``run_ids[j]``; rows follow ``user_ids`` (sorted).
    ``users_per_run`` counts each run's users before pairing, so callers can say how many
    were dropped.
    """

    metric: str
    run_ids: tuple[str, ...]
    user_ids: np.ndarray
    values: np.ndarray
    users_per_run: tuple[int, ...]


def paired_user_metrics(
    con: duckdb.DuckDBPyConnection, run_ids: list[str], metric: str
) -> PairedUsers:
    """Inner-join ``run_user_metrics`` of ``run_ids`` on ``user_id`` for one metric.

    One query: each run is a sub-select aliased ``r0, r1, ...``; the join keeps users present
    in every run, ordered by ``user_id`` so a saved vector can be re-aligned later.
    """
    import numpy as np

    if not run_ids:
        raise StoreError("no runs to pair")
    parts = []
    params: list[Any] = []
    for i, run_id in enumerate(run_ids):
        alias = quote_ident(f"r{i}")
        parts.append(
            f"(SELECT user_id, value FROM run_user_metrics WHERE run_id = ? AND metric = ?) {alias}"
        )
        params += [run_id, metric]
    select = ", ".join(f"{quote_ident(f'r{i}')}.value" for i in range(len(run_ids)))
    first = quote_ident("r0")
    sql = f"SELECT {first}.user_id, {select} FROM {parts[0]}"
    for i in range(1, len(run_ids)):
        sql += f" JOIN {parts[i]} USING (user_id)"
    sql += " ORDER BY user_id"
    columns = con.execute(sql, params).fetchnumpy()
    keys = list(columns)
    user_ids = np.asarray(columns[keys[0]], dtype=object).astype(str)
    values = (
        np.column_stack([np.asarray(columns[k], dtype=np.float64) for k in keys[1:]])
        if len(user_ids)
        else np.empty((0, len(run_ids)))
    )
    counts = con.execute(
        "SELECT run_id, count(*) FROM run_user_metrics WHERE metric = ? AND run_id IN "
        f"({', '.join('?' for _ in run_ids)}) GROUP BY run_id",
        [metric, *run_ids],
    ).fetchall()
    per_run = dict(counts)
    return PairedUsers(
        metric=metric,
        run_ids=tuple(run_ids),
        user_ids=user_ids,
        values=values,
        users_per_run=tuple(int(per_run.get(r, 0)) for r in run_ids),
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class PairedRounds:
    """Logged rounds that every off-policy run scored, joined on ``impression_id``.

    ``reward`` comes from the first run (the logs are shared; ``reward_mismatches`` counts
    rounds where another run recorded a different reward, which means different logs).
    ``weight``, ``q_logged``, ``q_policy`` have one column per run (NaN where NULL).
    ``cluster_ids`` (int64 codes ``0..G-1``) name each round's randomisation unit in the
    logged impressions of the first run's dataset: the user for user-level datasets, the
    slate (else the impression) for impression-level ones. A round whose impression is no
    longer in the store is its own unit; ``unlogged_rounds`` counts those.
    """

    run_ids: tuple[str, ...]
    impression_ids: np.ndarray
    cluster_ids: np.ndarray
    unlogged_rounds: int
    reward: np.ndarray
    weight: np.ndarray
    q_logged: np.ndarray
    q_policy: np.ndarray
    rounds_per_run: tuple[int, ...]
    reward_mismatches: int


def paired_rounds(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> PairedRounds:
    """Inner-join ``run_rounds`` of ``run_ids`` on ``impression_id`` (one query)."""
    import numpy as np

    if not run_ids:
        raise StoreError("no runs to pair")
    parts = []
    params: list[Any] = []
    for i, run_id in enumerate(run_ids):
        alias = quote_ident(f"r{i}")
        parts.append(
            "(SELECT impression_id, weight, reward, q_logged, q_policy FROM run_rounds "
            f"WHERE run_id = ?) {alias}"
        )
        params.append(run_id)
    cols = [f"{quote_ident('r0')}.impression_id AS impression_id"]
    for i in range(len(run_ids)):
        a = quote_ident(f"r{i}")
        cols += [
            f"{a}.reward AS {quote_ident(f'reward{i}')}",
            f"{a}.weight AS {quote_ident(f'weight{i}')}",
            f"{a}.q_logged AS {quote_ident(f'q_logged{i}')}",
            f"{a}.q_policy AS {quote_ident(f'q_policy{i}')}",
        ]
    # the randomisation unit of each logged round, from the impressions the runs replayed
    dataset_row = con.execute("SELECT dataset FROM runs WHERE run_id = ?", [run_ids[0]]).fetchone()
    units = """units AS (
        SELECT impression_id, min(CASE
            WHEN (SELECT unit FROM datasets WHERE dataset = ?) = 'impression'
            THEN 's' || coalesce(CAST(slate_id AS VARCHAR), 'i' || CAST(impression_id AS VARCHAR))
            ELSE 'u' || user_id END) AS unit_key
        FROM impressions WHERE dataset = ? GROUP BY impression_id)"""
    dataset = dataset_row[0] if dataset_row else None
    first = quote_ident("r0")
    cols += [
        "dense_rank() OVER (ORDER BY coalesce(units.unit_key, "
        f"'r' || CAST({first}.impression_id AS VARCHAR))) - 1 AS cluster_idx",
        "units.unit_key IS NULL AS unlogged",
    ]
    sql = f"WITH {units} SELECT {', '.join(cols)} FROM {parts[0]}"
    for i in range(1, len(run_ids)):
        sql += f" JOIN {parts[i]} USING (impression_id)"
    sql += f" LEFT JOIN units ON units.impression_id = {first}.impression_id"
    sql += f" ORDER BY {first}.impression_id"
    data = con.execute(sql, [dataset, dataset, *params]).fetchnumpy()
    k = len(run_ids)

    def stack(prefix: str) -> np.ndarray:
        arrays = []
        for i in range(k):
            col = data[f"{prefix}{i}"]
            # NULL q-values come back as a masked array; NaN marks them
            arrays.append(np.ma.filled(np.ma.asarray(col, dtype=np.float64), np.nan))
        return np.column_stack(arrays) if arrays and len(arrays[0]) else np.empty((0, k))

    rewards = stack("reward")
    reward = rewards[:, 0] if len(rewards) else np.empty(0)
    mismatches = (
        int(np.count_nonzero(np.any(rewards != rewards[:, :1], axis=1))) if len(rewards) else 0
    )
    counts = dict(
        con.execute(
            "SELECT run_id, count(*) FROM run_rounds WHERE run_id IN "
            f"({', '.join('?' for _ in run_ids)}) GROUP BY run_id",
            run_ids,
        ).fetchall()
    )
    return PairedRounds(
        run_ids=tuple(run_ids),
        impression_ids=np.asarray(data["impression_id"], dtype=np.int64),
        cluster_ids=np.asarray(data["cluster_idx"], dtype=np.int64),
        unlogged_rounds=int(np.count_nonzero(np.asarray(data["unlogged"], dtype=bool))),
        reward=reward,
        weight=stack("weight"),
        q_logged=stack("q_logged"),
        q_policy=stack("q_policy"),
        rounds_per_run=tuple(int(counts.get(r, 0)) for r in run_ids),
        reward_mismatches=mismatches,
    )
