"""Regression gates: is a candidate model significantly worse than the baseline, beyond a margin?

The hypothesis (one gate, metric M, higher is better, per-user values ``b_i`` of the baseline
and ``c_i`` of the candidate on the same users):

* relative margin m (e.g. 0.01 = "may not drop by more than 1%"):
  ``H0: mean(c) / mean(b) ≥ 1 - m`` (no regression beyond the margin) against
  ``H1: mean(c) / mean(b) < 1 - m`` (a regression beyond the margin);
* absolute margin m: ``H0: mean(c) - mean(b) ≥ -m`` against ``H1: mean(c) - mean(b) < -m``.

The gate FAILS only when H0 is rejected at one-sided level alpha. Both hypotheses are
statements about the mean of one per-user contrast, ``d_i = c_i - (1 - m) b_i`` (relative;
Fieller's construction, exact for a ratio of means) or ``d_i = c_i - b_i + m`` (absolute):
H0 is ``E[d] ≥ 0``. The test is the one-sided paired t test on ``d`` (default) or a paired
bootstrap test (resampled changes ``θ*``, ``p = (1 + #{θ* ≥ -m}) / (B + 1)``). With several
gates, Holm's step-down adjustment of the one-sided p-values (default;
:func:`abkit.stats.multiplicity.adjust`) keeps the chance of ANY false failure at most alpha.
A gate fails when its adjusted p-value is ``≤ alpha`` (the rule ``abkit compare`` uses too).

The reported ``upper_bound`` is the one-sided upper confidence bound of the change at the
level the decision used, so the table can never contradict the verdict: with the gates'
p-values sorted ascending and ``r`` of them rejected, the gate of rank ``j`` gets level
``alpha / (m - j + 1)`` when ``j ≤ r + 1`` (Holm's step-down levels up to and including the
first non-rejection) and ``alpha / (m - r)`` after it (Holm stops there); one gate, or
``multiplicity = "none"``: ``alpha``. A gate fails exactly when its bound is below ``-m``
(t test: at or below; relative: Fieller's bound at critical value ``t_{1-level, n-1}``;
absolute: the t bound; bootstrap: the inverted bootstrap test of
:func:`abkit.stats.paired.bootstrap_one_sided`).
These are the levels of Holm-adjusted simultaneous bounds (Strassburger & Bretz 2008,
Stat Med 27:4914, whose strictly simultaneous version reports just ``-m`` for failed gates;
abkit shows the bound at the level Holm used for that gate, which is more informative and
agrees with every verdict). ``bound_confidence`` is ``1 - level``.

Why this way round (a test of inferiority, not of non-inferiority): CI must never fail on
noise alone. When nothing changed, ``E[d] = m · mean(b) ≥ 0`` lies inside H0, so the gate fails
with probability at most alpha, and far less when the margin is several standard errors wide
(an identical rerun gives ``d_i = m b_i ≥ 0`` and always passes). The price: a noisy
experiment (too few users) cannot fail the gate either; the report shows each gate's standard
error so the margin can be sized against it (fail reliably needs a true drop of about
``m + 2.5 SE``). The classical non-inferiority test (pass only when the LOWER bound is above
``-m``) would fail a CI run whenever the sample is too small to prove anything, which is a
flaky gate.

Training randomness is not in these intervals: two seeds of the same model are two models, and
their per-user difference is real. Choose margins wider than seed-to-seed variation (the
committed ``experiments/ci.toml`` is tested against several seeds).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abkit._util import TableDisplay, unknown_choice
from abkit.data.runs_sql import fetch_run, run_metric_names, user_values
from abkit.data.store import default_db_path, open_store
from abkit.errors import AbkitError, InputError, SpecError
from abkit.experiments.baseline import load_baseline, users_digest
from abkit.experiments.runner import ensure_dataset, replay_model
from abkit.experiments.spec import GATE_METRICS, GateCheck, GateTest, MarginType, Multiplicity
from abkit.stats.dist import t_ppf
from abkit.stats.multiplicity import adjust
from abkit.stats.paired import (
    bootstrap_one_sided,
    fieller_ratio,
    one_sample_t,
    paired_values,
    resampled_means,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from abkit.experiments.baseline import Baseline
    from abkit.experiments.spec import ExperimentSpec
    from abkit.replay.runner import ReplayResult

__all__ = [
    "GateOutcome",
    "GateReport",
    "check_baseline_metrics",
    "check_fingerprint",
    "check_users",
    "default_checks",
    "evaluate_gates",
    "gate_run",
    "gate_spec",
]

TEST_NAMES: dict[str, str] = {
    "t": "paired t test",
    "bootstrap": "paired bootstrap percentile test",
}


@dataclass(frozen=True, kw_only=True)
class GateOutcome:
    """The verdict of one gate, effect size first.

    ``change`` is the candidate's change in the margin's scale (relative: ``mean(c)/mean(b)
    - 1``; absolute: ``mean(c) - mean(b)``), ``upper_bound`` its one-sided upper confidence
    bound at confidence ``bound_confidence`` (the level Holm used for this gate: see the
    module docstring), ``limit`` = ``-max_drop``. ``p_value`` is the one-sided p-value of H0
    "no regression beyond the margin", ``p_adjusted`` after the multiplicity adjustment;
    the gate fails when ``p_adjusted ≤ alpha``, which is when ``upper_bound`` is below
    ``limit``. ``standard_error`` is that of ``change`` (delta method for the relative
    scale).
    """

    check: GateCheck
    n: int
    baseline_mean: float
    candidate_mean: float
    difference: float
    relative_difference: float
    change: float
    upper_bound: float
    bound_confidence: float
    limit: float
    standard_error: float
    p_value: float
    p_adjusted: float
    passed: bool
    test: str
    reason: str

    @property
    def metric(self) -> str:
        return self.check.metric

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "gate": self.check.describe(),
            "margin_type": self.check.margin_type,
            "max_drop": self.check.max_drop,
            "passed": self.passed,
            "n": self.n,
            "baseline_mean": self.baseline_mean,
            "candidate_mean": self.candidate_mean,
            "difference": self.difference,
            "relative_difference": self.relative_difference,
            "change": self.change,
            "upper_bound": self.upper_bound,
            "bound_confidence": self.bound_confidence,
            "limit": self.limit,
            "standard_error": self.standard_error,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "test": self.test,
            "reason": self.reason,
        }


@dataclass(frozen=True, kw_only=True)
class GateReport(TableDisplay):
    """Every gate of one candidate against one baseline."""

    name: str
    candidate: dict[str, Any]
    baseline: dict[str, Any]
    fingerprint: str
    alpha: float
    test: GateTest
    multiplicity: Multiplicity
    n_resamples: int
    seed: int
    outcomes: tuple[GateOutcome, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per gate (``to_pandas()``, the notebook display under the gate chart)."""
        return [o.to_dict() for o in self.outcomes]

    @property
    def failed_metrics(self) -> list[str]:
        return [o.metric for o in self.outcomes if not o.passed]

    @property
    def exit_code(self) -> int:
        """0 when every gate holds, 1 when one fails (the CLI's exit code)."""
        return 0 if self.passed else 1

    @property
    def parameter_changes(self) -> str:
        """Which model parameters differ between the candidate run and the baseline."""
        return parameter_changes(
            self.candidate.get("params"),
            self.baseline.get("params"),
            candidate_model=self.candidate.get("model"),
            baseline_model=self.baseline.get("model"),
        )

    @property
    def decision(self) -> str:
        """A one-line description of how the verdicts were reached."""
        level = f"one-sided alpha {self.alpha:g}"
        test = TEST_NAMES[self.test]
        if self.test == "bootstrap":
            test += f", {self.n_resamples} resamples, seed {self.seed}"
        adjustment = (
            f"Holm adjustment over {len(self.outcomes)} gates"
            if self.multiplicity == "holm" and len(self.outcomes) > 1
            else "no multiplicity adjustment"
        )
        return (
            f"{test} at {level}, {adjustment}; a gate fails only when the data show a drop "
            "beyond its margin (adjusted p <= alpha: its upper confidence bound, at the "
            "level the test used, is below -margin)"
        )

    @property
    def bounds_note(self) -> str:
        """What the upper bounds are: one-sided, at the level each gate was tested at."""
        if self.multiplicity != "holm" or len(self.outcomes) < 2:
            return (
                f"Upper bounds are one-sided {_confidence(1 - self.alpha)} confidence bounds "
                "of the change."
            )
        each = ", ".join(f"{o.metric} {_confidence(o.bound_confidence)}" for o in self.outcomes)
        return (
            "Upper bounds are one-sided, at the confidence Holm's step-down used for each "
            f"gate ({each}), so each agrees with its verdict."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "failed": self.failed_metrics,
            "decision": self.decision,
            "bounds": self.bounds_note,
            "parameter_changes": self.parameter_changes,
            "alpha": self.alpha,
            "test": self.test,
            "multiplicity": self.multiplicity,
            "n_resamples": self.n_resamples if self.test == "bootstrap" else None,
            "seed": self.seed if self.test == "bootstrap" else None,
            "fingerprint": self.fingerprint,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "gates": [o.to_dict() for o in self.outcomes],
            "notes": list(self.notes),
        }

    # -- text formats CI systems display --------------------------------------------------

    def to_markdown(self) -> str:
        """A Markdown summary (GitHub step summary, PR comment): verdict, table, decision."""
        verdict = "passed" if self.passed else "FAILED: " + ", ".join(self.failed_metrics)
        cand = self.candidate
        base = self.baseline
        lines = [
            f"### abkit gate `{self.name}`: {verdict}",
            "",
            f"Candidate **{_md(cand.get('label', '?'))}** (run `{cand.get('run_id', '?')}`) "
            f"against baseline **{_md(base.get('label', '?'))}** "
            f"({_md(base.get('source', '?'))}), paired over "
            f"{self.outcomes[0].n if self.outcomes else 0:,} users; data fingerprint "
            f"`{self.fingerprint[:12]}`. {_md(self.parameter_changes)}.",
            "",
            "| gate | baseline | candidate | change | upper bound (confidence) | allowed | "
            "p (adj.) | result |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for o in self.outcomes:
            result = "pass" if o.passed else "**FAIL**"
            lines.append(
                f"| {_md(o.metric)} | {_num(o.baseline_mean)} | {_num(o.candidate_mean)} | "
                f"{_change(o.change, o.check.margin_type)} | "
                f"{_change(o.upper_bound, o.check.margin_type)} "
                f"({_confidence(o.bound_confidence)}) | "
                f"{_change(o.limit, o.check.margin_type)} | {_p(o.p_adjusted)} | {result} |"
            )
        lines += ["", f"Decided by: {self.decision}.", "", self.bounds_note]
        for note in self.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines) + "\n"

    def to_junit_xml(self) -> str:
        """JUnit XML: one ``testsuite``, one ``testcase`` per gate, ``failure`` when it fails.

        The layout every CI reader accepts (Jenkins/Surefire schema): ``testsuites`` >
        ``testsuite`` (name, tests, failures, errors, skipped, time) > ``properties`` and
        ``testcase`` (classname, name, time) > ``failure`` (message, type) or nothing.
        """
        failures = len(self.failed_metrics)
        suites = ET.Element(
            "testsuites",
            {"name": "abkit gate", "tests": str(len(self.outcomes)), "failures": str(failures)},
        )
        suite = ET.SubElement(
            suites,
            "testsuite",
            {
                "name": f"abkit gate {self.name}",
                "tests": str(len(self.outcomes)),
                "failures": str(failures),
                "errors": "0",
                "skipped": "0",
                "time": "0",
            },
        )
        props = ET.SubElement(suite, "properties")
        for key, value in (
            ("candidate_run", self.candidate.get("run_id", "")),
            ("baseline", self.baseline.get("source", "")),
            ("fingerprint", self.fingerprint),
            ("decision", self.decision),
        ):
            ET.SubElement(props, "property", {"name": key, "value": str(value)})
        for o in self.outcomes:
            case = ET.SubElement(
                suite,
                "testcase",
                {"classname": f"abkit.gate.{self.name}", "name": o.check.describe(), "time": "0"},
            )
            if not o.passed:
                failure = ET.SubElement(
                    case, "failure", {"message": o.reason, "type": "MetricRegression"}
                )
                failure.text = _details(o, self.alpha)
            else:
                out = ET.SubElement(case, "system-out")
                out.text = _details(o, self.alpha)
        ET.indent(suites)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _num(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.4g}"


