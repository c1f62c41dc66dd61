"""`abkit compare --aggregates FILE` refuses a file it cannot analyse faithfully: one line that
names the file, the row, the column and what was expected, exit 2, no traceback, and the store
untouched (or not created). A valid file with several metrics reports each of them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abkit.cli.main import app
from abkit.compare.warehouse import aggregation_sql
from abkit.data.aggregates_file import FILE_COLUMNS
from tests._ab_store import hand_store
from tests.conftest import file_digest

NUMBERS = FILE_COLUMNS[2:]
ZERO = dict.fromkeys(NUMBERS, "0")


def _row(metric: str, arm: str, **cells: str) -> dict[str, str]:
    return {"metric": metric, "arm": arm, **ZERO, **cells}


# A valid conversion file: 10 users per arm, 2 and 4 conversions.
CONTROL = _row("conversion", "control", units="10", y_sum="2", y_sum_sq="2", value_rows="3")
TREATMENT = _row("conversion", "treatment", units="10", y_sum="4", y_sum_sq="4", value_rows="4")
MEAN = [
    _row("mean", "control", units="10", y_sum="35", y_sum_sq="525", value_rows="3"),
    _row("mean", "treatment", units="10", y_sum="90", y_sum_sq="2708", value_rows="4"),
]
RATIO = [
    _row(
        "revenue_per_order",
        "control",
        units="10",
        y_sum="35",
        y_sum_sq="525",
        d_sum="3",
        d_sum_sq="5",
        yd_sum="45",
        row_y_sum_sq="525",
        value_rows="3",
    ),
    _row(
        "revenue_per_order",
        "treatment",
        units="10",
        y_sum="90",
        y_sum_sq="2708",
        d_sum="4",
        d_sum_sq="4",
        yd_sum="90",
        row_y_sum_sq="2708",
        value_rows="4",
    ),
]


def _with(row: dict[str, str], **cells: str) -> dict[str, str]:
    return {**row, **cells}


def _csv(rows: list[dict[str, str]]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "stats.csv"
        lines = [",".join(FILE_COLUMNS)] + [",".join(r[c] for c in FILE_COLUMNS) for r in rows]
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


def _json(records: list[dict[str, object]]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "stats.json"
        path.write_text(json.dumps(records))
        return path

    return write


def _parquet(columns: dict[str, list[object]]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "stats.parquet"
        pq.write_table(pa.table(columns), path)
        return path

    return write


def _numbers(row: dict[str, str]) -> dict[str, object]:
    return {c: (row[c] if c in ("metric", "arm") else float(row[c])) for c in FILE_COLUMNS}


AT = "{file}, row {row} (metric {metric}, arm {arm})"
C1 = AT.format(file="{file}", row=1, metric="conversion", arm="control")

# (id, file writer, extra options, the exact message after "error: --aggregates ")
CASES = [
    (
        "y_sum inf",
        _csv([_with(CONTROL, y_sum="inf"), TREATMENT]),
        [],
        f"{C1}: y_sum is inf; expected a whole number >= 0",
    ),
    (
        "units text",
        _csv([_with(CONTROL, units="many"), TREATMENT]),
        [],
        f"{C1}: units is 'many'; expected a whole number >= 0",
    ),
    (
        "y_sum NaN",
        _csv([_with(CONTROL, y_sum="NaN"), TREATMENT]),
        [],
        f"{C1}: y_sum is NaN; expected a whole number >= 0 (a missing value is not 0)",
    ),
    (
        "y_sum empty",
        _csv([CONTROL, _with(TREATMENT, y_sum="")]),
        [],
        "{file}, row 2 (metric conversion, arm treatment): y_sum is empty; expected a whole "
        "number >= 0 (a missing value is not 0)",
    ),
    (
        "mean y_sum empty",
        _csv([MEAN[0], _with(MEAN[1], y_sum="")]),
        [],
        "{file}, row 2 (metric mean, arm treatment): y_sum is empty; expected a finite number "
        "(a missing value is not 0)",
    ),
    (
        "units fractional",
        _csv([_with(CONTROL, units="1028.5"), TREATMENT]),
        [],
        f"{C1}: units is 1028.5; expected a whole number >= 0; nothing is rounded",
    ),
    (
        "conversions fractional",
        _csv([_with(CONTROL, y_sum="2.5"), TREATMENT]),
        [],
        f"{C1}: y_sum is 2.5; expected a whole number >= 0; nothing is rounded",
    ),
    (
        "value_rows fractional",
        _csv([MEAN[0], _with(MEAN[1], value_rows="3.25")]),
        [],
        "{file}, row 2 (metric mean, arm treatment): value_rows is 3.25; expected a whole "
        "number >= 0; nothing is rounded",
    ),
    (
        "x_rows fractional",
        _csv([_with(CONTROL, x_rows="0.5"), TREATMENT]),
        [],
        f"{C1}: x_rows is 0.5; expected a whole number >= 0; nothing is rounded",
    ),
    (
        "units negative",
        _csv([_with(CONTROL, units="-10"), TREATMENT]),
        [],
        f"{C1}: units is -10; expected a whole number >= 0",
    ),
    (
        "y_sum_sq negative",
        _csv([MEAN[0], _with(MEAN[1], y_sum_sq="-2708")]),
        [],
        "{file}, row 2 (metric mean, arm treatment): y_sum_sq is -2708; expected a number >= 0",
    ),
    (
        "d_sum negative",
        _csv([_with(RATIO[0], d_sum="-3"), RATIO[1]]),
        [],
        "{file}, row 1 (metric revenue_per_order, arm control): d_sum is -3; expected a number "
        ">= 0",
    ),
    (
        "more conversions than units",
        _csv([_with(CONTROL, y_sum="12", y_sum_sq="12"), TREATMENT]),
        [],
        f"{C1}: y_sum is 12, more than the 10 units; expected the converted units, at most one "
        "per unit",
    ),
    (
        "a second control row",
        _csv([CONTROL, TREATMENT, _with(CONTROL, units="7")]),
        [],
        "{file}, row 3 (metric conversion, arm control): a second row for this metric and arm "
        "(the first is row 1); expected one row per metric and arm",
    ),
    (
        "a second row of units in several arms",
        _csv([CONTROL, TREATMENT, _with(CONTROL, arm=""), _with(CONTROL, arm="")]),
        [],
        "{file}, row 4 (metric conversion, no arm): a second row for this metric and arm (the "
        "first is row 3); expected one row per metric and arm",
    ),
    (
        "unknown metric",
        _csv([CONTROL, TREATMENT, _with(CONTROL, metric="revenue")]),
        [],
        "{file}, row 3: metric is 'revenue'; expected one of conversion, mean, "
        "clicks_per_impression, revenue_per_order, orders_per_session (the result of "
        "`abkit sql`)",
    ),
    (
        "no rows",
        _csv([]),
        [],
        "{file}: no rows; expected one row per metric and arm (the result of `abkit sql`)",
    ),
    (
        "mean without values",
        _csv([_with(MEAN[0], value_rows="0"), _with(MEAN[1], value_rows="0")]),
        [],
        "{file}: metric mean: value_rows is 0 in every arm (control, treatment): no unit has a "
        "value",
    ),
    (
        "ratio without a denominator",
        _csv([_with(RATIO[0], d_sum="0"), _with(RATIO[1], d_sum="0")]),
        [],
        "{file}: metric revenue_per_order: d_sum is 0 in every arm (control, treatment): no "
        "unit has a denominator",
    ),
    (
        "cuped without pre-period rows",
        _csv([CONTROL, TREATMENT]),
        ["--cuped"],
        "{file}: metric conversion: x_rows is 0 in every arm (control, treatment): no unit has "
        "a pre-period row, so --cuped has no covariate (write the file with `abkit sql "
        "--cuped`)",
    ),
    (
        "a metric the file lacks",
        _csv([CONTROL, TREATMENT]),
        ["--metric", "mean"],
        "{file}: no rows for the metric mean (it holds conversion); run `abkit sql` with that "
        "metric",
    ),
    (
        "parquet y_sum NaN",
        _parquet(
            {
                c: [_numbers(CONTROL)[c], _numbers(TREATMENT)[c]]
                if c != "y_sum"
                else [2.0, float("nan")]
                for c in FILE_COLUMNS
            }
        ),
        [],
        "{file}, row 2 (metric conversion, arm treatment): y_sum is NaN; expected a whole "
        "number >= 0 (a missing value is not 0)",
    ),
    (
        "parquet units NULL",
        _parquet(
            {
                c: [_numbers(CONTROL)[c], _numbers(TREATMENT)[c]] if c != "units" else [10, None]
                for c in FILE_COLUMNS
            }
        ),
        [],
        "{file}, row 2 (metric conversion, arm treatment): units is empty; expected a whole "
        "number >= 0 (a missing value is not 0)",
    ),
    (
        "json units text",
        _json([_numbers(CONTROL), {**_numbers(TREATMENT), "units": "many"}]),
        [],
        "{file}, row 2 (metric conversion, arm treatment): units is 'many'; expected a whole "
        "number >= 0",
    ),
    (
        "json a second treatment row",
        _json([_numbers(TREATMENT), _numbers(CONTROL), _numbers(TREATMENT)]),
        [],
        "{file}, row 3 (metric conversion, arm treatment): a second row for this metric and "
        "arm (the first is row 1); expected one row per metric and arm",
    ),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose experiment has the arms control and treatment (read it only)."""
    return hand_store(tmp_path_factory.mktemp("store") / "shop.duckdb")


