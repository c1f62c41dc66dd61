"""An exact (valid at any size) test of the rate ratio ``p1 / p2 = theta`` for small counts.

Used by the claim check (:func:`abkit.stats.proportions.claim_check_proportions`) when an
expected count under the claim's null is small, where Koopman's score test is liberal (with a
1000:9000 split and control rate 0.0005 its one-sided size at lift = claim is about 0.057
against a nominal 0.025).

**The test.** Given the total number of conversions ``s = x1 + x2``, ``X1`` follows Fisher's
noncentral hypergeometric distribution with the odds ratio
``psi = p1 (1 - p2) / (p2 (1 - p1))``:
``P(X1 = k | s) ∝ C(n1, k) C(n2, s - k) psi^k`` (Cornfield 1956; Gart 1970; the conditional
test is the one behind Fisher's exact test and R's ``fisher.test(or = psi)``). A rate-ratio
null fixes the odds ratio only up to the nuisance rate ``p2``: under ``p1 = theta p2`` it is
``psi(theta, p2) = theta (1 - p2) / (1 - theta p2)``, which is ``theta`` at ``p2 -> 0`` and
moves away from 1 as ``p2`` grows. Since ``P_psi(X1 >= x | s)`` increases with ``psi``:

* H0: ratio >= theta (reject for small ``X1``) with ``theta >= 1`` implies ``psi >= theta``,
  so ``P_theta(X1 <= x1 | s)`` is a valid p-value: no nuisance parameter is left. Likewise
  H0: ratio <= theta with ``theta <= 1`` uses ``P_theta(X1 >= x1 | s)``.
* H0: ratio <= theta with ``theta > 1`` only bounds ``psi <= psi(theta, p2)``, unbounded in
  ``p2``. Berger & Boos (1994, JASA 89:1012): with ``U`` the one-sided ``1 - gamma``
  Clopper-Pearson upper bound of ``p2`` from the control arm,
  ``p = min(1, P_{psi(theta, U)}(X1 >= x1 | s) + gamma)`` is a valid p-value (the bound misses
  ``p2`` with probability at most ``gamma``; when it covers it, the conditional tail at
  ``psi(theta, U)`` is at least the tail at the true odds ratio). Symmetrically for
  H0: ratio >= theta with ``theta < 1`` (``psi(theta, p2)`` then *decreases* in ``p2``).
  ``gamma = alpha / 50`` (0.001 at alpha = 0.05, Berger & Boos's choice); for rare
  conversions ``U`` is small, ``psi(theta, U)`` is barely above ``theta`` and the test costs
  little more than ``gamma``.

Each one-sided p-value is valid at every size (conservative, as exact conditional tests are);
the two are inverted into confidence bounds for the ratio with the same rule, so a claim's
verdict and its bounds agree. At ``theta = 1`` both sides are Fisher's one-sided exact tests.
"""

from __future__ import annotations

import math

import numpy as np

from abkit.stats.dist import brentq
from abkit.stats.score import ratio_score

__all__ = [
    "NUISANCE_GAMMA_PER_ALPHA",
    "conditional_tails",
    "exact_ratio_bounds",
    "exact_ratio_p_values",
    "odds_ratio_at",
]

NUISANCE_GAMMA_PER_ALPHA = 1 / 50
"""``gamma = alpha / 50``: the part of alpha spent on the nuisance rate's confidence bound."""

_LOG_PSI_BRACKET = 60.0


def _log_weights(x_range: np.ndarray, n1: int, n2: int, s: int) -> np.ndarray:
    from scipy import special  # only small counts reach the exact test

    k = x_range.astype(np.float64)
    return (
        special.gammaln(n1 + 1)
        - special.gammaln(k + 1)
        - special.gammaln(n1 - k + 1)
        + special.gammaln(n2 + 1)
        - special.gammaln(s - k + 1)
        - special.gammaln(n2 - s + k + 1)
    )


def conditional_tails(x1: int, n1: int, x2: int, n2: int, psi: float) -> tuple[float, float]:
    from scipy import special

    """``(P(X1 >= x1 | s), P(X1 <= x1 | s))`` under Fisher's noncentral hypergeometric law
    with odds ratio ``psi`` (0 and infinity allowed), ``s = x1 + x2``."""
    s = x1 + x2
    lo, hi = max(0, s - n2), min(n1, s)
    if psi == 0:
        return (1.0 if x1 <= lo else 0.0), 1.0
    if math.isinf(psi):
        return 1.0, (1.0 if x1 >= hi else 0.0)
    ks = np.arange(lo, hi + 1)
    logw = _log_weights(ks, n1, n2, s) + ks * math.log(psi)
    total = special.logsumexp(logw)
    upper = float(np.exp(special.logsumexp(logw[x1 - lo :]) - total))
    lower = float(np.exp(special.logsumexp(logw[: x1 - lo + 1]) - total))
    return min(upper, 1.0), min(lower, 1.0)