def _change(value: float, margin_type: MarginType) -> str:
    if not math.isfinite(value):
        return "-" if math.isnan(value) else ("+inf" if value > 0 else "-inf")
    return f"{100 * value:+.2f}%" if margin_type == "relative" else f"{value:+.4g}"


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _confidence(value: float) -> str:
    """0.975 -> ``97.5%``; 1 - 0.05/3 -> ``98.33%``."""
    return f"{round(100 * value, 2):g}%"


def parameter_changes(
    candidate: Any, baseline: Any, *, candidate_model: Any = None, baseline_model: Any = None
) -> str:
    """``Model parameters changed: factors 16 -> 2`` (or ``... as in the baseline``)."""
    if candidate_model != baseline_model:
        return f"Model changed: {baseline_model} (baseline) -> {candidate_model}"
    cand, base = dict(candidate or {}), dict(baseline or {})
    changed = [
        f"{key} {base.get(key, '(unset)')} -> {cand.get(key, '(unset)')}"
        for key in sorted(set(cand) | set(base))
        if cand.get(key) != base.get(key)
    ]
    if not changed:
        return "Model parameters as in the baseline"
    return "Model parameters changed: " + ", ".join(changed)


def _details(o: GateOutcome, alpha: float) -> str:
    kind = o.check.margin_type
    se = _change(o.standard_error, kind).lstrip("+")
    return (
        f"{o.check.describe()}. baseline {o.baseline_mean:.6g}, candidate "
        f"{o.candidate_mean:.6g} over {o.n} paired users; change "
        f"{_change(o.change, kind)} (SE {se}), "
        f"one-sided {_confidence(o.bound_confidence)} upper bound "
        f"{_change(o.upper_bound, o.check.margin_type)} vs allowed "
        f"{_change(o.limit, o.check.margin_type)}; one-sided p {o.p_value:.3g} "
        f"(adjusted {o.p_adjusted:.3g}, fails when <= {alpha:g}); {o.test}"
    )


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, eq=False)
class _Prepared:
    """One gate's data and raw test, waiting for the level Holm assigns to its bound."""

    outcome: GateOutcome
    baseline: npt.NDArray[np.float64]
    candidate: npt.NDArray[np.float64]
    draws: npt.NDArray[np.float64] | None  # bootstrap: resampled changes


