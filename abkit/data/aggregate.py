"""The SQL that turns a dataset into per-arm sufficient statistics (all of it lives here).

One query per analysis: DuckDB first reduces the logs to one row per randomisation unit
(a user, or an impression when ``datasets.unit = 'impression'``), then sums per arm the
handful of numbers :class:`abkit.stats.sufficient.ArmAggregates` holds. Python never sees a
per-event or per-unit row: every query returns at most (arms + 1) x looks rows.

Definitions (the experiment window is ``experiments.start_ts <= ts < end_ts``, a missing bound
meaning unbounded; the pre-period is ``ts < start_ts``):

* units: every user in ``assignments`` for the experiment, whether or not they did anything
  (a user without events counts as a zero; dropping them would bias every rate). A user
  assigned to more than one arm is excluded and counted in ``excluded_units``. For impression
  datasets every impression row is a unit and its arm is ``impressions.variant``.
* ``conversion``: ``y`` = 1 if the unit has at least one event of type ``event`` in the window
  (for impression datasets: ``click`` = the impression's click, ``purchase`` = its conversion).
* ``mean``: ``y`` = the sum of ``value`` over the unit's ``event`` events in the window
  (``purchase`` -> revenue per user).
* ratio metrics (user datasets only), per user numerator ``y`` and denominator ``d``:
  ``clicks_per_impression`` (impressions table: clicks, impressions),
  ``revenue_per_order`` (``event`` events: sum of value, count),
  ``orders_per_session`` (``event`` events, distinct sessions with any event).
* CUPED covariate ``x``: the unit's ``y`` computed the same way over the pre-period.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from abkit._util import unknown_choice
from abkit.data.schema import EVENT_TYPES
from abkit.errors import InputError, StoreError, param
from abkit.stats.sufficient import ArmAggregates

if TYPE_CHECKING:
    import duckdb
    import numpy as np

MetricKind = Literal["conversion", "mean", "ratio"]
RatioName = Literal["clicks_per_impression", "revenue_per_order", "orders_per_session"]
IMPRESSION_EVENTS = {"click": "click", "purchase": "conversion"}


@dataclass(frozen=True, kw_only=True)
class ExperimentDesign:
    """What the store says about an experiment: its arms, split, control and window."""

    dataset: str
    unit: str
    experiment: str | None
    arms: tuple[str, ...]
    split: tuple[float, ...] | None
    control: str | None
    start_ts: datetime | None
    end_ts: datetime | None


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """Which metric to aggregate: ``kind`` (conversion, mean or ratio), the event type, the
    ratio's name, and the metric's own name when it is none of those (its key in
    :data:`UNIT_OUTCOMES`)."""

    kind: MetricKind
    event: str
    ratio: str | None = None
    label: str | None = None

    @property
    def name(self) -> str:
        if self.label is not None:
            return self.label
        return self.ratio if self.kind == "ratio" and self.ratio else self.kind


@dataclass(frozen=True, kw_only=True)
class AggregateResult:
    """Per-arm sums in the design's arm order, plus what was left out and why."""

    arms: tuple[ArmAggregates, ...]
    excluded_units: int
    unknown_arms: tuple[tuple[str, int], ...]
    value_rows: int
    covariate_rows: int


@dataclass(frozen=True, kw_only=True)
class DailyAggregates:
    """Cumulative per-arm sums at the end of each day of the experiment."""

    start: datetime | None
    days: tuple[int, ...]
    looks: tuple[tuple[ArmAggregates, ...], ...]

    def day_start(self, day: int) -> datetime | None:
        return None if self.start is None else self.start + timedelta(days=day)


def _fetch(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]
) -> dict[str, np.ndarray]:
    """Run one aggregate query; its result is small (arms x looks rows) by construction."""
    result: dict[str, np.ndarray] = con.execute(sql, list(params)).fetchnumpy()
    return result


# -- the experiment ---------------------------------------------------------------------------


