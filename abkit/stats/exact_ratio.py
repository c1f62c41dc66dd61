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


# -- conversion rates near 1: the exact unconditional score test --------------------------------

UNCONDITIONAL_METHOD = (
    "exact unconditional score test of the rate ratio at 1 + claim (the Koopman score's "
    "tails maximised over the control rate within its 1 - alpha/50 Clopper-Pearson interval, "
    "Berger-Boos), one-sided at alpha/2 each way: few non-conversions under the claim's null"
)
"""The claim check's method when the sparse cells are the non-conversions (rates near 1)."""

_GRID = 64  # control rates at which the tails are evaluated (plus the interval's ends)
_TAIL_CUT = 1e-13  # binomial mass left out of each arm's range (added back to every tail)


def _control_interval(x2: int, n2: int, gamma: float) -> tuple[float, float]:
    """Two-sided ``1 - gamma`` Clopper-Pearson interval of the control rate."""
    from scipy import stats

    low = 0.0 if x2 <= 0 else float(stats.beta.ppf(gamma / 2, x2, n2 - x2 + 1))
    high = 1.0 if x2 >= n2 else float(stats.beta.ppf(1 - gamma / 2, x2 + 1, n2 - x2))
    return low, high


def _arm_range(n: int, rates: np.ndarray) -> np.ndarray:
    """The counts ``0..n`` holding all but ``_TAIL_CUT`` of the mass at every rate given."""
    from scipy import stats

    low = int(np.min(stats.binom.ppf(_TAIL_CUT, n, rates)))
    high = int(np.max(stats.binom.isf(_TAIL_CUT, n, rates)))
    return np.arange(max(low - 1, 0), min(high + 1, n) + 1)


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
    grid of ``p2`` (``_GRID`` points and the ends) and the ``_TAIL_CUT`` mass per arm, which is
    added back. Unlike the conditional test, its power does not vanish when few users fail to
    convert: there the odds ratio of a rate-ratio null swings with ``p2`` and the conditional
    test, bounded over it, decides nothing.
    """
    from abkit.stats.proportions import ratio_score_statistic

    gamma = alpha * NUISANCE_GAMMA_PER_ALPHA
    low, high = _control_interval(x2, n2, gamma)
    p2 = np.unique(np.concatenate([np.linspace(low, high, _GRID), [x2 / n2]]))
    p1_above = np.minimum(theta * p2, 1.0)
    below_ok = theta * p2 <= 1.0
    a = _arm_range(n1, p1_above)
    b = _arm_range(n2, p2)
    z = np.asarray(ratio_score_statistic(a[:, None], n1, b[None, :], n2, theta), dtype=np.float64)
    z_obs = float(ratio_score_statistic(x1, n1, x2, n2, theta))
    tol = 1e-9 * max(1.0, abs(z_obs)) if math.isfinite(z_obs) else 0.0
    upper = (z >= z_obs - tol).astype(np.float64)
    lower = (z <= z_obs + tol).astype(np.float64)
    from scipy import stats

    pa = stats.binom.pmf(a[None, :], n1, p1_above[:, None])  # [grid, a]
    pb = stats.binom.pmf(b[None, :], n2, p2[:, None])  # [grid, b]
    tail_above = np.einsum("ga,ab,gb->g", pa, upper, pb)
    tail_below = np.einsum("ga,ab,gb->g", pa, lower, pb)[below_ok]
    slack = 2 * _TAIL_CUT + gamma
    p_above = min(1.0, float(tail_above.max()) + slack)
    p_below = min(1.0, float(tail_below.max()) + slack) if tail_below.size else slack
    return p_above, p_below


def unconditional_ratio_bounds(
    x1: int, n1: int, x2: int, n2: int, *, alpha: float = 0.05
) -> tuple[float, float]:
    """``(lower, upper)`` bounds of ``p1 / p2`` dual to :func:`unconditional_ratio_p_values`
    at ``alpha / 2`` each side, found by bisection on ``log theta`` (the p-values move with
    ``theta`` by steps, so a bound is where the side's p-value crosses ``alpha / 2``)."""
    a = alpha / 2

    def side(theta: float, which: int) -> float:
        return unconditional_ratio_p_values(x1, n1, x2, n2, theta, alpha=alpha)[which] - a

    def crossing(which: int, inside: float, outside: float) -> float:
        # ``inside``: the p-value is above a there; ``outside``: at or below it
        lo, hi = math.log(inside), math.log(outside)
        for _ in range(60):
            mid = (lo + hi) / 2
            if side(math.exp(mid), which) > 0:
                lo = mid
            else:
                hi = mid
            if abs(hi - lo) < 1e-10:
                break
        return math.exp((lo + hi) / 2)

    # No shortcut at the edges of the support (x1 = n1 still bounds the ratio when the
    # control rate is surely high): each bound is searched from the estimate outwards.
    estimate = (x1 / n1) / (x2 / n2) if x2 > 0 and x1 > 0 else 1.0
    lower = 0.0
    far = estimate
    while side(far, 0) > 0 and far > 1e-12:
        far /= 4
    if side(far, 0) <= 0:
        inside = far
        while side(inside, 0) <= 0 and inside < 1e12:
            inside *= 1.25
        lower = crossing(0, inside, far) if side(inside, 0) > 0 else inside
    upper = math.inf
    far = estimate
    while side(far, 1) > 0 and far < 1e12:
        far *= 4
    if side(far, 1) <= 0:
        inside = far
        while side(inside, 1) <= 0 and inside > 1e-12:
            inside /= 1.25
        upper = crossing(1, inside, far) if side(inside, 1) > 0 else inside
    return lower, upper