def _prepare_gate(
    check: GateCheck,
    baseline: npt.NDArray[np.float64],
    candidate: npt.NDArray[np.float64],
    *,
    alpha: float,
    test: GateTest,
    n_resamples: int,
    seed: int,
) -> _Prepared:
    """The raw one-sided p-value of H0 "no regression beyond the margin" (module docstring)."""
    import numpy as np

    n = int(baseline.size)
    m = check.max_drop
    mean_b, mean_c = float(baseline.mean()), float(candidate.mean())
    difference = mean_c - mean_b
    relative = mean_c / mean_b - 1 if mean_b != 0 else math.nan
    if check.margin_type == "relative":
        contrast = candidate - (1 - m) * baseline
        change = relative
        cov = np.cov(np.vstack([baseline, candidate]), ddof=1) / n
        delta = fieller_ratio(
            mean_b, mean_c, float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1]),
            critical=1.0, confidence=0.6827, method="delta",
        )  # fmt: skip
        se = (delta.ci_high - delta.ci_low) / 2
    else:
        contrast = candidate - baseline + m
        change = difference
        se = float((candidate - baseline).std(ddof=1)) / math.sqrt(n)
    draws = None
    test_name = TEST_NAMES[test]
    if test == "t":
        # H0: E[contrast] >= 0; reject when clearly below
        p = one_sample_t(contrast, confidence=1 - alpha, alternative="less").p_value
    else:
        means = resampled_means(np.column_stack([baseline, candidate]), n_resamples, seed)
        mb, mc = means[:, 0], means[:, 1]
        if check.margin_type == "relative":
            # θ* ≥ -m exactly when the resampled contrast mean is ≥ 0; a resample whose
            # baseline mean is not positive gets ±inf by the contrast's sign
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = mc / np.where(mb > 0, mb, 1.0) - 1
            sign = np.where(mc - (1 - m) * mb >= 0, math.inf, -math.inf)
            draws = np.where(mb > 0, ratio, sign)
        else:
            draws = mc - mb
        p, _ = bootstrap_one_sided(draws, threshold=-m, alpha=alpha)
        test_name += f", {n_resamples} resamples, seed {seed}"
    outcome = GateOutcome(
        check=check,
        n=n,
        baseline_mean=mean_b,
        candidate_mean=mean_c,
        difference=difference,
        relative_difference=relative,
        change=change,
        upper_bound=math.nan,
        bound_confidence=math.nan,
        limit=-m,
        standard_error=se,
        p_value=float(p),
        p_adjusted=float(p),
        passed=True,
        test=test_name,
        reason="",
    )
    return _Prepared(outcome=outcome, baseline=baseline, candidate=candidate, draws=draws)