def odds_ratio_at(theta: float, p2: float) -> float:
    """``psi(theta, p2) = theta (1 - p2) / (1 - theta p2)``: the odds ratio when ``p1 = theta
    p2`` (infinite once ``theta p2 >= 1``)."""
    if theta * p2 >= 1:
        return math.inf
    return theta * (1 - p2) / (1 - theta * p2)


def _ratio_from_odds(psi: float, p2: float) -> float:
    """The inverse of :func:`odds_ratio_at` in ``theta``: ``psi / (1 - p2 + psi p2)``."""
    if math.isinf(psi):
        return 1 / p2 if p2 > 0 else math.inf
    return psi / (1 - p2 + psi * p2)


def _control_upper_bound(x2: int, n2: int, gamma: float) -> float:
    """One-sided ``1 - gamma`` Clopper-Pearson upper bound of the control rate."""
    from scipy import stats

    if x2 >= n2:
        return 1.0
    return float(stats.beta.ppf(1 - gamma, x2 + 1, n2 - x2))


def _control_lower_bound(x2: int, n2: int, gamma: float) -> float:
    """One-sided ``1 - gamma`` Clopper-Pearson lower bound of the control rate."""
    from scipy import stats

    if x2 <= 0:
        return 0.0
    return float(stats.beta.ppf(gamma, x2, n2 - x2 + 1))


def exact_ratio_p_values(
    x1: int, n1: int, x2: int, n2: int, theta: float, *, alpha: float = 0.05
) -> tuple[float, float]:
    """``(p_above, p_below)``: exact one-sided p-values of H0: ``p1 / p2 <= theta`` and of
    H0: ``p1 / p2 >= theta`` (module docstring; ``gamma = alpha / 50``)."""
    gamma = alpha * NUISANCE_GAMMA_PER_ALPHA
    if theta <= 1:
        p_above = conditional_tails(x1, n1, x2, n2, theta)[0]
    else:
        u = _control_upper_bound(x2, n2, gamma)
        tail = conditional_tails(x1, n1, x2, n2, odds_ratio_at(theta, u))[0]
        p_above = min(1.0, tail + gamma)
    if theta >= 1:
        p_below = conditional_tails(x1, n1, x2, n2, theta)[1]
    else:
        u = _control_upper_bound(x2, n2, gamma)
        tail = conditional_tails(x1, n1, x2, n2, odds_ratio_at(theta, u))[1]
        p_below = min(1.0, tail + gamma)
    return p_above, p_below


def _solve_psi(x1: int, n1: int, x2: int, n2: int, target: float, side: int) -> float:
    """The odds ratio where the upper (``side=0``) or lower (``side=1``) conditional tail
    equals ``target``; the tail is monotone in ``log psi``."""

    def f(log_psi: float) -> float:
        return conditional_tails(x1, n1, x2, n2, math.exp(log_psi))[side] - target

    lo, hi = -_LOG_PSI_BRACKET, _LOG_PSI_BRACKET
    f_lo, f_hi = f(lo), f(hi)
    if side == 0:  # increasing: from ~0 to 1
        if f_lo >= 0:
            return 0.0
        if f_hi <= 0:
            return math.inf
    else:  # decreasing: from 1 to ~0
        if f_hi >= 0:
            return math.inf
        if f_lo <= 0:
            return 0.0
    return math.exp(brentq(f, lo, hi, xtol=1e-12, rtol=1e-12, maxiter=200))


