"""`abkit sql` and `abkit compare --aggregates`: one aggregation query for every engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import sqlglot

from abkit.cli.main import app
from abkit.compare.arms import compare_arms
from abkit.compare.warehouse import aggregation_sql
from abkit.data.dialects import DIALECTS, inline_params
from abkit.errors import InputError
from tests._json_close import assert_json_close

METRICS = ("conversion", "mean", "ratio")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("metrics", "ratio", "cuped", "unit"),
    [
        (METRICS, "revenue_per_order", False, "user"),
        (("ratio",), "orders_per_session", False, "user"),
        (("ratio",), "clicks_per_impression", False, "user"),
        (("conversion", "mean"), "clicks_per_impression", True, "user"),
        (("conversion", "mean"), "clicks_per_impression", False, "impression"),
    ],
)
def test_every_dialect_parses(dialect, metrics, ratio, cuped, unit, sim_db: Path) -> None:
    db = sim_db if unit == "user" else None
    text = aggregation_sql(
        dialect,
        db=db,
        dataset=None if db else "obd",
        metrics=metrics,
        ratio=ratio,
        cuped=cuped,
        unit=unit,
    )
    tree = sqlglot.parse_one(text, read=dialect)
    assert tree.find(sqlglot.exp.Placeholder) is None
    # the query reads the abkit tables and returns the documented columns
    ctes = {c.alias for c in tree.find_all(sqlglot.exp.CTE)}
    assert {t.name for t in tree.find_all(sqlglot.exp.Table)} - ctes <= {
        "assignments", "events", "impressions",
    }  # fmt: skip
    assert [s.alias_or_name for s in tree.selects][:2] == ["metric", "arm"]


def _run_duckdb_sql(db: Path, text: str, out: Path) -> None:
    con = duckdb.connect(str(db), read_only=True)
    try:
        frame = con.execute(text.rstrip().rstrip(";")).df()
    finally:
        con.close()
    if out.suffix == ".csv":
        frame.to_csv(out, index=False)
    elif out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_json(out, orient="records", double_precision=15)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_aggregates_file_reproduces_compare(sim_db: Path, tmp_path: Path, runner, suffix) -> None:
    args = ["--metric", "conversion", "--metric", "mean", "--metric", "ratio"]
    args += ["--ratio", "revenue_per_order"]
    printed = runner.invoke(app, ["sql", "--db", str(sim_db), *args])
    assert printed.exit_code == 0, printed.output
    file = tmp_path / f"agg{suffix}"
    _run_duckdb_sql(sim_db, printed.output, file)
    direct = runner.invoke(app, ["compare", "--db", str(sim_db), *args, "--json"])
    from_file = runner.invoke(
        app, ["compare", "--db", str(sim_db), *args, "--aggregates", str(file), "--json"]
    )
    assert from_file.exit_code == 0, from_file.output
    assert_json_close(json.loads(direct.output), json.loads(from_file.output))


def test_aggregates_without_a_store(sim_db: Path, tmp_path: Path) -> None:
    text = aggregation_sql(db=sim_db, metrics=("conversion",))
    file = tmp_path / "agg.csv"
    _run_duckdb_sql(sim_db, text, file)
    direct = compare_arms(sim_db)
    alone = compare_arms(tmp_path / "none.duckdb", aggregates=file, control="control")
    assert alone.arms == direct.arms
    for a, b in zip(alone.comparisons, direct.comparisons, strict=True):
        assert a.p_value == pytest.approx(b.p_value, rel=1e-9)
        assert a.lift_ci_lower == pytest.approx(b.lift_ci_lower, rel=1e-9)
    with pytest.raises(InputError, match="no rows for the metric mean"):
        compare_arms(None, aggregates=file, control="control", metrics="mean")
    bad = tmp_path / "bad.csv"
    bad.write_text("metric,arm,units\nconversion,a,3\n")
    with pytest.raises(InputError, match="no column y_sum"):
        compare_arms(None, aggregates=bad, control="a")


def test_literals_are_quoted_by_sqlglot() -> None:
    text = inline_params("SELECT ? AS a, '?' AS b, ? AS c", ["it's", None])
    expected = "SELECT 'it''s' AS a, '?' AS b, NULL AS c"
    assert sqlglot.parse_one(text, read="duckdb").sql() == expected


def test_duckdb_compare_does_not_import_sqlglot(sim_db: Path) -> None:
    code = (
        "import sys; from abkit.compare.arms import compare_arms; "
        f"compare_arms({str(sim_db)!r}, metrics=('conversion', 'ratio')); "
        "print('sqlglot' in sys.modules, 'pyspark' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _conversion_aggregates(path: Path, arms: dict[str, tuple[int, int]]) -> Path:
    """An aggregates CSV of the conversion metric: ``arm -> (units, conversions)``."""
    columns = (
        "metric,arm,units,y_sum,y_sum_sq,d_sum,d_sum_sq,yd_sum,x_sum,x_sum_sq,xy_sum,"
        "row_y_sum_sq,value_rows,x_rows"
    )
    rows = [
        f"conversion,{arm},{units},{x},{x},0,0,0,0,0,0,0,{x},0" for arm, (units, x) in arms.items()
    ]
    path.write_text("\n".join([columns, *rows]) + "\n")
    return path


def test_split_is_control_first_whatever_the_arms_order(tmp_path: Path) -> None:
    # The file's arms are alphabetical (a_treat, b_ctrl), the control is the second: --split
    # 60/40 gives the control 60%, as ingest's --split does, so 6000/4000 units fit exactly.
    file = _conversion_aggregates(
        tmp_path / "agg.csv", {"a_treat": (4000, 200), "b_ctrl": (6000, 300)}
    )
    fits = compare_arms(None, aggregates=file, control="b_ctrl", split="60/40")
    assert fits.srm.ok is True
    assert fits.srm.chi2 == pytest.approx(0.0, abs=1e-12)
    assert dict(zip(fits.srm.arms, fits.srm.split, strict=True)) == {"a_treat": 0.4, "b_ctrl": 0.6}
    reversed_ = compare_arms(None, aggregates=file, control="b_ctrl", split="40/60")
    assert reversed_.srm.ok is False


def test_an_interval_that_excludes_zero_is_not_called_inclusive_after_holm(tmp_path: Path) -> None:
    # t1: p = 0.036 alone, its 95% interval +1.8% to +66.1%; Holm over 2 comparisons: 0.071.
    from typer.testing import CliRunner

    file = _conversion_aggregates(
        tmp_path / "agg.csv", {"ctl": (1000, 100), "t1": (1000, 130), "t2": (1000, 100)}
    )
    result = CliRunner().invoke(
        app, ["compare", "--aggregates", str(file), "--control", "ctl", "--db", str(tmp_path / "n")]
    )
    assert result.exit_code == 0
    lines = [x for x in result.stdout.splitlines() if x.startswith("What it means")]
    assert lines[0].startswith(
        "What it means: the 95% interval (+1.8% to +66.1%) excludes no change, but after holm "
        "over the 2 comparisons the difference is not significant at alpha 0.05"
    )
    assert "(-23.1% to +30.0%) includes no change" in lines[1]
