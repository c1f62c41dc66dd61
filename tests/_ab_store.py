"""Small hand-built A/B stores whose every number can be worked out by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa

from abkit.data.store import open_store

START = datetime(2024, 1, 10)
END = datetime(2024, 1, 20)


def day(n: float) -> datetime:
    """``n`` days after the experiment's start."""
    return START + timedelta(days=n)


def build_store(
    path: Path,
    *,
    dataset: str = "shop",
    experiment: str = "exp",
    arms: Sequence[str] = ("control", "treatment"),
    split: Sequence[float] | None = (0.5, 0.5),
    control: str = "control",
    assignments: Sequence[tuple[str, str, datetime | None]] = (),
    events: Sequence[tuple[str, str, datetime, float | None, str | None]] = (),
    impressions: Sequence[tuple[str, datetime, str | None, int]] = (),
    unit: str = "user",
    start: datetime | None = START,
    end: datetime | None = END,
    with_experiment: bool = True,
) -> Path:
    """Write one dataset: ``assignments`` (user, arm, assigned_at), ``events`` (user, type,
    ts, value, session) and ``impressions`` (user, ts, variant, click)."""
    with open_store(path, write=True) as store, store.transaction() as con:
        store.add_dataset(dataset, source="ingest", unit=unit)
        if with_experiment:
            con.execute(
                "INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    dataset,
                    experiment,
                    list(arms),
                    list(split) if split else None,
                    control,
                    start,
                    end,
                ],
            )
        # Arrow batches, not executemany: 20,000 rows in 0.05 s instead of 5 s
        if assignments:
            _insert(
                con,
                "assignments",
                dataset=[dataset] * len(assignments),
                experiment=[experiment] * len(assignments),
                user_id=[u for u, _, _ in assignments],
                variant=[a for _, a, _ in assignments],
                assigned_at=pa.array([t for _, _, t in assignments], pa.timestamp("us")),
            )
        if events:
            _insert(
                con,
                "events",
                dataset=[dataset] * len(events),
                user_id=[u for u, _, _, _, _ in events],
                session_id=pa.array([s for _, _, _, _, s in events], pa.string()),
                item_id=["item"] * len(events),
                event_type=[k for _, k, _, _, _ in events],
                ts=pa.array([t for _, _, t, _, _ in events], pa.timestamp("us")),
                value=pa.array([v for _, _, _, v, _ in events], pa.float64()),
            )
        if impressions:
            n = len(impressions)
            _insert(
                con,
                "impressions",
                dataset=[dataset] * n,
                impression_id=pa.array(range(n), pa.int64()),
                slate_id=pa.array([0] * n, pa.int64()),
                user_id=[u for u, _, _, _ in impressions],
                session_id=pa.array([None] * n, pa.string()),
                ts=pa.array([t for _, t, _, _ in impressions], pa.timestamp("us")),
                variant=pa.array([v for _, _, v, _ in impressions], pa.string()),
                item_id=["item"] * n,
                position=pa.array([1] * n, pa.int32()),
                propensity=[0.5] * n,
                click=pa.array([c for _, _, _, c in impressions], pa.int8()),
                conversion=pa.array([None] * n, pa.int8()),
                value=pa.array([None] * n, pa.float64()),
            )
    return path


def _insert(con, table: str, **columns) -> None:
    """Append ``columns`` (every column of ``table``, in its order) as one Arrow batch."""
    batch = pa.table(columns)  # noqa: F841 (read by DuckDB's replacement scan below)
    con.execute(f"INSERT INTO {table} SELECT * FROM batch")


def hand_store(path: Path) -> Path:
    """Two arms of 10 users. In the window control has purchasers c0, c1 (c1 twice) and
    treatment t0..t3; c2 bought before the start (pre-period) and t4 after the end (ignored).
    A user assigned to both arms and a user of an unknown arm are excluded."""
    assignments = [(f"c{i}", "control", day(i * 0.5)) for i in range(10)]
    assignments += [(f"t{i}", "treatment", day(i * 0.5)) for i in range(10)]
    assignments += [
        ("both", "control", day(0)),
        ("both", "treatment", day(1)),
        ("ghost", "beta", day(0)),
    ]
    events = [
        ("c0", "purchase", day(1.5), 10.0, "s1"),
        ("c1", "purchase", day(2.5), 20.0, "s2"),
        ("c1", "purchase", day(6.5), 5.0, "s3"),
        ("c2", "purchase", day(-3), 50.0, "s0"),
        ("t0", "purchase", day(0.5), 30.0, "s4"),
        ("t1", "purchase", day(3.5), 12.0, "s5"),
        ("t2", "purchase", day(3.5), 8.0, "s6"),
        ("t3", "purchase", day(8.5), 40.0, "s7"),
        ("t4", "purchase", day(11), 99.0, "s8"),
        ("t0", "view", day(0.4), None, "s4"),
        ("c0", "view", day(1.4), None, "s1"),
        ("both", "purchase", day(2), 70.0, "s9"),
    ]
    return build_store(path, assignments=assignments, events=events)


def counts_store(
    path: Path, *, units: int = 10_000, conversions: tuple[int, int] = (500, 575)
) -> Path:
    """Two arms of ``units`` users; ``conversions`` (control, treatment) of them purchase once.
    The default is the issue's example: 575 vs 500 of 10,000 per arm (fixed-sample p 0.0187)."""
    assignments = [(f"c{i}", "control", day(0)) for i in range(units)]
    assignments += [(f"t{i}", "treatment", day(0)) for i in range(units)]
    events = [(f"c{i}", "purchase", day(1), None, None) for i in range(conversions[0])]
    events += [(f"t{i}", "purchase", day(1), None, None) for i in range(conversions[1])]
    return build_store(path, assignments=assignments, events=events)