def exact_ratio_bounds(
    x1: int, n1: int, x2: int, n2: int, *, alpha: float = 0.05
) -> tuple[float, float]:
    """``(lower, upper)`` bounds of ``p1 / p2`` dual to :func:`exact_ratio_p_values` at
    ``alpha / 2`` each side: ``lower = inf {theta: p_above(theta) > alpha / 2}``, ``upper =
    sup {theta: p_below(theta) > alpha / 2}``; so a claim ``theta0`` has ``p_above <= alpha/2``
    exactly when ``theta0 <= lower`` (up to the root finder's tolerance)."""
    a = alpha / 2
    gamma = alpha * NUISANCE_GAMMA_PER_ALPHA
    s = x1 + x2
    lo_support, hi_support = max(0, s - n2), min(n1, s)
    u = _control_upper_bound(x2, n2, gamma)
    above_at_1, below_at_1 = conditional_tails(x1, n1, x2, n2, 1.0)
    if x1 <= lo_support:
        lower = 0.0
    elif above_at_1 > a:
        lower = _solve_psi(x1, n1, x2, n2, a, 0)
    elif above_at_1 + gamma > a:
        lower = 1.0
    else:
        lower = _ratio_from_odds(_solve_psi(x1, n1, x2, n2, a - gamma, 0), u)
    if x1 >= hi_support:
        upper = math.inf
    elif below_at_1 > a:
        upper = _solve_psi(x1, n1, x2, n2, a, 1)
    elif below_at_1 + gamma > a:
        upper = 1.0
    else:
        upper = _ratio_from_odds(_solve_psi(x1, n1, x2, n2, a - gamma, 1), u)
    return lower, upper


# -- conversion rates near 1: the exact unconditional score test --------------------------------

UNCONDITIONAL_METHOD = (
    "exact unconditional score test of the rate ratio at 1 + claim (the Koopman score's "
    "tails maximised over the control rate within its 1 - alpha/50 Clopper-Pearson interval, "
    "Berger-Boos), one-sided at alpha/2 each way: few non-conversions under the claim's null"
)
"""The claim check's method when the sparse cells are the non-conversions (rates near 1)."""

_GRID = 129  # control rates at which the tails are evaluated (plus the observed rate)
_TAIL_CUT = 1e-13  # binomial mass left out of each arm's range (added back to every tail)


def _f(value: float) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _arm_range(n: int, rates: np.ndarray) -> np.ndarray:
    """The counts ``0..n`` holding all but ``_TAIL_CUT`` of the mass at every rate given."""
    from scipy import stats

    low = int(np.min(stats.binom.ppf(_TAIL_CUT, n, rates)))
    high = int(np.max(stats.binom.isf(_TAIL_CUT, n, rates)))
    return np.arange(max(low - 1, 0), min(high + 1, n) + 1)


