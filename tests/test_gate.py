"""abkit.gate (the decision and its reports) and abkit.baseline (the committed JSON file)."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from abkit.baseline import baseline_from_run, load_baseline, save_baseline, users_digest
from abkit.data.runs_sql import fetch_run
from abkit.data.store import open_store
from abkit.errors import InputError, SpecError, StoreError
from abkit.gate import GateCheck, evaluate_gates
from abkit.stats.multiplicity import adjust
from abkit.stats.paired import relative_difference_interval
from tests._fake_runs import add_run, correlated_users

NDCG = GateCheck(metric="ndcg@10", max_drop=0.02)


def _gate(base: np.ndarray, cand: np.ndarray, check: GateCheck = NDCG, **kwargs):
    return evaluate_gates(
        baseline={check.metric: base}, candidate={check.metric: cand}, checks=[check], **kwargs
    )


# -- the decision ---------------------------------------------------------------------------


def test_identical_run_passes_with_p_one() -> None:
    base, _ = correlated_users(0, 500)
    for test in ("t", "bootstrap"):
        report = _gate(base, base, test=test, n_resamples=200)
        assert report.passed
        assert report.exit_code == 0
        assert report.outcomes[0].change == 0
        assert report.outcomes[0].p_value > 0.99


def test_absolute_gate_is_a_one_sided_t_test_on_the_shifted_difference() -> None:
    base, cand = correlated_users(1, 300, shift=-0.1)
    check = GateCheck(metric="ndcg@10", max_drop=0.01, margin_type="absolute")
    report = _gate(base, cand, check)
    outcome = report.outcomes[0]
    ref = stats.ttest_1samp(cand - base + 0.01, 0.0, alternative="less")
    assert outcome.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    d = cand - base
    upper = d.mean() + stats.t.ppf(0.95, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    assert outcome.upper_bound == pytest.approx(upper)
    assert not report.passed
    assert report.exit_code == 1
    assert report.failed_metrics == ["ndcg@10"]
    assert outcome.limit == -0.01


def test_relative_gate_matches_the_one_sided_fieller_bound() -> None:
    base, cand = correlated_users(2, 400, shift=-0.04)
    outcome = _gate(base, cand).outcomes[0]
    # one-sided 95% upper bound = upper end of the two-sided 90% Fieller interval
    fieller = relative_difference_interval(base, cand, confidence=0.90)
    assert outcome.upper_bound == pytest.approx(fieller.ci_high)
    ref = stats.ttest_1samp(cand - 0.98 * base, 0.0, alternative="less")
    assert outcome.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert outcome.change == pytest.approx(cand.mean() / base.mean() - 1)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shift=st.floats(-0.15, 0.05),
    margin=st.floats(0.0, 0.1),
    relative=st.booleans(),
)
def test_fails_exactly_when_the_upper_bound_is_below_the_allowed_drop(
    seed: int, shift: float, margin: float, relative: bool
) -> None:
    """One gate, no adjustment: the t test on the contrast and the displayed bound agree."""
    base, cand = correlated_users(seed, 120, shift=shift)
    check = GateCheck(
        metric="ndcg@10", max_drop=margin, margin_type="relative" if relative else "absolute"
    )
    outcome = _gate(base, cand, check).outcomes[0]
    if abs(outcome.upper_bound - outcome.limit) > 1e-9:  # not exactly on the boundary
        assert outcome.passed == (outcome.upper_bound >= outcome.limit)


def test_several_gates_use_holm_on_the_one_sided_p_values() -> None:
    base, cand = correlated_users(3, 300, shift=-0.03)
    checks = [
        GateCheck(metric="ndcg@10", max_drop=0.01),
        GateCheck(metric="recall@10", max_drop=0.005, margin_type="absolute"),
    ]
    vectors_b = {"ndcg@10": base, "recall@10": base * 0.9}
    vectors_c = {"ndcg@10": cand, "recall@10": cand * 0.9}
    report = evaluate_gates(baseline=vectors_b, candidate=vectors_c, checks=checks)
    raw = [o.p_value for o in report.outcomes]
    assert [o.p_adjusted for o in report.outcomes] == pytest.approx(list(adjust(raw, "holm")))
    plain = evaluate_gates(
        baseline=vectors_b, candidate=vectors_c, checks=checks, multiplicity="none"
    )
    assert [o.p_adjusted for o in plain.outcomes] == raw


def test_planted_regression_fails_and_names_the_metric() -> None:
    base, cand = correlated_users(4, 2000, shift=-0.10)
    report = evaluate_gates(
        baseline={"ndcg@10": base, "hit_rate@10": (base > 0.2) * 1.0},
        candidate={"ndcg@10": cand, "hit_rate@10": (base > 0.2) * 1.0},
        checks=[NDCG, GateCheck(metric="hit_rate@10", max_drop=0.02)],
        name="ci",
    )
    assert report.failed_metrics == ["ndcg@10"]
    failed = report.outcomes[0]
    assert failed.reason.startswith("ndcg@10 dropped by ")
    assert "significantly more than the allowed 2.00%" in failed.reason
    assert report.outcomes[1].passed


def test_unchanged_model_never_fails_over_many_seeds() -> None:
    """The same model re-scored with fresh per-user noise (true change 0): with a 2% margin
    and 2,000 users no seed fails, by either test; the margin is ~4 standard errors."""
    failures = 0
    for seed in range(300):
        base, cand = correlated_users(seed, 2000, shift=0.0)
        report = _gate(base, cand, test="t")
        failures += not report.passed
        assert report.outcomes[0].standard_error < 0.006
    for seed in range(20):
        base, cand = correlated_users(seed, 2000, shift=0.0)
        failures += not _gate(base, cand, test="bootstrap", n_resamples=500, seed=seed).passed
    assert failures == 0


@pytest.mark.slow
def test_false_failure_rate_at_the_margin_is_alpha() -> None:
    """At the boundary of H0 (true relative change exactly -margin) the gate fails at rate
    alpha; deeper inside H0 (no change) far less: the test is calibrated, not just timid."""
    rng = np.random.default_rng(11)
    sims, n, margin = 1000, 300, 0.05
    at_margin = inside = 0
    for _ in range(sims):
        ease = rng.gamma(2.0, 0.15, n)
        base = ease + rng.normal(0, 0.05, n)
        noise = rng.normal(0, 0.05, n)
        # E[cand] = (1 - margin) E[base] exactly
        at_margin += not _gate(
            base, (1 - margin) * ease + noise, GateCheck(metric="ndcg@10", max_drop=margin)
        ).passed
        inside += not _gate(base, ease + noise, GateCheck(metric="ndcg@10", max_drop=margin)).passed
    band = 3 * math.sqrt(0.05 * 0.95 / sims)
    assert abs(at_margin / sims - 0.05) <= band
    assert inside / sims < 0.005


# -- reports --------------------------------------------------------------------------------


def _failing_report():
    base, cand = correlated_users(5, 500, shift=-0.2)
    return evaluate_gates(
        baseline={"ndcg@10": base, "hit_rate@10": (base > 0.3) * 1.0},
        candidate={"ndcg@10": cand, "hit_rate@10": (base > 0.3) * 1.0},
        checks=[NDCG, GateCheck(metric="hit_rate@10", max_drop=0.01, margin_type="absolute")],
        name="ci",
        candidate_info={"run_id": "run-c", "label": "als", "params": {"factors": 2}},
        baseline_info={"source": "ci.baseline.json", "label": "als", "params": {"factors": 32}},
        fingerprint="0123456789abcdef" * 2,
    )


def test_junit_xml_has_the_junit_structure() -> None:
    report = _failing_report()
    root = ET.fromstring(report.to_junit_xml())
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.get("tests") == "2"
    assert suite.get("failures") == "1"
    assert suite.get("errors") == "0"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "ndcg@10 may not drop by more than 2% (relative)",
        "hit_rate@10 may not drop by more than 0.01 (absolute)",
    ]
    assert all(c.get("classname") == "abkit.gate.ci" for c in cases)
    failure = cases[0].find("failure")
    assert failure is not None
    assert failure.get("type") == "MetricRegression"
    assert (failure.get("message") or "").startswith("ndcg@10 dropped by")
    assert "paired t test" in (failure.text or "")
    assert cases[1].find("failure") is None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["candidate_run"] == "run-c"
    assert props["fingerprint"] == "0123456789abcdef" * 2


def test_markdown_summary_renders_the_table() -> None:
    text = _failing_report().to_markdown()
    lines = text.splitlines()
    assert lines[0] == "### abkit gate `ci`: FAILED: ndcg@10"
    header = next(i for i, line in enumerate(lines) if line.startswith("| gate |"))
    assert lines[header] == (
        "| gate | baseline | candidate | change | 95% upper bound | allowed | p (adj.) | result |"
    )
    assert lines[header + 1] == "|---|---:|---:|---:|---:|---:|---:|---|"
    rows = [line for line in lines[header + 2 :] if line.startswith("|")]
    assert len(rows) == 2
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[0] == "ndcg@10"
    assert cells[5] == "-2.00%"
    assert cells[-1] == "**FAIL**"
    assert rows[1].endswith("| pass |")
    assert "Model parameters changed: factors 32 -> 2." in text
    assert "Decided by: paired t test at one-sided alpha 0.05, Holm adjustment over 2 gates" in text


def test_json_payload() -> None:
    payload = _failing_report().to_dict()
    json.dumps(payload, allow_nan=False)
    assert payload["passed"] is False
    assert payload["exit_code"] == 1
    assert payload["failed"] == ["ndcg@10"]
    assert payload["gates"][0]["gate"] == "ndcg@10 may not drop by more than 2% (relative)"


# -- invalid gates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: GateCheck(metric="ndcg@10", max_drop=-0.1),
            "gate ndcg@10: the allowed drop must be a non-negative number, got -0.1",
        ),
        (
            lambda: GateCheck(metric="ndcg@10", max_drop=1.5),
            "gate ndcg@10: a relative drop is a fraction below 1 (0.01 = 1%), got 1.5",
        ),
        (
            lambda: GateCheck(metric="ndcg@10", max_drop=0.1, margin_type="ratio"),  # type: ignore[arg-type]
            "gate ndcg@10: margin type must be 'relative' or 'absolute', got 'ratio'",
        ),
        (
            lambda: evaluate_gates(baseline={}, candidate={}, checks=[]),
            "no gates to evaluate: declare at least one gate",
        ),
        (
            lambda: evaluate_gates(baseline={"x": [1, 2]}, candidate={"x": [1, 2]}, checks=[NDCG]),
            "gate on ndcg@10: the baseline has no such metric; unknown metric 'ndcg@10'",
        ),
        (
            lambda: _gate(np.ones(3), np.ones(3), alpha=0.7),
            "alpha must be between 0 and 0.5, got 0.7",
        ),
        (
            lambda: _gate(np.ones(3), np.ones(4)),
            "paired vectors differ in length: baseline has 3 units, candidate 4",
        ),
    ],
)
def test_invalid_gates(call, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        call()


# -- baseline files -------------------------------------------------------------------------


@pytest.fixture
def run_db(db_path: Path) -> Path:
    base, _ = correlated_users(6, 1000)
    add_run(
        db_path,
        "run-b",
        user_metrics={"ndcg@10": base, "hit_rate@10": (base > 0.3) * 1.0},
        params={"factors": 32},
        name="als",
    )
    return db_path


def _baseline(db: Path, **kwargs):
    with open_store(db) as store:
        return baseline_from_run(store.con, fetch_run(store.con, "run-b"), **kwargs)


def test_baseline_round_trip_is_small_and_exact_to_its_decimals(
    run_db: Path, tmp_path: Path
) -> None:
    baseline = _baseline(run_db)
    out = tmp_path / "b.json"
    size = save_baseline(baseline, out)
    assert size == out.stat().st_size
    assert size < 15_000  # 1,000 users x 2 metrics
    loaded = load_baseline(out)
    base, _ = correlated_users(6, 1000)
    assert np.max(np.abs(loaded.metrics["ndcg@10"].values - base)) <= 5e-7
    assert loaded.users_digest == users_digest([f"u{i:05d}" for i in range(1000)])
    assert loaded.run["params"] == {"factors": 32}
    assert loaded.label == "als"
    document = json.loads(out.read_text())
    assert document["metrics"]["hit_rate@10"]["values"][:5] == [int(v) for v in (base[:5] > 0.3)]
    # one line per vector keeps diffs of the committed file readable
    assert sum(1 for line in out.read_text().splitlines() if '"values"' in line) == 2


def test_baseline_keeps_only_the_chosen_metrics(run_db: Path) -> None:
    assert list(_baseline(run_db, metrics=["ndcg@10"]).metrics) == ["ndcg@10"]
    with pytest.raises(
        StoreError, match=re.escape("run run-b: unknown metric 'ndcg@20' (did you mean 'ndcg@10'?)")
    ):
        _baseline(run_db, metrics=["ndcg@20"])


def test_offpolicy_run_cannot_be_a_baseline(db_path: Path) -> None:
    add_run(
        db_path,
        "op",
        kind="offpolicy",
        rounds={"impression_id": np.arange(3), "weight": np.ones(3), "reward": np.ones(3)},
    )
    with open_store(db_path) as store, pytest.raises(StoreError, match="is an off-policy run"):
        baseline_from_run(store.con, fetch_run(store.con, "op"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: "{not json", "not valid JSON (line 1, column 2"),
        (
            lambda d: json.dumps({"format": "x"}),
            'not an abkit baseline (expected "format": "abkit-baseline")',
        ),
        (
            lambda d: json.dumps({**d, "version": 9}),
            "baseline format version 9, this abkit reads version 1; save the baseline again",
        ),
        (
            lambda d: json.dumps({k: v for k, v in d.items() if k != "users"}),
            "missing key 'users' in the file",
        ),
        (
            lambda d: json.dumps({**d, "users": {**d["users"], "count": 3}}),
            "metrics.'hit_rate@10' has 1000 values but users.count is 3",
        ),
        (
            lambda d: json.dumps(
                {**d, "metrics": {"ndcg@10": {**d["metrics"]["ndcg@10"], "mean": 0.9}}}
            ),
            "metrics.'ndcg@10'.mean is 0.9 but its values average",
        ),
        (
            lambda d: json.dumps({**d, "run": {**d["run"], "fingerprint": 5}}),
            "'fingerprint' in 'run' must be str, got 5",
        ),
        (lambda d: json.dumps({**d, "metrics": {}}), "the baseline holds no metrics"),
    ],
)
def test_damaged_baseline_files(run_db: Path, tmp_path: Path, edit, message: str) -> None:
    out = tmp_path / "b.json"
    save_baseline(_baseline(run_db), out)
    out.write_text(edit(json.loads(out.read_text())))
    with pytest.raises(SpecError, match=re.escape(f"{out}: {message}")):
        load_baseline(out)


def test_missing_baseline_file(tmp_path: Path) -> None:
    path = tmp_path / "none.json"
    with pytest.raises(
        SpecError,
        match=re.escape(
            f"{path}: baseline file not found; create it with "
            f"`abkit baseline save RUN --out {path}`"
        ),
    ):
        load_baseline(path)
