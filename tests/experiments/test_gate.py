"""abkit.experiments.gate (the decision and its reports) and abkit.experiments.baseline (the
committed JSON file)."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import abkit.experiments.gate
from abkit.data.runs_sql import fetch_run
from abkit.data.store import open_store
from abkit.errors import AbkitWarning, InputError, SpecError, StoreError
from abkit.experiments.baseline import (
    baseline_from_run,
    content_digest,
    load_baseline,
    save_baseline,
    users_digest,
)
from abkit.experiments.gate import evaluate_gates
from abkit.experiments.spec import GateCheck
from abkit.stats import multiplicity
from abkit.stats.multiplicity import adjust
from abkit.stats.paired import fieller_ratio, relative_difference_interval, resampled_means
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


def test_holm_comes_from_abkit_stats_multiplicity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate used to look for a function that does not exist and fall back to a private
    copy of Holm; it must call abkit.stats.multiplicity.adjust."""
    calls: list[tuple[list[float], str]] = []
    real = multiplicity.adjust

    def spy(p: Any, method: Any = "holm") -> Any:
        calls.append((list(p), method))
        return real(p, method)

    monkeypatch.setattr(abkit.experiments.gate, "adjust", spy)
    base, cand = correlated_users(3, 300, shift=-0.03)
    report = evaluate_gates(
        baseline={"a": base, "b": base},
        candidate={"a": cand, "b": cand},
        checks=[GateCheck(metric="a", max_drop=0.01), GateCheck(metric="b", max_drop=0.02)],
    )
    assert calls == [([o.p_value for o in report.outcomes], "holm")]


def _absolute_gate_with_p(seed: int, p: float, n: int = 300):
    """Per-user vectors and an absolute margin whose one-sided t p-value is exactly ``p``."""
    base, cand = correlated_users(seed, n, shift=-0.05)
    d = cand - base
    se = d.std(ddof=1) / math.sqrt(n)
    margin = float(stats.t.ppf(p, n - 1) * se - d.mean())
    assert margin > 0
    return base, cand, margin, d.mean(), se


def _holm_reference(p_values: list[float], alpha: float) -> tuple[list[bool], list[float]]:
    """Holm's step-down walk, written out: reject while p_(j) <= alpha / (m - j + 1); each
    gate's level is the one it was tested at (after the first non-rejection, that one's)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    rejected, levels = [False] * m, [alpha] * m
    stop = None
    for rank, i in enumerate(order, start=1):
        if stop is None and p_values[i] <= alpha / (m - rank + 1):
            rejected[i] = True
            levels[i] = alpha / (m - rank + 1)
        else:
            stop = rank if stop is None else stop
            levels[i] = alpha / (m - stop + 1)
    return rejected, levels


@pytest.mark.parametrize(
    ("p_values", "confidences", "failed"),
    [
        # the reviewer's case: both raw p < alpha, neither survives Holm; the old table showed
        # 95% bounds below the allowed drop next to "pass"
        ([0.03, 0.03], [0.975, 0.975], []),
        ([0.01, 0.04], [0.975, 0.95], ["m0", "m1"]),
        ([0.04, 0.01, 0.3], [1 - 0.05 / 2, 1 - 0.05 / 3, 1 - 0.05 / 2], ["m1"]),
    ],
)
def test_several_gates_show_the_bound_at_the_level_holm_used(
    p_values: list[float], confidences: list[float], failed: list[str]
) -> None:
    data = [_absolute_gate_with_p(10 + i, p) for i, p in enumerate(p_values)]
    checks = [
        GateCheck(metric=f"m{i}", max_drop=margin, margin_type="absolute")
        for i, (_, _, margin, _, _) in enumerate(data)
    ]
    report = evaluate_gates(
        baseline={f"m{i}": d[0] for i, d in enumerate(data)},
        candidate={f"m{i}": d[1] for i, d in enumerate(data)},
        checks=checks,
    )
    assert [o.p_value for o in report.outcomes] == pytest.approx(p_values, rel=1e-9)
    assert report.failed_metrics == failed
    n = 300
    for o, (_, _, margin, mean, se), conf in zip(report.outcomes, data, confidences, strict=True):
        assert o.bound_confidence == pytest.approx(conf)
        assert o.upper_bound == pytest.approx(mean + stats.t.ppf(conf, n - 1) * se)
        # the bound agrees with the verdict, and the reason says so
        assert o.passed == (o.upper_bound > -margin)
        assert ("is not below" in o.reason) == o.passed
        if o.passed:
            assert "adjusted p" in o.reason
            assert "> 0.05" in o.reason
    if p_values == [0.03, 0.03]:
        # what the old table showed: the unadjusted 95% bound, below the allowed drop
        _, _, margin, mean, se = data[0]
        assert mean + stats.t.ppf(0.95, n - 1) * se < -margin
        text = report.to_markdown()
        assert "(97.5%) |" in text
        assert "one-sided, at the confidence Holm's step-down used for each gate" in text


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shifts=st.lists(st.floats(-0.12, 0.03), min_size=2, max_size=4),
    margin=st.floats(0.0, 0.06),
    relative=st.booleans(),
    test=st.sampled_from(["t", "bootstrap"]),
)
def test_with_holm_every_bound_agrees_with_its_verdict(
    seed: int, shifts: list[float], margin: float, relative: bool, test: Literal["t", "bootstrap"]
) -> None:
    """Several gates, Holm, t or bootstrap: a gate fails exactly when its reported bound is
    below the allowed drop, at the level Holm's step-down walk assigns to it."""
    kind: Literal["relative", "absolute"] = "relative" if relative else "absolute"
    base_v, cand_v = {}, {}
    for i, shift in enumerate(shifts):
        base_v[f"m{i}"], cand_v[f"m{i}"] = correlated_users(seed + i, 120, shift=shift)
    checks = [GateCheck(metric=k, max_drop=margin, margin_type=kind) for k in base_v]
    report = evaluate_gates(
        baseline=base_v, candidate=cand_v, checks=checks, test=test, n_resamples=199, seed=seed
    )
    p_values = [o.p_value for o in report.outcomes]
    rejected, levels = _holm_reference(p_values, 0.05)
    for o, rej, level in zip(report.outcomes, rejected, levels, strict=True):
        assert o.p_adjusted <= 0.05 or o.passed
        if abs(o.upper_bound - o.limit) < 1e-9 or abs(o.p_adjusted - 0.05) < 1e-12:
            continue  # exactly on the boundary: floating point decides
        assert o.passed == (not rej)
        assert o.bound_confidence == pytest.approx(1 - level)
        assert o.passed == (o.upper_bound >= o.limit)