def load_design(
    con: duckdb.DuckDBPyConnection, dataset: str, experiment: str | None
) -> ExperimentDesign:
    """Read the experiment's design; for an impression dataset without one, the arms are the
    distinct ``impressions.variant`` values. Fewer than two arms is an :class:`InputError`
    naming the experiment: there is nothing to compare."""
    row = con.execute("SELECT unit FROM datasets WHERE dataset = ?", [dataset]).fetchone()
    unit = str(row[0]) if row else "user"
    rows = con.execute(
        "SELECT experiment, variants, split, control, start_ts, end_ts FROM experiments "
        "WHERE dataset = ? ORDER BY experiment",
        [dataset],
    ).fetchall()
    names = [r[0] for r in rows]
    if experiment is not None and experiment not in names:
        raise StoreError(f"dataset '{dataset}': " + unknown_choice("experiment", experiment, names))
    if experiment is None and len(rows) > 1:
        raise StoreError(
            f"dataset '{dataset}' holds several experiments ({', '.join(names)}); "
            f"choose one with {param('experiment')}"
        )
    if rows:
        chosen = next(r for r in rows if experiment is None or r[0] == experiment)
        name, variants, split, control, start, end = chosen
        if len(variants) < 2:
            raise InputError(
                f"experiment '{name}' of dataset '{dataset}' has {len(variants)} arm(s) "
                f"({', '.join(variants) or 'none'}); an A/B comparison needs at least two"
            )
        return ExperimentDesign(
            dataset=dataset,
            unit=unit,
            experiment=name,
            arms=tuple(variants),
            split=tuple(float(s) for s in split) if split else None,
            control=control,
            start_ts=start,
            end_ts=end,
        )
    if unit != "impression":
        raise StoreError(
            f"dataset '{dataset}' has no experiment (no rows in the experiments table); "
            "simulate one with `abkit simulate` or ingest a file with a variant column"
        )
    variants = con.execute(
        "SELECT DISTINCT variant FROM impressions WHERE dataset = ? AND variant IS NOT NULL "
        "ORDER BY variant",
        [dataset],
    ).fetchall()
    if len(variants) < 2:
        raise InputError(
            f"dataset '{dataset}': its impressions carry {len(variants)} variant(s); "
            "an A/B comparison needs at least two"
        )
    return ExperimentDesign(
        dataset=dataset,
        unit=unit,
        experiment=None,
        arms=tuple(v[0] for v in variants),
        split=None,
        control=None,
        start_ts=None,
        end_ts=None,
    )


# -- SQL building blocks ----------------------------------------------------------------------


def _window(
    column: str, start: datetime | None, end: datetime | None, pre: bool
) -> tuple[str, list[Any]]:
    """``AND`` clauses for the experiment window (or the pre-period) and their parameters."""
    if pre:
        return f" AND {column} < ?", [start]
    clauses, params = "", []
    if start is not None:
        clauses += f" AND {column} >= ?"
        params.append(start)
    if end is not None:
        clauses += f" AND {column} < ?"  # end_ts is exclusive (schema.py)
        params.append(end)
    return clauses, params


def _check_metric(design: ExperimentDesign, metric: MetricSpec) -> None:
    if metric.event not in EVENT_TYPES:
        raise InputError(
            f"{param('event')}: " + unknown_choice("event type", metric.event, EVENT_TYPES)
        )
    if design.unit == "impression":
        if metric.kind == "ratio":
            raise InputError(
                f"{param('metrics')} ratio: dataset '{design.dataset}' has one unit per "
                "impression, so there "
                f"is no randomisation unit above the analysis unit; use {param('metrics')} "
                "conversion "
                "(click rate per impression)"
            )
        if metric.event not in IMPRESSION_EVENTS:
            raise InputError(
                f"{param('event')} {metric.event}: dataset '{design.dataset}' is a log of "
                "impressions; "
                "expected click or purchase"
            )
    elif metric.name not in UNIT_OUTCOMES:
        ratios = [name for name in UNIT_OUTCOMES if name not in ("conversion", "mean")]
        raise InputError(
            f"{param('ratio')}: " + unknown_choice("ratio metric", metric.name, ratios)
        )


