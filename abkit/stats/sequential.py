"""Repeated looks: why peeking inflates false positives, and inference that survives it.

**Group-sequential boundaries.** With looks at equally spaced information ``t_k = k`` the
score process ``S_k = Z_k sqrt(t_k)`` has independent ``N(0, t_k - t_(k-1))`` increments under
H0, so ``P(any |Z_k| >= b_k)`` is a recursive integral (Armitage, McPherson & Rowe 1969, JRSS A
132:235; Jennison & Turnbull 2000, *Group Sequential Methods*, ch. 19), computed here on a
Simpson grid: the density of ``S_k`` on the continuation region is convolved with the normal
increment at each look. This gives the naive error of testing at 1.96 every time (K = 5 looks:
0.142, not 0.05), Pocock's constant boundary (Pocock 1977, Biometrika 64:191) and O'Brien &
Fleming's ``c sqrt(K / k)`` boundary (O'Brien & Fleming 1979, Biometrics 35:549).

**Always-valid inference** (``abkit compare --sequential``): the mixture sequential probability
ratio test (mSPRT; Robbins 1970; Johari, Koomen, Pekelis & Walsh 2017, "Peeking at A/B tests",
KDD; Johari et al. 2022, Oper Res 70:1806). For an estimate ``theta^`` of the difference with
variance ``V`` (re-estimated at each look, the asymptotic form of Howard, Ramdas, McAuliffe &
Sekhon 2021, Ann Stat 49:1055 and Waudby-Smith et al. 2023), mixing the alternative over
``theta ~ N(theta0, tau^2)`` gives the likelihood ratio

    Lambda = sqrt(V / (V + tau^2)) exp(tau^2 (theta^ - theta0)^2 / (2 V (V + tau^2)))

a nonnegative martingale under H0; by Ville's inequality ``P(ever Lambda >= 1/alpha) <= alpha``.
The always-valid p-value is the running minimum of ``min(1, 1/Lambda)``, and the confidence
sequence is ``theta^ +- sqrt(V (V + tau^2) / tau^2 (2 log(1/alpha) + log((V + tau^2) / V)))``.
Both can be looked at after every day (or every unit) without inflating the error rate.

**Tuning** ``tau^2``: the normal mixture is tightest near one sample size. abkit uses Howard et
al.'s (2021, eq. 14) optimum for the *final* look, ``tau^2 = V_final (2 log(1/alpha) +
log(1 + 2 log(1/alpha)))``, where ``V_final`` is the variance of the estimate with all the
data. It depends on the data only through a variance, not the effect; a smaller ``tau^2`` would
favour later looks, a larger one earlier looks. The relative lift gets its own sequence on the
log scale (delta-method variance of ``log(p_T / p_C)``), tuned the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import optimize, stats

from abkit.errors import InputError
from abkit.stats.results import LookComparison, SequentialResult
from abkit.stats.sufficient import ArmAggregates

_GRID = 301  # odd, for Simpson's rule
_SQRT_2PI = math.sqrt(2 * math.pi)


# -- group-sequential constants ---------------------------------------------------------------


def _simpson_weights(m: int) -> np.ndarray:
    w = np.ones(m)
    w[1:-1:2] = 4
    w[2:-1:2] = 2
    return w / 3


def crossing_probability(
    bounds: Sequence[float], information: Sequence[float] | None = None, *, grid: int = _GRID
) -> float:
    """``P(|Z_k| >= b_k for some k)`` under H0 for looks at ``information`` (default 1..K).

    Recursive numerical integration (module docstring); accurate to about 1e-6 for K <= 50.
    """
    b = np.asarray(bounds, dtype=np.float64)
    t = (
        np.arange(1, b.size + 1, dtype=np.float64)
        if information is None
        else np.asarray(information, dtype=np.float64)
    )
    if b.size == 0 or t.size != b.size or np.any(np.diff(t) <= 0) or t[0] <= 0:
        raise InputError("bounds and increasing positive information times must match")
    if grid % 2 == 0:
        grid += 1
    c = b * np.sqrt(t)  # bounds on the score scale S_k
    points = np.linspace(-c[0], c[0], grid)
    density = stats.norm.pdf(points, scale=math.sqrt(t[0]))
    crossed = 2 * stats.norm.sf(b[0])
    for k in range(1, b.size):
        sd = math.sqrt(t[k] - t[k - 1])
        weights = _simpson_weights(grid) * (points[1] - points[0]) * density
        exit_prob = stats.norm.cdf((-c[k] - points) / sd) + stats.norm.sf((c[k] - points) / sd)
        crossed += float(weights @ exit_prob)
        if k == b.size - 1:
            break
        new_points = np.linspace(-c[k], c[k], grid)
        kernel = np.exp(-0.5 * ((new_points[:, None] - points[None, :]) / sd) ** 2) / (
            sd * _SQRT_2PI
        )
        density = kernel @ weights
        points = new_points
    return float(crossed)


def naive_peeking_error(looks: int, z: float = 1.959963984540054) -> float:
    """P(any false rejection) when a fixed-sample z-test at ``z`` is repeated at ``looks``
    equally spaced looks (Armitage, McPherson & Rowe 1969)."""
    return crossing_probability([z] * looks)


def pocock_constant(looks: int, alpha: float = 0.05) -> float:
    """The constant boundary ``c`` with ``P(any |Z_k| >= c) = alpha`` (Pocock 1977)."""
    return float(
        optimize.brentq(lambda c: crossing_probability([c] * looks) - alpha, 1.0, 10.0, xtol=1e-10)
    )


def obrien_fleming_bounds(looks: int, alpha: float = 0.05) -> tuple[float, ...]:
    """O'Brien-Fleming bounds ``c sqrt(K / k)``, k = 1..K, with overall level ``alpha``."""
    shape = np.sqrt(looks / np.arange(1, looks + 1))
    c = optimize.brentq(lambda c: crossing_probability(c * shape) - alpha, 1.0, 10.0, xtol=1e-10)
    return tuple(float(v) for v in c * shape)