def _upper_bound(prepared: _Prepared, *, alpha: float, multiplier: int) -> float:
    """The one-sided upper bound of the change at level ``alpha / multiplier``, the bound
    that agrees with the test's decision at that level."""
    import numpy as np

    o = prepared.outcome
    if prepared.draws is not None:
        _, upper = bootstrap_one_sided(
            prepared.draws, threshold=o.limit, alpha=alpha, multiplier=multiplier
        )
        return upper
    b, c = prepared.baseline, prepared.candidate
    n = o.n
    crit = float(t_ppf(1 - alpha / multiplier, n - 1))
    if o.check.margin_type == "relative":
        cov = np.cov(np.vstack([b, c]), ddof=1) / n
        ratio = fieller_ratio(
            o.baseline_mean, o.candidate_mean, float(cov[0, 0]), float(cov[1, 1]),
            float(cov[0, 1]), critical=crit, confidence=1 - 2 * alpha / multiplier,
        )  # fmt: skip
        return ratio.ci_high
    se_diff = float((c - b).std(ddof=1)) / math.sqrt(n)
    return o.difference + crit * se_diff


def _holm_multipliers(p_values: Sequence[float], passed: Sequence[bool]) -> list[int]:
    """Holm's step-down factor behind each gate's decision: ``m - j + 1`` for the gate of
    rank ``j`` (p-values ascending, ties in input order, as in
    :func:`abkit.stats.multiplicity.adjust`) up to the first non-rejection, ``m - r`` after
    it (``r`` rejections; Holm stops at the first non-rejection)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])  # stable, like argsort(kind="stable")
    rejected = sum(1 for ok in passed if not ok)
    out = [1] * m
    for rank, i in enumerate(order, start=1):
        out[i] = m - min(rank, rejected + 1) + 1
    return out


def evaluate_gates(
    *,
    baseline: Mapping[str, npt.ArrayLike],
    candidate: Mapping[str, npt.ArrayLike],
    checks: Sequence[GateCheck],
    alpha: float = 0.05,
    test: GateTest = "t",
    multiplicity: Multiplicity = "holm",
    n_resamples: int = 2000,
    seed: int = 0,
    name: str = "gate",
    candidate_info: Mapping[str, Any] | None = None,
    baseline_info: Mapping[str, Any] | None = None,
    fingerprint: str = "",
    notes: Sequence[str] = (),
) -> GateReport:
    """Evaluate every gate on paired per-user vectors (``baseline[metric][i]`` and
    ``candidate[metric][i]`` are the same user). See the module docstring for the hypothesis,
    the Holm adjustment (a gate fails when its adjusted p-value is ``≤ alpha``) and the level
    of each reported upper bound.

    Raises :class:`InputError` for an empty gate list, a metric missing from either side,
    vectors of different lengths, fewer than 2 users, or an unknown option.
    """
    import numpy as np

    if not checks:
        raise InputError("no gates to evaluate: declare at least one gate")
    if not 0 < alpha < 0.5:
        raise InputError(f"alpha must be between 0 and 0.5, got {alpha}")
    if test not in TEST_NAMES:
        raise InputError(f"test must be 't' or 'bootstrap', got {test!r}")
    if multiplicity not in ("holm", "none"):
        raise InputError(f"multiplicity must be 'holm' or 'none', got {multiplicity!r}")
    if test == "bootstrap" and n_resamples < 100:
        raise InputError(f"n_resamples must be at least 100, got {n_resamples}")
    prepared: list[_Prepared] = []
    for check in checks:
        for side, vectors in (("baseline", baseline), ("candidate", candidate)):
            if check.metric not in vectors:
                raise InputError(
                    f"gate on {check.metric}: the {side} has no such metric; "
                    + unknown_choice("metric", check.metric, vectors)
                )
        b, c = paired_values(baseline[check.metric], candidate[check.metric])
        prepared.append(
            _prepare_gate(
                check,
                np.asarray(b),
                np.asarray(c),
                alpha=alpha,
                test=test,
                n_resamples=n_resamples,
                seed=seed,
            )
        )
    p_values = [g.outcome.p_value for g in prepared]
    adjusted = [float(p) for p in adjust(p_values, "holm" if multiplicity == "holm" else "none")]
    passed = [not p_adj <= alpha for p_adj in adjusted]
    multipliers = (
        _holm_multipliers(p_values, passed) if multiplicity == "holm" else [1] * len(prepared)
    )
    final: list[GateOutcome] = []
    for g, p_adj, ok, k in zip(prepared, adjusted, passed, multipliers, strict=True):
        outcome = _replace(
            g.outcome,
            p_adjusted=p_adj,
            passed=ok,
            upper_bound=_upper_bound(g, alpha=alpha, multiplier=k),
            bound_confidence=1 - alpha / k,
        )
        final.append(_replace(outcome, reason=_reason(outcome, alpha)))
    return GateReport(
        name=name,
        candidate=dict(candidate_info or {}),
        baseline=dict(baseline_info or {}),
        fingerprint=fingerprint,
        alpha=alpha,
        test=test,
        multiplicity=multiplicity,
        n_resamples=n_resamples,
        seed=seed,
        outcomes=tuple(final),
        notes=tuple(notes),
    )


def _replace(outcome: GateOutcome, **changes: Any) -> GateOutcome:
    import dataclasses

    return dataclasses.replace(outcome, **changes)


def _reason(o: GateOutcome, alpha: float) -> str:
    """One line that states the verdict, the bound at the level used, and the p-value."""
    kind = o.check.margin_type
    change = _change(o.change, kind)
    limit = _change(o.limit, kind)
    bound = f"{_confidence(o.bound_confidence)} upper bound {_change(o.upper_bound, kind)}"
    if o.passed:
        return (
            f"{o.metric} changed by {change}; no significant drop beyond {limit} "
            f"({bound} is not below it; adjusted p {o.p_adjusted:.3g} > {alpha:g})"
        )
    drop = _change(-o.change, kind).lstrip("+")
    if o.upper_bound < o.limit:
        evidence = f"{bound} is below {limit}"
    elif o.upper_bound == o.limit:
        evidence = f"{bound} is at {limit}"
    else:  # Fieller's set is not an interval: the baseline mean is within noise of 0
        evidence = (
            "the relative change has no finite upper bound: the baseline mean is not clearly "
            "above 0"
        )
    return (
        f"{o.metric} dropped by {drop}, significantly more than the allowed {limit.lstrip('-')} "
        f"({evidence}; adjusted p {o.p_adjusted:.3g} <= {alpha:g})"
    )


# -- gating stored runs --------------------------------------------------------------------------


def default_checks(
    baseline: Baseline, *, max_drop: float, margin_type: MarginType
) -> list[GateCheck]:
    """One gate per gateable metric of the baseline (``--baseline`` without a spec)."""

    metrics = [m for m in baseline.metrics if m.split("@")[0] in GATE_METRICS]
    if not metrics:
        raise InputError(
            f"{baseline.source}: the baseline holds no metric a gate can guard "
            f"({', '.join(baseline.metrics)}); gateable: {', '.join(GATE_METRICS)}"
        )
    return [GateCheck(metric=m, max_drop=max_drop, margin_type=margin_type) for m in metrics]


def check_baseline_metrics(baseline: Baseline, checks: Sequence[GateCheck]) -> None:
    """Refuse a gate on a metric that the baseline does not hold (:class:`SpecError`)."""
    for check in checks:
        if check.metric not in baseline.metrics:
            raise SpecError(
                f"{baseline.source}: "
                + unknown_choice("baseline metric", check.metric, baseline.metrics)
                + "; save the baseline again with this metric"
            )


def check_fingerprint(
    baseline: Baseline, *, run_id: str, fingerprint: str, dataset: str, split: str
) -> None:
    """Refuse a candidate replayed on other data than the baseline (:class:`SpecError`)."""
    if fingerprint != baseline.fingerprint:
        raise SpecError(
            f"{baseline.source}: mismatched data fingerprint: the baseline was saved from "
            f"run {baseline.run.get('run_id')} on data {baseline.fingerprint[:12]} "
            f"(dataset {baseline.run.get('dataset')}, split {baseline.run.get('split')}), "
            f"run {run_id} was replayed on {fingerprint[:12]} (dataset "
            f"{dataset}, split {split}); replay on the baseline's data or save a new baseline"
        )


def _some(ids: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(ids[:limit])
    return f"e.g. {shown}" + (", ..." if len(ids) > limit else "")


def _baseline_ids(con: Any, baseline: Baseline, metric: str) -> np.ndarray | None:
    """The user ids of the baseline's source run, when the store still holds that run."""
    run_id = baseline.run.get("run_id")
    if not isinstance(run_id, str):
        return None
    user_ids, _ = user_values(con, run_id, metric)
    return user_ids if user_ids.size else None


