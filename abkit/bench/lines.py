"""The lines of ``abkit bench``'s report, as data: what each line compares and its target.

Each :class:`LineSpec` says which workload produces the line, what it is compared with, which
metric the target is evaluated on, and the target itself (``target`` in words, ``threshold``
and ``direction`` as numbers). This table is the only place targets live; the measuring code
in :mod:`abkit.bench.runner` supplies, by the line's name, only what is known at run time: the
two measurements, the value when the metric's default does not fit, and the numbers that fill
the ``description`` (and ``reference_name``) templates.

Metrics: ``speedup`` = reference seconds / abkit seconds (> 1: abkit is faster); ``peak_gb``
and ``projected_peak_gb`` in GB; ``seconds``; ``fraction`` of the reference's rate (flop/s);
``abs_diff`` of the two check values.

To add a line:

1. append a ``LineSpec`` to :data:`LINES`, in the order the report should show it (lines of
   one workload together; a new workload also needs its step in ``runner._STEPS``);
2. in that workload's function in ``runner.py``, call ``run.add("<name>", abkit=...,
   reference=..., **numbers)`` with a keyword for every ``{field}`` of the templates (and
   ``value=`` only for a metric without a default there);
3. ``tests/bench/test_bench.py`` then checks that a ``--quick`` run produces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["LINES", "Direction", "LineSpec", "spec"]

Direction = Literal["at_least", "at_most"]


@dataclass(frozen=True, kw_only=True)
class LineSpec:
    """One report line, declared. ``description`` and ``reference_name`` are
    :meth:`str.format` templates filled with the run's numbers (sizes, event counts).
    ``check``: whether the two sides must compute the same check value (``agree``)."""

    name: str
    workload: str
    description: str
    reference_name: str | None
    metric: str
    target: str
    threshold: float
    direction: Direction
    check: bool = True


LINES: tuple[LineSpec, ...] = (
    LineSpec(
        name="simulate",
        workload="simulate",
        description="simulator, {users:,} users -> {events:,} events; peak memory "
        "projected to {target_users:,} users",
        reference_name=None,
        metric="projected_peak_gb",
        target="<= 24 GB at 1M users (the machine's memory)",
        threshold=24.0,
        direction="at_most",
    ),
    LineSpec(
        name="ingest-csv",
        workload="ingest",
        description="ingest {rows:,} events from CSV",
        reference_name="DuckDB CREATE TABLE AS SELECT * FROM read_csv",
        metric="speedup",
        target=">= 0.67x (within 1.5x of bare COPY)",
        threshold=1 / 1.5,
        direction="at_least",
    ),
    LineSpec(
        name="ingest-parquet",
        workload="ingest",
        description="ingest {rows:,} events from PARQUET",
        reference_name="DuckDB CREATE TABLE AS SELECT * FROM read_parquet",
        metric="speedup",
        target=">= 0.67x (within 1.5x of bare COPY)",
        threshold=1 / 1.5,
        direction="at_least",
    ),
    LineSpec(
        name="compare-pandas",
        workload="compare",
        description="A/B conversion, {events:,} events, {users:,} users",
        reference_name="pandas: read Parquet, groupby user, groupby arm, scipy",
        metric="speedup",
        target=">= 5x faster",
        threshold=5.0,
        direction="at_least",
    ),
    LineSpec(
        name="compare-duckdb",
        workload="compare",
        description="A/B conversion, {events:,} events, {users:,} users",
        reference_name="bare DuckDB GROUP BY (one statement, no inference)",
        metric="speedup",
        target=">= 0.5x (within 2x of GROUP BY)",
        threshold=0.5,
        direction="at_least",
    ),
    LineSpec(
        name="compare-memory",
        workload="compare",
        description="peak memory of abkit compare at {events:,} events",
        reference_name=None,
        metric="peak_gb",
        target="< 2 GB (the issue sets it at 50M events)",
        threshold=2.0,
        direction="at_most",
        check=False,
    ),
    LineSpec(
        name="spark-compare-small",
        workload="spark",
        description="A/B conversion, mean, ratio on Spark local[*], {events:,} events, "
        "{users:,} users (session start {startup:.1f} s not counted)",
        reference_name="the same compare on DuckDB (--engine duckdb)",
        metric="speedup",
        target="measured, no target (Spark pays planning and JVM overhead on one machine)",
        threshold=0.0,
        direction="at_least",
    ),
    LineSpec(
        name="spark-compare-large",
        workload="spark",
        description="A/B conversion, mean, ratio on Spark local[*], {events:,} events, "
        "{users:,} users; time x{spark_growth:.2f} on Spark, x{duckdb_growth:.2f} on DuckDB "
        "for x{data_growth:.2f} the events",
        reference_name="the same compare on DuckDB (--engine duckdb)",
        metric="speedup",
        target="measured, no target (Spark pays planning and JVM overhead on one machine)",
        threshold=0.0,
        direction="at_least",
    ),
    LineSpec(
        name="als-ranking",
        workload="als",
        description="top-{k} over {items:,} items for every test user "
        "({users:,} users, {factors} factors)",
        reference_name="implicit.evaluation.ranking_metrics_at_k",
        metric="speedup",
        target=">= 1x (as fast as implicit)",
        threshold=1.0,
        direction="at_least",
    ),
    LineSpec(
        name="als-ndcg",
        workload="als",
        description="NDCG@{k} of abkit vs implicit on the same model and split",
        reference_name="implicit.evaluation.ranking_metrics_at_k",
        metric="abs_diff",
        target="equal (|diff| <= 1e-9)",
        threshold=1e-9,
        direction="at_most",
    ),
    LineSpec(
        name="als-gemm",
        workload="als",
        description="scoring GEMM (users x {factors} @ {factors} x {items:,}), flop/s",
        reference_name="numpy float32 matmul {n}x{n} (machine probe)",
        metric="fraction",
        target=">= 50% of the probe's flop/s",
        threshold=0.5,
        direction="at_least",
        check=False,
    ),
    LineSpec(
        name="lstm",
        workload="lstm",
        description="next-item top-{k}, {users:,} sequences of {seq_len}, {items:,} items, "
        "E={embedding} H={hidden}",
        reference_name="torch eager (CPU, inference_mode)",
        metric="speedup",
        target=">= 1.3x torch",
        threshold=1.3,
        direction="at_least",
    ),
    LineSpec(
        name="offpolicy",
        workload="offpolicy",
        description="IPS + {bootstrap:,}-resample bootstrap CI, {rounds:,} logged impressions",
        reference_name="per-row Python loop + OBP-style bootstrap (subsample, extrapolated)",
        metric="speedup",
        target=">= 100x",
        threshold=100.0,
        direction="at_least",
        # the reference runs on a subsample: its estimate is of fewer rows, not comparable
        check=False,
    ),
    LineSpec(
        name="offpolicy-time",
        workload="offpolicy",
        description="IPS + {bootstrap:,}-resample bootstrap CI, {rounds:,} logged impressions",
        reference_name=None,
        metric="seconds",
        target="< 30 s (the issue sets it at 10M impressions)",
        threshold=30.0,
        direction="at_most",
        check=False,
    ),
)

_BY_NAME: dict[str, LineSpec] = {line.name: line for line in LINES}


def spec(name: str) -> LineSpec:
    """The declared line called ``name`` (KeyError names the unknown line)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no bench line {name!r} in abkit.bench.lines.LINES") from None