# -- per-unit outcomes: one SQL fragment per metric ----------------------------------------------
#
# Each fragment is a SELECT of one row per user (per user and day when ``daily`` is the day
# expression) with ``y``, ``d``, ``row_y_sq`` and ``value_rows``, over the experiment window (or
# the pre-period). A new metric registers its fragment here under its name
# (:mod:`abkit.compare.metrics` holds the rest of it).

OutcomeSQL = Callable[["ExperimentDesign", "MetricSpec", bool, "str | None"], tuple[str, list[Any]]]


def _key(daily: str | None) -> tuple[str, str]:
    key = "user_id AS unit" + (f", {daily} AS day" if daily else "")
    group = "user_id" + (", day" if daily else "")
    return key, group


def _clicks_per_impression(
    design: ExperimentDesign, metric: MetricSpec, pre: bool, daily: str | None
) -> tuple[str, list[Any]]:
    key, group = _key(daily)
    where, params = _window("ts", design.start_ts, design.end_ts, pre)
    return (
        f"SELECT {key}, sum(CAST(click AS DOUBLE)) AS y, count(*)::DOUBLE AS d, "
        f"sum(CAST(click AS DOUBLE) * click) AS row_y_sq, 0 AS value_rows "
        f"FROM impressions WHERE dataset = ?{where} GROUP BY {group}",
        [design.dataset, *params],
    )


def _orders_per_session(
    design: ExperimentDesign, metric: MetricSpec, pre: bool, daily: str | None
) -> tuple[str, list[Any]]:
    where, params = _window("ts", design.start_ts, design.end_ts, pre)
    sessions = (
        f"SELECT user_id, session_id{', ' + daily + ' AS day' if daily else ''}, "
        "count(*) FILTER (WHERE event_type = ?)::DOUBLE AS orders FROM events "
        f"WHERE dataset = ? AND session_id IS NOT NULL{where} "
        f"GROUP BY user_id, session_id{', day' if daily else ''}"
    )
    if not daily:
        return (
            "SELECT user_id AS unit, sum(orders) AS y, count(*)::DOUBLE AS d, "
            f"sum(orders * orders) AS row_y_sq, 0 AS value_rows FROM ({sessions}) "
            "GROUP BY user_id",
            [metric.event, design.dataset, *params],
        )
    # A session that crosses midnight has rows on two days but is ONE session: it counts
    # in the denominator on its first day only, and its squared order count (for the naive
    # variance) grows by o_k (2 O_(k-1) + o_k) on day k, so the cumulative sums at the last
    # look equal the single analysis exactly.
    return (
        "SELECT user_id AS unit, day, sum(orders) AS y, sum(first) AS d, "
        "sum(square_step) AS row_y_sq, 0 AS value_rows FROM ("
        "SELECT user_id, day, orders, "
        "CASE WHEN day = min(day) OVER (PARTITION BY user_id, session_id) "
        "THEN 1.0 ELSE 0.0 END AS first, "
        "orders * (2 * coalesce(sum(orders) OVER (PARTITION BY user_id, session_id "
        "ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0.0) + orders) "
        f"AS square_step FROM ({sessions})) GROUP BY user_id, day",
        [metric.event, design.dataset, *params],
    )


def _events_outcome(select: str) -> OutcomeSQL:
    """A fragment over the ``event`` events of each user, ``select`` naming the columns."""

    def outcome(
        design: ExperimentDesign, metric: MetricSpec, pre: bool, daily: str | None
    ) -> tuple[str, list[Any]]:
        key, group = _key(daily)
        where, params = _window("ts", design.start_ts, design.end_ts, pre)
        # conversion per day: the increment is the number of events (capped at 1 cumulatively)
        y_conversion = "count(*)::DOUBLE" if daily else "1.0"
        columns = select.format(y_conversion=y_conversion)
        return (
            f"SELECT {key}, {columns} FROM events WHERE dataset = ? AND event_type = ?{where} "
            f"GROUP BY {group}",
            [design.dataset, metric.event, *params],
        )

    return outcome


