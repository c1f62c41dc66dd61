"""Notebook display of the result objects: ``to_pandas()`` (one row per comparison, metric or
gate, the JSON's numbers) and ``_repr_html_`` (the table under the result's chart once
``abkit.report`` is imported; the table alone without it)."""

from __future__ import annotations

from pathlib import Path

import pytest

import abkit.report  # noqa: F401  (registers the charts)
from abkit._util import HTML_CHARTS, type_key
from abkit.compare.arms import compare_arms
from abkit.compare.runs import compare_runs
from abkit.replay.runner import ReplayResult
from abkit.report.figures import GateReport
from abkit.stats.power import power
from abkit.stats.results import ArmComparisonReport
from tests._ab_store import counts_store
from tests._fake_runs import add_run, correlated_users


def test_arm_comparison_table_and_chart(tmp_path: Path) -> None:
    db = counts_store(tmp_path / "c.duckdb", units=10_000, conversions=(500, 650))
    report = compare_arms(db, claim=0.1)
    frame = report.to_pandas()
    (c,) = report.to_dict()["comparisons"]
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row["lift"], row["lift_ci_lower"], row["lift_ci_upper"]) == pytest.approx(
        (c["lift"], *c["lift_ci"])
    )
    assert row["claim_verdict"] == c["claim"]["verdict"]
    html = report._repr_html_()
    assert html.count('<img src="data:image/svg+xml;base64,') == 1
    assert "<table" in html
    assert f"lift {100 * c['lift']:+.1f}%" in html  # the caption, as alt text and under it


def test_without_the_report_package_a_result_is_a_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = counts_store(tmp_path / "c.duckdb", units=1_000, conversions=(50, 65))
    monkeypatch.delitem(HTML_CHARTS, type_key(ArmComparisonReport))
    html = compare_arms(db)._repr_html_()
    assert "<img" not in html
    assert "<table" in html


def test_run_comparison_and_power_tables(tmp_path: Path) -> None:
    db = tmp_path / "runs.duckdb"
    base, cand = correlated_users(1, 400, shift=0.05)
    add_run(db, "run-a", user_metrics={"ndcg@10": base}, name="a")
    add_run(db, "run-b", user_metrics={"ndcg@10": cand}, name="b")
    result = compare_runs(db, ["run-a", "run-b"], n_resamples=0)
    (row,) = result.to_pandas().to_dict("records")
    (c,) = result.to_dict()["comparisons"]
    assert row["relative_difference"] == pytest.approx(c["relative_difference"])
    assert row["p_adjusted"] == pytest.approx(c["p_adjusted"])
    assert row["mean_candidate"] == pytest.approx(float(cand.mean()))
    assert "<img" in result._repr_html_()
    design = power(baseline=0.05, mde=0.2)
    (p,) = design.to_pandas().to_dict("records")
    assert p["n_per_arm"] == design.n_per_arm
    assert "<table" in design._repr_html_()


def test_every_result_with_a_chart_is_registered_under_its_real_name() -> None:
    # ReplayResult is registered by name (its module is heavy); the name must stay its own
    for kind in (ArmComparisonReport, ReplayResult, GateReport):
        assert type_key(kind) in HTML_CHARTS, kind
