"""All the SQL that reads replay runs back: run records, per-user values, logged rounds.

The replay runner (``abkit.replay``) writes ``runs``, ``run_user_metrics``, ``run_estimates``
and ``run_rounds`` (:func:`abkit.data.replay_sql.insert_run`); this module only reads them.
:class:`RunRecord` is the one type a stored run is read back as, and :func:`fetch_run` the one
rule that finds a run by id or unique name. Pairing happens here, in DuckDB: users (or logged
rounds) are inner-joined across runs and returned as one column per run in the same row
order, so the statistics never loop over rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
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
    "all_runs",
    "fetch_run",
    "fetch_runs",
    "paired_rounds",
    "paired_user_metrics",
    "run_estimator_names",
    "run_metric_names",
    "stored_rounds",
    "user_values",
]


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One row of ``runs``: what was replayed, on which data and split, and its summary.

    ``params`` and ``summary`` are the decoded JSON columns (``{}`` when empty; text that is
    not JSON is kept as ``{"raw": text}`` rather than failing a listing).
    """

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
    created_at: datetime
    users: int | None
    summary: dict[str, Any]

    @property
    def label(self) -> str:
        """``name`` when the run has one, else ``model`` (what tables show)."""
        return self.name or self.model

    def _what(self) -> dict[str, Any]:
        """The keys both views start with: which model ran how, on which data."""
        return {
            "run_id": self.run_id,
            "name": self.name,
            "dataset": self.dataset,
            "model": self.model,
            "kind": self.kind,
            "params": self.params,
            "split": self.split,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything about the run, its summary metrics and estimates included
        (``abkit runs --json``; ``k`` and ``metrics`` as in the replay result's JSON)."""
        return {
            **self._what(),
            "k": list(self.ks),
            "users": self.users,
            "fingerprint": self.fingerprint,
            "code_version": self.code_version,
            "created_at": self.created_at.isoformat(),
            "metrics": self.summary.get("metrics", {}),
            "estimates": self.summary.get("estimates", {}),
        }

    def to_provenance_dict(self) -> dict[str, Any]:
        """What the run was, without its results: the ``run`` of a baseline file and the
        ``runs`` of ``abkit compare --json``. ``created_at`` keeps the text DuckDB gives a
        TIMESTAMP cast to VARCHAR (``2024-01-01 12:00:00.1234``), the form committed baseline
        files already hold."""
        return {
            **self._what(),
            "ks": list(self.ks),
            "fingerprint": self.fingerprint,
            "code_version": self.code_version,
            "created_at": _timestamp_text(self.created_at),
            "users": self.users,
        }


def _timestamp_text(ts: datetime) -> str:
    """``ts`` as DuckDB casts a TIMESTAMP to VARCHAR: ISO with a space, trailing zeros of the
    fraction dropped (pinned against DuckDB by a property test)."""
    text = ts.isoformat(sep=" ")
    return text.rstrip("0") if "." in text else text


_RUN_COLUMNS = (
    "run_id, name, dataset, model, kind, params, split, ks, fingerprint, code_version, "
    "created_at, users, summary"
)


def _json_object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"raw": text}
    return value if isinstance(value, dict) else {}


def _record(row: tuple[Any, ...]) -> RunRecord:
    """A row of ``SELECT {_RUN_COLUMNS} FROM runs`` as a :class:`RunRecord`."""
    return RunRecord(
        run_id=row[0],
        name=row[1],
        dataset=row[2],
        model=row[3],
        kind=row[4],
        params=_json_object(row[5]),
        split=row[6],
        ks=tuple(int(k) for k in (row[7] or ())),
        fingerprint=row[8],
        code_version=row[9],
        created_at=row[10],
        users=row[11],
        summary=_json_object(row[12]),
    )


def all_runs(con: duckdb.DuckDBPyConnection, *, dataset: str | None = None) -> list[RunRecord]:
    """Every stored run, oldest first (ties by id), optionally of one dataset."""
    rows = con.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE ? IS NULL OR dataset = ? "
        "ORDER BY created_at, run_id",
        [dataset, dataset],
    ).fetchall()
    return [_record(r) for r in rows]


def fetch_run(con: duckdb.DuckDBPyConnection, run: str) -> RunRecord:
    """The run whose ``run_id`` is ``run`` or, failing that, whose unique ``name`` is ``run``.

    An id wins over a name (ids are unique; names need not be). Raises :class:`StoreError`
    naming the closest run id or name when there is none (or saying that the store holds no
    runs), and listing the candidate ids when a name is ambiguous.
    """
    rows = con.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ? OR name = ? "
        "ORDER BY run_id = ? DESC, created_at, run_id",
        [run, run, run],
    ).fetchall()
    if len(rows) == 1 or (rows and rows[0][0] == run):
        return _record(rows[0])
    if rows:
        ids = ", ".join(r[0] for r in rows)
        raise StoreError(f"run name '{run}' is ambiguous ({ids}); pass a run id")
    known = [
        r[0]
        for r in con.execute(
            "SELECT run_id FROM runs UNION SELECT name FROM runs WHERE name IS NOT NULL"
        ).fetchall()
    ]
    if not known:
        raise StoreError(
            f"unknown run '{run}': the store holds no replay runs; create one with `abkit replay`"
        )
    raise StoreError(
        f"unknown run '{run}'{did_you_mean(run, sorted(known))}; list the runs with `abkit runs`"
    )


def fetch_runs(con: duckdb.DuckDBPyConnection, runs: Sequence[str]) -> list[RunRecord]:
    """:func:`fetch_run` for each id or name, in order."""
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


# -- per-run values, paired across runs ----------------------------------------------------