def _control_thresholds(
    a: np.ndarray, n1: int, n2: int, theta: float, level: float, *, upper: bool
) -> np.ndarray:
    """For each treatment count ``a``: the largest control count ``b`` with ``z(a, b) >= level``
    (``upper``; -1 when none), or the smallest with ``z(a, b) <= level`` (else; ``n2 + 1``
    when none), by bisection over ``b`` for all ``a`` at once.

    Koopman's ``z`` falls as the control count grows (its numerator ``a/n1 - theta b/n2``
    does, and the restricted variance moves with it; checked on every table of the tests
    against the full sum), so each region is a run of control counts from 0, or up to
    ``n2``, and a tail is a binomial CDF at the threshold."""
    low = np.full(a.size, -1, dtype=np.int64)  # upper: z(a, low) >= level (-1: virtual)
    high = np.full(a.size, n2 + 1, dtype=np.int64)  # upper: z(a, high) < level (virtual)
    while True:
        open_ = high - low > 1
        if not open_.any():
            break
        mid = np.clip((low + high) // 2, 0, n2)
        z = ratio_score(a.astype(np.float64), _f(n1), mid.astype(np.float64), _f(n2), _f(theta))
        inside = z >= level if upper else z > level  # "inside": still at or left of the cut
        low = np.where(open_ & inside, mid, low)
        high = np.where(open_ & ~inside, mid, high)
    return low if upper else high


def unconditional_ratio_p_values(
    x1: int, n1: int, x2: int, n2: int, theta: float, *, alpha: float = 0.05
) -> tuple[float, float]:
    """``(p_above, p_below)`` of H0: ``p1 / p2 <= theta`` and H0: ``p1 / p2 >= theta`` by the
    exact unconditional test of Koopman's score statistic ``z`` (Chan 1998, Stat Med 17:1403;
    Berger & Boos 1994).

    ``p_above = sup P(z(X1, X2) >= z_obs) + gamma`` over the null's least favourable points
    ``p1 = min(theta p2, 1)`` (the tail grows with ``p1``) for control rates ``p2`` in the
    two-sided ``1 - gamma`` Clopper-Pearson interval of ``x2 / n2``; ``p_below`` likewise with
    ``z <= z_obs`` at ``p1 = theta p2`` (``p2 <= 1 / theta``). Valid at any size up to the
    grid of ``p2`` (``_GRID`` points and the observed rate) and the treatment counts left out
    (``_TAIL_CUT`` of the mass each side, added back). Unlike the conditional test, its power
    does not vanish when few users fail to convert: there the odds ratio of a rate-ratio null
    swings with ``p2`` and the conditional test, bounded over it, decides nothing.
    """
    gamma = alpha * NUISANCE_GAMMA_PER_ALPHA
    # two-sided 1 - gamma: each one-sided bound at gamma / 2
    low, high = _control_lower_bound(x2, n2, gamma / 2), _control_upper_bound(x2, n2, gamma / 2)
    p2 = np.unique(np.concatenate([np.linspace(low, high, _GRID), [x2 / n2]]))
    p1_above = np.minimum(theta * p2, 1.0)
    below_ok = theta * p2 <= 1.0
    a = _arm_range(n1, p1_above)
    z_obs = float(ratio_score(_f(x1), _f(n1), _f(x2), _f(n2), _f(theta)))
    tol = 1e-9 * max(1.0, abs(z_obs)) if math.isfinite(z_obs) else 0.0
    from scipy import stats

    # P(z >= z_obs) = sum_a P(X1 = a) P(X2 <= t_up(a)); P(z <= z_obs) likewise with X2 >= t_dn
    t_up = _control_thresholds(a, n1, n2, theta, z_obs - tol, upper=True)
    t_dn = _control_thresholds(a, n1, n2, theta, z_obs + tol, upper=False)
    pa = stats.binom.pmf(a[None, :], n1, p1_above[:, None])  # [grid, a]
    tail_above = (pa * stats.binom.cdf(t_up[None, :], n2, p2[:, None])).sum(axis=1)
    tail_below = (pa * stats.binom.sf(t_dn[None, :] - 1, n2, p2[:, None])).sum(axis=1)
    tail_below = tail_below[below_ok]
    slack = 2 * _TAIL_CUT + gamma
    p_above = min(1.0, float(tail_above.max()) + slack)
    p_below = min(1.0, float(tail_below.max()) + slack) if tail_below.size else slack
    return p_above, p_below


def unconditional_ratio_bounds(
    x1: int, n1: int, x2: int, n2: int, *, alpha: float = 0.05
) -> tuple[float, float]:
    """``(lower, upper)`` bounds of ``p1 / p2`` dual to :func:`unconditional_ratio_p_values`
    at ``alpha / 2`` each side: where the side's p-value crosses ``alpha / 2``, by bisection on
    ``log theta`` (to a relative 1e-7) from a bracket grown out of the estimate (by factors
    1.1, 1.21, 1.46, ...); 0 or infinity when a side's p-value stays above ``alpha / 2``."""
    a = alpha / 2

    def above_a(theta: float, which: int) -> bool:
        return unconditional_ratio_p_values(x1, n1, x2, n2, theta, alpha=alpha)[which] > a

    def bound(which: int, start: float, outward: float) -> float:
        # walk outward (``outward`` < 1: down, for the lower bound) until the p-value is at or
        # below a, and inward until it is above, then bisect between the two
        edge = 1e-12 if outward < 1 else 1e12
        start = min(max(start, 1e-12), 1e12)
        out_theta, in_theta = start, start
        if above_a(start, which):
            while above_a(out_theta, which):
                if (out_theta <= edge) if outward < 1 else (out_theta >= edge):
                    return 0.0 if outward < 1 else math.inf
                out_theta *= outward
                outward *= outward  # 1.1, 1.21, 1.46, ...: few steps even from far away
        else:
            inward = 1 / outward
            while not above_a(in_theta, which):
                if (in_theta >= 1e12) if outward < 1 else (in_theta <= 1e-12):
                    return in_theta
                in_theta *= inward
                inward *= inward
        lo, hi = math.log(in_theta), math.log(out_theta)
        while abs(hi - lo) > 1e-7:
            mid = (lo + hi) / 2
            if above_a(math.exp(mid), which):
                lo = mid
            else:
                hi = mid
        return math.exp((lo + hi) / 2)

    estimate = (x1 / n1) / (x2 / n2) if x1 > 0 and x2 > 0 else 1.0
    lower = bound(0, estimate, 1 / 1.1)
    upper = bound(1, estimate, 1.1)
    return lower, upper
