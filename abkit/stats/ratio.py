"""Ratio metrics (clicks per impression, revenue per order, orders per session): delta method.

Why a special method: users are randomised, but the metric is counted per impression (order,
session). The impressions of one user are not independent -- a user who likes the carousel
clicks on many of them -- so the independent replicates are the users. Per user ``i`` let
``Y_i`` be the numerator (clicks) and ``D_i`` the denominator (impressions); the arm's metric
is ``R = sum Y / sum D = Ybar / Dbar``. The delta method (Deng, Knoblich & Lu 2018, "Applying
the Delta Method in Metric Analytics", KDD) gives

    Var(R) ~= (s_YY - 2 R s_YD + R^2 s_DD) / (n Dbar^2)

with the sample (co)variances of the per-user sums and ``n`` users. The naive variance
``s_row^2 / sum D`` treats the ``sum D`` impressions as independent draws; it is too small by
the design effect ``1 + (m - 1) rho`` (Kish 1965) when users have ``m`` impressions with
intra-user correlation ``rho``, and a test built on it rejects a true null far more often than
alpha. abkit never uses it for inference; it reports the ratio of the two variances
(``design_effect``) so the size of that mistake is visible.

The two arms' ratios are independent and approximately normal: the difference gets a z-test
and interval, the lift Fieller's interval (see :mod:`abkit.stats.means`).
"""

from __future__ import annotations

import math

from abkit.errors import InputError
from abkit.stats.means import compare_estimates
from abkit.stats.results import Comparison
from abkit.stats.sufficient import ArmAggregates


def ratio_estimate(arm: ArmAggregates) -> tuple[float, float]:
    """``(R, Var(R))`` for one arm by the delta method (formula in the module docstring)."""
    if arm.d_sum is None:
        raise InputError(f"arm '{arm.name}': a ratio metric needs the denominator sums")
    if arm.units < 2:
        raise InputError(
            f"arm '{arm.name}' has {arm.units} unit(s); a ratio metric needs at least 2"
        )
    if arm.d_sum <= 0:
        raise InputError(
            f"arm '{arm.name}': the ratio's denominator is 0 for every unit (nothing to divide by)"
        )
    n = arm.units
    d_mean = arm.d_sum / n
    ratio = arm.y_sum / arm.d_sum
    s_yy, s_yd, s_dd = arm.covariance_matrix("d")
    var = (s_yy - 2 * ratio * s_yd + ratio**2 * s_dd) / (n * d_mean**2)
    return ratio, max(var, 0.0)


def naive_ratio_variance(arm: ArmAggregates) -> float:
    """The WRONG variance that treats every analysis row (impression) as independent.

    ``s_row^2 / N`` with ``N = sum D`` rows and ``s_row^2`` their sample variance, from
    ``row_y_sum_sq`` (for 0/1 clicks this is ``R (1 - R) / N`` up to ``N / (N - 1)``).
    """
    if arm.d_sum is None or arm.row_y_sum_sq is None:
        raise InputError(f"arm '{arm.name}': the naive variance needs the per-row sums")
    rows = arm.d_sum
    if rows < 2:
        return math.nan
    ratio = arm.y_sum / rows
    row_var = max((arm.row_y_sum_sq - rows * ratio**2) / (rows - 1), 0.0)
    return row_var / rows


def compare_ratios(
    control: ArmAggregates,
    treatment: ArmAggregates,
    *,
    alpha: float = 0.05,
    claim: float | None = None,
    metric: str = "ratio",
) -> Comparison:
    """z-test and interval for the difference of two delta-method ratios; Fieller for the lift.

    ``design_effect`` = delta-method variance of the difference / naive per-row variance (when
    the per-row sums are known).
    """
    r2, v2 = ratio_estimate(control)
    r1, v1 = ratio_estimate(treatment)
    design_effect = None
    if treatment.row_y_sum_sq is not None and control.row_y_sum_sq is not None:
        naive = naive_ratio_variance(treatment) + naive_ratio_variance(control)
        if naive > 0:
            design_effect = (v1 + v2) / naive
    return compare_estimates(
        metric=metric,
        control=control.name,
        treatment=treatment.name,
        treatment_value=r1,
        control_value=r2,
        treatment_var=v1,
        control_var=v2,
        df=None,
        n_treatment=treatment.units,
        n_control=control.units,
        alpha=alpha,
        claim=claim,
        method="z-test, delta-method variance over randomisation units",
        diff_ci_method="delta method (normal)",
        lift_ci_method="Fieller (delta-method variances)",
        design_effect=design_effect,
    )
