"""CUPED: variance reduction with a pre-experiment covariate (Deng, Xu, Kohavi & Walker 2013,
"Improving the Sensitivity of Online Controlled Experiments by Utilizing Pre-Experiment Data",
WSDM).

Per unit ``y`` is the outcome in the experiment and ``x`` the same metric in the pre-period
(events before the experiment's start). The adjusted mean of arm ``k`` is

    a_k = ybar_k - theta (xbar_k - xbar),    theta = (S_xy,T + S_xy,C) / (S_xx,T + S_xx,C)

where ``S`` are the within-arm centred sums of cross-products (pooled *within* arms, so the
treatment effect does not leak into theta) and ``xbar`` the mean of ``x`` over both arms. The
difference ``a_T - a_C = (ybar_T - ybar_C) - theta (xbar_T - xbar_C)`` has variance
``sum_k (s_yy,k - 2 theta s_xy,k + theta^2 s_xx,k) / n_k``, smaller than the plain one by about
the squared correlation of ``x`` and ``y``. theta is treated as known: its estimation error is
O(1/n) and does not change the first-order variance.

The relative effect ``a_T / a_C - 1`` needs more care: both adjusted means contain ``xbar``,
so they are *correlated*, and each contains the other arm's ``xbar_k``. Writing
``a_T = ybar_T - theta w_C xbar_T + theta w_C xbar_C`` and
``a_C = ybar_C - theta w_T xbar_C + theta w_T xbar_T`` (``w_k = n_k / N``), the variances and
the covariance of ``(a_T, a_C)`` follow exactly from the per-arm 2x2 covariance matrices of
``(ybar_k, xbar_k)``; Fieller's interval then uses all three (see :mod:`abkit.stats.means`).
Dropping the covariance, or dividing the adjusted difference by the raw control mean as if it
were a constant, gives intervals of the wrong width.
"""

from __future__ import annotations

import numpy as np

from abkit.errors import InputError
from abkit.stats.means import compare_estimates
from abkit.stats.results import Comparison
from abkit.stats.sufficient import ArmAggregates


def cuped_theta(control: ArmAggregates, treatment: ArmAggregates) -> float:
    """The pooled within-arm regression slope of ``y`` on ``x`` (0 when ``x`` is constant)."""
    sxy = sxx = 0.0
    for arm in (control, treatment):
        _, s_xy, s_xx = arm.covariance_matrix("x")
        sxy += s_xy * (arm.units - 1)
        sxx += s_xx * (arm.units - 1)
    return sxy / sxx if sxx > 0 else 0.0


def cuped_estimates(
    control: ArmAggregates, treatment: ArmAggregates
) -> tuple[float, float, float, float, float, float]:
    """``(a_T, a_C, Var a_T, Var a_C, Cov(a_T, a_C), theta)`` (formulas in the module docstring)."""
    for arm in (control, treatment):
        if arm.units < 2:
            raise InputError(f"arm '{arm.name}' has {arm.units} unit(s); CUPED needs at least 2")
        if arm.x_sum is None:
            raise InputError(f"arm '{arm.name}': CUPED needs the pre-period covariate sums")
    theta = cuped_theta(control, treatment)
    n_t, n_c = treatment.units, control.units
    w_t, w_c = n_t / (n_t + n_c), n_c / (n_t + n_c)
    x_bar = (treatment.x_sum + control.x_sum) / (n_t + n_c)  # type: ignore[operator]
    a_t = treatment.mean - theta * (treatment.x_sum / n_t - x_bar)  # type: ignore[operator]
    a_c = control.mean - theta * (control.x_sum / n_c - x_bar)  # type: ignore[operator]
    cov_t = _mean_cov(treatment)
    cov_c = _mean_cov(control)
    # Coefficients of a_T and a_C on (ybar_k, xbar_k) for k = T and k = C.
    g_tt, g_tc = np.array([1.0, -theta * w_c]), np.array([0.0, theta * w_c])
    g_ct, g_cc = np.array([0.0, theta * w_t]), np.array([1.0, -theta * w_t])
    var_t = float(g_tt @ cov_t @ g_tt + g_tc @ cov_c @ g_tc)
    var_c = float(g_ct @ cov_t @ g_ct + g_cc @ cov_c @ g_cc)
    cov = float(g_tt @ cov_t @ g_ct + g_tc @ cov_c @ g_cc)
    return a_t, a_c, var_t, var_c, cov, theta


def _mean_cov(arm: ArmAggregates) -> np.ndarray:
    """Covariance matrix of ``(ybar, xbar)``: the per-unit matrix divided by ``n``."""
    s_yy, s_xy, s_xx = arm.covariance_matrix("x")
    return np.array([[s_yy, s_xy], [s_xy, s_xx]]) / arm.units


def compare_cuped(
    control: ArmAggregates,
    treatment: ArmAggregates,
    *,
    alpha: float = 0.05,
    claim: float | None = None,
    metric: str = "conversion",
) -> Comparison:
    """CUPED-adjusted z-test and interval for the difference; Fieller (with the covariance of
    the adjusted means) for the lift. ``variance_reduction`` = 1 - Var(adjusted diff) /
    Var(plain diff)."""
    a_t, a_c, var_t, var_c, cov, theta = cuped_estimates(control, treatment)
    plain = treatment.variance / treatment.units + control.variance / control.units
    adjusted = var_t + var_c - 2 * cov
    reduction = 1 - adjusted / plain if plain > 0 else None
    return compare_estimates(
        metric=metric,
        control=control.name,
        treatment=treatment.name,
        treatment_value=a_t,
        control_value=a_c,
        treatment_var=var_t,
        control_var=var_c,
        cov=cov,
        df=None,
        n_treatment=treatment.units,
        n_control=control.units,
        alpha=alpha,
        claim=claim,
        method=f"CUPED z-test (pre-period covariate, theta = {theta:.4g})",
        diff_ci_method="CUPED (normal)",
        lift_ci_method="Fieller with the covariance of the adjusted means",
        variance_reduction=reduction,
    )
