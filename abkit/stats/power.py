"""Sample size, minimum detectable effect and power for two-arm comparisons (equal allocation).

Notation: control rate ``p1``, treatment rate ``p2``, ``delta = p2 - p1``, ``q = 1 - p``,
``pbar = (p1 + p2) / 2``, ``z_a = z_(1 - alpha/2)`` (two-sided) and ``z_b = z_(power)``.
Units per arm for a conversion metric, by method:

``pooled``     (abkit's default; Fleiss, Levin & Paik 2003, *Statistical Methods for Rates and
               Proportions*, eq. 4.14) the pooled-null formula that matches the pooled z-test
               abkit reports: ``n = (z_a sqrt(2 pbar qbar) + z_b sqrt(p1 q1 + p2 q2))^2 / delta^2``.
``unpooled``   the Wald approximation ``n = (z_a + z_b)^2 (p1 q1 + p2 q2) / delta^2``.
``cohen-h``    arcsine effect size ``h = 2 asin sqrt(p2) - 2 asin sqrt(p1)``,
               ``n = 2 ((z_a + z_b) / h)^2`` (Cohen 1988), solved with both tails of the
               two-sided test as statsmodels ``NormalIndPower`` does.
``pooled-cc``  ``pooled`` with Fleiss, Tytun & Ury's (1980, Biometrics 36:343) continuity
               correction ``n' = n / 4 (1 + sqrt(1 + 4 / (n |delta|)))^2``, for a test with
               Yates' correction.

Power at a given ``n`` inverts the same formula and, for two-sided tests, adds the (tiny)
probability of rejecting in the wrong direction, as statsmodels does. A mean metric uses the
normal approximation ``n = 2 sd^2 (z_a + z_b)^2 / delta^2`` (equal standard deviations; the
t correction adds about 2 units and is ignored).

**Several arms.** With ``k`` arms there are ``k - 1`` comparisons with the control; abkit sizes
each at ``alpha / (k - 1)`` (Bonferroni). Holm's procedure, abkit's default correction, starts
at the same ``alpha / (k - 1)`` and can only reject more, so the stated power is a lower bound.

**Claims.** "Units needed to show lift > c": the one-sided score test of ``H0: p2 / p1 <= 1 + c``
at level ``alpha / 2`` (so the verdict agrees with the two-sided (1 - alpha) interval, as in
``abkit compare --claim``). The claim is checked in each comparison at the *unadjusted* alpha
-- ``abkit compare --claim`` does not correct claim verdicts for the family, and its
``units_needed`` uses the same level -- so with ``--arms k`` the claim's sample size is NOT
split by Bonferroni (only ``total_units`` grows with ``k``); the two commands agree.
Farrington & Manning's (1990, Stat Med 9:1447) formula
``n = (z_a sqrt(p2~ q2~ + th^2 p1~ q1~) + z_b sqrt(p2 q2 + th^2 p1 q1))^2 / (p2 - th p1)^2``,
``th = 1 + c`` and ``p~`` the restricted maximum-likelihood rates under ``p2 = th p1``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from abkit.errors import InputError, param
from abkit.stats.claims import check_claim
from abkit.stats.dist import brentq, norm_cdf, norm_ppf
from abkit.stats.results import PowerResult
from abkit.stats.score import ratio_restricted_mle

Method = Literal["pooled", "unpooled", "cohen-h", "pooled-cc"]
METHODS: tuple[Method, ...] = ("pooled", "unpooled", "cohen-h", "pooled-cc")
METHOD_DESCRIPTIONS = {
    "pooled": "pooled-null normal approximation (Fleiss), matching the pooled z-test",
    "unpooled": "unpooled (Wald) normal approximation",
    "cohen-h": "Cohen's h arcsine effect size (statsmodels NormalIndPower)",
    "pooled-cc": "pooled-null with Fleiss-Tytun-Ury continuity correction",
    "normal": "normal approximation with a common standard deviation",
}


def _z_alpha(alpha: float, sides: int) -> float:
    return float(norm_ppf(1 - alpha / sides))


def _check_rate(name: str, p: float) -> None:
    if not 0 < p < 1:
        raise InputError(f"{name} must be a rate strictly between 0 and 1, got {p}")


def sample_size_proportions(
    p_control: float,
    p_treatment: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    method: Method = "pooled",
    sides: int = 2,
) -> float:
    """Unrounded units per arm to detect ``p_control -> p_treatment`` (module docstring)."""
    _check_rate("the baseline", p_control)
    _check_rate("the target rate", p_treatment)
    if p_control == p_treatment:
        raise InputError("the target rate equals the baseline: no effect to detect")
    za, zb = _z_alpha(alpha, sides), float(norm_ppf(power))
    p1, p2 = p_control, p_treatment
    delta = p2 - p1
    var_alt = p1 * (1 - p1) + p2 * (1 - p2)
    if method == "cohen-h":
        h = 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))
        closed = 2 * ((za + zb) / h) ** 2
        if sides == 1:
            return closed

        # statsmodels' NormalIndPower counts rejections in the wrong direction too; solving the
        # full power equation reproduces it exactly (about 0.02 units below the closed form).
        def gap(n: float) -> float:
            return power_proportions(p1, p2, n, alpha=alpha, method="cohen-h") - power

        # The root is within 10% of the closed form unless the power is close to alpha (where
        # the wrong-direction rejections are a large part of it): widen until it is bracketed.
        low, high = closed * 0.9, closed * 1.1
        while gap(low) > 0 and low > 1e-9:
            low /= 2
        while gap(high) < 0:
            high *= 2
        return float(brentq(gap, low, high, xtol=1e-10))
    if method == "unpooled":
        return (za + zb) ** 2 * var_alt / delta**2
    pbar = (p1 + p2) / 2
    n = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(var_alt)) ** 2 / delta**2
    if method == "pooled":
        return n
    if method == "pooled-cc":
        return n / 4 * (1 + math.sqrt(1 + 4 / (n * abs(delta)))) ** 2
    raise InputError(f"unknown power method '{method}'; expected one of: {', '.join(METHODS)}")


def power_proportions(
    p_control: float,
    p_treatment: float,
    n_per_arm: float,
    *,
    alpha: float = 0.05,
    method: Method = "pooled",
    sides: int = 2,
) -> float:
    """Power of the test with ``n_per_arm`` units in each arm (both tails when two-sided)."""
    _check_rate("the baseline", p_control)
    _check_rate("the target rate", p_treatment)
    za = _z_alpha(alpha, sides)
    p1, p2, n = p_control, p_treatment, float(n_per_arm)
    delta = abs(p2 - p1)
    sd_alt = math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    if method == "cohen-h":
        shift = abs(2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))) * math.sqrt(n / 2)
        upper, lower = shift - za, -shift - za
    elif method == "unpooled":
        shift = delta * math.sqrt(n) / sd_alt
        upper, lower = shift - za, -shift - za
    else:
        pbar = (p1 + p2) / 2
        sd_null = math.sqrt(2 * pbar * (1 - pbar))
        effective = delta - (1 / n if method == "pooled-cc" else 0.0)
        upper = (effective * math.sqrt(n) - za * sd_null) / sd_alt
        lower = (-delta * math.sqrt(n) - za * sd_null) / sd_alt
    value = norm_cdf(upper)
    if sides == 2:
        value += norm_cdf(lower)
    return float(value)


def sample_size_means(
    delta: float, sd: float, *, alpha: float = 0.05, power: float = 0.8, sides: int = 2
) -> float:
    """``2 sd^2 (z_a + z_b)^2 / delta^2`` units per arm (normal approximation)."""
    if sd <= 0:
        raise InputError(f"{param('sd')} must be positive, got {sd}")
    if delta == 0:
        raise InputError("the minimum detectable effect must not be 0")
    za, zb = _z_alpha(alpha, sides), float(norm_ppf(power))
    return 2 * sd**2 * (za + zb) ** 2 / delta**2


def power_means(
    delta: float, sd: float, n_per_arm: float, *, alpha: float = 0.05, sides: int = 2
) -> float:
    za = _z_alpha(alpha, sides)
    shift = abs(delta) / math.sqrt(2 * sd**2 / n_per_arm)
    value = norm_cdf(shift - za)
    if sides == 2:
        value += norm_cdf(-shift - za)
    return float(value)


def sample_size_ratio_test(
    p_control: float,
    p_treatment: float,
    theta0: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    sides: int = 2,
) -> float:
    """Units per arm for the one-sided score test of ``p_t / p_c = theta0`` at level
    ``alpha / sides`` to reject with probability ``power`` at the true rates (Farrington &
    Manning 1990; formula in the module docstring)."""
    p1, p2 = p_treatment, p_control
    if p1 == theta0 * p2:
        raise InputError("the true lift equals the claimed lift: no sample size can decide it")
    za, zb = _z_alpha(alpha, sides), float(norm_ppf(power))
    one = np.asarray(1.0, dtype=np.float64)
    q1, q2 = ratio_restricted_mle(
        np.asarray(p1, dtype=np.float64),
        one,
        np.asarray(p2, dtype=np.float64),
        one,
        np.asarray(theta0, dtype=np.float64),
    )
    sd_null = math.sqrt(float(q1 * (1 - q1) + theta0**2 * q2 * (1 - q2)))
    sd_alt = math.sqrt(p1 * (1 - p1) + theta0**2 * p2 * (1 - p2))
    return (za * sd_null + zb * sd_alt) ** 2 / (p1 - theta0 * p2) ** 2


def _solve_mde(power_of: object, target: float, upper: float) -> float:
    def gap(delta: float) -> float:
        return float(power_of(delta)) - target  # type: ignore[operator]

    if gap(upper) < 0:
        raise InputError(
            "no effect within the possible range reaches the target power with this many units"
        )
    return float(brentq(gap, 1e-12, upper, xtol=1e-12))


def power(
    *,
    baseline: float,
    metric: Literal["conversion", "mean"] = "conversion",
    mde: float | None = None,
    relative: bool = True,
    n_per_arm: int | None = None,
    target_power: float = 0.8,
    alpha: float = 0.05,
    arms: int = 2,
    sd: float | None = None,
    method: Method | None = None,
    claim: float | None = None,
    sides: int = 2,
) -> PowerResult:
    """Solve for the one unknown among sample size, minimum detectable effect and power.

    * ``mde`` given, ``n_per_arm`` not: units per arm for ``target_power``;
    * ``n_per_arm`` given, ``mde`` not: the smallest effect detected with ``target_power``;
    * both given: the power;
    * ``claim`` given (with ``mde`` = the assumed true relative lift): units per arm to show
      that the lift exceeds ``claim`` (conversion metric; module docstring).

    ``mde`` is relative to ``baseline`` (``0.2`` = +20%) unless ``relative=False``. ``baseline``
    is the control's conversion rate, or its mean (then ``sd`` is the per-unit standard
    deviation). ``alpha`` is split by Bonferroni over ``arms - 1`` comparisons.
    """
    if not 0 < alpha < 1:
        raise InputError(f"{param('alpha')} must be in (0, 1), got {alpha}")
    if not 0 < target_power < 1:
        raise InputError(f"{param('target_power')} must be in (0, 1), got {target_power}")
    if arms < 2:
        raise InputError(
            f"{param('arms')} must be at least 2 (a control and a treatment), got {arms}"
        )
    if sides not in (1, 2):
        raise InputError(f"sides must be 1 or 2, got {sides}")
    if n_per_arm is not None and n_per_arm < 2:
        raise InputError(f"{param('n_per_arm')} must be at least 2 units per arm, got {n_per_arm}")
    comparisons = arms - 1
    alpha_each = alpha / comparisons
    if target_power <= alpha_each and (mde is None or n_per_arm is None):
        # a test rejects with probability alpha_each with no data at all: no sample size or
        # effect is defined for a power at or below it
        raise InputError(
            f"{param('target_power')} must be above alpha ({alpha_each:g} per comparison), "
            f"got {target_power:g}: a test reaches that power with no data"
        )
    notes: list[str] = []
    if comparisons > 1:
        notes.append(
            f"alpha {alpha:g} split over {comparisons} comparisons with the control "
            f"(Bonferroni: {alpha_each:.4g} each); Holm can only do better"
        )
    formula: Method = "pooled"
    sd_value = 0.0
    if metric == "conversion":
        _check_rate("--baseline", baseline)
        if method is not None and method not in METHODS:
            raise InputError(
                f"unknown {param('method')} '{method}'; expected one of: {', '.join(METHODS)}"
            )
        formula = method or "pooled"
        chosen: str = formula
    elif metric == "mean":
        if sd is None or sd <= 0:
            raise InputError(
                f"{param('metric')} mean needs {param('sd')}, the per-unit standard deviation (> 0)"
            )
        if method is not None:
            raise InputError(f"{param('method')} applies to conversion metrics only")
        sd_value = sd
        chosen = "normal"
    else:
        raise InputError(f"unknown {param('metric')} '{metric}'; expected one of: conversion, mean")

    def absolute(effect: float) -> float:
        return baseline * effect if relative else effect

    if claim is not None:
        return _claim_power(
            baseline=baseline,
            metric=metric,
            mde=mde,
            relative=relative,
            claim=claim,
            sd=sd,
            target_power=target_power,
            alpha=alpha,
            arms=arms,
            n_per_arm=n_per_arm,
        )
    if mde is None and n_per_arm is None:
        raise InputError(
            f"give {param('mde')} (to get the sample size), {param('n_per_arm')} (to get the "
            "MDE), or both (to get the power)"
        )
    if mde is not None and mde == 0:
        raise InputError(f"{param('mde')} must not be 0")

    def power_at(delta: float, n: float) -> float:
        if metric == "mean":
            return power_means(delta, sd_value, n, alpha=alpha_each, sides=sides)
        return power_proportions(
            baseline,
            baseline + delta,
            n,
            alpha=alpha_each,
            method=formula,
            sides=sides,
        )

    by_method: tuple[tuple[str, float], ...] = ()
    if mde is not None:
        delta = absolute(mde)
        if metric == "conversion":
            _check_rate("the target rate (baseline + MDE)", baseline + delta)
        if n_per_arm is None:
            solved = "n"
            if metric == "mean":
                n_exact = sample_size_means(
                    delta, sd_value, alpha=alpha_each, power=target_power, sides=sides
                )
            else:
                n_exact = sample_size_proportions(
                    baseline,
                    baseline + delta,
                    alpha=alpha_each,
                    power=target_power,
                    method=formula,
                    sides=sides,
                )
            n_units = math.ceil(n_exact - 1e-9)
            achieved = power_at(delta, n_units)
            if metric == "conversion":
                by_method = tuple(
                    (
                        m,
                        sample_size_proportions(
                            baseline,
                            baseline + delta,
                            alpha=alpha_each,
                            power=target_power,
                            method=m,
                            sides=sides,
                        ),
                    )
                    for m in METHODS
                )
        else:
            solved = "power"
            n_exact, n_units = float(n_per_arm), int(n_per_arm)
            achieved = power_at(delta, n_units)
    else:
        solved = "mde"
        n_units = int(n_per_arm or 0)
        n_exact = float(n_units)
        upper = (1 - baseline) * (1 - 1e-9) if metric == "conversion" else 1e6 * sd_value
        delta = _solve_mde(lambda d: power_at(d, n_units), target_power, upper)
        achieved = target_power
    return PowerResult(
        metric=metric,
        solved_for=solved,  # type: ignore[arg-type]
        baseline=baseline,
        target=baseline + delta,
        mde_absolute=delta,
        mde_relative=delta / baseline if baseline != 0 else math.nan,
        n_per_arm=n_units,
        n_per_arm_exact=n_exact,
        total_units=n_units * arms,
        arms=arms,
        comparisons=comparisons,
        power=achieved,
        alpha=alpha,
        alpha_per_comparison=alpha_each,
        sides=sides,
        method=chosen,
        method_description=METHOD_DESCRIPTIONS[chosen],
        sd=sd,
        n_by_method=by_method,
        notes=tuple(notes),
    )


def _claim_power(
    *,
    baseline: float,
    metric: str,
    mde: float | None,
    relative: bool,
    claim: float,
    sd: float | None,
    target_power: float,
    alpha: float,
    arms: int,
    n_per_arm: int | None,
) -> PowerResult:
    """Units per arm to show "lift > claim" (module docstring): one-sided at alpha/2, the
    unadjusted alpha of each comparison, exactly as ``abkit compare --claim`` decides it."""
    if mde is None:
        raise InputError(
            f"{param('claim')} needs {param('mde')}, the true relative lift you expect (e.g. "
            f"{param('mde')} 0.3)"
        )
    if n_per_arm is not None:
        raise InputError(f"{param('claim')} computes the units needed; drop {param('n_per_arm')}")
    if not relative:
        raise InputError(
            f"{param('claim')} works with a relative {param('mde')}, not an absolute one"
        )
    claim = check_claim(claim)
    if mde <= claim:
        raise InputError(
            f"to show the lift exceeds {claim:g} the true lift ({param('mde')} {mde:g}) must "
            "be larger"
        )
    theta0 = 1 + claim
    target = baseline * (1 + mde)
    if metric == "conversion":
        _check_rate("the target rate (baseline x (1 + MDE))", target)
        n_exact = sample_size_ratio_test(
            baseline, target, theta0, alpha=alpha, power=target_power, sides=2
        )
        chosen = "farrington-manning"
        description = (
            "Farrington-Manning score test of the rate ratio against 1 + claim, "
            "one-sided at alpha/2"
        )
    else:
        za = _z_alpha(alpha, 2)
        zb = float(norm_ppf(target_power))
        # Var(m_T - theta0 m_C) per unit with a common sd: sd^2 (1 + theta0^2).
        spread = float(sd or 0.0)
        n_exact = (za + zb) ** 2 * spread**2 * (1 + theta0**2) / (target - theta0 * baseline) ** 2
        chosen = "fieller-normal"
        description = "normal test of m_T - (1 + claim) m_C, one-sided at alpha/2 (Fieller)"
    n_units = math.ceil(n_exact - 1e-9)
    notes = [
        f"units needed to show the lift exceeds {100 * claim:g}% when the true lift is "
        f"{100 * mde:g}%: the one-sided test runs at alpha/2 = {alpha / 2:g}, so the verdict "
        f"agrees with the two-sided interval that `abkit compare --claim` reports"
    ]
    if arms > 2:
        notes.append(
            f"the claim is checked in each of the {arms - 1} comparisons at the unadjusted alpha "
            f"{alpha:g}, as `abkit compare --claim` does (claim verdicts are not corrected for "
            "the family); the alpha split over comparisons applies to the difference tests only"
        )
    return PowerResult(
        metric=metric,
        solved_for="n",
        baseline=baseline,
        target=target,
        mde_absolute=target - baseline,
        mde_relative=mde,
        n_per_arm=n_units,
        n_per_arm_exact=n_exact,
        total_units=n_units * arms,
        arms=arms,
        comparisons=arms - 1,
        power=target_power,
        alpha=alpha,
        alpha_per_comparison=alpha,
        sides=2,
        method=chosen,
        method_description=description,
        sd=sd,
        claim=claim,
        notes=tuple(notes),
    )
