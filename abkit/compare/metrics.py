"""The A/B metrics as objects: one class per metric, declaring everything ``compare`` needs.

A metric says which per-unit outcome it aggregates (its name keys the SQL fragment in
:data:`abkit.data.aggregate.UNIT_OUTCOMES`; all SQL stays in :mod:`abkit.data`), what it means
in words, which checks its aggregates must pass, how an arm is summarised, and which inference
compares two arms (always on the per-arm sufficient statistics of
:class:`~abkit.stats.sufficient.ArmAggregates`, never on rows).
:func:`abkit.compare.arms.compare_arms` only loops over metrics; it has no branch on a metric's
name.

Adding a metric is one subclass here (registered with :func:`register`) plus its per-unit SQL
fragment in :data:`abkit.data.aggregate.UNIT_OUTCOMES`; ``--metric NAME`` then accepts it
(``--metric ratio --ratio NAME`` for a ratio). ``tests/compare/test_metrics.py`` checks that
every registered metric has a fragment, and adds one as an example.

Metrics (``kind`` is the family the sequential and CUPED code know):

========================  =========  ====================================================
name                      kind       inference
========================  =========  ====================================================
conversion                conversion pooled z / Newcombe / Koopman (:mod:`abkit.stats.proportions`)
mean                      mean       Welch, Fieller lift (:mod:`abkit.stats.means`)
clicks_per_impression     ratio      delta method over units (:mod:`abkit.stats.ratio`)
revenue_per_order         ratio      delta method over units
orders_per_session        ratio      delta method over units
========================  =========  ====================================================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

from abkit._util import unknown_choice
from abkit.data.aggregate import AggregateResult, MetricKind, MetricSpec
from abkit.errors import InputError, param
from abkit.stats.bayes import beta_binomial_comparison
from abkit.stats.cuped import compare_cuped
from abkit.stats.means import compare_means
from abkit.stats.proportions import ExactMode, compare_proportions
from abkit.stats.ratio import compare_ratios, ratio_estimate
from abkit.stats.results import ArmSummary, Comparison
from abkit.stats.sufficient import ArmAggregates

__all__ = [
    "KINDS",
    "METRICS",
    "RATIOS",
    "ClicksPerImpression",
    "Conversion",
    "Mean",
    "Metric",
    "OrdersPerSession",
    "RatioMetric",
    "RevenuePerOrder",
    "make_metric",
    "metric_choices",
    "ratio_choices",
    "register",
    "registered_metrics",
]


@dataclass(frozen=True, kw_only=True)
class Metric:
    """An A/B metric of ``event`` events (the event type that counts)."""

    name: ClassVar[str]
    kind: ClassVar[MetricKind]
    # what the metric means, for the report's definitions ({unit}, {event} are filled in)
    definition: ClassVar[str]
    # the same for impression-level datasets (each impression its own unit); None: not defined
    impression_definition: ClassVar[str | None] = None
    # the inference in one line, for the report's definitions
    method: ClassVar[str]
    # the test of two arms: (control, treatment, *, alpha, claim, metric) -> Comparison
    inference: ClassVar[Callable[..., Comparison]]
    # needs the events' `value` column (revenue)
    needs_values: ClassVar[bool] = False
    supports_cuped: ClassVar[bool] = False

    event: str

    @property
    def spec(self) -> MetricSpec:
        """What :mod:`abkit.data.aggregate` needs to compute the per-arm sums."""
        return MetricSpec(
            kind=self.kind,
            event=self.event,
            ratio=self.name if self.kind == "ratio" else None,
            label=self.name,
        )

    def describe(self, unit: str) -> str:
        """The definition in words, for the report."""
        text = self.impression_definition if unit == "impression" else self.definition
        return (text or self.name).format(unit=unit, event=self.event)

    def check(
        self, result: AggregateResult, *, dataset: str, unit: str, cuped: bool, warnings: list[str]
    ) -> None:
        """Refuse aggregates the metric cannot be computed from; warn about degenerate ones."""
        if self.needs_values and result.value_rows == 0:
            raise InputError(
                f"{param('metrics')} {self.kind}: no '{self.event}' event of dataset "
                f"'{dataset}' has a "
                f"value in the experiment window; choose another {param('event')}"
            )
        if cuped and result.covariate_rows == 0:
            raise InputError(
                f"{param('cuped')}: no unit of dataset '{dataset}' has '{self.event}' events "
                "before the "
                "experiment's start, so there is no pre-period covariate"
            )
        if sum(a.y_sum for a in result.arms) == 0:
            warnings.append(
                f"{self.name}: no unit has a non-zero outcome ('{self.event}' events) in the "
                "experiment window"
            )

    def rate(self, arm: ArmAggregates) -> float:
        """The arm's level of the metric (a rate, a mean or a ratio of sums)."""
        return arm.mean

    def sd(self, arm: ArmAggregates) -> float:
        """Per-unit standard deviation of the outcome (nan with fewer than two units)."""
        return math.sqrt(arm.variance) if arm.units > 1 else math.nan

    def summary(self, arm: ArmAggregates) -> ArmSummary:
        return ArmSummary(
            name=arm.name,
            metric=self.name,
            units=arm.units,
            conversions=None,
            sum=arm.y_sum,
            denominator=arm.d_sum,
            rate=self.rate(arm),
            sd=self.sd(arm),
        )

    def compare(
        self,
        control: ArmAggregates,
        treatment: ArmAggregates,
        *,
        alpha: float,
        claim: float | None,
        exact: ExactMode = "auto",
        cuped: bool = False,
        bayes: bool = False,
    ) -> Comparison:
        """Treatment vs control on this metric (CUPED-adjusted when ``cuped``)."""
        if cuped:
            return compare_cuped(control, treatment, alpha=alpha, claim=claim, metric=self.name)
        return self._compare(control, treatment, alpha=alpha, claim=claim, exact=exact)

    def _compare(
        self,
        control: ArmAggregates,
        treatment: ArmAggregates,
        *,
        alpha: float,
        claim: float | None,
        exact: ExactMode,
    ) -> Comparison:
        return self.inference(control, treatment, alpha=alpha, claim=claim, metric=self.name)