_ROUND_COLUMNS = "impression_id, weight, reward, q_logged, q_policy"


def _alias(i: int) -> str:
    return quote_ident(f"r{i}")


def _joined_runs(
    columns: str,
    table: str,
    key: str,
    run_ids: Sequence[str],
    *,
    where: str = "",
    where_params: Sequence[Any] = (),
) -> tuple[str, list[Any]]:
    """``FROM (SELECT columns FROM table WHERE run_id = ? [AND ...]) r0 JOIN (...) r1
    USING (key) ...``: one sub-select per run, aliased ``r0, r1, ...`` and inner-joined on
    ``key`` so only the rows every run has remain, with its parameters."""
    if not run_ids:
        raise StoreError("no runs to pair")
    parts = []
    params: list[Any] = []
    for i, run_id in enumerate(run_ids):
        parts.append(f"(SELECT {columns} FROM {table} WHERE run_id = ?{where}) {_alias(i)}")
        params += [run_id, *where_params]
    joins = "".join(f" JOIN {part} USING ({key})" for part in parts[1:])
    return f"FROM {parts[0]}{joins}", params


def _rows_per_run(
    con: duckdb.DuckDBPyConnection,
    table: str,
    run_ids: Sequence[str],
    *,
    where: str = "",
    where_params: Sequence[Any] = (),
) -> tuple[int, ...]:
    """How many rows of ``table`` each run has before pairing (0 for a run with none)."""
    marks = ", ".join("?" for _ in run_ids)
    counts = dict(
        con.execute(
            f"SELECT run_id, count(*) FROM {table} WHERE run_id IN ({marks}){where} "
            "GROUP BY run_id",
            [*run_ids, *where_params],
        ).fetchall()
    )
    return tuple(int(counts.get(r, 0)) for r in run_ids)


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
    con: duckdb.DuckDBPyConnection, run_ids: Sequence[str], metric: str
) -> PairedUsers:
    """Inner-join ``run_user_metrics`` of ``run_ids`` on ``user_id`` for one metric.

    One query: each run is a sub-select aliased ``r0, r1, ...``; the join keeps users present
    in every run, ordered by ``user_id`` so a saved vector can be re-aligned later.
    """
    import numpy as np

    source, params = _joined_runs(
        "user_id, value",
        "run_user_metrics",
        "user_id",
        run_ids,
        where=" AND metric = ?",
        where_params=[metric],
    )
    values = ", ".join(f"{_alias(i)}.value AS {quote_ident(f'v{i}')}" for i in range(len(run_ids)))
    columns = con.execute(
        f"SELECT {_alias(0)}.user_id, {values} {source} ORDER BY user_id", params
    ).fetchnumpy()
    user_ids = np.asarray(columns["user_id"], dtype=object).astype(str)
    return PairedUsers(
        metric=metric,
        run_ids=tuple(run_ids),
        user_ids=user_ids,
        values=(
            np.column_stack(
                [np.asarray(columns[f"v{i}"], dtype=np.float64) for i in range(len(run_ids))]
            )
            if len(user_ids)
            else np.empty((0, len(run_ids)))
        ),
        users_per_run=_rows_per_run(
            con, "run_user_metrics", run_ids, where=" AND metric = ?", where_params=[metric]
        ),
    )


def user_values(
    con: duckdb.DuckDBPyConnection, run_id: str, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, values) of one per-user metric of one run, sorted by user id (empty when
    the run did not record it)."""
    paired = paired_user_metrics(con, [run_id], metric)
    return paired.user_ids, paired.values[:, 0]


def stored_rounds(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, np.ndarray]:
    """The per-round columns of one off-policy run (``impression_id, weight, reward,
    q_logged, q_policy``), sorted by impression id."""
    import numpy as np

    out = con.execute(
        f"SELECT {_ROUND_COLUMNS} FROM run_rounds WHERE run_id = ? ORDER BY impression_id",
        [run_id],
    ).fetchnumpy()
    return {key: np.asarray(value) for key, value in out.items()}


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


def paired_rounds(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> PairedRounds:
    """Inner-join ``run_rounds`` of ``run_ids`` on ``impression_id`` (one query)."""
    import numpy as np

    source, params = _joined_runs(_ROUND_COLUMNS, "run_rounds", "impression_id", run_ids)
    first = _alias(0)
    cols = [f"{first}.impression_id AS impression_id"]
    for i in range(len(run_ids)):
        cols += [
            f"{_alias(i)}.{name} AS {quote_ident(f'{name}{i}')}"
            for name in ("reward", "weight", "q_logged", "q_policy")
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
    cols += [
        "dense_rank() OVER (ORDER BY coalesce(units.unit_key, "
        f"'r' || CAST({first}.impression_id AS VARCHAR))) - 1 AS cluster_idx",
        "units.unit_key IS NULL AS unlogged",
    ]
    sql = (
        f"WITH {units} SELECT {', '.join(cols)} {source}"
        f" LEFT JOIN units ON units.impression_id = {first}.impression_id"
        f" ORDER BY {first}.impression_id"
    )
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
    return PairedRounds(
        run_ids=tuple(run_ids),
        impression_ids=np.asarray(data["impression_id"], dtype=np.int64),
        cluster_ids=np.asarray(data["cluster_idx"], dtype=np.int64),
        unlogged_rounds=int(np.count_nonzero(np.asarray(data["unlogged"], dtype=bool))),
        reward=reward,
        weight=stack("weight"),
        q_logged=stack("q_logged"),
        q_policy=stack("q_policy"),
        rounds_per_run=_rows_per_run(con, "run_rounds", run_ids),
        reward_mismatches=mismatches,
    )