@pytest.mark.parametrize("with_store", [True, False], ids=["store", "no-store"])
@pytest.mark.parametrize(
    ("write", "options", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_bad_file_is_one_line_and_exit_2(
    runner, store: Path, tmp_path: Path, with_store: bool, write, options, message
) -> None:
    file = write(tmp_path)
    db = store if with_store else tmp_path / "none.duckdb"
    before = file_digest(db)
    result = runner.invoke(app, ["compare", "--db", str(db), "--aggregates", str(file), *options])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: --aggregates {message.format(file=file)}\n"
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert file_digest(db) == before  # the store untouched, or still not there


def _abkit_sql_result(db: Path, out: Path, metrics: tuple[str, ...], ratio: str) -> Path:
    """The result of `abkit sql` over ``db``, saved as ``out`` (DuckDB plays the warehouse)."""
    text = aggregation_sql(db=db, metrics=metrics, ratio=ratio)
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute(f"COPY ({text.rstrip().rstrip(';')}) TO '{out}'")
    finally:
        con.close()
    return out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_every_metric_the_file_holds_is_reported(
    runner, store: Path, tmp_path: Path, suffix: str
) -> None:
    metrics = ("conversion", "mean", "ratio")
    file = _abkit_sql_result(store, tmp_path / f"stats{suffix}", metrics, "revenue_per_order")
    before = file_digest(store)
    asked = ["-m", "conversion", "-m", "mean", "-m", "ratio", "--ratio", "revenue_per_order"]
    direct = runner.invoke(app, ["compare", "--db", str(store), *asked])
    from_file = runner.invoke(app, ["compare", "--db", str(store), "--aggregates", str(file)])
    assert from_file.exit_code == 0, from_file.output
    # no --metric: each metric of the file, the same report as asking the store for all three
    assert from_file.stdout == direct.stdout
    for name in ("conversion", "mean", "revenue_per_order"):
        assert re.search(rf"^{name}\s", from_file.stdout, re.MULTILINE), name
        assert f"  - metric {name}: " in from_file.stdout
    assert "over a family of 3 comparison(s)" in from_file.stdout
    as_json = runner.invoke(
        app, ["compare", "--db", str(store), "--aggregates", str(file), "--json"]
    )
    assert json.loads(as_json.stdout)["metrics"] == ["conversion", "mean", "revenue_per_order"]
    # --metric still chooses
    one = runner.invoke(
        app, ["compare", "--db", str(store), "--aggregates", str(file), "-m", "mean", "--json"]
    )
    assert json.loads(one.stdout)["metrics"] == ["mean"]
    assert file_digest(store) == before


def test_a_file_with_several_ratios_reports_each(runner, tmp_path: Path) -> None:
    per_session = [_with(r, metric="orders_per_session") for r in RATIO]
    file = _csv([CONTROL, TREATMENT, *RATIO, *per_session])(tmp_path)
    db = tmp_path / "none.duckdb"
    args = ["compare", "--db", str(db), "--aggregates", str(file), "--control", "control"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["metrics"] == ["conversion", "revenue_per_order", "orders_per_session"]
    assert not db.exists()
    cuped = runner.invoke(app, ["compare", "--db", str(db), "--aggregates", str(file), "--cuped"])
    assert cuped.exit_code == 2
    assert cuped.stderr == (
        "error: --cuped supports the conversion and mean metrics, not ratio metrics "
        "(revenue_per_order, orders_per_session); choose the metrics with --metric\n"
    )