@dataclass(frozen=True, kw_only=True)
class Conversion(Metric):
    """Share of units with at least one ``event`` event in the window (0/1 outcome)."""

    name: ClassVar[str] = "conversion"
    kind: ClassVar[MetricKind] = "conversion"
    definition: ClassVar[str] = (
        "share of {unit}s with at least one '{event}' event in the experiment window"
    )
    impression_definition: ClassVar[str | None] = (
        "share of impressions with a {event} (each impression is its own unit)"
    )
    method: ClassVar[str] = (
        "conversion: p-value pooled two-proportion z-test, the score test whose dual is the "
        "Koopman lift CI (so the p-value, the lift CI and, at large counts, the claim agree); "
        "with an expected cell below 5 Fisher's exact p-value is shown next to it, and a "
        "warning says when the two disagree; a claim with an expected count under its null "
        "below 10 x the arms' size ratio is decided by an exact test of the rate ratio; "
        "difference CI Newcombe hybrid score, which is not "
        "exactly dual to the z-test (in borderline cases it can disagree with the p-value)"
    )
    supports_cuped: ClassVar[bool] = True

    def check(
        self, result: AggregateResult, *, dataset: str, unit: str, cuped: bool, warnings: list[str]
    ) -> None:
        if unit == "impression" and result.value_rows == 0:
            outcome = "conversion" if self.event == "purchase" else self.event
            raise InputError(
                f"{param('event')} {self.event}: the impressions of dataset '{dataset}' record no "
                f"{outcome} outcome; use {param('event')} click"
            )
        super().check(result, dataset=dataset, unit=unit, cuped=cuped, warnings=warnings)

    def summary(self, arm: ArmAggregates) -> ArmSummary:
        return dataclasses.replace(super().summary(arm), conversions=int(arm.y_sum))

    def compare(
        self,
        control: ArmAggregates,
        treatment: ArmAggregates,
        *,
        alpha: float,
        claim: float | None,
        exact: ExactMode = "auto",
        cuped: bool = False,
        bayes: bool = False,
    ) -> Comparison:
        comparison = super().compare(
            control, treatment, alpha=alpha, claim=claim, exact=exact, cuped=cuped
        )
        if not bayes:
            return comparison
        result = beta_binomial_comparison(
            int(control.y_sum), control.units, int(treatment.y_sum), treatment.units
        )
        return dataclasses.replace(comparison, bayes=result)

    def _compare(
        self,
        control: ArmAggregates,
        treatment: ArmAggregates,
        *,
        alpha: float,
        claim: float | None,
        exact: ExactMode,
    ) -> Comparison:
        return compare_proportions(
            control, treatment, alpha=alpha, claim=claim, exact=exact, metric=self.name
        )


