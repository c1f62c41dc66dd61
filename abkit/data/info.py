"""What a store holds: datasets, row counts, time ranges, experiments and arms, planted truth."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from abkit.data.engines import open_source
from abkit.data.schema import SCHEMA_VERSION
from abkit.data.sql import quote_ident

_DATA_TABLES = ("events", "impressions", "assignments", "items")


@dataclass(frozen=True, kw_only=True)
class ArmInfo:
    variant: str
    units: int
    design_share: float | None
    observed_share: float
    impressions: int
    clicks: int


@dataclass(frozen=True, kw_only=True)
class ExperimentInfo:
    name: str
    control: str
    start: datetime | None
    end: datetime | None
    arms: tuple[ArmInfo, ...]


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    name: str
    source: str
    unit: str
    created_at: datetime
    rows: dict[str, int]
    event_types: dict[str, int]
    time_range: tuple[datetime, datetime] | None
    users: int
    items: int
    impressions: int
    clicks: int
    experiments: tuple[ExperimentInfo, ...]
    truth: tuple[dict[str, Any], ...]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class StoreInfo:
    path: str
    schema_version: int
    created_by: str
    datasets: tuple[DatasetInfo, ...]
    runs: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def store_info(
    db: str | Path | None = None,
    *,
    dataset: str | None = None,
    engine: str = "duckdb",
    source: str | None = None,
    spark_master: str | None = None,
) -> StoreInfo:
    """Summarise a store (read-only): every dataset, or only ``dataset``. With
    ``engine="spark"`` the same queries run in Spark over ``source``
    (:mod:`abkit.data.engines`)."""
    with open_source(db, engine=engine, source=source, spark_master=spark_master) as store:
        location = source if source else str(store.path)
        con = store.con
        names = [store.resolve_dataset(dataset)] if dataset else store.datasets()
        meta = dict(con.execute("SELECT key, value FROM abkit_meta").fetchall())
        runs = con.execute("SELECT count(*) FROM runs").fetchone()
        infos = []
        for name in names:
            source, unit, params, created = con.execute(
                "SELECT source, unit, params, created_at FROM datasets WHERE dataset = ?", [name]
            ).fetchone()  # type: ignore[misc]
            rows = {
                table: int(
                    con.execute(
                        f"SELECT count(*) FROM {quote_ident(table)} WHERE dataset = ?", [name]
                    ).fetchone()[0]  # type: ignore[index]
                )
                for table in _DATA_TABLES
            }
            event_types = dict(
                con.execute(
                    "SELECT event_type, count(*) FROM events WHERE dataset = ? "
                    "GROUP BY ALL ORDER BY 2 DESC",
                    [name],
                ).fetchall()
            )
            lo, hi = con.execute(
                "SELECT min(ts), max(ts) FROM ("
                " SELECT ts FROM events WHERE dataset = ?"
                " UNION ALL SELECT ts FROM impressions WHERE dataset = ?)",
                [name, name],
            ).fetchone()  # type: ignore[misc]
            users, items = con.execute(
                "SELECT count(DISTINCT user_id), count(DISTINCT item_id) FROM ("
                " SELECT user_id, item_id FROM events WHERE dataset = ?"
                " UNION ALL SELECT user_id, item_id FROM impressions WHERE dataset = ?)",
                [name, name],
            ).fetchone()  # type: ignore[misc]
            impressions, clicks = con.execute(
                "SELECT count(*), coalesce(sum(click), 0) FROM impressions WHERE dataset = ?",
                [name],
            ).fetchone()  # type: ignore[misc]
            infos.append(
                DatasetInfo(
                    name=name,
                    source=source,
                    unit=unit,
                    created_at=created,
                    rows=rows,
                    event_types={k: int(v) for k, v in event_types.items()},
                    time_range=(lo, hi) if lo is not None else None,
                    users=int(users),
                    items=int(items),
                    impressions=int(impressions),
                    clicks=int(clicks),
                    experiments=_experiments(con, name),
                    truth=_truth(con, name),
                    params=json.loads(params) if params else {},
                )
            )
    return StoreInfo(
        path=location,
        schema_version=int(meta.get("schema_version", SCHEMA_VERSION)),
        created_by=meta.get("created_by", "?"),
        datasets=tuple(infos),
        runs=int(runs[0]) if runs else 0,
    )


def _experiments(con: Any, dataset: str) -> tuple[ExperimentInfo, ...]:
    out = []
    for name, variants, split, control, start, end in con.execute(
        "SELECT experiment, variants, split, control, start_ts, end_ts FROM experiments "
        "WHERE dataset = ? ORDER BY experiment",
        [dataset],
    ).fetchall():
        counts = dict(
            con.execute(
                "SELECT variant, count(DISTINCT user_id) FROM assignments "
                "WHERE dataset = ? AND experiment = ? GROUP BY ALL",
                [dataset, name],
            ).fetchall()
        )
        total = sum(counts.values()) or 1
        logged = {
            v: (int(n), int(c))
            for v, n, c in con.execute(
                "SELECT variant, count(*), coalesce(sum(click), 0) FROM impressions "
                "WHERE dataset = ? GROUP BY ALL",
                [dataset],
            ).fetchall()
        }
        arms = tuple(
            ArmInfo(
                variant=v,
                units=int(counts.get(v, 0)),
                design_share=float(split[i]) if split else None,
                observed_share=counts.get(v, 0) / total,
                impressions=logged.get(v, (0, 0))[0],
                clicks=logged.get(v, (0, 0))[1],
            )
            for i, v in enumerate(variants)
        )
        out.append(ExperimentInfo(name=name, control=control, start=start, end=end, arms=arms))
    return tuple(out)


def _truth(con: Any, dataset: str) -> tuple[dict[str, Any], ...]:
    rows = con.execute(
        "SELECT experiment, variant, metric, value FROM truth WHERE dataset = ? "
        "ORDER BY experiment, metric, variant NULLS FIRST",
        [dataset],
    ).fetchall()
    return tuple(
        {"experiment": e, "variant": v, "metric": m, "value": float(x)} for e, v, m, x in rows
    )


def dataset_origin(con: Any, dataset: str) -> tuple[str, dict[str, Any]] | None:
    """Where a dataset came from (``simulate`` / ``ingest``) and its stored parameters, or
    None when the store does not hold it. Unreadable parameters read as ``{}``."""
    row = con.execute("SELECT source, params FROM datasets WHERE dataset = ?", [dataset]).fetchone()
    if row is None:
        return None
    try:
        params = json.loads(row[1]) if row[1] else {}
    except json.JSONDecodeError:
        params = {}
    return str(row[0]), params if isinstance(params, dict) else {}
