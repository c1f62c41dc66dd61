"""Per-arm sufficient statistics computed elsewhere (a warehouse running ``abkit sql``), read
from a file for ``abkit compare --aggregates FILE``.

The file is CSV (with a header), Parquet or JSON (an array of objects, or one object per line)
with one row per metric and arm, the columns of ``abkit sql``'s result (other columns are
ignored):

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

What is refused. :func:`check_aggregates` is the one validation step between reading the file
(:func:`read_aggregates`) and building the per-arm sums (:func:`aggregates_from_rows`); every
refusal is one :class:`~abkit.errors.InputError` that names the file, the data row (1-based:
the first row after a CSV header, the first object of a JSON file, the first Parquet row is
row 1) with its metric and arm, the column, the value found and what was expected. Nothing is
guessed, rounded or read as 0:

* every number column of every row holds a finite number: text (``many``), ``inf`` and a
  missing value (an empty cell, NULL, NaN) are refused -- a missing sum is not a sum of 0;
* ``units``, ``value_rows`` and ``x_rows`` are counts: whole numbers >= 0 (``1028.5`` units
  is refused, never analysed as 1,028); for ``conversion`` the conversions ``y_sum`` are a
  whole number from 0 to the arm's units;
* sums of squares (``y_sum_sq``, ``d_sum_sq``, ``x_sum_sq``, ``row_y_sum_sq``) and a ratio's
  denominator ``d_sum`` are >= 0;
* one row per metric and arm: a second row for the same pair (two ``control`` rows, say) is
  refused naming both rows, as is a metric abkit does not know;
* for each metric analysed: ``mean`` and ``revenue_per_order`` need a unit with a value
  (``value_rows`` > 0 in some arm), a ratio needs a denominator (``d_sum`` > 0 in some arm),
  and ``--cuped`` needs a unit with a pre-period row (``x_rows`` > 0 in some arm, the file
  written by ``abkit sql --cuped``; ``--cuped`` with a ratio metric is refused, as from a
  store). These speak of the file's columns, not of a dataset's events the file does not hold.

Which metrics are analysed (a decision): without ``--metric`` (``metrics=None`` in the
library) EVERY metric the file holds is compared, in one report and one multiple-testing
family, as ``abkit compare -m conversion -m mean -m ratio`` does from a store (several ratio
metrics too, each under its own name); nothing in the file is dropped without a word. With
``--metric`` only those metrics are compared (a ratio by ``--ratio``), and a metric asked for
that the file does not hold is refused naming what it holds. A metric name abkit does not
know is refused whatever was asked, since the file is then not ``abkit sql``'s result.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
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
#: the columns that hold numbers (every one must, in every row)
NUMBER_COLUMNS = AGGREGATE_COLUMNS[1:]
# counts of units or rows: whole numbers >= 0
_COUNTS = ("units", "value_rows", "x_rows")
# sums of squares: >= 0
_SQUARES = ("y_sum_sq", "d_sum_sq", "x_sum_sq", "row_y_sum_sq")


def read_aggregates(path: str | Path) -> dict[str, np.ndarray]:
    """The rows of an aggregates file, by column (module docstring), in the file's order and
    unchecked (:func:`check_aggregates` checks them). A missing file or column, or an
    unreadable file, is an :class:`InputError` naming the file."""
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
        data: dict[str, np.ndarray] = relation.fetchnumpy()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{param('aggregates')} {file}: cannot read it ({first})") from None
    finally:
        con.close()
    return data


def _text(value: Any) -> str | None:
    """A metric or arm cell as text; None for a missing one (NULL, NaN, empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text != "" else None


def _number(value: Any) -> tuple[float | None, str]:
    """A number cell: ``(the finite number, its text)``, or ``(None, what was found)``."""
    if value is None:
        return None, "empty"
    if isinstance(value, str):
        written = value.strip()
        if len(written) >= 2 and written[0] == written[-1] == '"':
            # a JSON column mixing numbers and text holds JSON literals: "many" in quotes
            written = written[1:-1].strip()
            value = written
        if not written:
            return None, "empty"
        try:
            number = float(written)
        except ValueError:
            return None, repr(value)
    elif isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None, repr(str(value))
    else:
        number = float(value)
        written = _show(number)
    if math.isnan(number):
        return None, "NaN"
    if math.isinf(number):
        return None, "inf" if number > 0 else "-inf"
    return number, written


def _show(number: float) -> str:
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def check_aggregates(
    rows: dict[str, np.ndarray],
    source: str | Path,
    *,
    kinds: Mapping[str, str],
    needs_values: Collection[str] = (),
    metrics: Sequence[str] | None = None,
    cuped: bool = False,
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Check the rows of an aggregates file (module docstring) and return them clean -- every
    number column as floats, ``arm`` None for the units in several arms -- with the names of
    the metrics to analyse.

    ``kinds`` maps every metric abkit knows to its kind (conversion, mean, ratio), in the
    order the report lists them; ``needs_values`` names the metrics that need a value
    (``value_rows``). ``metrics``: the metrics asked for (a ratio by its own name); None
    analyses every metric the file holds. ``cuped``: the analysis adjusts with the pre-period.
    Any refusal is an :class:`InputError` naming the file, the row and the column.
    """
    import numpy as np

    where = f"{param('aggregates')} {source}"
    count = len(rows["metric"])
    if count == 0:
        raise InputError(
            f"{where}: no rows; expected one row per metric and arm (the result of `abkit sql`)"
        )
    cells = {c: rows[c].tolist() for c in FILE_COLUMNS}  # masked (NULL) cells become None
    clean: dict[str, list[Any]] = {c: [] for c in FILE_COLUMNS}
    first_row: dict[tuple[str, str | None], int] = {}
    for index in range(count):
        metric, arm, values = _check_row(cells, index, where, kinds, first_row)
        clean["metric"].append(metric)
        clean["arm"].append(arm)
        for column, number in values.items():
            clean[column].append(number)
    chosen = _chosen_metrics({m for m, _ in first_row}, where, kinds, metrics, cuped)
    for metric in chosen:
        _check_metric_has_its_data(clean, metric, where, kinds, needs_values, cuped)
    checked = {
        c: np.array(v, dtype=object if c in ("metric", "arm") else float) for c, v in clean.items()
    }
    return checked, tuple(chosen)


def _check_row(
    cells: dict[str, list[Any]],
    index: int,
    where: str,
    kinds: Mapping[str, str],
    first_row: dict[tuple[str, str | None], int],
) -> tuple[str, str | None, dict[str, float]]:
    """One row's metric, arm and numbers, checked (``first_row`` records it, for duplicates)."""
    row = index + 1
    metric = _text(cells["metric"][index])
    arm = _text(cells["arm"][index])
    if metric is None or metric not in kinds:
        found = "empty" if metric is None else repr(metric)
        raise InputError(
            f"{where}, row {row}: metric is {found}; expected one of {', '.join(kinds)} "
            "(the result of `abkit sql`)"
        )
    at = f"{where}, row {row} (metric {metric}, " + (f"arm {arm})" if arm else "no arm)")
    if (metric, arm) in first_row:
        raise InputError(
            f"{at}: a second row for this metric and arm (the first is row "
            f"{first_row[metric, arm]}); expected one row per metric and arm"
        )
    first_row[metric, arm] = row
    kind = kinds[metric]
    values: dict[str, float] = {}
    for column in NUMBER_COLUMNS:
        number, written = _number(cells[column][index])
        if column in _COUNTS or (column == "y_sum" and kind == "conversion"):
            expected = "a whole number >= 0"
        elif column in _SQUARES or (column == "d_sum" and kind == "ratio"):
            expected = "a number >= 0"
        else:
            expected = "a finite number"
        if number is None:
            missing = " (a missing value is not 0)" if written in ("empty", "NaN") else ""
            raise InputError(f"{at}: {column} is {written}; expected {expected}{missing}")
        if (expected != "a finite number" and number < 0) or (
            expected == "a whole number >= 0" and not number.is_integer()
        ):
            rounded = "; nothing is rounded" if not number.is_integer() else ""
            raise InputError(f"{at}: {column} is {written}; expected {expected}{rounded}")
        values[column] = number
    if kind == "conversion" and values["y_sum"] > values["units"]:
        raise InputError(
            f"{at}: y_sum is {_show(values['y_sum'])}, more than the "
            f"{_show(values['units'])} units; expected the converted units, at most one "
            "per unit"
        )
    return metric, arm, values


def _chosen_metrics(
    held: set[str],
    where: str,
    kinds: Mapping[str, str],
    metrics: Sequence[str] | None,
    cuped: bool,
) -> list[str]:
    """The metrics to analyse: those asked for (each must be in the file), else every one the
    file holds, in the report's order; CUPED refuses ratios."""
    in_order = [m for m in kinds if m in held]
    if metrics is None:
        chosen = in_order
    else:
        chosen = list(metrics)
        for metric in chosen:
            if metric not in held:
                raise InputError(
                    f"{where}: no rows for the metric {metric} (it holds "
                    f"{', '.join(in_order)}); run `abkit sql` with that metric"
                )
    ratios = [m for m in chosen if kinds[m] == "ratio"]
    if cuped and ratios:
        raise InputError(
            f"{param('cuped')} supports the conversion and mean metrics, not ratio metrics "
            f"({', '.join(ratios)})"
            + ("" if metrics is not None else f"; choose the metrics with {param('metrics')}")
        )
    return chosen


def _check_metric_has_its_data(
    clean: dict[str, list[Any]],
    metric: str,
    where: str,
    kinds: Mapping[str, str],
    needs_values: Collection[str],
    cuped: bool,
) -> None:
    """A metric whose every arm lacks what it needs (values, a denominator, a covariate)."""
    mine = [
        i
        for i in range(len(clean["metric"]))
        if clean["metric"][i] == metric and clean["arm"][i] is not None
    ]
    if not mine:
        return  # only units in several arms: the arms' own check refuses it
    arms = [clean["arm"][i] for i in mine]
    every = f"in every arm ({', '.join(arms)})" if len(arms) > 1 else f"in arm {arms[0]}"
    for column, needed, lacks in (
        ("value_rows", metric in needs_values, "a value"),
        ("d_sum", kinds[metric] == "ratio", "a denominator"),
        ("x_rows", cuped, "a pre-period row"),
    ):
        if needed and not any(clean[column][i] for i in mine):
            extra = (
                f", so {param('cuped')} has no covariate (write the file with `abkit sql --cuped`)"
                if column == "x_rows"
                else ""
            )
            raise InputError(
                f"{where}: metric {metric}: {column} is 0 {every}: no unit has {lacks}{extra}"
            )


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
) -> AggregateResult:
    """The rows of ``metric`` as the :class:`AggregateResult` the aggregation query gives;
    ``rows`` as :func:`check_aggregates` returns them (the file holds the metric)."""
    import numpy as np

    chosen = np.array([m == metric.name for m in rows["metric"].tolist()], dtype=bool)
    data = {c: np.asarray(rows[c])[chosen] for c in AGGREGATE_COLUMNS}
    return collect_aggregates(design, metric, data, cuped=cuped)