@dataclass(frozen=True, kw_only=True)
class Mean(Metric):
    """Mean per unit of the summed ``value`` of its ``event`` events (e.g. revenue per user)."""

    name: ClassVar[str] = "mean"
    kind: ClassVar[MetricKind] = "mean"
    definition: ClassVar[str] = (
        "mean per {unit} of the summed value of its '{event}' events (e.g. revenue per user)"
    )
    impression_definition: ClassVar[str | None] = (
        "mean value per impression (each impression is its own unit)"
    )
    method: ClassVar[str] = "mean: Welch t-test and interval; lift CI Fieller"
    inference = staticmethod(compare_means)
    needs_values: ClassVar[bool] = True
    supports_cuped: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class RatioMetric(Metric):
    """A ratio of per-unit sums, ``sum y / sum d``, with the delta method over units."""

    kind: ClassVar[MetricKind] = "ratio"
    method: ClassVar[str] = (
        "ratio: delta method over randomisation units (never per impression); lift CI Fieller"
    )
    inference = staticmethod(compare_ratios)
    # the denominator in words, for "dataset X has no ... of assigned users"
    denominator: ClassVar[str]

    def check(
        self, result: AggregateResult, *, dataset: str, unit: str, cuped: bool, warnings: list[str]
    ) -> None:
        super().check(result, dataset=dataset, unit=unit, cuped=cuped, warnings=warnings)
        if not any(a.d_sum for a in result.arms):
            raise InputError(
                f"{param('ratio')} {self.name}: dataset '{dataset}' has no "
                f"{self.denominator.format(event=self.event)} of assigned users in the "
                "experiment window"
            )

    def rate(self, arm: ArmAggregates) -> float:
        return arm.y_sum / arm.d_sum if arm.d_sum else math.nan

    def sd(self, arm: ArmAggregates) -> float:
        if not arm.d_sum or arm.units <= 1:
            return math.nan
        return math.sqrt(ratio_estimate(arm)[1] * arm.units)


@dataclass(frozen=True, kw_only=True)
class ClicksPerImpression(RatioMetric):
    """Clicks per carousel impression (impressions table), per user."""

    name: ClassVar[str] = "clicks_per_impression"
    definition: ClassVar[str] = "clicks per impression (impressions table), delta method over users"
    denominator: ClassVar[str] = "impressions"


@dataclass(frozen=True, kw_only=True)
class RevenuePerOrder(RatioMetric):
    """Value per ``event`` event (revenue per order), per user."""

    name: ClassVar[str] = "revenue_per_order"
    definition: ClassVar[str] = (
        "value per '{event}' event (e.g. revenue per order), delta method over users"
    )
    needs_values: ClassVar[bool] = True
    denominator: ClassVar[str] = "'{event}' events"


@dataclass(frozen=True, kw_only=True)
class OrdersPerSession(RatioMetric):
    """``event`` events per session, per user."""

    name: ClassVar[str] = "orders_per_session"
    definition: ClassVar[str] = "'{event}' events per session, delta method over users"
    denominator: ClassVar[str] = "sessions"


# name -> class; the kinds "conversion" and "mean" are metrics of their own, "ratio" picks one
# of the ratio metrics by name
_REGISTRY: dict[str, type[Metric]] = {}


def register(*classes: type[Metric]) -> None:
    """Make metric classes available to ``compare`` by their ``name``."""
    for cls in classes:
        _REGISTRY[cls.name] = cls


register(Conversion, Mean, ClicksPerImpression, RevenuePerOrder, OrdersPerSession)

KINDS: tuple[MetricKind, ...] = ("conversion", "mean", "ratio")
MetricName = Literal["conversion", "mean", "ratio"]


def metric_choices() -> tuple[str, ...]:
    """What ``--metric`` accepts: the kinds, then any other registered non-ratio metric (a
    ratio metric is chosen with ``--metric ratio --ratio NAME``)."""
    extra = [n for n, c in _REGISTRY.items() if n not in KINDS and c.kind != "ratio"]
    return (*KINDS, *extra)


def ratio_choices() -> tuple[str, ...]:
    """What ``--ratio`` accepts."""
    return tuple(n for n, c in _REGISTRY.items() if c.kind == "ratio")


METRICS: tuple[str, ...] = metric_choices()
RATIOS: tuple[str, ...] = ratio_choices()


def make_metric(name: str, *, event: str, ratio: str | None = None) -> Metric:
    """The metric object for ``--metric name`` (and ``--ratio ratio`` when name is ratio)."""
    if name not in metric_choices():
        raise InputError(f"{param('metrics')}: " + unknown_choice("metric", name, metric_choices()))
    if name != "ratio":
        return _REGISTRY[name](event=event)
    if ratio not in ratio_choices():
        raise InputError(
            f"{param('ratio')}: " + unknown_choice("ratio metric", str(ratio), ratio_choices())
        )
    return _REGISTRY[ratio](event=event)


def registered_metrics() -> dict[str, type[Metric]]:
    """Every metric class by name (for tests and documentation)."""
    return dict(_REGISTRY)
