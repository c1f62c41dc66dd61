"""Means per unit (revenue per user): Welch's test, and Fieller's interval for the lift.

For two arms with means ``m1`` (treatment), ``m2`` (control), sample variances ``s1^2, s2^2``
and ``n1, n2`` units:

* **difference**: Welch's t-test, ``t = (m1 - m2) / sqrt(V1 + V2)`` with ``Vi = si^2 / ni``
  and Welch-Satterthwaite degrees of freedom ``(V1 + V2)^2 / (V1^2/(n1-1) + V2^2/(n2-1))``
  (Welch 1947, Biometrika 34:28). The same numbers as ``scipy.stats.ttest_ind(equal_var=False)``.
* **lift** ``m1 / m2 - 1``: Fieller's interval (Fieller 1954, JRSS B 16:175), the set of ratios
  ``rho`` not rejected by ``T(rho) = (m1 - rho m2) / sqrt(V1 - 2 rho C + rho^2 V2)`` at the same
  t quantile. ``T(1)`` is Welch's statistic, so the lift interval excludes 0 exactly when the
  difference is significant, and the claim check (``T(1 + claim)``, one-sided at alpha/2 each
  way) agrees with the interval. It is the exact interval for a ratio of normal means and,
  unlike the delta method, it is not symmetric where the control mean is uncertain; when the
  control mean is not clearly non-zero (``m2^2 <= q^2 V2``) the set is unbounded and abkit
  says so instead of printing a misleading finite interval.
* **constant arms**: a sample variance at or below ``ZERO_VARIANCE_RTOL * mean^2`` (about 64
  float64 epsilons of the squared mean: a standard deviation under ~1.2e-7 of the mean's
  magnitude) is rounding noise, not spread: the arm's values are all equal, and its variance
  is taken as exactly 0 (:func:`resolved_variance`). Values equal in decimal can still leave
  ``1e-34`` in ``numpy.var`` (``[0.1, 0.1, 0.1]``), and the variance from sums of squares
  that abkit computes in DuckDB leaves about ``eps * mean^2``; treated as spread, either would
  turn a constant arm into a t statistic of ``1e16`` that means nothing. With one constant
  arm, Welch's test is the one-sample t-test of the other arm against the constant (Welch df
  ``n - 1`` of the other arm); with both constant, ``t`` is 0 when the means are equal (p = 1)
  and infinite otherwise (p = 0: every unit of one arm differs from every unit of the other by
  the same amount). scipy returns NaN for two constant samples and warns about "catastrophic
  cancellation" for nearly constant ones.

:func:`compare_estimates` is the engine shared by every metric whose two estimates are
approximately normal (means, delta-method ratios, CUPED-adjusted means); ``C`` is the
covariance between the two estimates (zero for independent arms, non-zero under CUPED).
"""

from __future__ import annotations

import math

from abkit.errors import InputError
from abkit.stats.claims import check_claim
from abkit.stats.dist import Distribution, Normal, StudentT, norm_ppf, t_sf
from abkit.stats.results import ClaimCheck, Comparison, Verdict
from abkit.stats.sufficient import ArmAggregates

_POWER_FOR_UNITS_NEEDED = 0.8

#: A sample variance at or below this multiple of the squared mean is rounding noise: 0.
ZERO_VARIANCE_RTOL = 64 * 2.0**-52


def resolved_variance(mean: float, var: float) -> float:
    """``var``, or exactly 0 when it is rounding noise of a constant sample: at or below
    :data:`ZERO_VARIANCE_RTOL` ``* mean^2`` (see the module docstring). Negative values, which
    only rounding produces, are 0 too."""
    if var <= ZERO_VARIANCE_RTOL * mean * mean:
        return 0.0
    return var


def welch_df(var1: float, n1: float, var2: float, n2: float) -> float:
    """Welch-Satterthwaite degrees of freedom for ``V1 = var1/n1``, ``V2 = var2/n2``."""
    v1, v2 = var1 / n1, var2 / n2
    denom = v1**2 / (n1 - 1) + v2**2 / (n2 - 1)
    if denom == 0:
        return float(n1 + n2 - 2)
    return float((v1 + v2) ** 2 / denom)


