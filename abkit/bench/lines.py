"""The lines of ``abkit bench``'s report, as data: what each line compares and its target.

Each :class:`LineSpec` says which workload produces the line, what it is compared with, which
metric the target is evaluated on, and the target itself (``target`` in words, ``threshold``
and ``direction`` as numbers). This table is the only place targets live; the measuring code
in :mod:`abkit.bench.runner` supplies, by the line's name, only what is known at run time: the
two measurements, the value when the metric's default does not fit, and the numbers that fill
the ``description`` (and ``reference_name``) templates.

Metrics: ``speedup`` = reference seconds / abkit seconds (> 1: abkit is faster; the median
of the interleaved pairs' ratios); ``peak_gb``
and ``projected_peak_gb`` in GB; ``peak_ratio`` = abkit's peak memory / the reference's;
``seconds``; ``abs_diff`` of the two check values. Every time is the median of the line's
interleaved runs, and the verdict is on that median (the minimum is reported next to it).
``direction="info"``: a line shown for information, with no target (its verdict is None).

To add a line:

1. append a ``LineSpec`` to :data:`LINES`, in the order the report should show it (lines of
   one workload together; a new workload also needs its step in ``runner._STEPS``);
2. in that workload's function in ``runner.py``, call ``run.add("<name>", abkit=...,
   reference=..., **numbers)`` with a keyword for every ``{field}`` of the templates (and
   ``value=`` only for a metric without a default there);
3. ``tests/bench/test_bench.py`` then checks that a ``--quick`` run produces it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["LINES", "Direction", "LineSpec", "spec"]

Direction = Literal["at_least", "at_most", "info"]


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
        name="compare-tea-pandas",
        workload="compare",
        description="`abkit compare --json`, whole process: A/B conversion, {events:,} events, "
        "{users:,} users",
        reference_name="tea-tasting {tea_version}, whole process: per-user rows from DuckDB "
        "as a pandas frame, Experiment(Mean)",
        metric="speedup",
        target=">= 2x tea-tasting (pandas frame)",
        threshold=2.0,
        direction="at_least",
    ),
    LineSpec(
        name="compare-tea-ibis",
        workload="compare",
        description="`abkit compare --json`, whole process: A/B conversion, {events:,} events, "
        "{users:,} users",
        reference_name="tea-tasting {tea_version} via Ibis {ibis_version} on DuckDB, whole "
        "process: per-user rows as an Ibis table, Experiment(Mean)",
        metric="speedup",
        target=">= 3x tea-tasting (Ibis-DuckDB)",
        threshold=3.0,
        direction="at_least",
    ),
    LineSpec(
        name="compare-import",
        workload="compare",
        description="importing what `abkit compare` imports (python -X importtime: the "
        "top-level imports of a whole compare process after the interpreter's start-up)",
        reference_name=None,
        metric="seconds",
        target="<= 0.35 s",
        threshold=0.35,
        direction="at_most",
        check=False,
    ),
    LineSpec(
        name="compare-memory",
        workload="compare",
        description="peak memory of the `abkit compare` process at {events:,} events",
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
        name="als-replay",
        workload="als",
        description="ALS at abkit's defaults ({factors} factors, {iterations} iterations): fit, "
        "then top-{k} over {items:,} items and every metric for {users:,} test users",
        reference_name="implicit {implicit_version}: the same fit, then "
        "evaluation.ranking_metrics_at_k (BLAS 1 thread)",
        metric="speedup",
        target=">= 1.5x implicit",
        threshold=1.5,
        direction="at_least",
    ),
    LineSpec(
        name="als-ndcg",
        workload="als",
        description="NDCG@{k} of abkit vs implicit on the same fit and split",
        reference_name="implicit.evaluation.ranking_metrics_at_k",
        metric="abs_diff",
        target="equal (|diff| <= 1e-9)",
        threshold=1e-9,
        direction="at_most",
    ),
    LineSpec(
        name="als-topk",
        workload="als",
        description="exact top-{k}, seen items excluded (ALSRecommender.recommend), for every "
        "test user in the replay's chunks of {chunk} users x {items:,} items",
        reference_name="the dense scoring GEMM on the same chunks (ALSRecommender.score: "
        "float32, {factors} factors)",
        metric="speedup",
        target=">= 1x (top-K no slower than the GEMM)",
        threshold=1.0,
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
        name="offpolicy-numpy",
        workload="offpolicy",
        description="IPS + {bootstrap:,}-resample Poisson bootstrap CI, {rounds:,} logged "
        "impressions",
        reference_name="plain numpy Poisson bootstrap (abkit.bench.ope."
        "numpy_poisson_ips: Poisson(1) weights for the rewarded rounds, Poisson(n0) for the "
        "rest)",
        metric="speedup",
        target=">= 1.5x",
        threshold=1.5,
        direction="at_least",
    ),
    LineSpec(
        name="offpolicy-memory",
        workload="offpolicy",
        description="peak memory of the IPS bootstrap, {rounds:,} logged impressions",
        reference_name="the plain numpy Poisson bootstrap's peak",
        metric="peak_ratio",
        target="<= 1x (no more memory than numpy)",
        threshold=1.0,
        direction="at_most",
        check=False,
    ),
    LineSpec(
        name="offpolicy-obp",
        workload="offpolicy",
        description="IPS + {bootstrap:,}-resample bootstrap CI, {rounds:,} logged impressions",
        reference_name="Open Bandit Pipeline's IPW and estimate_confidence_interval_by_"
        "bootstrap, reimplemented (resamples on {subsample:,} rounds, time extrapolated)",
        metric="speedup",
        target=">= 30x",
        threshold=30.0,
        direction="at_least",
    ),
    LineSpec(
        name="offpolicy-loop",
        workload="offpolicy",
        description="IPS + {bootstrap:,}-resample bootstrap CI, {rounds:,} logged impressions",
        reference_name="per-row Python loop + OBP's bootstrap ({subsample:,} rounds, time "
        "extrapolated)",
        metric="speedup",
        target="information (no target)",
        threshold=math.nan,
        direction="info",
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