def check_users(
    baseline: Baseline,
    *,
    run_id: str,
    metric: str,
    user_ids: npt.ArrayLike,
    baseline_ids: npt.ArrayLike | None = None,
) -> None:
    """Refuse a candidate that scored other users than the baseline (:class:`SpecError`).

    The baseline file keeps only a digest of its user ids (see
    :mod:`abkit.experiments.baseline`), so the message can always say how many users each
    side has; ``baseline_ids`` (the baseline's source run, when the store still holds it)
    lets it also say which ids differ: how many only in the run, how many only in the
    baseline, and the first few of each.
    """
    import numpy as np

    ids = np.sort(np.asarray(user_ids, dtype=str))
    if users_digest(ids.tolist()) == baseline.users_digest:
        return
    n, expected = int(ids.size), baseline.n_users
    theirs = None
    if baseline_ids is not None:
        theirs = np.sort(np.asarray(baseline_ids, dtype=str))
        if users_digest(theirs.tolist()) != baseline.users_digest:
            theirs = None  # not the baseline's users after all: say only what is certain
    if theirs is not None:
        only_run = np.setdiff1d(ids, theirs).tolist()
        only_base = np.setdiff1d(theirs, ids).tolist()
        detail = (
            f"{len(only_run):,} only in the run"
            + (f" ({_some(only_run)})" if only_run else "")
            + f", {len(only_base):,} only in the baseline"
            + (f" ({_some(only_base)})" if only_base else "")
        )
    elif n == expected:
        detail = "as many, but other user ids (the baseline file keeps only their digest)"
    else:
        detail = f"{n - expected:+,} users"
    raise SpecError(
        f"{baseline.source}: run {run_id} scored {n:,} users on {metric}, the baseline "
        f"{expected:,}: {detail}; they cannot be paired"
    )


