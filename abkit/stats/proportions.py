"""Two independent proportions: tests and intervals for the difference and the ratio.

Arm 1 is the treatment, arm 2 the control: ``diff = p1 - p2``, ``ratio = p1 / p2``,
``lift = ratio - 1``. Interval functions accept numpy arrays (they are vectorised, so
simulations can call them on thousands of tables at once).

abkit's defaults for a conversion metric (:func:`compare_proportions`):

* **p-value**: the pooled two-proportion z-test,
  ``z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2))`` with ``p = (x1 + x2) / (n1 + n2)``
  (e.g. Agresti, *Categorical Data Analysis*, 3rd ed., §3.1.3).
* **difference CI**: Newcombe's hybrid score interval (Newcombe 1998, Stat Med 17:873,
  method 10), built from the two Wilson intervals.
* **lift CI**: Koopman's asymptotic score interval for the ratio (Koopman 1984, Biometrics
  40:513), i.e. the inversion of the score test of ``H0: p1 = theta p2`` with the restricted
  maximum-likelihood estimates of Miettinen & Nurminen (1985, Stat Med 4:213) and no
  ``N/(N-1)`` correction. At ``theta = 1`` the restricted estimate is the pooled proportion, so
  the score statistic *is* the pooled z statistic: the lift interval excludes 0 exactly when
  the pooled z-test rejects, and the lift p-value equals the difference p-value. The claim
  check tests ``theta = 1 + claim`` with the same statistic, so at large counts its verdict
  agrees with the interval; with small counts under the claim's null an exact test decides
  (:func:`claim_check_proportions`) and the verdict reads off that test's own bounds, which
  can be wider than the Koopman interval. (The absolute interval divided by the control rate
  would ignore the control's own uncertainty; Katz's log interval is erratic for small
  counts; Fagerland, Lydersen & Laake 2015, Stat Methods Med Res 24:224, recommend
  Koopman's.)
* **small counts**: when an expected cell of the 2x2 table is below 5 (Cochran's rule) the
  result also carries Fisher's exact p-value (``exact_p_value``) and a note; when the exact
  and the score test disagree at alpha, the note says so (the result is then fragile). The
  reported ``p_value`` and ``significant`` stay the pooled z / score test *on purpose*: that
  test is the dual of the Koopman lift interval and of the claim check, so the p-value, the
  lift interval and the claim verdict can never contradict each other (swapping only the
  p-value for Fisher's, as abkit once did, gave p = 0.054 "not significant" on 7/34 vs 1/34
  next to a lift interval excluding 0 and a "supported" claim). Fisher rather than
  Barnard/Boschloo: those unconditional tests maximise over a nuisance parameter, which costs
  time growing with ``n1 * n2`` (seconds at a few hundred units), while Fisher's is exact
  (conservative) at any size.
* **the difference interval** (Newcombe) is *not* exactly dual to the pooled z-test: in rare
  borderline tables it can exclude 0 while ``p > alpha`` or the reverse. The lift interval
  (Koopman) is exactly dual, so decisions read off the lift interval and the p-value.

"Significant" means ``p <= alpha`` everywhere in abkit's comparisons (and a claim side is
decided when its one-sided p-value is ``<= alpha / 2``).

The other classic intervals (Wald, Agresti-Caffo, Miettinen-Nurminen, Katz log, adjusted log,
Wilson), the one-sample z-test and McNemar's test are here for reference checks and for
callers that want them.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from abkit.errors import InputError
from abkit.stats.claims import check_claim
from abkit.stats.dist import brentq, chi2_sf, norm_cdf, norm_ppf, norm_sf
from abkit.stats.exact_ratio import (
    UNCONDITIONAL_METHOD,
    exact_ratio_bounds,
    exact_ratio_p_values,
    unconditional_ratio_bounds,
    unconditional_ratio_p_values,
)
from abkit.stats.power import sample_size_ratio_test
from abkit.stats.results import ClaimCheck, Comparison, Verdict
from abkit.stats.score import ratio_restricted_mle, ratio_score, safe_ratio
from abkit.stats.sufficient import ArmAggregates

Alternative = Literal["two-sided", "larger", "smaller"]
ExactMode = Literal["auto", "never", "always"]

FloatArray = NDArray[np.float64]

_LOG_BRACKET = 25.0  # ratios searched in [e^-25, e^25]; beyond that a bound is 0 or infinite
_BISECTIONS = 90


def _crit(alpha: float) -> float:
    return float(norm_ppf(1 - alpha / 2))


def _arr(value: ArrayLike) -> FloatArray:
    return np.asarray(value, dtype=np.float64)


def _out(value: FloatArray) -> float | FloatArray:
    return float(value) if value.ndim == 0 else value


def _p_value(z: FloatArray, alternative: Alternative) -> FloatArray:
    if alternative == "two-sided":
        return 2 * norm_sf(np.abs(z))
    if alternative == "larger":
        return norm_sf(z)
    return norm_cdf(z)


# -- tests ------------------------------------------------------------------------------------


def pooled_z_test(
    x1: ArrayLike,
    n1: ArrayLike,
    x2: ArrayLike,
    n2: ArrayLike,
    alternative: Alternative = "two-sided",
) -> tuple[float | FloatArray, float | FloatArray]:
    """Pooled two-proportion z-test of ``H0: p1 = p2``; returns ``(z, p_value)``.

    ``z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2))``, ``p = (x1 + x2) / (n1 + n2)``.
    Equal to statsmodels' ``proportions_ztest(count, nobs)``. When every unit or no unit
    converted the variance is 0 and ``z = 0, p = 1`` (no evidence of a difference).
    """
    x1a, n1a, x2a, n2a = _arr(x1), _arr(n1), _arr(x2), _arr(n2)
    pooled = (x1a + x2a) / (n1a + n2a)
    var = pooled * (1 - pooled) * (1 / n1a + 1 / n2a)
    z = safe_ratio(x1a / n1a - x2a / n2a, var)
    return _out(z), _out(_p_value(z, alternative))


def one_proportion_z_test(
    x: float,
    n: float,
    p0: float,
    *,
    variance: Literal["null", "sample"] = "null",
    alternative: Alternative = "two-sided",
) -> tuple[float, float]:
    """One-sample z-test of ``H0: p = p0``; returns ``(z, p_value)``.

    ``variance="null"`` uses ``p0 (1 - p0) / n`` (the score test, abkit's choice: the null
    fixes the variance); ``variance="sample"`` uses ``p (1 - p) / n`` (the Wald test, the
    default of statsmodels' ``proportions_ztest(count, nobs, value)``).
    """
    if not 0 < p0 < 1:
        raise InputError(f"p0 must be in (0, 1), got {p0}")
    p = x / n
    base = p0 if variance == "null" else p
    z = safe_ratio(_arr(p - p0), _arr(base * (1 - base) / n))
    return float(z), float(_p_value(z, alternative))


def fisher_exact_test(
    x1: int, n1: int, x2: int, n2: int, alternative: Alternative = "two-sided"
) -> float:
    """Fisher's exact (conditional) test of the 2x2 table ``[[x1, n1-x1], [x2, n2-x2]]``.

    ``alternative="larger"`` tests H1: p1 > p2. Two-sided p-value by the "minimum likelihood"
    rule (sum of the tables no more likely than the observed one), as scipy and R do.
    Fisher 1935, *The Design of Experiments*.
    """
    from scipy import stats  # only for small counts: scipy.stats costs most of a second

    table = [[int(x1), int(n1 - x1)], [int(x2), int(n2 - x2)]]
    scipy_alt = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}[alternative]
    return float(stats.fisher_exact(table, alternative=scipy_alt).pvalue)


def mcnemar_test(b: int, c: int, *, correction: bool = False) -> tuple[float, float]:
    """McNemar's test for paired binary outcomes from the discordant counts ``b`` and ``c``.

    ``X2 = (b - c)^2 / (b + c)``, or ``(|b - c| - 1)^2 / (b + c)`` with Edwards' continuity
    correction; p-value from chi-square with 1 df (Agresti, *Categorical Data Analysis*,
    §11.1). Returns ``(statistic, p_value)``.
    """
    if b + c == 0:
        return 0.0, 1.0
    diff = abs(b - c) - (1 if correction else 0)
    statistic = max(diff, 0) ** 2 / (b + c)
    return float(statistic), float(chi2_sf(statistic, 1))


def needs_exact(x1: int, n1: int, x2: int, n2: int, min_expected: float = 5.0) -> bool:
    """Cochran's rule: True when an expected cell count of the 2x2 table is below 5."""
    total, successes = n1 + n2, x1 + x2
    if total == 0:
        return True
    cells = [n * k / total for n in (n1, n2) for k in (successes, total - successes)]
    return min(cells) < min_expected


# -- single-proportion and difference intervals ------------------------------------------------


def wilson_interval(
    x: ArrayLike, n: ArrayLike, alpha: float = 0.05
) -> tuple[float | FloatArray, float | FloatArray]:
    """Wilson score interval for one proportion (Wilson 1927; Newcombe 1998, Stat Med 17:857).

    ``(p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``.
    """
    xa, na = _arr(x), _arr(n)
    z = _crit(alpha)
    p = xa / na
    denom = 1 + z**2 / na
    centre = (p + z**2 / (2 * na)) / denom
    half = z * np.sqrt(p * (1 - p) / na + z**2 / (4 * na**2)) / denom
    lower = np.where(xa == 0, 0.0, centre - half)
    upper = np.where(xa == na, 1.0, centre + half)
    return _out(lower), _out(upper)


def newcombe_interval(
    x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, alpha: float = 0.05
) -> tuple[float | FloatArray, float | FloatArray]:
    """Newcombe's hybrid score interval for ``p1 - p2`` (Newcombe 1998, method 10).

    With Wilson intervals ``(l1, u1)``, ``(l2, u2)`` and ``d = p1 - p2``:
    ``L = d - sqrt((p1 - l1)^2 + (u2 - p2)^2)``, ``U = d + sqrt((u1 - p1)^2 + (p2 - l2)^2)``.
    """
    x1a, n1a, x2a, n2a = _arr(x1), _arr(n1), _arr(x2), _arr(n2)
    p1, p2 = x1a / n1a, x2a / n2a
    l1, u1 = (_arr(v) for v in wilson_interval(x1a, n1a, alpha))
    l2, u2 = (_arr(v) for v in wilson_interval(x2a, n2a, alpha))
    d = p1 - p2
    lower = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return _out(lower), _out(upper)


def wald_interval(
    x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, alpha: float = 0.05
) -> tuple[float | FloatArray, float | FloatArray]:
    """Wald interval ``d +- z sqrt(p1 q1 / n1 + p2 q2 / n2)`` (reference only: poor coverage)."""
    x1a, n1a, x2a, n2a = _arr(x1), _arr(n1), _arr(x2), _arr(n2)
    p1, p2 = x1a / n1a, x2a / n2a
    half = _crit(alpha) * np.sqrt(p1 * (1 - p1) / n1a + p2 * (1 - p2) / n2a)
    return _out(p1 - p2 - half), _out(p1 - p2 + half)


def agresti_caffo_interval(
    x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, alpha: float = 0.05
) -> tuple[float | FloatArray, float | FloatArray]:
    """Agresti & Caffo (2000, Am Stat 54:280): the Wald interval after adding one success
    and one failure to each arm."""
    return wald_interval(_arr(x1) + 1, _arr(n1) + 2, _arr(x2) + 1, _arr(n2) + 2, alpha)


def _diff_restricted_mle(
    p1: FloatArray, n1: FloatArray, p2: FloatArray, n2: FloatArray, delta: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """MLE of ``(p1, p2)`` under ``p1 - p2 = delta``: the closed-form cubic root of
    Farrington & Manning (1990, Stat Med 9:1447, eq. 8)."""
    theta = n2 / n1
    a = 1 + theta
    b = -(1 + theta + p1 + theta * p2 + delta * (theta + 2))
    c = delta**2 + delta * (2 * p1 + theta + 1) + p1 + theta * p2
    d = -p1 * delta * (1 + delta)
    v = b**3 / (27 * a**3) - b * c / (6 * a**2) + d / (2 * a)
    u = np.sign(v) * np.sqrt(np.maximum(b**2 / (9 * a**2) - c / (3 * a), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(u == 0, 0.0, v / u**3)
    w = (np.pi + np.arccos(np.clip(ratio, -1.0, 1.0))) / 3
    p1_null = np.clip(2 * u * np.cos(w) - b / (3 * a), 0.0, 1.0)
    p2_null = np.clip(p1_null - delta, 0.0, 1.0)
    return p1_null, p2_null


def diff_score_statistic(
    x1: ArrayLike,
    n1: ArrayLike,
    x2: ArrayLike,
    n2: ArrayLike,
    delta: ArrayLike,
    *,
    correction: bool = True,
) -> float | FloatArray:
    """Miettinen-Nurminen score statistic for ``H0: p1 - p2 = delta``.

    ``(p1 - p2 - delta) / sqrt((p1~ q1~ / n1 + p2~ q2~ / n2) * N / (N - 1))`` with the
    restricted MLEs ``p~`` (Miettinen & Nurminen 1985); ``correction=False`` drops ``N/(N-1)``
    (Mee 1984).
    """
    x1a, n1a, x2a, n2a, da = _arr(x1), _arr(n1), _arr(x2), _arr(n2), _arr(delta)
    p1, p2 = x1a / n1a, x2a / n2a
    q1, q2 = _diff_restricted_mle(p1, n1a, p2, n2a, da)
    var = q1 * (1 - q1) / n1a + q2 * (1 - q2) / n2a
    if correction:
        total = n1a + n2a
        var = var * total / (total - 1)
    return _out(safe_ratio(p1 - p2 - da, var))


def miettinen_nurminen_interval(
    x1: ArrayLike,
    n1: ArrayLike,
    x2: ArrayLike,
    n2: ArrayLike,
    alpha: float = 0.05,
    *,
    correction: bool = True,
) -> tuple[float | FloatArray, float | FloatArray]:
    """Miettinen-Nurminen asymptotic score interval for ``p1 - p2`` (by bisection)."""
    x1a, n1a, x2a, n2a = np.broadcast_arrays(_arr(x1), _arr(n1), _arr(x2), _arr(n2))
    crit = _crit(alpha)

    def stat(delta: FloatArray) -> FloatArray:
        return _arr(diff_score_statistic(x1a, n1a, x2a, n2a, delta, correction=correction))

    eps = 1e-12
    lower = _bisect(lambda d: stat(d) - crit, -1 + eps, 1 - eps, x1a.shape)
    upper = _bisect(lambda d: stat(d) + crit, -1 + eps, 1 - eps, x1a.shape)
    p1, p2 = x1a / n1a, x2a / n2a
    lower = np.minimum(lower, p1 - p2)
    upper = np.maximum(upper, p1 - p2)
    return _out(lower), _out(upper)


def _bisect(func: object, lo: float, hi: float, shape: tuple[int, ...]) -> FloatArray:
    """Vectorised bisection for a decreasing function: the point where it crosses 0.

    A single (scalar) problem uses Brent's method instead: same root, far fewer evaluations.
    Where the function does not change sign the bracket end it keeps is returned; callers
    test the ends themselves.
    """
    if shape == ():
        f_lo = float(func(np.asarray(lo)))  # type: ignore[operator]
        f_hi = float(func(np.asarray(hi)))  # type: ignore[operator]
        if f_lo > 0 > f_hi:
            root = brentq(
                lambda t: float(func(np.asarray(t))),  # type: ignore[operator]
                lo,
                hi,
                xtol=1e-14,
                rtol=4 * np.finfo(float).eps,
                maxiter=200,
            )
            return np.asarray(root, dtype=np.float64)
        return np.asarray(hi if f_lo > 0 else lo, dtype=np.float64)
    a = np.full(shape, lo)
    b = np.full(shape, hi)
    for _ in range(_BISECTIONS):
        mid = (a + b) / 2
        positive = func(mid) > 0  # type: ignore[operator]
        a = np.where(positive, mid, a)
        b = np.where(positive, b, mid)
    return (a + b) / 2


# -- ratio (relative lift) intervals ----------------------------------------------------------


def ratio_score_statistic(
    x1: ArrayLike,
    n1: ArrayLike,
    x2: ArrayLike,
    n2: ArrayLike,
    theta: ArrayLike,
    *,
    correction: bool = False,
) -> float | FloatArray:
    """Score statistic for ``H0: p1 / p2 = theta`` (Koopman 1984; Miettinen & Nurminen 1985).

    ``z(theta) = (p1 - theta p2) / sqrt(p1~ (1 - p1~) / n1 + theta^2 p2~ (1 - p2~) / n2)``,
    restricted MLEs ``p~`` under ``p1 = theta p2``; ``correction=True`` multiplies the variance
    by ``N / (N - 1)`` (Miettinen-Nurminen). Decreasing in ``theta``; ``z(1)`` is the pooled
    z statistic. Large positive values are evidence that ``p1 / p2 > theta``.
    """
    args = (_arr(x1), _arr(n1), _arr(x2), _arr(n2), _arr(theta))
    return _out(ratio_score(*args, correction=correction))


def koopman_interval(
    x1: ArrayLike,
    n1: ArrayLike,
    x2: ArrayLike,
    n2: ArrayLike,
    alpha: float = 0.05,
    *,
    correction: bool = False,
) -> tuple[float | FloatArray, float | FloatArray]:
    """Koopman's asymptotic score interval for ``p1 / p2``: ``{theta: |z(theta)| < z_a/2}``.

    Found by bisection on ``log theta`` in ``[-25, 25]``. The lower bound is 0 when ``x1 = 0``
    and the upper bound infinite when ``x2 = 0``. Matches R PropCIs ``riskscoreci`` and
    statsmodels ``confint_proportions_2indep(compare="ratio", method="score",
    correction=False)``.
    """
    x1a, n1a, x2a, n2a = np.broadcast_arrays(_arr(x1), _arr(n1), _arr(x2), _arr(n2))
    crit = _crit(alpha)

    def stat(log_theta: FloatArray) -> FloatArray:
        theta = np.exp(log_theta)
        return _arr(ratio_score_statistic(x1a, n1a, x2a, n2a, theta, correction=correction))

    shape = x1a.shape
    lower = np.exp(_bisect(lambda t: stat(t) - crit, -_LOG_BRACKET, _LOG_BRACKET, shape))
    upper = np.exp(_bisect(lambda t: stat(t) + crit, -_LOG_BRACKET, _LOG_BRACKET, shape))
    edge_lo = np.full(shape, -_LOG_BRACKET)
    edge_hi = np.full(shape, _LOG_BRACKET)
    lower = np.where(stat(edge_lo) - crit <= 0, 0.0, lower)
    upper = np.where(stat(edge_hi) + crit >= 0, np.inf, upper)
    return _out(lower), _out(upper)


def katz_log_interval(
    x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, alpha: float = 0.05
) -> tuple[float | FloatArray, float | FloatArray]:
    """Katz et al. (1978) log interval: ``log RR +- z sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2)``."""
    x1a, n1a, x2a, n2a = _arr(x1), _arr(n1), _arr(x2), _arr(n2)
    log_rr = np.log((x1a / n1a) / (x2a / n2a))
    half = _crit(alpha) * np.sqrt(1 / x1a - 1 / n1a + 1 / x2a - 1 / n2a)
    return _out(np.exp(log_rr - half)), _out(np.exp(log_rr + half))


def adjusted_log_interval(
    x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, alpha: float = 0.05
) -> tuple[float | FloatArray, float | FloatArray]:
    """The Katz interval after adding 0.5 to every count and total (Fagerland et al. 2015)."""
    return katz_log_interval(_arr(x1) + 0.5, _arr(n1) + 0.5, _arr(x2) + 0.5, _arr(n2) + 0.5, alpha)


# -- the comparison abkit reports -------------------------------------------------------------


def _counts(arm: ArmAggregates) -> tuple[int, int]:
    x, n = arm.y_sum, arm.units
    if n <= 0:
        raise InputError(f"arm '{arm.name}' has no units; a conversion rate needs at least one")
    if x < 0 or x > n or x != int(x):
        raise InputError(
            f"arm '{arm.name}': conversions must be a whole number in [0, units={n}], got {x}"
        )
    return int(x), int(n)


ClaimTest = Literal["score", "conditional", "unconditional"]


def _claim_test(x1: int, n1: int, x2: int, n2: int, claim: float, exact: ExactMode) -> ClaimTest:
    """Which test decides the claim: the score test unless an expected cell under the claim's
    null is below :func:`claim_min_expected` (or ``exact="always"``); then the conditional
    exact test when the smallest cell is a count of conversions, the unconditional one when
    it is a count of non-conversions (rates near 1). One restricted fit serves both rules."""
    if exact == "never":
        return "score"
    theta0 = _arr(1 + check_claim(claim))
    q1, q2 = ratio_restricted_mle(_arr(x1), _arr(n1), _arr(x2), _arr(n2), theta0)
    conversions = min(float(n1 * q1), float(n2 * q2))
    failures = min(float(n1 * (1 - q1)), float(n2 * (1 - q2)))
    if exact == "auto" and min(conversions, failures) >= claim_min_expected(n1, n2):
        return "score"
    return "unconditional" if failures < conversions else "conditional"


def claim_needs_exact(x1: int, n1: int, x2: int, n2: int, claim: float) -> bool:
    """True when an expected count *under the claim's null* is below ``10 n_max / n_min``.

    The expected conversions and non-conversions of each arm are ``n1 p1~, n1 (1 - p1~),
    n2 p2~, n2 (1 - p2~)`` with the restricted MLEs ``p~`` under ``p1 = (1 + claim) p2`` (the
    rates the score test itself uses). The threshold grows with the imbalance of the arms
    because the score test's skewness error does: by exact enumeration at lift = claim = 20%,
    its one-sided size (nominal 0.025) is 0.024-0.025 with equal arms at any expected count
    >= 5, but 0.033 / 0.031 / 0.029 / 0.027 with a 1:9 split at 6 / 12 / 24 / 60 expected
    treatment conversions, and 0.057 at 0.6. Below the threshold (10 with equal arms, 90 at
    1:9) the claim is decided by an exact test (:mod:`abkit.stats.exact_ratio`): the
    conditional one when the sparse cells are conversions, the unconditional score test when
    they are non-conversions (rates near 1, where the conditional test, bounded over the
    control rate, decides nothing).
    """
    return _claim_test(x1, n1, x2, n2, claim, "auto") != "score"


def claim_min_expected(n1: int, n2: int) -> float:
    """The expected-count threshold of :func:`claim_needs_exact`: ``10 max(n1, n2) /
    min(n1, n2)``."""
    return 10.0 * max(n1, n2) / min(n1, n2)


CLAIM_SCORE_METHOD = (
    "Koopman score test of the rate ratio at 1 + claim, one-sided at alpha/2 each way"
)
CLAIM_EXACT_METHOD = (
    "exact conditional test of the rate ratio at 1 + claim (noncentral hypergeometric given "
    "the total conversions; the odds ratio bounded through a 1 - alpha/50 upper bound of the "
    "control rate, Berger-Boos), one-sided at alpha/2 each way: small counts under the "
    "claim's null"
)


def claim_p_values(
    x1: int,
    n1: int,
    x2: int,
    n2: int,
    claim: float,
    *,
    alpha: float = 0.05,
    exact: ExactMode = "auto",
) -> tuple[float, float, bool]:
    """``(p_value_above, p_value_below, exact_used)`` of the claim check
    (:func:`claim_check_proportions`, which decides from exactly these numbers)."""
    return _claim_p_values(
        _claim_test(x1, n1, x2, n2, claim, exact), x1, n1, x2, n2, claim, alpha=alpha
    )


def _claim_p_values(
    test: ClaimTest, x1: int, n1: int, x2: int, n2: int, claim: float, *, alpha: float
) -> tuple[float, float, bool]:
    theta0 = 1 + check_claim(claim)
    if test != "score":
        exact = unconditional_ratio_p_values if test == "unconditional" else exact_ratio_p_values
        p_above, p_below = exact(x1, n1, x2, n2, theta0, alpha=alpha)
        return p_above, p_below, True
    z0 = float(ratio_score_statistic(x1, n1, x2, n2, theta0))
    return float(norm_sf(z0)), float(norm_cdf(z0)), False


def claim_check_proportions(
    x1: int,
    n1: int,
    x2: int,
    n2: int,
    claim: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    exact: ExactMode = "auto",
) -> ClaimCheck:
    """Test the claim "p1 / p2 - 1 >= claim" at ``theta0 = 1 + claim``, one-sided at alpha/2
    each way.

    Large counts: Koopman's score statistic, ``p_value_above = P(Z >= z(theta0))`` (H0: lift
    <= claim) and ``p_value_below = P(Z <= z(theta0))`` (H0: lift >= claim); the verdict then
    agrees with the two-sided Koopman interval (see :class:`~abkit.stats.results.ClaimCheck`).
    Small counts (``exact="auto"`` and :func:`claim_needs_exact`: an expected count under the
    claim's null below its threshold; or ``exact="always"``): an exact test of
    :mod:`abkit.stats.exact_ratio`, whose one-sided p-values are valid at any size (the
    conditional test when the sparse cells are conversions, the unconditional score test when
    they are non-conversions: :func:`claim_needs_exact`), and
    ``max_supported_lift`` / ``min_refuted_lift`` are its dual bounds, so the verdict still
    reads off them (they can be wider than the Koopman lift interval). ``method`` says which
    test decided. ``units_needed``: Farrington & Manning's (1990) sample size for the
    one-sided score test at level alpha/2 and the given power, taking the observed rates as
    the truth.
    """

    claim = check_claim(claim)
    theta0 = 1 + claim
    test = _claim_test(x1, n1, x2, n2, claim, exact)
    p_above, p_below, _ = _claim_p_values(test, x1, n1, x2, n2, claim, alpha=alpha)
    if test == "unconditional":
        lower, upper = unconditional_ratio_bounds(x1, n1, x2, n2, alpha=alpha)
        method = UNCONDITIONAL_METHOD
    elif test == "conditional":
        lower, upper = exact_ratio_bounds(x1, n1, x2, n2, alpha=alpha)
        method = CLAIM_EXACT_METHOD
    else:
        k_lo, k_hi = koopman_interval(x1, n1, x2, n2, alpha)
        lower, upper = float(k_lo), float(k_hi)
        method = CLAIM_SCORE_METHOD
    verdict: Verdict
    if p_above <= alpha / 2:
        verdict = "supported"
    elif p_below <= alpha / 2:
        verdict = "refuted"
    else:
        verdict = "not decided"
    p1, p2 = x1 / n1, x2 / n2
    lift = p1 / p2 - 1 if p2 > 0 else math.inf
    units: int | None = None
    if p2 > 0 and p1 != theta0 * p2 and 0 < p1 < 1 and p2 < 1:
        units = math.ceil(sample_size_ratio_test(p2, p1, theta0, alpha=alpha, power=power, sides=2))
    return ClaimCheck(
        claim=claim,
        lift=lift,
        p_value_above=p_above,
        p_value_below=p_below,
        verdict=verdict,
        max_supported_lift=lower - 1,
        min_refuted_lift=upper - 1,
        units_needed=units,
        alpha=alpha,
        level_each_side=alpha / 2,
        method=method,
    )


def compare_proportions(
    control: ArmAggregates,
    treatment: ArmAggregates,
    *,
    alpha: float = 0.05,
    claim: float | None = None,
    exact: ExactMode = "auto",
    metric: str = "conversion",
) -> Comparison:
    """Compare two conversion rates with abkit's defaults (see the module docstring).

    ``p_value`` and ``significant`` always come from the pooled z-test, the dual of the
    Koopman lift interval and of the claim check. ``exact="auto"`` adds Fisher's exact p-value
    (``exact_p_value``, with a note) when an expected cell count is below 5; ``"always"`` adds
    it for every table, ``"never"`` never. When the exact and the score test disagree at
    ``alpha`` a note says so. ``p_adjusted`` is set to the raw p-value here;
    :func:`abkit.stats.multiplicity.adjust` corrects it over the family.
    """
    x1, n1 = _counts(treatment)
    x2, n2 = _counts(control)
    p1, p2 = x1 / n1, x2 / n2
    p_value = float(pooled_z_test(x1, n1, x2, n2)[1])
    small = needs_exact(x1, n1, x2, n2)
    use_exact = exact == "always" or (exact == "auto" and small)
    notes: list[str] = []
    exact_p: float | None = None
    if use_exact:
        exact_p = fisher_exact_test(x1, n1, x2, n2)
        reason = "small counts (an expected cell count is below 5)" if small else "requested"
        notes.append(
            f"{reason}: Fisher's exact p = {exact_p:.3g} is shown next to the score-test "
            f"p = {p_value:.3g}; the p-value and intervals stay score-based so they agree"
        )
        if (exact_p <= alpha) != (p_value <= alpha):
            notes.append(
                f"the exact test (Fisher p = {exact_p:.3g}) and the score test (p = "
                f"{p_value:.3g}) disagree at alpha {alpha:g}: with counts this small the "
                "verdict is fragile; collect more data before acting on it"
            )
    d_lo, d_hi = newcombe_interval(x1, n1, x2, n2, alpha)
    r_lo, r_hi = koopman_interval(x1, n1, x2, n2, alpha)
    if p2 > 0:
        lift = p1 / p2 - 1
    else:
        lift = math.inf if p1 > 0 else math.nan
        notes.append(f"control '{control.name}' has no conversions: the lift is undefined")
    claim_check = (
        claim_check_proportions(x1, n1, x2, n2, claim, alpha=alpha, exact=exact)
        if claim is not None
        else None
    )
    if claim_check is not None and claim_check.method in (CLAIM_EXACT_METHOD, UNCONDITIONAL_METHOD):
        notes.append(
            f"small counts under the claim's null (an expected count is below "
            f"{claim_min_expected(n1, n2):.3g}, 10 x the arms' size ratio): the claim "
            f"{claim_check.claim:+.0%} is decided by an exact test of the rate ratio "
            f"(p = {claim_check.p_value_above:.3g} for lift <= claim, "
            f"{claim_check.p_value_below:.3g} for lift >= claim: {claim_check.verdict}); its "
            "bounds can be wider than the score-based lift interval shown"
        )
    return Comparison(
        metric=metric,
        control=control.name,
        treatment=treatment.name,
        control_value=p2,
        treatment_value=p1,
        diff=p1 - p2,
        diff_ci_lower=float(d_lo),
        diff_ci_upper=float(d_hi),
        lift=lift,
        lift_ci_lower=float(r_lo) - 1,
        lift_ci_upper=float(r_hi) - 1,
        p_value=p_value,
        p_adjusted=p_value,
        significant=p_value <= alpha,
        alpha=alpha,
        method="pooled two-proportion z-test",
        diff_ci_method="Newcombe hybrid score",
        lift_ci_method="Koopman asymptotic score (rate ratio)",
        exact=use_exact,
        exact_p_value=exact_p,
        exact_method="Fisher's exact test (two-sided, conditional)" if use_exact else None,
        claim=claim_check,
        notes=tuple(notes),
    )