UNIT_OUTCOMES: dict[str, OutcomeSQL] = {
    "conversion": _events_outcome(
        "{y_conversion} AS y, 0.0 AS d, 0.0 AS row_y_sq, 0 AS value_rows"
    ),
    "mean": _events_outcome(
        "coalesce(sum(value), 0.0) AS y, 0.0 AS d, 0.0 AS row_y_sq, count(value) AS value_rows"
    ),
    "revenue_per_order": _events_outcome(
        "coalesce(sum(value), 0.0) AS y, count(*)::DOUBLE AS d, "
        "coalesce(sum(value * value), 0.0) AS row_y_sq, count(value) AS value_rows"
    ),
    "clicks_per_impression": _clicks_per_impression,
    "orders_per_session": _orders_per_session,
}


def _unit_outcomes(
    design: ExperimentDesign, metric: MetricSpec, *, pre: bool, daily: str | None = None
) -> tuple[str, list[Any]]:
    """The metric's per-unit fragment (user datasets)."""
    return UNIT_OUTCOMES[metric.name](design, metric, pre, daily)


_ASSIGNED = (
    # min <> max flags a unit seen in several arms as count(DISTINCT) would, ~5x cheaper
    "assigned AS (SELECT user_id AS unit, min(variant) AS arm, "
    "CASE WHEN min(variant) <> max(variant) THEN 2 ELSE 1 END AS n_arms, "
    "min(assigned_at) AS assigned_at "
    "FROM assignments WHERE dataset = ? AND experiment = ? GROUP BY user_id)"
)

_SUMS = (
    "count(*) AS units, sum(y) AS y_sum, sum(y * y) AS y_sum_sq, sum(d) AS d_sum, "
    "sum(d * d) AS d_sum_sq, sum(y * d) AS yd_sum, sum(x) AS x_sum, sum(x * x) AS x_sum_sq, "
    "sum(x * y) AS xy_sum, sum(row_y_sq) AS row_y_sum_sq, sum(value_rows) AS value_rows, "
    "sum(x_rows) AS x_rows"
)


def _impression_outcome(metric: MetricSpec) -> tuple[str, str]:
    if metric.kind == "mean":
        return "coalesce(value, 0.0)", "CASE WHEN value IS NULL THEN 0 ELSE 1 END"
    column = IMPRESSION_EVENTS[metric.event]
    return (
        f"CAST(coalesce({column}, 0) AS DOUBLE)",
        f"CASE WHEN {column} IS NULL THEN 0 ELSE 1 END",
    )


# -- one pass: per-arm sums -------------------------------------------------------------------


def arm_aggregates_sql(
    design: ExperimentDesign, metric: MetricSpec, *, cuped: bool = False
) -> tuple[str, list[Any]]:
    """The ONE query (DuckDB dialect, ``?`` parameters) that returns the per-arm sufficient
    statistics of ``metric``: one row per arm (plus a NULL arm for units seen in several arms)
    with the columns of :data:`AGGREGATE_COLUMNS`. Other engines run it transpiled
    (:mod:`abkit.data.dialects`)."""
    _check_metric(design, metric)
    if design.unit == "impression":
        if cuped:
            raise InputError(
                f"{param('cuped')}: dataset '{design.dataset}' has one unit per impression, so "
                "no unit has "
                "a pre-experiment history to adjust for"
            )
        y, counted = _impression_outcome(metric)
        where, window_params = _window("ts", design.start_ts, design.end_ts, False)
        sql = (
            f"SELECT arm, {_SUMS} FROM (SELECT variant AS arm, {y} AS y, 0.0 AS d, "
            f"0.0 AS x, 0.0 AS row_y_sq, {counted} AS value_rows, 0 AS x_rows "
            f"FROM impressions WHERE dataset = ?{where}) GROUP BY arm"
        )
        return sql, [design.dataset, *window_params]
    if cuped:
        if metric.kind == "ratio":
            raise InputError(
                f"{param('cuped')} supports the conversion and mean metrics, not ratio metrics"
            )
        if design.start_ts is None:
            raise InputError(
                f"{param('cuped')}: experiment '{design.experiment}' has no start_ts, so there "
                "is no "
                "pre-experiment period"
            )
    outcome_sql, outcome_params = _unit_outcomes(design, metric, pre=False)
    ctes = [_ASSIGNED, f"outcome AS ({outcome_sql})"]
    params: list[Any] = [design.dataset, design.experiment, *outcome_params]
    if cuped:
        pre_sql, pre_params = _unit_outcomes(design, metric, pre=True)
        ctes.append(f"covariate AS (SELECT unit, y AS x FROM ({pre_sql}))")
        params += pre_params
    else:
        ctes.append("covariate AS (SELECT NULL::VARCHAR AS unit, 0.0 AS x WHERE false)")
    sql = (
        "WITH " + ", ".join(ctes) + ", per_unit AS ("
        "SELECT CASE WHEN a.n_arms > 1 THEN NULL ELSE a.arm END AS arm, "
        "coalesce(o.y, 0.0) AS y, coalesce(o.d, 0.0) AS d, coalesce(o.row_y_sq, 0.0) AS row_y_sq, "
        "coalesce(o.value_rows, 0) AS value_rows, coalesce(c.x, 0.0) AS x, "
        "CASE WHEN c.unit IS NULL THEN 0 ELSE 1 END AS x_rows "
        "FROM assigned a LEFT JOIN outcome o ON o.unit = a.unit "
        "LEFT JOIN covariate c ON c.unit = a.unit) "
        f"SELECT arm, {_SUMS} FROM per_unit GROUP BY arm"
    )
    return sql, params


