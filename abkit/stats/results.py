"""Frozen result types of the A/B statistics. They hold numbers and words, never print.

Every type has ``to_dict()`` (JSON-ready: nested results become dicts, tuples lists);
:class:`ArmComparisonReport` also has ``to_pandas()``. The command line renders them with
``abkit.cli.render``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from abkit._util import TableDisplay

if TYPE_CHECKING:
    import pandas as pd

Verdict = Literal["supported", "refuted", "not decided"]
MetricKind = Literal["conversion", "mean", "ratio"]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_dict()  # type: ignore[attr-defined]
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class ClaimCheck(_ToDict):
    """The claim "treatment lifts the metric by at least ``claim``" tested on the ratio scale.

    ``p_value_above`` tests H0: lift <= claim against H1: lift > claim; ``p_value_below`` tests
    H0: lift >= claim against H1: lift < claim. Both are raw one-sided p-values; each is
    compared with ``level_each_side`` = alpha/2 (a side is decided when its p-value is
    ``<= alpha / 2``), so the verdict reads straight off the pair of bounds
    ``max_supported_lift`` / ``min_refuted_lift`` of the test that decided (``method``):
    *supported* when the lower bound exceeds the claim, *refuted* when the upper bound is below
    it, else *not decided*. With large counts that test is the score test and the bounds are
    the two-sided (1 - alpha) Koopman lift interval; with small counts under the claim's null
    an exact test decides and the bounds are its own dual bounds, which can be wider than the
    Koopman interval (then the verdict and the printed Koopman lift interval can disagree).
    ``max_supported_lift`` is the largest lift the data support by the test that decided.
    ``units_needed`` is the number of units per arm that would decide the question with 80%
    power if the true lift were the observed one (None when the observed lift equals the claim
    or is undefined).
    """

    claim: float
    lift: float
    p_value_above: float
    p_value_below: float
    verdict: Verdict
    max_supported_lift: float
    min_refuted_lift: float
    units_needed: int | None
    alpha: float
    level_each_side: float
    method: str


@dataclass(frozen=True, kw_only=True)
class SequentialResult(_ToDict):
    """Always-valid inference at the last look (see :mod:`abkit.stats.sequential`).

    The confidence sequences are the running intersections over the looks (so they agree with
    the running-minimum p-value); when an intersection is empty its bounds are NaN and
    ``notes`` says so. ``horizon`` is the planned units per arm the mixture was tuned for,
    fixed before the data; ``tau2_*`` are the mixture variances at the last look. ``claim`` is
    the claim judged from the lift's confidence sequence
    (:func:`abkit.stats.sequential.sequential_claim_check`).
    """

    method: str
    p_value: float
    p_adjusted: float
    diff_cs_lower: float
    diff_cs_upper: float
    lift_cs_lower: float
    lift_cs_upper: float
    tau2_diff: float
    tau2_log_lift: float
    horizon: int
    looks: int
    significant: bool
    notes: tuple[str, ...] = ()
    claim: ClaimCheck | None = None


@dataclass(frozen=True, kw_only=True)
class BayesResult(_ToDict):
    """Beta-Binomial posterior comparison. NOT a p-value (see :mod:`abkit.stats.bayes`)."""

    prob_treatment_better: float
    expected_loss_treatment: float
    expected_loss_control: float
    prior_alpha: float
    prior_beta: float
    method: str
    label: str = (
        "Bayesian posterior probability under a Beta prior; not a p-value, "
        "not a frequentist error rate"
    )


FIXED_SAMPLE_FIELDS = (
    "fixed_sample_diff_ci_lower",
    "fixed_sample_diff_ci_upper",
    "fixed_sample_lift_ci_lower",
    "fixed_sample_lift_ci_upper",
    "fixed_sample_diff_ci_method",
    "fixed_sample_lift_ci_method",
    "fixed_sample_p_value",
    "fixed_sample_p_adjusted",
    "fixed_sample_significant",
    "fixed_sample_method",
    "fixed_sample_claim",
)
"""The fields of :class:`Comparison` that keep the fixed-sample view under sequential
inference."""


@dataclass(frozen=True, kw_only=True)
class Comparison(_ToDict):
    """One treatment arm against the control on one metric.

    ``diff`` = treatment - control on the metric's scale; ``lift`` = treatment / control - 1.
    ``p_value`` tests "no difference" two-sided; ``p_adjusted`` is it after the multiple-testing
    correction over the report's family, and ``significant`` means ``p_adjusted <= alpha``.
    The ``*_method`` fields name the method behind each number. ``exact_p_value`` is an exact
    test's p-value shown *next to* ``p_value`` for small counts (``exact`` is then True); it
    never replaces it (see :mod:`abkit.stats.proportions`).

    With sequential inference (``sequential`` set) the headline is the always-valid one:
    ``p_value``, ``p_adjusted``, ``significant`` and ``method`` are the mSPRT's (as in
    ``sequential``), ``diff_ci`` and ``lift_ci`` are ``sequential``'s confidence sequences
    (their ``*_method`` says so) and ``claim`` is judged from the lift's confidence sequence;
    the fixed-sample values (p-value, verdicts and the intervals), valid only at one
    pre-planned look, stay in the ``fixed_sample_*`` fields (None, and left out of
    ``to_dict()``, without sequential inference).
    """

    metric: str
    control: str
    treatment: str
    control_value: float
    treatment_value: float
    diff: float
    diff_ci_lower: float
    diff_ci_upper: float
    lift: float
    lift_ci_lower: float
    lift_ci_upper: float
    p_value: float
    p_adjusted: float
    significant: bool
    alpha: float
    method: str
    diff_ci_method: str
    lift_ci_method: str
    exact: bool = False
    exact_p_value: float | None = None
    exact_method: str | None = None
    claim: ClaimCheck | None = None
    sequential: SequentialResult | None = None
    bayes: BayesResult | None = None
    variance_reduction: float | None = None
    design_effect: float | None = None
    notes: tuple[str, ...] = ()
    fixed_sample_diff_ci_lower: float | None = None
    fixed_sample_diff_ci_upper: float | None = None
    fixed_sample_lift_ci_lower: float | None = None
    fixed_sample_lift_ci_upper: float | None = None
    fixed_sample_diff_ci_method: str | None = None
    fixed_sample_lift_ci_method: str | None = None
    fixed_sample_p_value: float | None = None
    fixed_sample_p_adjusted: float | None = None
    fixed_sample_significant: bool | None = None
    fixed_sample_method: str | None = None
    fixed_sample_claim: ClaimCheck | None = None

    @property
    def diff_ci(self) -> tuple[float, float]:
        return (self.diff_ci_lower, self.diff_ci_upper)

    @property
    def lift_ci(self) -> tuple[float, float]:
        return (self.lift_ci_lower, self.lift_ci_upper)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.sequential is None:
            for key in FIXED_SAMPLE_FIELDS:
                del out[key]
        out["diff_ci"] = list(self.diff_ci)
        out["lift_ci"] = list(self.lift_ci)
        if self.sequential is not None:
            out["fixed_sample_diff_ci"] = [
                self.fixed_sample_diff_ci_lower,
                self.fixed_sample_diff_ci_upper,
            ]
            out["fixed_sample_lift_ci"] = [
                self.fixed_sample_lift_ci_lower,
                self.fixed_sample_lift_ci_upper,
            ]
        return out


@dataclass(frozen=True, kw_only=True)
class SRMResult(_ToDict):
    """Sample-ratio-mismatch check: chi-square goodness of fit of the units per arm.

    ``ok`` is True (fits), False (a mismatch: ``p_value <= alpha``) or None when the check did
    not run (``checked`` False: fewer than two arms; ``note`` says why), so that "not
    checked" is never read as a pass. ``split_assumed`` is True when no designed split was
    known and the units were checked against an equal split (``note`` says so).
    """

    arms: tuple[str, ...]
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    split: tuple[float, ...]
    chi2: float
    df: int
    p_value: float
    alpha: float
    ok: bool | None
    checked: bool
    note: str = ""
    split_assumed: bool = False


@dataclass(frozen=True, kw_only=True)
class ArmSummary(_ToDict):
    """One arm on one metric. ``rate`` is the conversion rate, mean per unit or ratio.

    ``conversions`` is set for conversion metrics; ``sum`` is the numerator total for every
    metric (clicks, revenue); ``denominator`` the ratio's denominator total (impressions).
    """

    name: str
    metric: str
    units: int
    conversions: int | None
    sum: float
    denominator: float | None
    rate: float
    sd: float


@dataclass(frozen=True, kw_only=True)
class LookComparison(_ToDict):
    """One comparison at one (daily) look: the naive and the always-valid view side by side."""

    metric: str
    treatment: str
    diff: float
    lift: float
    naive_p_value: float
    always_valid_p_value: float
    diff_cs_lower: float
    diff_cs_upper: float
    lift_cs_lower: float
    lift_cs_upper: float


@dataclass(frozen=True, kw_only=True)
class Look(_ToDict):
    """The cumulative data up to the end of day ``day`` (0-based from the experiment start)."""

    day: int
    day_start: datetime | None
    units: tuple[int, ...]
    rates: tuple[float, ...]
    comparisons: tuple[LookComparison, ...]


@dataclass(frozen=True, kw_only=True)
class ArmComparisonReport(_ToDict, TableDisplay):
    """Everything ``abkit compare`` found: arms, SRM, comparisons, the family, the defaults.

    ``warnings`` come first in any rendering (an SRM failure above all); ``defaults`` lists
    every choice that was not made explicitly, so a reader can reproduce the analysis.
    ``claim`` is the claim check of the single comparison, and None when there are several
    (each comparison carries its own ``claim``).
    """

    dataset: str
    experiment: str | None
    unit: str
    metrics: tuple[str, ...]
    event: str | None
    control: str
    arms: tuple[ArmSummary, ...]
    srm: SRMResult
    comparisons: tuple[Comparison, ...]
    alpha: float
    correction: str
    family: tuple[str, ...]
    claim: ClaimCheck | None
    looks: tuple[Look, ...] = ()
    window_start: datetime | None = None
    window_end: datetime | None = None
    warnings: tuple[str, ...] = ()
    defaults: tuple[str, ...] = ()
    excluded_units: int = 0

    @property
    def srm_failed(self) -> bool:
        """True when the SRM check ran and rejected the designed split (``--strict`` exits 1)."""
        return self.srm.ok is False

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["srm_failed"] = self.srm_failed
        return out

    def table_rows(self) -> list[dict[str, Any]]:
        """The comparisons as a table (one row per treatment x metric; ``to_pandas()``, and
        the notebook display under the forest plot of the lifts)."""
        rows = []
        for c in self.comparisons:
            row = {k: v for k, v in c.to_dict().items() if not isinstance(v, dict | list)}
            row["lift_ci_lower"], row["lift_ci_upper"] = c.lift_ci_lower, c.lift_ci_upper
            if c.claim is not None:
                row["claim"], row["claim_verdict"] = c.claim.claim, c.claim.verdict
            rows.append(row)
        return rows

    def arms_to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([a.to_dict() for a in self.arms])


__all__ = [
    "ArmComparisonReport",
    "ArmSummary",
    "BayesResult",
    "ClaimCheck",
    "Comparison",
    "Look",
    "LookComparison",
    "PowerResult",
    "SRMResult",
    "SequentialResult",
]


@dataclass(frozen=True, kw_only=True)
class PowerResult(_ToDict, TableDisplay):
    """A power / sample-size calculation; ``solved_for`` names the unknown that was computed.

    ``n_per_arm`` is rounded up; ``n_per_arm_exact`` is the unrounded solution (published
    tables often round it to the nearest unit instead). ``alpha_per_comparison`` is ``alpha``
    split by Bonferroni over the ``comparisons = arms - 1`` treatment-vs-control tests, except
    for a claim (``claim`` set), which is checked per comparison at the unadjusted ``alpha``
    (one-sided at alpha/2), as ``abkit compare --claim`` does.
    """

    metric: str
    solved_for: Literal["n", "mde", "power"]
    baseline: float
    target: float
    mde_absolute: float
    mde_relative: float
    n_per_arm: int
    n_per_arm_exact: float
    total_units: int
    arms: int
    comparisons: int
    power: float
    alpha: float
    alpha_per_comparison: float
    sides: int
    method: str
    method_description: str
    sd: float | None = None
    claim: float | None = None
    n_by_method: tuple[tuple[str, float], ...] = ()
    notes: tuple[str, ...] = ()

    def table_rows(self) -> list[dict[str, Any]]:
        """One row: the solved design (``to_pandas()``, the notebook display)."""
        return [{k: v for k, v in self.to_dict().items() if not isinstance(v, dict | list)}]