def gate_run(
    db: str | Path | None,
    *,
    baseline: Baseline,
    run: str,
    checks: Sequence[GateCheck],
    alpha: float = 0.05,
    test: GateTest = "t",
    multiplicity: Multiplicity = "holm",
    n_resamples: int = 2000,
    seed: int = 0,
    name: str = "gate",
    notes: Sequence[str] = (),
) -> GateReport:
    """Gate the stored run ``run`` (id or unique name) against ``baseline``.

    Refuses (:class:`SpecError`, exit 2, never a failed gate) a run on other data than the
    baseline (a mismatched data fingerprint), one that scored other users, or a gate on a
    metric that the baseline or the run lacks.
    """

    with open_store(db) as store:
        record = fetch_run(store.con, run)
        if record.kind != "ranking":
            raise InputError(
                f"run {record.run_id} is an off-policy run; gates compare per-user ranking "
                "metrics of ranking runs"
            )
        check_fingerprint(
            baseline,
            run_id=record.run_id,
            fingerprint=record.fingerprint,
            dataset=record.dataset,
            split=record.split,
        )
        recorded = run_metric_names(store.con, record.run_id)
        candidate: dict[str, Any] = {}
        base_vectors: dict[str, Any] = {}
        check_baseline_metrics(baseline, checks)
        for check in checks:
            if check.metric not in recorded:
                raise InputError(
                    f"run {record.run_id}: " + unknown_choice("metric", check.metric, recorded)
                )
            user_ids, values = user_values(store.con, record.run_id, check.metric)
            check_users(
                baseline,
                run_id=record.run_id,
                metric=check.metric,
                user_ids=user_ids,
                baseline_ids=_baseline_ids(store.con, baseline, check.metric),
            )
            candidate[check.metric] = values
            base_vectors[check.metric] = baseline.metrics[check.metric].values
    return evaluate_gates(
        baseline=base_vectors,
        candidate=candidate,
        checks=checks,
        alpha=alpha,
        test=test,
        multiplicity=multiplicity,
        n_resamples=n_resamples,
        seed=seed,
        name=name,
        candidate_info={
            "run_id": record.run_id,
            "label": record.label,
            "model": record.model,
            "params": record.params,
            "dataset": record.dataset,
            "split": record.split,
        },
        baseline_info={
            "source": baseline.source,
            "label": baseline.label,
            "run_id": baseline.run.get("run_id"),
            "model": baseline.run.get("model"),
            "params": baseline.run.get("params"),
            "created_at": baseline.created_at,
        },
        fingerprint=record.fingerprint,
        notes=notes,
    )


