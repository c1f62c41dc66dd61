"""``abkit sql``: the aggregation query of ``abkit compare`` for a warehouse.

:func:`aggregation_sql` builds the per-arm sufficient-statistics query of
:mod:`abkit.data.aggregate` -- the one definition DuckDB runs -- for the given metrics, writes the
design's values in as literals and compiles it to a dialect with sqlglot
(:mod:`abkit.data.dialects`). Its result (columns in :mod:`abkit.data.aggregates_file`) goes
back into ``abkit compare --aggregates FILE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from abkit.compare.metrics import make_metric
from abkit.data.aggregate import ExperimentDesign, load_design, metrics_aggregates_sql
from abkit.data.dialects import render_query
from abkit.data.store import open_store
from abkit.errors import InputError, param


def aggregation_sql(
    dialect: str = "duckdb",
    *,
    db: str | Path | None = None,
    dataset: str | None = None,
    experiment: str | None = None,
    metrics: Sequence[str] = ("conversion",),
    event: str | None = None,
    ratio: str = "clicks_per_impression",
    cuped: bool = False,
    unit: str = "user",
    start: datetime | None = None,
    end: datetime | None = None,
    pretty: bool = True,
) -> str:
    """The query (in ``dialect``) a warehouse runs over the abkit tables to get the per-arm
    sums of ``metrics``: one row per metric and arm. The design (dataset, experiment, unit,
    window) comes from the store ``db`` when given, else from the arguments."""
    if not metrics:
        raise InputError(f"{param('metrics')}: give at least one metric")
    if db is not None:
        with open_store(db) as store:
            name = store.resolve_dataset(dataset)
            design = load_design(store.con, name, experiment)
    else:
        if dataset is None or (experiment is None and unit == "user"):
            raise InputError(
                f"without {param('db')}, give {param('dataset')} and {param('experiment')} "
                "(and the window with --start/--end) of the experiment the query is for"
            )
        if unit not in ("user", "impression"):
            raise InputError(f"{param('unit')}: expected user or impression, got {unit!r}")
        design = ExperimentDesign(
            dataset=dataset,
            unit=unit,
            experiment=experiment,
            arms=(),
            split=None,
            control=None,
            start_ts=start,
            end_ts=end,
        )
    chosen_event = event or ("click" if design.unit == "impression" else "purchase")
    specs = [make_metric(m, event=chosen_event, ratio=ratio).spec for m in metrics]
    sql, params = metrics_aggregates_sql(design, specs, cuped=cuped)
    return render_query(sql, params, dialect, pretty=pretty)
