"""What ``abkit report`` shows, gathered as result objects (:func:`build_report`).

Every section holds the frozen result a command's ``--json`` prints, computed by the same
library call: the arm comparison is :func:`abkit.compare.arms.compare_arms` (``abkit compare
--claim C``), the days are the same call with ``looks="daily"`` (``abkit compare --looks
daily``), the power curve is :func:`abkit.stats.power.power` at a row of lifts (``abkit power
--mde L --baseline P``), the models are :func:`abkit.compare.runs.compare_runs` (``abkit compare
RUN...``) and the stored runs (``abkit runs --json``), the gates
:func:`abkit.experiments.gate.gate_spec` (``abkit gate SPEC``). The charts and tables of
:mod:`abkit.report.document` draw these objects; nothing there is computed again.

The only numbers not printed by another command are each arm's own rate interval (Wilson for
a conversion rate, Student's t for a mean per unit; :class:`ArmRate`) and the per-user values
and importance weights stored with each run, which the distributions draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from abkit.compare.arms import compare_arms
from abkit.compare.runs import RunComparison, compare_runs
from abkit.data.runs_sql import RunRecord
from abkit.errors import AbkitError, InputError, param
from abkit.experiments.gate import GateReport, gate_spec
from abkit.experiments.spec import load_spec
from abkit.replay.runs import get_run, run_rounds, run_user_values
from abkit.stats.dist import t_ppf
from abkit.stats.power import power
from abkit.stats.proportions import wilson_interval
from abkit.stats.results import ArmComparisonReport, PowerResult

__all__ = [
    "ArmRate",
    "PowerCurve",
    "Report",
    "RunWeights",
    "UserValues",
    "arm_rates",
    "build_report",
    "power_curve",
]

#: relative lifts the power curve is drawn at
POWER_LIFTS = (0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)
#: the power every point of the curve is solved for
TARGET_POWER = 0.8


@dataclass(frozen=True, kw_only=True)
class ArmRate:
    """One arm's own rate with its interval: Wilson for a conversion rate, Student's t
    (``mean +- t * sd / sqrt(n)``) for a mean per unit, none for a ratio metric."""

    arm: str
    metric: str
    units: int
    rate: float
    ci_low: float | None
    ci_high: float | None
    method: str | None
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True, kw_only=True)
class PowerCurve:
    """Units per arm needed to detect each lift of :data:`POWER_LIFTS` with 80% power (each
    point is :func:`abkit.stats.power.power`'s result), beside this experiment's units."""

    metric: str
    baseline: float
    points: tuple[PowerResult, ...]
    units_per_arm: int  # the smallest arm of this experiment
    detectable: PowerResult  # the smallest lift this experiment detects with 80% power
    observed_lift: float
    claim: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "baseline": self.baseline,
            "units_per_arm": self.units_per_arm,
            "observed_lift": self.observed_lift,
            "claim": self.claim,
            "detectable": self.detectable.to_dict(),
            "points": [p.to_dict() for p in self.points],
        }


@dataclass(frozen=True, kw_only=True)
class UserValues:
    """A run's stored per-user values of one metric."""

    run: RunRecord
    metric: str
    values: np.ndarray = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class RunWeights:
    """An off-policy run's stored importance weights, one per logged round."""

    run: RunRecord
    weights: np.ndarray = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class Report:
    """Everything one report shows; ``None`` / empty where a section does not apply (no arms,
    no timestamps, no runs, no spec), with the reason in ``skipped``."""

    db: str
    arms: ArmComparisonReport | None = None
    rates: tuple[ArmRate, ...] = ()
    daily: ArmComparisonReport | None = None
    power: PowerCurve | None = None
    runs: tuple[RunRecord, ...] = ()
    run_comparison: RunComparison | None = None
    user_values: tuple[UserValues, ...] = ()
    weights: tuple[RunWeights, ...] = ()
    gates: tuple[GateReport, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (section, why)

    @property
    def dataset(self) -> str | None:
        if self.arms is not None:
            return self.arms.dataset
        return self.runs[0].dataset if self.runs else None

    def to_dict(self) -> dict[str, Any]:
        """The result objects' own JSON, section by section (as their commands print it)."""
        return {
            "db": self.db,
            "dataset": self.dataset,
            "arms": None if self.arms is None else self.arms.to_dict(),
            "rates": [r.to_dict() for r in self.rates],
            "daily": None if self.daily is None else self.daily.to_dict(),
            "power": None if self.power is None else self.power.to_dict(),
            "runs": [r.to_dict() for r in self.runs],
            "run_comparison": (
                None if self.run_comparison is None else self.run_comparison.to_dict()
            ),
            "gates": [g.to_dict() for g in self.gates],
            "skipped": [{"section": s, "why": why} for s, why in self.skipped],
        }


def arm_rates(report: ArmComparisonReport) -> tuple[ArmRate, ...]:
    """Each arm's rate with its own interval at the report's confidence ``1 - alpha``."""
    out = []
    for a in report.arms:
        low: float | None = None
        high: float | None = None
        method: str | None = None
        if a.metric == "conversion" and a.conversions is not None and a.units > 0:
            lo, hi = wilson_interval(a.conversions, a.units, report.alpha)
            low, high, method = float(lo), float(hi), "Wilson"
        elif a.metric == "mean" and a.units > 1:
            half = float(t_ppf(1 - report.alpha / 2, a.units - 1)) * a.sd / math.sqrt(a.units)
            low, high, method = a.rate - half, a.rate + half, "Student t"
        out.append(
            ArmRate(
                arm=a.name,
                metric=a.metric,
                units=a.units,
                rate=a.rate,
                ci_low=low,
                ci_high=high,
                method=method,
                confidence=1 - report.alpha,
            )
        )
    return tuple(out)


def power_curve(report: ArmComparisonReport, *, claim: float | None = None) -> PowerCurve | None:
    """Units per arm to detect each lift of :data:`POWER_LIFTS` on the report's first
    conversion (or mean) metric, at the control's observed rate; None for a ratio metric or
    a control rate of 0 or 1."""
    metric = report.metrics[0]
    if metric not in ("conversion", "mean"):
        return None
    arms = [a for a in report.arms if a.metric == metric]
    control = next((a for a in arms if a.name == report.control), None)
    if control is None or not (0 < control.rate < 1 or metric == "mean") or control.rate == 0:
        return None
    sd = control.sd if metric == "mean" else None
    common: dict[str, Any] = {
        "baseline": control.rate,
        "metric": metric,
        "alpha": report.alpha,
        "arms": len(arms),
        "target_power": TARGET_POWER,
        "sd": sd,
    }
    points = tuple(power(mde=lift, **common) for lift in POWER_LIFTS)
    units = min(a.units for a in arms)
    detectable = power(n_per_arm=max(2, units), **common)
    first = next(c for c in report.comparisons if c.metric == metric)
    return PowerCurve(
        metric=metric,
        baseline=control.rate,
        points=points,
        units_per_arm=units,
        detectable=detectable,
        observed_lift=first.lift,
        claim=claim,
    )


def build_report(
    db: str | Path,
    *,
    dataset: str | None = None,
    experiment: str | None = None,
    runs: Sequence[str] = (),
    claim: float | None = None,
    spec: str | Path | None = None,
    gates: Sequence[GateReport] = (),
    alpha: float = 0.05,
    progress: Any = None,
) -> Report:
    """Gather every section of the report on ``dataset`` (its experiment's arms, when it has
    one) and the replay ``runs`` (ids or names; the first is the reference). ``spec`` (an
    experiment spec with a ``[gate]`` table) runs its gate as ``abkit gate SPEC`` would (it
    replays the candidate); ``gates`` adds gate reports already computed (the demo's).

    A section that does not apply is skipped with the reason (``Report.skipped``): a dataset
    without an experiment has no arms, one without timestamps no days. Errors in what the
    user asked for (an unknown run, a bad spec) are raised as they are by the commands.
    """
    skipped: list[tuple[str, str]] = []
    arms = daily = None
    rates: tuple[ArmRate, ...] = ()
    curve = None
    all_gates = list(gates)
    if spec is not None:
        # first: the gate simulates the spec's dataset when the store lacks it
        parsed = load_spec(spec)
        if parsed.gate is None:
            raise InputError(f"{param('spec')} {spec}: has no [gate] table")
        all_gates.append(gate_spec(parsed, db, progress=progress))
        if dataset is None:
            dataset = parsed.data.dataset
    records = tuple(get_run(db, r) for r in runs)
    try:
        arms = compare_arms(
            db,
            dataset=dataset if dataset is not None or not records else records[0].dataset,
            experiment=experiment,
            claim=claim,
            alpha=alpha,
        )
    except AbkitError as exc:
        explicit = experiment is not None or (dataset is not None and spec is None)
        if explicit or not (records or all_gates):
            raise
        skipped.append(("experiment", str(exc)))
    if arms is not None:
        rates = arm_rates(arms)
        try:
            daily = compare_arms(
                db,
                dataset=arms.dataset,
                experiment=arms.experiment,
                claim=claim,
                alpha=alpha,
                looks="daily",
            )
        except AbkitError as exc:
            skipped.append(("over time", str(exc)))
        curve = power_curve(arms, claim=claim)
        if curve is None:
            skipped.append(("power", f"no power curve for the {arms.metrics[0]} metric"))
    comparison = None
    if len(records) > 1:
        comparison = compare_runs(db, [r.run_id for r in records], confidence=1 - alpha)
    elif len(records) == 1:
        skipped.append(("replayed models", "one run: nothing to compare it with"))
    values = []
    weights = []
    main = _main_metric(comparison)
    for record in records:
        if record.kind == "offpolicy":
            weights.append(RunWeights(run=record, weights=run_rounds(db, record.run_id)["weight"]))
        elif main is not None:
            values.append(
                UserValues(
                    run=record, metric=main, values=run_user_values(db, record.run_id, main)[1]
                )
            )
    if arms is None and not records and not all_gates:
        raise InputError(f"nothing to report: no experiment in the dataset and no {param('runs')}")
    return Report(
        db=str(db),
        arms=arms,
        rates=rates,
        daily=daily,
        power=curve,
        runs=records,
        run_comparison=comparison,
        user_values=tuple(values),
        weights=tuple(weights),
        gates=tuple(all_gates),
        skipped=tuple(skipped),
    )


def _main_metric(comparison: RunComparison | None) -> str | None:
    """The first metric the run comparison shows (ndcg@K when it has one)."""
    if comparison is None or comparison.kind != "ranking" or not comparison.metrics:
        return None
    return next((m for m in comparison.metrics if m.startswith("ndcg")), comparison.metrics[0])