def gate_spec(
    spec: ExperimentSpec,
    db: str | Path | None,
    *,
    run: str | None = None,
    progress: Any = None,
) -> GateReport:
    """``abkit gate SPEC``: replay the spec's candidate model (simulating the dataset when the
    store lacks it), or take the stored ``run``, and evaluate the ``[gate]`` checks against
    the spec's baseline file.

    A refusal (exit 2) stores nothing. Checked before the replay: the baseline file loads
    (structure and content digest), holds every gated metric, and matches a fingerprint the
    spec pins. Checked after the evaluation but before the run is stored (the
    ``before_store`` hook of :func:`abkit.replay.runner.replay`): the candidate's data
    fingerprint and its users against the baseline's. A store file that did not exist
    before the gate (``--db`` of a fresh CI job) is removed again when the gate is refused
    after creating it. The one thing a refusal can leave behind is a dataset the gate had to
    simulate into an EXISTING store that lacked it: it is the data the spec describes
    (``[data.simulate]``), which the next run of the spec reuses.
    """

    gate = spec.gate
    if gate is None:
        raise SpecError(
            f"{spec.path}: no [gate] table; declare candidate, baseline and [[gate.checks]]"
        )
    if not gate.baseline.exists():
        raise SpecError(
            f"{spec.path}: missing baseline: [gate] baseline {gate.baseline} does not exist; "
            f"create it with `abkit run {spec.path} --save-baseline`"
        )
    baseline = load_baseline(gate.baseline)
    check_baseline_metrics(baseline, gate.checks)
    pinned = spec.data.fingerprint
    if pinned is not None and not baseline.fingerprint.startswith(pinned):
        raise SpecError(
            f"{spec.path}: mismatched data fingerprint: [data] fingerprint is {pinned[:12]}, "
            f"but the baseline {baseline.source} was saved on data {baseline.fingerprint[:12]}; "
            "save a new baseline or correct the fingerprint"
        )
    notes: list[str] = []
    if run is None:

        def before_store(
            result: ReplayResult, user_ids: np.ndarray, per_user: Mapping[str, np.ndarray]
        ) -> None:
            check_fingerprint(
                baseline,
                run_id=result.run_id,
                fingerprint=result.fingerprint,
                dataset=result.dataset,
                split=result.split,
            )
            check_users(
                baseline,
                run_id=result.run_id,
                metric=gate.checks[0].metric,
                user_ids=user_ids,
                baseline_ids=_stored_baseline_ids(db, baseline, gate.checks[0].metric),
            )

        path = Path(db) if db is not None else default_db_path()
        new_store = not path.exists()
        simulated = ensure_dataset(spec, db)
        try:
            result = replay_model(spec, gate.candidate, db, progress=progress, check=before_store)
        except AbkitError:
            if new_store and simulated:
                _remove_store(path)  # the file this gate created: as if it never ran
            raise
        run = result.run_id
        notes += list(result.warnings)
    return gate_run(
        db,
        baseline=baseline,
        run=run,
        checks=gate.checks,
        alpha=gate.alpha,
        test=gate.test,
        multiplicity=gate.multiplicity,
        n_resamples=gate.n_resamples,
        seed=gate.seed,
        name=spec.name,
        notes=notes,
    )


def _stored_baseline_ids(db: str | Path | None, baseline: Baseline, metric: str) -> Any:
    """:func:`_baseline_ids` from the store at ``db`` (read-only), None when unavailable."""
    try:
        with open_store(db) as store:
            return _baseline_ids(store.con, baseline, metric)
    except AbkitError:
        return None


def _remove_store(path: Path) -> None:
    """Remove a store file (and its WAL) that this gate created before it was refused."""
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)
