"""Bayesian view of two conversion rates: exact Beta-Binomial posteriors.

With a ``Beta(a0, b0)`` prior (default ``Beta(1, 1)``, uniform) and ``x`` conversions among
``n`` units, an arm's rate has posterior ``Beta(a0 + x, b0 + n - x)``. abkit reports

* ``P(p_T > p_C)``, computed exactly: for integer ``a_T`` (Miller 2015, "Formulas for Bayesian
  A/B testing"; Cook 2005)

      P(X_T > X_C) = sum_{i=0}^{a_T - 1} B(a_C + i, b_C + b_T)
                                       / ((b_T + i) B(1 + i, b_T) B(a_C, b_C))

  summed in log space over whichever of the four equivalent parameters is the smallest integer;
  otherwise (or beyond 2 million terms) by adaptive numerical integration of
  ``f_T(p) F_C(p)`` over the posterior's support. Never Monte Carlo.
* the expected loss of each choice, ``E[max(p_C - p_T, 0)]`` for shipping the treatment (and the
  mirror for keeping the control), exact by the identity
  ``E[X 1(X > Y)] = a/(a+b) P(X' > Y)`` with ``X' ~ Beta(a + 1, b)`` (Stucchio 2015, "Bayesian
  A/B Testing at VWO").

These are statements about a posterior under a chosen prior. They are **not p-values** and do
not control a false-positive rate; a probability of 0.95 does not mean "significant at 5%".
"""

from __future__ import annotations

import numpy as np

from abkit.errors import InputError
from abkit.stats.results import BayesResult

_MAX_TERMS = 2_000_000


def _is_whole(value: float) -> bool:
    return float(value).is_integer() and value >= 1


def _miller_sum(a_b: float, b_b: float, a_a: float, b_a: float) -> float:
    """``P(X_B > X_A)`` for integer ``a_b`` (the formula in the module docstring)."""
    from scipy import special  # scipy is imported only when a Bayesian comparison runs

    i = np.arange(int(a_b), dtype=np.float64)
    log_terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(np.exp(special.logsumexp(log_terms)))


def _integrate(a1: float, b1: float, a2: float, b2: float) -> float:
    """``P(X1 > X2) = int f1(p) F2(p) dp`` by adaptive quadrature over X1's support."""
    from scipy import integrate, stats

    first = stats.beta(a1, b1)
    second = stats.beta(a2, b2)
    lo, hi = first.ppf(1e-15), first.isf(1e-15)
    mean = first.mean()
    value, _ = integrate.quad(
        lambda p: first.pdf(p) * second.cdf(p),
        lo,
        hi,
        points=[mean],
        limit=200,
        epsabs=1e-13,
        epsrel=1e-10,
    )
    return float(min(max(value, 0.0), 1.0))


def prob_greater(a1: float, b1: float, a2: float, b2: float) -> float:
    """``P(X1 > X2)`` for independent ``X1 ~ Beta(a1, b1)``, ``X2 ~ Beta(a2, b2)``, exactly.

    Uses whichever exact sum has the fewest terms (by the symmetries ``P(X1 > X2) = 1 -
    P(X2 > X1)`` and ``X ~ Beta(a, b) <=> 1 - X ~ Beta(b, a)``), else numerical integration.
    """
    if min(a1, b1, a2, b2) <= 0:
        raise InputError("Beta parameters must be positive")
    options: list[tuple[float, object]] = []
    if _is_whole(a1):  # sum over a1: P(X1 > X2) directly
        options.append((a1, lambda: _miller_sum(a1, b1, a2, b2)))
    if _is_whole(a2):  # 1 - P(X2 > X1)
        options.append((a2, lambda: 1 - _miller_sum(a2, b2, a1, b1)))
    if _is_whole(b2):  # P(1 - X2 > 1 - X1), 1 - X2 ~ Beta(b2, a2)
        options.append((b2, lambda: _miller_sum(b2, a2, b1, a1)))
    if _is_whole(b1):  # 1 - P(1 - X1 > 1 - X2)
        options.append((b1, lambda: 1 - _miller_sum(b1, a1, b2, a2)))
    options = [o for o in options if o[0] <= _MAX_TERMS]
    if options:
        _, compute = min(options, key=lambda o: o[0])
        value = compute()  # type: ignore[operator]
    else:
        value = _integrate(a1, b1, a2, b2)
    return float(min(max(value, 0.0), 1.0))


def expected_loss(a_keep: float, b_keep: float, a_other: float, b_other: float) -> float:
    """``E[max(X_other - X_keep, 0)]``: what choosing ``keep`` loses when ``other`` is better."""
    mean_other = a_other / (a_other + b_other)
    mean_keep = a_keep / (a_keep + b_keep)
    loss = mean_other * prob_greater(
        a_other + 1, b_other, a_keep, b_keep
    ) - mean_keep * prob_greater(a_other, b_other, a_keep + 1, b_keep)
    return max(loss, 0.0)


def beta_binomial_comparison(
    x_control: int,
    n_control: int,
    x_treatment: int,
    n_treatment: int,
    *,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
) -> BayesResult:
    """``P(p_T > p_C)`` and both expected losses under independent ``Beta`` priors."""
    if prior_alpha <= 0 or prior_beta <= 0:
        raise InputError(
            f"the Beta prior needs positive parameters, got Beta({prior_alpha}, {prior_beta})"
        )
    for x, n in ((x_control, n_control), (x_treatment, n_treatment)):
        if not 0 <= x <= n:
            raise InputError(f"conversions must be in [0, units], got {x} of {n}")
    a_t, b_t = prior_alpha + x_treatment, prior_beta + n_treatment - x_treatment
    a_c, b_c = prior_alpha + x_control, prior_beta + n_control - x_control
    prob = prob_greater(a_t, b_t, a_c, b_c)
    method = "exact Beta-Binomial (sum of Beta functions or numerical integration)"
    return BayesResult(
        prob_treatment_better=prob,
        expected_loss_treatment=expected_loss(a_t, b_t, a_c, b_c),
        expected_loss_control=expected_loss(a_c, b_c, a_t, b_t),
        prior_alpha=prior_alpha,
        prior_beta=prior_beta,
        method=method,
    )


__all__ = ["beta_binomial_comparison", "expected_loss", "prob_greater"]