# -- mSPRT and confidence sequences -----------------------------------------------------------


def tune_tau2(final_variance: float, alpha: float = 0.05) -> float:
    """Mixture variance tightest at the final look (Howard et al. 2021, eq. 14)."""
    log_term = 2 * math.log(1 / alpha)
    return float(final_variance * (log_term + math.log(1 + log_term)))


def msprt_log_lr(
    estimate: np.ndarray | float,
    variance: np.ndarray | float,
    tau2: float | np.ndarray,
    null: float = 0.0,
) -> np.ndarray:
    """``log Lambda`` of the normal-mixture SPRT (0 where the variance is not positive)."""
    est = np.asarray(estimate, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    ok = np.isfinite(est) & np.isfinite(var) & (var > 0)
    safe_var = np.where(ok, var, 1.0)
    safe_est = np.where(ok, est, null)
    value = 0.5 * np.log(safe_var / (safe_var + tau2)) + tau2 * (safe_est - null) ** 2 / (
        2 * safe_var * (safe_var + tau2)
    )
    return np.where(ok, value, 0.0)


def always_valid_p_values(
    estimates: Sequence[float] | np.ndarray,
    variances: Sequence[float] | np.ndarray,
    tau2: float | np.ndarray,
) -> np.ndarray:
    """Running minimum of ``min(1, 1 / Lambda)`` over the looks (last axis)."""
    p = np.minimum(1.0, np.exp(-msprt_log_lr(np.asarray(estimates), np.asarray(variances), tau2)))
    return np.minimum.accumulate(p, axis=-1)


def confidence_sequence(
    estimate: np.ndarray | float,
    variance: np.ndarray | float,
    tau2: float | np.ndarray,
    alpha: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """The normal-mixture confidence sequence at each look (infinite where V <= 0)."""
    est = np.asarray(estimate, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    ok = np.isfinite(var) & (var > 0)
    safe = np.where(ok, var, 1.0)
    half = np.sqrt(
        safe * (safe + tau2) / tau2 * (2 * math.log(1 / alpha) + np.log((safe + tau2) / safe))
    )
    half = np.where(ok, half, np.inf)
    return est - half, est + half


# -- a comparison over looks ------------------------------------------------------------------

Kind = Literal["conversion", "mean", "ratio"]


def _estimates(
    kind: Kind, control: ArmAggregates, treatment: ArmAggregates
) -> tuple[float, float, float, float, float]:
    """``(diff, Var diff, log ratio, Var log ratio, naive p)`` at one look."""
    from abkit.stats.means import welch_test
    from abkit.stats.proportions import pooled_z_test
    from abkit.stats.ratio import ratio_estimate

    nan = math.nan
    if min(control.units, treatment.units) < 2:
        return nan, nan, nan, nan, nan
    if kind == "ratio":
        if not (control.d_sum and treatment.d_sum):
            return nan, nan, nan, nan, nan
        m_t, v_t = ratio_estimate(treatment)
        m_c, v_c = ratio_estimate(control)
        diff, var = m_t - m_c, v_t + v_c
        naive_p = 2 * stats.norm.sf(abs(diff) / math.sqrt(var)) if var > 0 else 1.0
    else:
        m_t, m_c = treatment.mean, control.mean
        if kind == "conversion":
            v_t = m_t * (1 - m_t) / treatment.units
            v_c = m_c * (1 - m_c) / control.units
            naive_p = float(
                pooled_z_test(treatment.y_sum, treatment.units, control.y_sum, control.units)[1]
            )
        else:
            v_t = treatment.variance / treatment.units
            v_c = control.variance / control.units
            naive_p = (
                welch_test(
                    m_t, treatment.variance, treatment.units, m_c, control.variance, control.units
                )[2]
                if v_t + v_c > 0
                else 1.0
            )
        diff, var = m_t - m_c, v_t + v_c
    if m_t > 0 and m_c > 0:
        log_ratio, log_var = math.log(m_t / m_c), v_t / m_t**2 + v_c / m_c**2
    else:
        log_ratio, log_var = nan, nan
    return diff, var, log_ratio, log_var, float(naive_p)


def sequential_comparison(
    kind: Kind,
    looks: Sequence[tuple[ArmAggregates, ArmAggregates]],
    *,
    alpha: float = 0.05,
    metric: str | None = None,
) -> tuple[SequentialResult, tuple[LookComparison, ...]]:
    """Always-valid p-values and confidence sequences over cumulative looks.

    ``looks`` holds ``(control, treatment)`` aggregates of the cumulative data at each look,
    oldest first (one look = a single analysis). Returns the result at the last look and the
    path (one :class:`LookComparison` per look).
    """
    if not looks:
        raise InputError("a sequential analysis needs at least one look")
    rows = np.array([_estimates(kind, c, t) for c, t in looks], dtype=np.float64)
    diff, var, log_ratio, log_var, naive_p = rows.T
    final_var = var[-1]
    final_log_var = log_var[-1]
    if not (math.isfinite(final_var) and final_var > 0):
        raise InputError(
            "the sequential test needs a positive variance at the last look "
            "(every unit has the same outcome)"
        )
    tau2 = tune_tau2(float(final_var), alpha)
    tau2_log = (
        tune_tau2(float(final_log_var), alpha)
        if math.isfinite(final_log_var) and final_log_var > 0
        else math.nan
    )
    p_path = always_valid_p_values(diff, var, tau2)
    d_lo, d_hi = confidence_sequence(diff, var, tau2, alpha)
    if math.isfinite(tau2_log):
        l_lo, l_hi = confidence_sequence(log_ratio, log_var, tau2_log, alpha)
        l_lo, l_hi = np.exp(l_lo) - 1, np.exp(l_hi) - 1
    else:
        l_lo = l_hi = np.full(len(looks), math.nan)
    name = metric or kind
    path = tuple(
        LookComparison(
            metric=name,
            treatment=looks[i][1].name,
            diff=float(diff[i]),
            lift=float(math.expm1(log_ratio[i])) if math.isfinite(log_ratio[i]) else math.nan,
            naive_p_value=float(naive_p[i]),
            always_valid_p_value=float(p_path[i]),
            diff_cs_lower=float(d_lo[i]),
            diff_cs_upper=float(d_hi[i]),
            lift_cs_lower=float(l_lo[i]),
            lift_cs_upper=float(l_hi[i]),
        )
        for i in range(len(looks))
    )
    last = path[-1]
    result = SequentialResult(
        method="mSPRT with a normal mixture (always-valid p-value, confidence sequence)",
        p_value=last.always_valid_p_value,
        p_adjusted=last.always_valid_p_value,
        diff_cs_lower=last.diff_cs_lower,
        diff_cs_upper=last.diff_cs_upper,
        lift_cs_lower=last.lift_cs_lower,
        lift_cs_upper=last.lift_cs_upper,
        tau2_diff=tau2,
        tau2_log_lift=tau2_log,
        looks=len(looks),
        significant=last.always_valid_p_value <= alpha,
    )
    return result, path