def fieller_interval(
    num: float, den: float, var_num: float, var_den: float, cov: float, quantile: float
) -> tuple[float, float]:
    """Fieller's interval for ``num / den``: the roots of
    ``(den^2 - q^2 Vd) rho^2 - 2 (num den - q^2 C) rho + (num^2 - q^2 Vn) = 0``.

    Returns ``(-inf, inf)`` when the set is not a bounded interval (``den^2 <= q^2 Vd``).
    """
    q2 = quantile**2
    a = den**2 - q2 * var_den
    b = num * den - q2 * cov
    c = num**2 - q2 * var_num
    if a <= 0:
        return (-math.inf, math.inf)
    disc = max(b * b - a * c, 0.0)
    root = math.sqrt(disc)
    return ((b - root) / a, (b + root) / a)


def fieller_statistic(
    num: float, den: float, var_num: float, var_den: float, cov: float, rho: float
) -> float:
    """``(num - rho den) / sqrt(Vn - 2 rho C + rho^2 Vd)``: the test of ``num / den = rho``."""
    var = var_num - 2 * rho * cov + rho**2 * var_den
    diff = num - rho * den
    if var <= 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / math.sqrt(var)


def compare_estimates(
    *,
    metric: str,
    control: str,
    treatment: str,
    treatment_value: float,
    control_value: float,
    treatment_var: float,
    control_var: float,
    cov: float = 0.0,
    df: float | None,
    n_treatment: int,
    n_control: int,
    alpha: float,
    claim: float | None,
    method: str,
    diff_ci_method: str,
    lift_ci_method: str,
    notes: tuple[str, ...] = (),
    variance_reduction: float | None = None,
    design_effect: float | None = None,
) -> Comparison:
    """A :class:`Comparison` of two approximately normal estimates (see the module docstring).

    ``treatment_var`` / ``control_var`` are the variances of the estimates (not of a unit),
    ``cov`` their covariance; ``df=None`` uses the normal distribution, else Student's t.
    """
    dist: Distribution = Normal() if df is None else StudentT(df)
    quantile = float(dist.ppf(1 - alpha / 2))
    m1, m2 = treatment_value, control_value
    v1, v2 = treatment_var, control_var
    diff = m1 - m2
    statistic = fieller_statistic(m1, m2, v1, v2, cov, 1.0)
    p_value = float(2 * dist.sf(abs(statistic)))
    se = math.sqrt(max(v1 + v2 - 2 * cov, 0.0))
    lo, hi = fieller_interval(m1, m2, v1, v2, cov, quantile)
    extra = list(notes)
    if m2 != 0:
        lift = m1 / m2 - 1
    else:
        lift = math.nan
        extra.append(f"the control mean is 0: the lift of '{treatment}' is undefined")
    if not math.isfinite(lo):
        extra.append(
            f"the control mean is not clearly different from 0, so the lift interval of "
            f"'{treatment}' is unbounded (Fieller)"
        )
    claim_check = None
    if claim is not None:
        claim_check = _claim_check(
            m1,
            m2,
            v1,
            v2,
            cov,
            claim,
            dist=dist,
            quantile=quantile,
            alpha=alpha,
            lift=lift,
            lift_bounds=(lo, hi),
            units=(n_treatment + n_control) / 2,
        )
    return Comparison(
        metric=metric,
        control=control,
        treatment=treatment,
        control_value=m2,
        treatment_value=m1,
        diff=diff,
        diff_ci_lower=diff - quantile * se,
        diff_ci_upper=diff + quantile * se,
        lift=lift,
        lift_ci_lower=lo - 1,
        lift_ci_upper=hi - 1,
        p_value=p_value,
        p_adjusted=p_value,
        significant=p_value <= alpha,
        alpha=alpha,
        method=method,
        diff_ci_method=diff_ci_method,
        lift_ci_method=lift_ci_method,
        claim=claim_check,
        variance_reduction=variance_reduction,
        design_effect=design_effect,
        notes=tuple(extra),
    )