#: the columns of :func:`arm_aggregates_sql`'s result (and of an ``--aggregates`` file, which
#: adds ``metric``)
AGGREGATE_COLUMNS = (
    "arm", "units", "y_sum", "y_sum_sq", "d_sum", "d_sum_sq", "yd_sum", "x_sum", "x_sum_sq",
    "xy_sum", "row_y_sum_sq", "value_rows", "x_rows",
)  # fmt: skip


def metrics_aggregates_sql(
    design: ExperimentDesign, metrics: Sequence[MetricSpec], *, cuped: bool = False
) -> tuple[str, list[Any]]:
    """Every metric's :func:`arm_aggregates_sql` in one result, a ``metric`` column first
    (what ``abkit sql`` prints and ``abkit compare --aggregates`` reads)."""
    parts, params = [], []
    for i, metric in enumerate(metrics):
        sql, values = arm_aggregates_sql(design, metric, cuped=cuped)
        columns = ", ".join(f"m{i}.{c}" for c in AGGREGATE_COLUMNS)
        parts.append(f"SELECT CAST(? AS VARCHAR) AS metric, {columns} FROM ({sql}) AS m{i}")
        params += [metric.name, *values]
    return " UNION ALL ".join(parts) + " ORDER BY metric, arm", params


def arm_aggregates(
    con: duckdb.DuckDBPyConnection,
    design: ExperimentDesign,
    metric: MetricSpec,
    *,
    cuped: bool = False,
) -> AggregateResult:
    """Per-arm sufficient statistics of ``metric`` in ONE query (module docstring)."""
    sql, params = arm_aggregates_sql(design, metric, cuped=cuped)
    data = _fetch(con, sql, params)
    return collect_aggregates(design, metric, data, cuped=cuped and design.unit != "impression")


def collect_aggregates(
    design: ExperimentDesign, metric: MetricSpec, data: dict[str, np.ndarray], *, cuped: bool
) -> AggregateResult:
    by_arm: dict[str | None, dict[str, Any]] = {}
    for i, arm in enumerate(data["arm"].tolist()):
        by_arm[arm] = {k: v[i] for k, v in data.items()}
    excluded = int(by_arm.pop(None, {}).get("units", 0))
    unknown = tuple(
        (str(a), int(r["units"])) for a, r in sorted(by_arm.items()) if a not in design.arms
    )
    arms = tuple(_to_aggregates(name, by_arm.get(name), metric, cuped) for name in design.arms)
    value_rows = sum(int(r["value_rows"] or 0) for a, r in by_arm.items() if a in design.arms)
    covariate_rows = sum(int(r["x_rows"] or 0) for a, r in by_arm.items() if a in design.arms)
    return AggregateResult(
        arms=arms,
        excluded_units=excluded,
        unknown_arms=unknown,
        value_rows=value_rows,
        covariate_rows=covariate_rows,
    )


