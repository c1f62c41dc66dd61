"""Per-arm sufficient statistics computed elsewhere (a warehouse running ``abkit sql``), read
from a file for ``abkit compare --aggregates FILE``.

The file is CSV (with a header), Parquet or JSON (an array of objects, or one object per line)
with one row per metric and arm, the columns of ``abkit sql``'s result:

``metric``
    conversion, mean, or the ratio's name (clicks_per_impression, revenue_per_order,
    orders_per_session).
``arm``
    the variant; an empty / NULL arm counts the units assigned to more than one arm (excluded).
``units``
    randomisation units in the arm.
``y_sum``, ``y_sum_sq``
    sum and sum of squares of the per-unit outcome y.
``d_sum``, ``d_sum_sq``, ``yd_sum``
    ratio metrics: the per-unit denominator d, its square, and y*d (0 otherwise).
``x_sum``, ``x_sum_sq``, ``xy_sum``
    CUPED: the pre-period covariate x, its square, and x*y (0 without CUPED).
``row_y_sum_sq``
    ratio metrics: the sum of squared row-level numerators (for the design effect).
``value_rows``, ``x_rows``
    rows with a value (mean metric) and units with a pre-period row (CUPED).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from abkit.data.aggregate import (
    AGGREGATE_COLUMNS,
    AggregateResult,
    ExperimentDesign,
    MetricSpec,
    collect_aggregates,
)
from abkit.errors import InputError, param

if TYPE_CHECKING:
    import numpy as np

FILE_COLUMNS = ("metric", *AGGREGATE_COLUMNS)


def read_aggregates(path: str | Path) -> dict[str, np.ndarray]:
    """The rows of an aggregates file, by column (module docstring). A missing file or
    column, or an unreadable file, is an :class:`InputError` naming the file."""
    import duckdb

    file = Path(path)
    if not file.is_file():
        raise InputError(f"{param('aggregates')} {file}: no such file")
    suffix = file.name.lower()
    reader = (
        "read_parquet"
        if suffix.endswith(".parquet")
        else "read_json_auto"
        if suffix.endswith((".json", ".jsonl", ".ndjson"))
        else "read_csv_auto"
    )
    con = duckdb.connect()
    try:
        relation = con.execute(f"SELECT * FROM {reader}(?)", [str(file)])
        columns = [d[0] for d in relation.description or ()]
        missing = [c for c in FILE_COLUMNS if c not in columns]
        if missing:
            raise InputError(
                f"{param('aggregates')} {file}: no column {missing[0]}; expected the columns "
                f"{', '.join(FILE_COLUMNS)} (the result of `abkit sql`)"
            )
        data: dict[str, np.ndarray] = relation.fetchnumpy()  # type: ignore[assignment]
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{param('aggregates')} {file}: cannot read it ({first})") from None
    finally:
        con.close()
    return data


def _arms(rows: dict[str, np.ndarray]) -> list[Any]:
    return [a for a in rows["arm"].tolist() if a is not None and a == a and a != ""]


def design_from_aggregates(
    rows: dict[str, np.ndarray], *, dataset: str | None, experiment: str | None
) -> ExperimentDesign:
    """A design from the file alone: the arms in alphabetical order, no designed split, no
    known control (``--control`` names it)."""
    arms = tuple(sorted({str(a) for a in _arms(rows)}))
    if len(arms) < 2:
        raise InputError(
            f"{param('aggregates')}: the file has {len(arms)} arm(s); an A/B comparison needs "
            "at least two"
        )
    return ExperimentDesign(
        dataset=dataset or "aggregates",
        unit="user",
        experiment=experiment,
        arms=arms,
        split=None,
        control=None,
        start_ts=None,
        end_ts=None,
    )


def aggregates_from_rows(
    rows: dict[str, np.ndarray],
    design: ExperimentDesign,
    metric: MetricSpec,
    *,
    cuped: bool,
    source: str | Path,
) -> AggregateResult:
    """The rows of ``metric`` as the :class:`AggregateResult` the aggregation query gives."""
    import numpy as np

    names = [str(m) for m in rows["metric"].tolist()]
    chosen = np.array([n == metric.name for n in names], dtype=bool)
    if not chosen.any():
        found = ", ".join(sorted(set(names))) or "none"
        raise InputError(
            f"{param('aggregates')} {source}: no rows for the metric {metric.name} (it holds "
            f"{found}); run `abkit sql` with that metric"
        )
    data = {c: np.asarray(rows[c])[chosen] for c in AGGREGATE_COLUMNS}
    data["arm"] = np.array(
        [None if a is None or a != a or a == "" else str(a) for a in data["arm"].tolist()],
        dtype=object,
    )
    return collect_aggregates(design, metric, data, cuped=cuped)