def test_adjusted_p_equal_to_alpha_fails() -> None:
    """Rejection is p <= alpha, as in abkit compare: B = 199 resamples with exactly 9 resampled
    changes at or above -m give p = 10/200 = 0.05, and the gate fails (it passed under the
    old p < alpha)."""
    base, cand = correlated_users(8, 300, shift=-0.2)
    means = resampled_means(np.column_stack([base, cand]), 199, 5)
    draws = np.sort(means[:, 1] - means[:, 0])[::-1]
    assert draws[0] < 0
    margin = -float(draws[8])  # the 9th largest change is exactly -margin
    check = GateCheck(metric="ndcg@10", max_drop=margin, margin_type="absolute")
    outcome = _gate(base, cand, check, test="bootstrap", n_resamples=199, seed=5).outcomes[0]
    assert outcome.p_value == outcome.p_adjusted == 10 / 200
    assert not outcome.passed
    assert outcome.upper_bound < outcome.limit
    assert outcome.upper_bound == draws[9]  # (k + 1)-th largest, k = 9
    assert outcome.reason.endswith("adjusted p 0.05 <= 0.05)")


def test_relative_bootstrap_bound_inverts_the_contrast_test() -> None:
    """One relative gate by bootstrap: the bound is an order statistic of the resampled
    relative changes, the p-value counts resampled contrasts at or above 0: they agree."""
    base, cand = correlated_users(9, 400, shift=-0.06)
    outcome = _gate(base, cand, test="bootstrap", n_resamples=999, seed=2).outcomes[0]
    means = resampled_means(np.column_stack([base, cand]), 999, 2)
    contrast = means[:, 1] - 0.98 * means[:, 0]
    assert outcome.p_value == (1 + np.count_nonzero(contrast >= 0)) / 1000
    rel = np.sort(means[:, 1] / means[:, 0] - 1)[::-1]
    assert outcome.upper_bound == rel[49]  # k = 49: (1 + 49) / 1000 <= 0.05
    assert outcome.passed == (outcome.upper_bound >= -0.02)
    assert outcome.bound_confidence == 0.95
    # t variant of the same gate: the one-sided Fieller bound at critical t_{0.95}
    t_outcome = _gate(base, cand).outcomes[0]
    cov = np.cov(np.vstack([base, cand]), ddof=1) / 400
    fieller = fieller_ratio(
        base.mean(), cand.mean(), cov[0, 0], cov[1, 1], cov[0, 1],
        critical=stats.t.ppf(0.95, 399), confidence=0.9,
    )  # fmt: skip
    assert t_outcome.upper_bound == pytest.approx(fieller.ci_high)


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
        "| gate | baseline | candidate | change | upper bound (confidence) | allowed | "
        "p (adj.) | result |"
    )
    assert lines[header + 1] == "|---|---:|---:|---:|---:|---:|---:|---|"
    rows = [line for line in lines[header + 2 :] if line.startswith("|")]
    assert len(rows) == 2
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[0] == "ndcg@10"
    assert cells[4].endswith("% (97.5%)")  # failed first in Holm's walk: alpha / 2
    assert cells[5] == "-2.00%"
    assert cells[-1] == "**FAIL**"
    assert rows[1].endswith("| pass |")
    assert "(95%) |" in rows[1]  # the first non-rejection, tested at alpha / 1
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