def _claim_check(
    m1: float,
    m2: float,
    v1: float,
    v2: float,
    cov: float,
    claim: float,
    *,
    dist: Distribution,
    quantile: float,
    alpha: float,
    lift: float,
    lift_bounds: tuple[float, float],
    units: float,
) -> ClaimCheck:
    claim = check_claim(claim)
    rho0 = 1 + claim
    # m1 - rho m2 falls as rho grows only when the control mean is positive; with a negative
    # one (refunds, profit, a CUPED-adjusted mean) a large ratio makes it negative, so the
    # statistic's sign turns for the one-sided p-values to keep their meaning (H0 of
    # p_value_above: ratio <= rho0), as the Fieller interval, which squares it, does.
    statistic = fieller_statistic(m1, m2, v1, v2, cov, rho0)
    if m2 < 0:
        statistic = -statistic
    p_above = float(dist.sf(statistic))
    p_below = float(dist.cdf(statistic))
    verdict: Verdict
    if p_above <= alpha / 2:
        verdict = "supported"
    elif p_below <= alpha / 2:
        verdict = "refuted"
    else:
        verdict = "not decided"
    # The variance of an estimate shrinks as 1/n, so the statistic grows as sqrt(n): the
    # units needed for power 1 - beta scale the current units by ((z_a/2 + z_b) / T)^2.
    needed: int | None = None
    if statistic != 0 and math.isfinite(statistic):
        z_total = norm_ppf(1 - alpha / 2) + norm_ppf(_POWER_FOR_UNITS_NEEDED)
        needed = math.ceil(units * (z_total / statistic) ** 2)
    return ClaimCheck(
        claim=claim,
        lift=lift,
        p_value_above=p_above,
        p_value_below=p_below,
        verdict=verdict,
        max_supported_lift=lift_bounds[0] - 1,
        min_refuted_lift=lift_bounds[1] - 1,
        units_needed=needed,
        alpha=alpha,
        level_each_side=alpha / 2,
        method="Fieller test of the ratio at 1 + claim, one-sided at alpha/2 each way",
    )


def _mean_and_var(arm: ArmAggregates) -> tuple[float, float]:
    if arm.units < 2:
        raise InputError(
            f"arm '{arm.name}' has {arm.units} unit(s); a mean comparison needs at least 2"
        )
    return arm.mean, arm.variance


def compare_means(
    control: ArmAggregates,
    treatment: ArmAggregates,
    *,
    alpha: float = 0.05,
    claim: float | None = None,
    metric: str = "mean",
) -> Comparison:
    """Welch's test for the difference of means and Fieller's interval for the lift."""
    m1, s1 = _mean_and_var(treatment)
    m2, s2 = _mean_and_var(control)
    s1, s2 = resolved_variance(m1, s1), resolved_variance(m2, s2)
    n1, n2 = treatment.units, control.units
    df = welch_df(s1, n1, s2, n2)
    return compare_estimates(
        metric=metric,
        control=control.name,
        treatment=treatment.name,
        treatment_value=m1,
        control_value=m2,
        treatment_var=s1 / n1,
        control_var=s2 / n2,
        df=df,
        n_treatment=n1,
        n_control=n2,
        alpha=alpha,
        claim=claim,
        method="Welch t-test",
        diff_ci_method="Welch t interval",
        lift_ci_method="Fieller (Welch df)",
    )


def welch_test(
    m1: float, var1: float, n1: int, m2: float, var2: float, n2: int
) -> tuple[float, float, float]:
    """``(t, df, two-sided p)`` of Welch's test from means and sample variances.

    A variance that is rounding noise of a constant sample counts as 0 (see the module
    docstring): one constant arm gives the one-sample t-test of the other, two give ``t = 0``
    (equal means, p = 1) or ``t = +-inf`` (p = 0)."""
    var1, var2 = resolved_variance(m1, var1), resolved_variance(m2, var2)
    df = welch_df(var1, n1, var2, n2)
    t = fieller_statistic(m1, m2, var1 / n1, var2 / n2, 0.0, 1.0)
    return t, df, float(2 * t_sf(abs(t), df))


__all__ = [
    "ZERO_VARIANCE_RTOL",
    "compare_estimates",
    "compare_means",
    "fieller_interval",
    "fieller_statistic",
    "resolved_variance",
    "welch_df",
    "welch_test",
]
