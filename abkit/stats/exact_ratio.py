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
    from scipy import stats

    """One-sided ``1 - gamma`` Clopper-Pearson upper bound of the control rate."""
    if x2 >= n2:
        return 1.0
    return float(stats.beta.ppf(1 - gamma, x2 + 1, n2 - x2))


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