def _num(value: Any) -> float:
    return 0.0 if value is None or value != value else float(value)


def _to_aggregates(
    name: str, row: dict[str, Any] | None, metric: MetricSpec, cuped: bool
) -> ArmAggregates:
    if row is None:
        return ArmAggregates(name=name, units=0, y_sum=0.0, y_sum_sq=0.0)
    ratio = metric.kind == "ratio"
    return ArmAggregates(
        name=name,
        units=int(row["units"]),
        y_sum=_num(row["y_sum"]),
        y_sum_sq=_num(row["y_sum_sq"]),
        d_sum=_num(row["d_sum"]) if ratio else None,
        d_sum_sq=_num(row["d_sum_sq"]) if ratio else None,
        yd_sum=_num(row["yd_sum"]) if ratio else None,
        x_sum=_num(row["x_sum"]) if cuped else None,
        x_sum_sq=_num(row["x_sum_sq"]) if cuped else None,
        xy_sum=_num(row["xy_sum"]) if cuped else None,
        row_y_sum_sq=_num(row["row_y_sum_sq"]) if ratio else None,
    )


# -- one pass: cumulative per-day sums --------------------------------------------------------


def daily_aggregates(
    con: duckdb.DuckDBPyConnection, design: ExperimentDesign, metric: MetricSpec
) -> DailyAggregates:
    """Cumulative per-arm sums at the end of every day, in ONE query.

    Day 0 starts at ``start_ts`` (or, when it is unknown, the first event or impression of the
    dataset in the window -- the same day 0 for every metric). A user counts from the day of
    ``assigned_at`` (day 0 when unknown); their cumulative outcome is carried through every
    later day, so the sums of squares are of the cumulative per-unit values, as the statistics
    need. Outcomes in the window from before a user's assignment day count on the assignment
    day, as the single analysis (:func:`arm_aggregates`) counts every outcome in the window:
    the last look equals the single analysis exactly.
    """
    _check_metric(design, metric)
    if design.unit == "impression":
        y, _ = _impression_outcome(metric)
        where, params = _window("ts", design.start_ts, design.end_ts, False)
        sql = (
            "WITH bounds AS (SELECT coalesce(CAST(? AS TIMESTAMP), min(ts)) AS start "
            "FROM impressions WHERE dataset = ?), "
            "rows_ AS (SELECT variant AS arm, "
            "CAST(floor(date_diff('second', b.start, ts) / 86400.0) AS BIGINT) AS day, "
            f"{y} AS y FROM impressions, bounds b "
            f"WHERE dataset = ?{where} AND variant IS NOT NULL), "
            "per_day AS (SELECT arm, day, count(*) AS units, sum(y) AS y, sum(y * y) AS y2 "
            "FROM rows_ GROUP BY arm, day), "
            "days AS (SELECT unnest(generate_series(0, (SELECT max(day) FROM rows_))) AS day), "
            "arms AS (SELECT DISTINCT arm FROM rows_), "
            "grid AS (SELECT arms.arm, days.day FROM arms CROSS JOIN days) "
            "SELECT g.arm, g.day, (SELECT start FROM bounds) AS start, "
            "sum(coalesce(p.units, 0)) OVER w AS units, sum(coalesce(p.y, 0.0)) OVER w AS y_sum, "
            "sum(coalesce(p.y2, 0.0)) OVER w AS y_sum_sq, 0.0 AS d_sum, 0.0 AS d_sum_sq, "
            "0.0 AS yd_sum, 0.0 AS row_y_sum_sq "
            "FROM grid g LEFT JOIN per_day p ON p.arm = g.arm AND p.day = g.day "
            "WINDOW w AS (PARTITION BY g.arm ORDER BY g.day ROWS UNBOUNDED PRECEDING) "
            "ORDER BY g.day, g.arm"
        )
        data = _fetch(con, sql, [design.start_ts, design.dataset, design.dataset, *params])
        return _collect_daily(design, metric, data)

    where, wparams = _window("ts", design.start_ts, design.end_ts, False)
    day_expr = (
        "CAST(floor(date_diff('second', (SELECT start FROM bounds), ts) / 86400.0) AS BIGINT)"
    )
    outcome_sql, outcome_params = _unit_outcomes(design, metric, pre=False, daily=day_expr)
    cap = "least(y, 1.0)" if metric.kind == "conversion" else "y"
    sql = (
        "WITH bounds AS (SELECT coalesce(CAST(? AS TIMESTAMP), (SELECT min(ts) FROM ("
        f"SELECT ts FROM events WHERE dataset = ?{where} UNION ALL "
        f"SELECT ts FROM impressions WHERE dataset = ?{where}))) AS start), "
        f"{_ASSIGNED}, "
        "units AS (SELECT unit, arm, CASE WHEN assigned_at IS NULL THEN 0 ELSE greatest(0, "
        "CAST(floor(date_diff('second', (SELECT start FROM bounds), assigned_at) / 86400.0) "
        "AS BIGINT)) END AS first_day FROM assigned WHERE n_arms = 1), "
        f"raw_increments AS ({outcome_sql}), "
        # Outcomes from before the assignment day are folded into that day (docstring).
        "increments AS (SELECT r.unit, greatest(r.day, u.first_day) AS day, sum(r.y) AS y, "
        "sum(r.d) AS d, sum(r.row_y_sq) AS row_y_sq FROM raw_increments r "
        "JOIN units u ON u.unit = r.unit GROUP BY r.unit, greatest(r.day, u.first_day)), "
        "days AS (SELECT unnest(generate_series(0, greatest("
        "(SELECT coalesce(max(day), 0) FROM increments), "
        "(SELECT coalesce(max(first_day), 0) FROM units)))) AS day), "
        "grid AS (SELECT u.unit, u.arm, d.day FROM units u JOIN days d ON d.day >= u.first_day), "
        "cumulative AS (SELECT g.arm, g.day, "
        "sum(coalesce(i.y, 0.0)) OVER w AS y, sum(coalesce(i.d, 0.0)) OVER w AS d, "
        "sum(coalesce(i.row_y_sq, 0.0)) OVER w AS row_y_sq "
        "FROM grid g LEFT JOIN increments i ON i.unit = g.unit AND i.day = g.day "
        "WINDOW w AS (PARTITION BY g.unit ORDER BY g.day ROWS UNBOUNDED PRECEDING)), "
        f"capped AS (SELECT arm, day, {cap} AS y, d, row_y_sq FROM cumulative) "
        "SELECT arm, day, (SELECT start FROM bounds) AS start, count(*) AS units, "
        "sum(y) AS y_sum, sum(y * y) AS y_sum_sq, sum(d) AS d_sum, sum(d * d) AS d_sum_sq, "
        "sum(y * d) AS yd_sum, sum(row_y_sq) AS row_y_sum_sq "
        "FROM capped GROUP BY arm, day ORDER BY day, arm"
    )
    params = [
        design.start_ts,
        design.dataset,
        *wparams,
        design.dataset,
        *wparams,
        design.dataset,
        design.experiment,
        *outcome_params,
    ]
    data = _fetch(con, sql, params)
    return _collect_daily(design, metric, data)


def _collect_daily(
    design: ExperimentDesign, metric: MetricSpec, data: dict[str, np.ndarray]
) -> DailyAggregates:
    rows: dict[int, dict[str, dict[str, Any]]] = {}
    start = None
    for i, (arm, day) in enumerate(zip(data["arm"].tolist(), data["day"].tolist(), strict=True)):
        rows.setdefault(int(day), {})[arm] = {k: v[i] for k, v in data.items()}
        start = data["start"][i]
    days = tuple(sorted(d for d in rows if d >= 0))
    looks = tuple(
        tuple(_to_aggregates(name, rows[d].get(name), metric, False) for name in design.arms)
        for d in days
    )
    start_dt = None
    if start is not None:
        import pandas as pd

        start_dt = pd.Timestamp(start).to_pydatetime()
    return DailyAggregates(start=start_dt, days=days, looks=looks)