def _consistent_edit(document: dict[str, Any]) -> dict[str, Any]:
    """Raise every user's ndcg@10 by 0.1 and update its mean and sd to match: structurally
    a perfect baseline, which would flip a gate."""
    entry = document["metrics"]["ndcg@10"]
    values = np.round(np.asarray(entry["values"], dtype=float) + 0.1, 6)
    entry.update(values=values.tolist(), mean=float(values.mean()), sd=float(values.std(ddof=1)))
    return document


def test_a_consistently_edited_baseline_is_refused(run_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    save_baseline(_baseline(run_db), out)
    document = json.loads(out.read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", document["content_sha256"])
    assert document["content_sha256"] == content_digest(document)
    out.write_text(json.dumps(_consistent_edit(document), indent=2))
    with pytest.raises(SpecError) as err:
        load_baseline(out)
    assert str(err.value) == (
        f"{out}: the file was edited after it was saved (its content_sha256 does not "
        "match); regenerate it with `abkit run SPEC --save-baseline` or "
        "`abkit baseline save RUN --out FILE`"
    )


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: {**d, "created_at": "2000-01-01T00:00:00"},
        lambda d: {**d, "run": {**d["run"], "params": {"factors": 2}}},
        lambda d: {**d, "users": {**d["users"], "digest": "0" * 32}},
        lambda d: {**d, "metrics": {"ndcg@10": d["metrics"]["ndcg@10"]}},
    ],
)
def test_any_content_edit_breaks_the_digest(run_db: Path, tmp_path: Path, edit) -> None:
    out = tmp_path / "b.json"
    save_baseline(_baseline(run_db), out)
    out.write_text(json.dumps(edit(json.loads(out.read_text()))))
    with pytest.raises(SpecError, match="the file was edited after it was saved"):
        load_baseline(out)


def test_reformatting_keeps_the_digest_valid(run_db: Path, tmp_path: Path) -> None:
    """Whitespace and key order are not content: a re-indented file still loads."""
    out = tmp_path / "b.json"
    save_baseline(_baseline(run_db), out)
    document = json.loads(out.read_text())
    out.write_text(json.dumps(dict(reversed(list(document.items()))), indent=4, sort_keys=True))
    loaded = load_baseline(out)
    assert loaded.n_users == 1000


def test_bad_digest_value(run_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    save_baseline(_baseline(run_db), out)
    out.write_text(json.dumps({**json.loads(out.read_text()), "content_sha256": 12}))
    with pytest.raises(SpecError) as err:
        load_baseline(out)
    assert str(err.value) == f"{out}: 'content_sha256' in the file must be 64 hex digits, got 12"


def test_a_baseline_without_digest_loads_with_a_warning(run_db: Path, tmp_path: Path) -> None:
    """Files saved before the digest existed keep working; the warning says edits to them
    go unnoticed until they are saved again."""
    out = tmp_path / "b.json"
    save_baseline(_baseline(run_db), out)
    document = json.loads(out.read_text())
    del document["content_sha256"]
    out.write_text(json.dumps(_consistent_edit(document)))
    with pytest.warns(AbkitWarning) as caught:
        loaded = load_baseline(out)
    assert [str(w.message) for w in caught] == [
        f"{out}: this baseline has no content_sha256 (saved by an older abkit), so edits to it "
        "cannot be detected; save it again with `abkit run SPEC --save-baseline` or "
        "`abkit baseline save RUN --out FILE`"
    ]
    assert loaded.n_users == 1000


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


def test_users_mismatch_messages(run_db: Path) -> None:
    """What differs is said: the count, or (same count) other ids; with the baseline's own
    ids (its source run still stored) how many on each side and the first few."""
    from abkit.experiments.gate import check_users

    baseline = _baseline(run_db)  # u00000 .. u00999
    ids = [f"u{i:05d}" for i in range(1000)]
    check_users(baseline, run_id="r", metric="ndcg@10", user_ids=ids[::-1])  # order is free
    cases = [
        (ids[:990], None, "scored 990 users on ndcg@10, the baseline 1,000: -10 users"),
        (
            [*ids[1:], "x"],
            None,
            "scored 1,000 users on ndcg@10, the baseline 1,000: as many, but other user ids "
            "(the baseline file keeps only their digest)",
        ),
        (
            ids[5:],
            ids,
            "scored 995 users on ndcg@10, the baseline 1,000: 0 only in the run, 5 only in the "
            "baseline (e.g. u00000, u00001, u00002, ...)",
        ),
        (  # ids that are not the baseline's (another run of that id): only the count is said
            ids[:990],
            ids[:980],
            "scored 990 users on ndcg@10, the baseline 1,000: -10 users",
        ),
    ]
    for user_ids, baseline_ids, message in cases:
        with pytest.raises(SpecError) as err:
            check_users(
                baseline, run_id="r", metric="ndcg@10", user_ids=user_ids, baseline_ids=baseline_ids
            )
        assert str(err.value) == f"run run-b: run r {message}; they cannot be paired"
