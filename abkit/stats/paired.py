"""Paired inference on per-unit vectors: two models scored on the same users, two policies
evaluated on the same logged rounds.

Pairing removes the between-user variance that two models share (a user who is easy for one
model is usually easy for the other), so a paired interval for ``candidate - baseline`` is
narrower than the unpaired (Welch) interval on the same numbers whenever the per-user values
are positively correlated: ``Var(mean(c - b)) = (s_b² + s_c² - 2 cov(b, c)) / n``.

Everything here works on plain ``numpy`` arrays in the same unit order (``baseline[i]`` and
``candidate[i]`` belong to the same user or round); this module knows nothing of SQL or output.

Methods (each function's docstring gives its formula):

* :func:`paired_t` / :func:`one_sample_t` - Student t on the per-unit differences.
* :func:`paired_bootstrap` - nonparametric bootstrap resampling units with replacement,
  the same resampled units for both vectors (that is what makes it paired); percentile
  intervals for the difference and the relative difference.
* :func:`fieller_ratio` / :func:`relative_difference_interval` - the interval for
  ``mean(c) / mean(b) - 1`` by Fieller's theorem (default) or the delta method.
* :func:`cohens_dz` - standardised effect size of paired data.
* :func:`mcnemar` - McNemar's test for paired binary outcomes (exact binomial or chi-square).
* :func:`welch_interval` - the unpaired interval on the same numbers, to show what pairing buys.
* :func:`compare_paired` - all of the above for one metric, as one result.
* :func:`paired_offpolicy_difference` - the difference of two policies' off-policy value
  estimates on the same logs, with an influence-function (delta-method) interval whose
  variance is clustered by randomisation unit (:func:`cluster_codes`,
  :func:`clustered_covariance`).
* :func:`bootstrap_one_sided` - a one-sided bootstrap test and the upper bound that agrees
  with it exactly (the gate's bootstrap variant).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from abkit.errors import InputError
from abkit.stats.dist import chi2_sf, norm_ppf, norm_sf, t_cdf, t_ppf, t_sf

__all__ = [
    "Alternative",
    "BootstrapResult",
    "McNemarResult",
    "OffPolicyDifference",
    "OffPolicyEstimator",
    "PairedComparison",
    "RatioInterval",
    "TTestResult",
    "bootstrap_one_sided",
    "bootstrap_upper_bound",
    "cluster_codes",
    "clustered_covariance",
    "cohens_dz",
    "compare_paired",
    "fieller_ratio",
    "mcnemar",
    "mcnemar_table",
    "one_sample_t",
    "paired_bootstrap",
    "paired_offpolicy_difference",
    "paired_t",
    "paired_values",
    "relative_difference_interval",
    "resampled_means",
    "welch_interval",
]

Alternative = Literal["two-sided", "less", "greater"]
OffPolicyEstimator = Literal["ips", "snips", "dr"]
McNemarMethod = Literal["exact", "chi2", "chi2-corrected"]
RatioMethod = Literal["fieller", "delta"]

# Elements of one bootstrap block (resamples x units); bounds memory to ~32 MB of int64.
_BLOCK_ELEMENTS = 1 << 22

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]


class _Dict:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


# --------------------------------------------------------------------------------------------
# validation


def _vector(values: ArrayLike, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InputError(
            f"{name}: expected a 1-D vector of per-unit values, got shape {array.shape}"
        )
    if array.size and not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise InputError(f"{name}: value {array[bad]} at position {bad} is not a finite number")
    return array


def paired_values(
    baseline: ArrayLike, candidate: ArrayLike, *, minimum: int = 2
) -> tuple[FloatArray, FloatArray]:
    """Two per-unit vectors of the same length (at least ``minimum``), as finite floats."""
    b = _vector(baseline, "baseline")
    c = _vector(candidate, "candidate")
    if b.size != c.size:
        raise InputError(
            f"paired vectors differ in length: baseline has {b.size} units, candidate {c.size}"
        )
    if b.size < minimum:
        raise InputError(f"a paired comparison needs at least {minimum} units, got {b.size}")
    return b, c


def _confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    return confidence


def _alternative(alternative: str) -> Alternative:
    if alternative not in ("two-sided", "less", "greater"):
        raise InputError(
            f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}"
        )
    return alternative  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# t


@dataclass(frozen=True, kw_only=True)
class TTestResult(_Dict):
    """A one-sample t test and interval on per-unit values (paired: on the differences).

    ``null`` is the hypothesised mean; ``ci_low``/``ci_high`` bound the mean itself (an
    infinite end for a one-sided interval).
    """

    n: int
    mean: float
    sd: float
    standard_error: float
    null: float
    t_statistic: float
    df: int
    p_value: float
    ci_low: float
    ci_high: float
    confidence: float
    alternative: Alternative


def one_sample_t(
    values: ArrayLike,
    *,
    null: float = 0.0,
    confidence: float = 0.95,
    alternative: Alternative = "two-sided",
) -> TTestResult:
    """Student's one-sample t test of ``mean(values) = null`` and its t interval.

    ``t = (x̄ - μ0) / (s / √n)`` with ``n - 1`` degrees of freedom; the two-sided interval is
    ``x̄ ± t_{1-α/2, n-1} · s/√n``, the one-sided ones ``(-∞, x̄ + t_{1-α} s/√n]`` (``less``)
    and ``[x̄ - t_{1-α} s/√n, ∞)`` (``greater``). When every value is identical (``s = 0``)
    the interval collapses to the point and the p-value is 0 or 1 by whether ``x̄`` lies on
    the alternative's side of ``μ0`` (1 when it equals ``μ0``).
    Reference: Student (1908), Biometrika 6:1; any textbook, e.g. Rice, *Mathematical
    Statistics and Data Analysis*, ch. 11.
    """
    x = _vector(values, "values")
    if x.size < 2:
        raise InputError(f"a t test needs at least 2 units, got {x.size}")
    confidence = _confidence(confidence)
    alternative = _alternative(alternative)
    n = int(x.size)
    mean = float(x.mean())
    sd = float(x.std(ddof=1))
    se = sd / math.sqrt(n)
    df = n - 1
    alpha = 1 - confidence
    if se == 0.0:
        diff = mean - null
        if alternative == "two-sided":
            p = 1.0 if diff == 0 else 0.0
        elif alternative == "greater":
            p = 0.0 if diff > 0 else 1.0
        else:
            p = 0.0 if diff < 0 else 1.0
        t_stat = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        low = mean if alternative != "less" else -math.inf
        high = mean if alternative != "greater" else math.inf
        return TTestResult(
            n=n,
            mean=mean,
            sd=sd,
            standard_error=se,
            null=null,
            t_statistic=t_stat,
            df=df,
            p_value=p,
            ci_low=low,
            ci_high=high,
            confidence=confidence,
            alternative=alternative,
        )
    t_stat = (mean - null) / se
    if alternative == "two-sided":
        p = float(2 * t_sf(abs(t_stat), df))
        half = float(t_ppf(1 - alpha / 2, df)) * se
        low, high = mean - half, mean + half
    elif alternative == "greater":
        p = float(t_sf(t_stat, df))
        low, high = mean - float(t_ppf(1 - alpha, df)) * se, math.inf
    else:
        p = float(t_cdf(t_stat, df))
        low, high = -math.inf, mean + float(t_ppf(1 - alpha, df)) * se
    return TTestResult(
        n=n,
        mean=mean,
        sd=sd,
        standard_error=se,
        null=null,
        t_statistic=t_stat,
        df=df,
        p_value=min(1.0, p),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        alternative=alternative,
    )


def paired_t(
    baseline: ArrayLike,
    candidate: ArrayLike,
    *,
    null: float = 0.0,
    confidence: float = 0.95,
    alternative: Alternative = "two-sided",
) -> TTestResult:
    """Paired t test of ``mean(candidate - baseline) = null``: :func:`one_sample_t` on
    ``d_i = candidate_i - baseline_i``. Equals ``scipy.stats.ttest_rel(candidate, baseline)``.
    """
    b, c = paired_values(baseline, candidate)
    return one_sample_t(c - b, null=null, confidence=confidence, alternative=alternative)


def welch_interval(
    baseline: ArrayLike, candidate: ArrayLike, *, confidence: float = 0.95
) -> tuple[float, float]:
    """The UNPAIRED (Welch) interval for ``mean(candidate) - mean(baseline)``, ignoring the
    pairing: ``Δ ± t_{1-α/2, ν} √(s_b²/n_b + s_c²/n_c)`` with Welch-Satterthwaite ``ν``.
    Shown beside the paired interval to make the gain of pairing visible (Welch 1947,
    Biometrika 34:28).
    """
    b, c = paired_values(baseline, candidate)
    confidence = _confidence(confidence)
    vb = float(b.var(ddof=1)) / b.size
    vc = float(c.var(ddof=1)) / c.size
    diff = float(c.mean() - b.mean())
    se = math.sqrt(vb + vc)
    if se == 0:
        return diff, diff
    nu = (vb + vc) ** 2 / (vb**2 / (b.size - 1) + vc**2 / (c.size - 1))
    half = float(t_ppf(1 - (1 - confidence) / 2, nu)) * se
    return diff - half, diff + half


def cohens_dz(baseline: ArrayLike, candidate: ArrayLike) -> float:
    """Cohen's ``d_z = mean(d) / sd(d)`` for paired data, ``d = candidate - baseline``
    (Cohen 1988, *Statistical Power Analysis*, eq. 2.3.5; Lakens 2013, Front. Psychol. 4:863).
    It is the t statistic divided by √n, so it does not grow with the sample: a large-sample
    "significant" difference with ``|d_z| < 0.05`` is practically nothing. 0 when both vectors
    are identical; ±inf when every difference is the same non-zero number.
    """
    b, c = paired_values(baseline, candidate)
    d = c - b
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0:
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / sd


# --------------------------------------------------------------------------------------------
# ratio of means


@dataclass(frozen=True, kw_only=True)
class RatioInterval(_Dict):
    """An interval for the relative difference ``mean(c) / mean(b) - 1``.

    ``bounded`` is False when Fieller's set is not a finite interval (the baseline mean is not
    significantly different from 0); then ``ci_low = -inf`` and ``ci_high = inf``.
    """

    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    method: RatioMethod
    bounded: bool


def fieller_ratio(
    mean_a: float,
    mean_b: float,
    var_a: float,
    var_b: float,
    cov_ab: float,
    *,
    critical: float,
    confidence: float,
    method: RatioMethod = "fieller",
) -> RatioInterval:
    """Interval for ``ρ = B/A - 1`` from two estimates with sampling (co)variances.

    Fieller (1954, JRSS B 16:175): the set of ρ' = B/A for which
    ``(B - ρ'A)² ≤ c² (V_B - 2ρ' C_AB + ρ'² V_A)``, i.e. the roots of
    ``(A² - c²V_A) ρ'² - 2(AB - c²C_AB) ρ' + (B² - c²V_B) = 0``. It is a finite interval when
    ``A² > c² V_A`` (A significantly non-zero), else unbounded. The delta method
    (``Var(B/A) ≈ (V_B - 2R C_AB + R² V_A) / A²``, ``R = B/A``) is the symmetric first-order
    approximation; it agrees with Fieller when ``c² V_A / A²`` is small.
    ``critical`` is the two-sided critical value (``t_{1-α/2}`` or ``z_{1-α/2}``).
    """
    if mean_a == 0:
        return RatioInterval(
            estimate=math.nan,
            ci_low=-math.inf,
            ci_high=math.inf,
            confidence=confidence,
            method=method,
            bounded=False,
        )
    ratio = mean_b / mean_a
    q = critical**2
    if method == "delta":
        var = (var_b - 2 * ratio * cov_ab + ratio**2 * var_a) / mean_a**2
        half = critical * math.sqrt(max(var, 0.0))
        return RatioInterval(
            estimate=ratio - 1,
            ci_low=ratio - 1 - half,
            ci_high=ratio - 1 + half,
            confidence=confidence,
            method="delta",
            bounded=True,
        )
    a = mean_a**2 - q * var_a
    b = mean_a * mean_b - q * cov_ab
    c = mean_b**2 - q * var_b
    if a <= 0:
        return RatioInterval(
            estimate=ratio - 1,
            ci_low=-math.inf,
            ci_high=math.inf,
            confidence=confidence,
            method="fieller",
            bounded=False,
        )
    disc = max(b * b - a * c, 0.0)  # >= 0 in exact arithmetic when a > 0
    root = math.sqrt(disc)
    low, high = (b - root) / a, (b + root) / a
    return RatioInterval(
        estimate=ratio - 1,
        ci_low=low - 1,
        ci_high=high - 1,
        confidence=confidence,
        method="fieller",
        bounded=True,
    )


def relative_difference_interval(
    baseline: ArrayLike,
    candidate: ArrayLike,
    *,
    confidence: float = 0.95,
    method: RatioMethod = "fieller",
) -> RatioInterval:
    """Paired interval for ``mean(candidate) / mean(baseline) - 1``.

    The two means are estimated on the same users, so their covariance
    ``cov(b, c) / n`` enters :func:`fieller_ratio` (critical value ``t_{1-α/2, n-1}``). Fieller
    is the default: it is exact under bivariate normality of the means and honest about
    asymmetry when the baseline mean is small.
    """
    b, c = paired_values(baseline, candidate)
    confidence = _confidence(confidence)
    if method not in ("fieller", "delta"):
        raise InputError(f"method must be 'fieller' or 'delta', got {method!r}")
    n = b.size
    cov = np.cov(np.vstack([b, c]), ddof=1)
    critical = float(t_ppf(1 - (1 - confidence) / 2, n - 1))
    return fieller_ratio(
        float(b.mean()),
        float(c.mean()),
        float(cov[0, 0]) / n,
        float(cov[1, 1]) / n,
        float(cov[0, 1]) / n,
        critical=critical,
        confidence=confidence,
        method=method,
    )


# --------------------------------------------------------------------------------------------
# bootstrap


@dataclass(frozen=True, kw_only=True)
class BootstrapResult(_Dict):
    """Paired bootstrap percentile intervals for ``mean(c) - mean(b)`` and
    ``mean(c) / mean(b) - 1`` (``relative_*`` are NaN when the baseline mean is 0)."""

    n: int
    n_resamples: int
    seed: int
    confidence: float
    difference: float
    ci_low: float
    ci_high: float
    standard_error: float
    relative_difference: float
    relative_ci_low: float
    relative_ci_high: float


def resampled_means(columns: FloatArray, n_resamples: int, seed: int) -> FloatArray:
    """Means of ``columns`` (units x k) over ``n_resamples`` bootstrap resamples of units.

    Each resample draws n unit indices uniformly with replacement (equivalently multinomial
    weights ``(n; 1/n, ..., 1/n)``); every column uses the SAME indices, which keeps the pairs
    together. Resamples are drawn in blocks so memory stays bounded for large n, and the
    result depends only on (seed, n, n_resamples), never on the block size.
    """
    rng = np.random.default_rng(seed)
    n, k = columns.shape
    out = np.empty((n_resamples, k))
    block = max(1, min(n_resamples, _BLOCK_ELEMENTS // max(n, 1)))
    for start in range(0, n_resamples, block):
        stop = min(n_resamples, start + block)
        idx = rng.integers(0, n, size=(stop - start, n))
        for j in range(k):
            out[start:stop, j] = columns[:, j][idx].mean(axis=1)
    return out


def paired_bootstrap(
    baseline: ArrayLike,
    candidate: ArrayLike,
    *,
    seed: int,
    confidence: float = 0.95,
    n_resamples: int = 2000,
) -> BootstrapResult:
    """Paired nonparametric bootstrap (Efron & Tibshirani 1993, *An Introduction to the
    Bootstrap*, ch. 13): resample users with replacement, keep each user's two values
    together, and take the percentile interval ``[Δ*_(α/2), Δ*_(1-α/2)]`` of the resampled
    differences of means (and of ``mean*(c)/mean*(b) - 1``). ``standard_error`` is the
    standard deviation of the resampled differences. Same seed, same interval.
    """
    b, c = paired_values(baseline, candidate)
    confidence = _confidence(confidence)
    if n_resamples < 100:
        raise InputError(f"n_resamples must be at least 100, got {n_resamples}")
    means = resampled_means(np.column_stack([b, c]), n_resamples, seed)
    diffs = means[:, 1] - means[:, 0]
    alpha = 1 - confidence
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    mean_b = float(b.mean())
    if mean_b != 0 and np.all(means[:, 0] != 0):
        rel = means[:, 1] / means[:, 0] - 1
        rel_low, rel_high = (float(v) for v in np.quantile(rel, [alpha / 2, 1 - alpha / 2]))
        rel_est = float(c.mean()) / mean_b - 1
    else:
        rel_low = rel_high = rel_est = math.nan
    return BootstrapResult(
        n=int(b.size),
        n_resamples=n_resamples,
        seed=seed,
        confidence=confidence,
        difference=float(c.mean() - mean_b),
        ci_low=float(low),
        ci_high=float(high),
        standard_error=float(diffs.std(ddof=1)),
        relative_difference=rel_est,
        relative_ci_low=rel_low,
        relative_ci_high=rel_high,
    )


def bootstrap_one_sided(
    draws: ArrayLike, *, threshold: float, alpha: float, multiplier: int = 1
) -> tuple[float, float]:
    """One-sided bootstrap test of ``H0: θ ≥ threshold`` against ``θ < threshold`` from the
    bootstrap draws ``θ*_1..θ*_B``, and the upper confidence bound that agrees with it.

    ``p = (1 + #{θ* ≥ threshold}) / (B + 1)`` (the add-one form never reports 0; Davison &
    Hinkley 1997, *Bootstrap Methods and their Application*, eq. 4.11, and sec. 4.4 for
    bounds obtained by inverting a test). H0 is rejected when ``min(1, multiplier · p) ≤
    alpha``; ``multiplier`` is Holm's step-down factor ``m - j + 1`` (1 for a single test),
    computed exactly as :func:`abkit.stats.multiplicity.adjust` computes adjusted p-values.
    The bound inverts the same rule: with ``k`` the largest count ``c`` for which
    ``min(1, multiplier · (1 + c) / (B + 1)) ≤ alpha``, ``upper`` is the ``(k + 1)``-th
    largest draw, so that ``#{θ* ≥ threshold} ≤ k`` exactly when ``upper < threshold``:
    the decision and the bound can never disagree (a plain ``(1 - alpha)`` quantile can, at
    the margin). ``upper`` is ``+inf`` when no count is small enough (``B`` too small for the
    level). Non-finite draws count as they compare (``+inf ≥ threshold``).
    """
    d = np.asarray(draws, dtype=np.float64)
    if d.ndim != 1 or d.size == 0 or np.any(np.isnan(d)):
        raise InputError("bootstrap draws must be a non-empty 1-D vector without NaN")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be between 0 and 1 (exclusive), got {alpha}")
    if multiplier < 1:
        raise InputError(f"multiplier must be a positive integer, got {multiplier}")
    b = int(d.size)
    count = int(np.count_nonzero(d >= threshold))
    p = (1 + count) / (b + 1)

    def rejects(c: int) -> bool:
        return min(1.0, multiplier * ((1 + c) / (b + 1))) <= alpha

    # start from the real-number solution, then settle it with the float rule itself
    k = math.floor(alpha * (b + 1) / multiplier) - 1
    while k + 1 <= b and rejects(k + 1):
        k += 1
    while k >= 0 and not rejects(k):
        k -= 1
    if k < 0:
        upper = math.inf
    elif k >= b:
        upper = -math.inf
    else:
        upper = float(np.partition(d, b - 1 - k)[b - 1 - k])  # the (k + 1)-th largest
    return p, upper


def bootstrap_upper_bound(
    values: ArrayLike, *, threshold: float, alpha: float, seed: int, n_resamples: int = 2000
) -> tuple[float, float]:
    """One-sided bootstrap test of ``H0: mean(values) ≥ threshold`` against ``mean <
    threshold``: resamples units with replacement (as :func:`paired_bootstrap`) and applies
    :func:`bootstrap_one_sided` to the resampled means. Returns ``(p, upper)``; H0 is rejected
    (``p ≤ alpha``) exactly when ``upper < threshold``.
    """
    x = _vector(values, "values")
    if x.size < 2:
        raise InputError(f"a bootstrap test needs at least 2 units, got {x.size}")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be between 0 and 1 (exclusive), got {alpha}")
    means = resampled_means(x[:, None], n_resamples, seed)[:, 0]
    return bootstrap_one_sided(means, threshold=threshold, alpha=alpha)


# --------------------------------------------------------------------------------------------
# McNemar


@dataclass(frozen=True, kw_only=True)
class McNemarResult(_Dict):
    """McNemar's test on paired binary outcomes.

    ``baseline_only``: units where only the baseline succeeded (b); ``candidate_only``: only
    the candidate (c). Only these discordant pairs carry information.
    """

    n: int
    both: int
    neither: int
    baseline_only: int
    candidate_only: int
    statistic: float
    p_value: float
    method: McNemarMethod


def mcnemar_table(table: ArrayLike, *, method: McNemarMethod = "exact") -> McNemarResult:
    """McNemar (1947, Psychometrika 12:153) on a 2x2 table ``[[both, baseline_only],
    [candidate_only, neither]]`` (rows: baseline success / failure; columns: candidate
    success / failure), with ``b = table[0][1]`` and ``c = table[1][0]``.

    * ``exact``: two-sided binomial test of ``b ~ Bin(b + c, 1/2)``:
      ``p = min(1, 2 · P(X ≤ min(b, c)))``; ``statistic = min(b, c)``.
    * ``chi2``: ``X² = (b - c)² / (b + c)`` on 1 df.
    * ``chi2-corrected``: Edwards' continuity correction ``(|b - c| - 1)² / (b + c)``.

    Agresti, *Categorical Data Analysis* (2013), sec. 11.1: [[794, 150], [86, 570]] gives
    ``X² = 17.36`` (p = 3.1e-5), corrected 16.82. With no discordant pair, ``p = 1``.
    """
    t = np.asarray(table)
    if t.shape != (2, 2) or np.any(t < 0) or np.any(t != np.round(t)):
        raise InputError("a McNemar table must be 2x2 of non-negative counts")
    both, b, c, neither = (int(v) for v in t.ravel())
    if method not in ("exact", "chi2", "chi2-corrected"):
        raise InputError(f"method must be 'exact', 'chi2' or 'chi2-corrected', got {method!r}")
    discordant = b + c
    if discordant == 0:
        statistic, p = 0.0, 1.0
    elif method == "exact":
        statistic = float(min(b, c))
        p = min(1.0, 2 * float(_binom_half_cdf(min(b, c), discordant)))
    else:
        diff = abs(b - c) - (1 if method == "chi2-corrected" else 0)
        statistic = max(diff, 0) ** 2 / discordant
        p = float(chi2_sf(statistic, 1))
    return McNemarResult(
        n=both + b + c + neither,
        both=both,
        neither=neither,
        baseline_only=b,
        candidate_only=c,
        statistic=float(statistic),
        p_value=p,
        method=method,
    )


def _is_binary(x: FloatArray) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


def mcnemar(
    baseline: ArrayLike, candidate: ArrayLike, *, method: McNemarMethod = "exact"
) -> McNemarResult:
    """McNemar's test on two paired 0/1 vectors (e.g. per-user hit@K of two models)."""
    b, c = paired_values(baseline, candidate, minimum=1)
    if not (_is_binary(b) and _is_binary(c)):
        raise InputError("McNemar's test needs 0/1 values in both vectors")
    both = int(np.count_nonzero((b == 1) & (c == 1)))
    b_only = int(np.count_nonzero((b == 1) & (c == 0)))
    c_only = int(np.count_nonzero((b == 0) & (c == 1)))
    neither = int(b.size) - both - b_only - c_only
    return mcnemar_table([[both, b_only], [c_only, neither]], method=method)


# --------------------------------------------------------------------------------------------
# one metric, everything


@dataclass(frozen=True, kw_only=True)
class PairedComparison(_Dict):
    """Candidate versus baseline on one per-user metric, effect sizes first.

    ``difference`` = mean(candidate) - mean(baseline); ``ci_low``/``ci_high`` its paired t
    interval; ``relative_*`` the Fieller interval of ``mean(c)/mean(b) - 1``; ``cohens_dz``
    the standardised paired effect; ``bootstrap`` the paired bootstrap (None when
    ``n_resamples`` is 0); ``unpaired_ci_*`` the Welch interval ignoring pairing;
    ``mcnemar`` only for 0/1 metrics. ``p_value`` is the two-sided paired t p-value.
    """

    n: int
    mean_baseline: float
    mean_candidate: float
    difference: float
    ci_low: float
    ci_high: float
    relative_difference: float
    relative_ci_low: float
    relative_ci_high: float
    cohens_dz: float
    p_value: float
    confidence: float
    t: TTestResult
    bootstrap: BootstrapResult | None
    unpaired_ci_low: float
    unpaired_ci_high: float
    mcnemar: McNemarResult | None


def compare_paired(
    baseline: ArrayLike,
    candidate: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    binary: bool | None = None,
) -> PairedComparison:
    """Compare two per-user vectors of one metric (same users, same order).

    Runs :func:`paired_t`, :func:`relative_difference_interval` (Fieller),
    :func:`cohens_dz`, :func:`paired_bootstrap` (skipped when ``n_resamples == 0``),
    :func:`welch_interval`, and for binary metrics (``binary=None`` detects 0/1 vectors)
    the exact :func:`mcnemar` test.
    """
    b, c = paired_values(baseline, candidate)
    t = paired_t(b, c, confidence=confidence)
    rel = relative_difference_interval(b, c, confidence=confidence)
    boot = (
        paired_bootstrap(b, c, seed=seed, confidence=confidence, n_resamples=n_resamples)
        if n_resamples
        else None
    )
    unpaired = welch_interval(b, c, confidence=confidence)
    is_binary = (_is_binary(b) and _is_binary(c)) if binary is None else binary
    return PairedComparison(
        n=int(b.size),
        mean_baseline=float(b.mean()),
        mean_candidate=float(c.mean()),
        difference=t.mean,
        ci_low=t.ci_low,
        ci_high=t.ci_high,
        relative_difference=rel.estimate,
        relative_ci_low=rel.ci_low,
        relative_ci_high=rel.ci_high,
        cohens_dz=cohens_dz(b, c),
        p_value=t.p_value,
        confidence=confidence,
        t=t,
        bootstrap=boot,
        unpaired_ci_low=unpaired[0],
        unpaired_ci_high=unpaired[1],
        mcnemar=mcnemar(b, c) if is_binary else None,
    )


# --------------------------------------------------------------------------------------------
# clustered variance


def _binom_half_cdf(k: int, n: int) -> float:
    """``scipy.stats.binom.cdf(k, n, 0.5)``; scipy.stats is imported only for this exact test."""
    from scipy import stats

    return float(stats.binom.cdf(k, n, 0.5))


def cluster_codes(
    clusters: ArrayLike | None, n: int, name: str = "clusters"
) -> tuple[npt.NDArray[np.int64], int]:
    """Dense codes ``0..G-1`` of a per-row cluster label (user id, slate id...) and ``G``.

    ``None`` makes every row its own cluster (independent rows). Non-negative integer labels
    below ``4 n`` are used as they are (one ``bincount`` pass, no sort; empty codes are
    harmless); any other labels (strings, large ids) are densified with ``np.unique``.
    """
    if clusters is None:
        return np.arange(n, dtype=np.int64), n
    labels = np.asarray(clusters)
    if labels.ndim != 1 or labels.size != n:
        raise InputError(f"{name}: expected one cluster label per row ({n}), got shape "
                         f"{labels.shape}")  # fmt: skip
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    if labels.dtype.kind in "iu" and int(labels.min()) >= 0 and int(labels.max()) < 4 * n:
        codes = labels.astype(np.int64, copy=False)
        return codes, int(np.count_nonzero(np.bincount(codes)))
    _, inverse = np.unique(labels, return_inverse=True)
    codes = inverse.astype(np.int64).reshape(-1)
    return codes, int(codes.max()) + 1


def clustered_covariance(
    influence: ArrayLike, codes: npt.NDArray[np.int64] | None, n_clusters: int
) -> FloatArray:
    """Cluster-robust covariance of the SUMS of per-row influence values.

    With ``ψ_i`` (rows x k, each column summing to ~0) and clusters ``g``:
    ``S_g = Σ_{i∈g} ψ_i`` and ``V = G/(G-1) · Σ_g S_g S_gᵀ`` (the CR1 "sandwich" of Liang &
    Zeger 1986, Biometrika 73:13; Cameron & Miller 2015, J. Human Resources 50:317, eq. 11).
    Rows of one cluster may be arbitrarily dependent (a user's many rounds, the slots of one
    slate); clusters must be independent draws from the population. With one row per cluster
    ``V/n²`` is the usual ``s²/n`` (ddof 1). NaN when there are fewer than 2 clusters.
    Vectorised: one ``np.bincount`` per column. ``codes=None`` means every row is its own
    cluster (independent rows): the row values are the cluster sums, so no codes are built
    and nothing is summed (the same numbers, bit for bit).
    """
    psi = np.asarray(influence, dtype=np.float64)
    if psi.ndim == 1:
        psi = psi[:, None]
    k = psi.shape[1]
    if n_clusters < 2:
        return np.full((k, k), math.nan)
    if codes is None:
        if n_clusters != psi.shape[0]:
            raise InputError(f"codes=None needs one cluster per row ({psi.shape[0]}), got "
                             f"{n_clusters}")  # fmt: skip
        sums = psi
    else:
        minlength = int(codes.max()) + 1 if codes.size else 0
        sums = np.column_stack([np.bincount(codes, weights=psi[:, j], minlength=minlength)
                                for j in range(k)])  # fmt: skip
    out = np.asarray((sums.T @ sums) * (n_clusters / (n_clusters - 1)), dtype=np.float64)
    return out


# --------------------------------------------------------------------------------------------
# off-policy: two policies on the same logs


@dataclass(frozen=True, kw_only=True)
class OffPolicyDifference(_Dict):
    """Policy B minus policy A, both estimated on the same logged rounds.

    ``value_a``/``value_b`` are the estimated rewards per round (e.g. conversion rates);
    ``difference`` = value_b - value_a with a paired normal interval; ``relative_*`` the
    Fieller interval of ``value_b / value_a - 1``; ``p_value`` two-sided for difference 0.
    ``variance_a``, ``variance_b``, ``covariance``: the sampling (co)variances of the two
    estimates (cluster-robust, see :func:`paired_offpolicy_difference`), for further tests
    such as a claim check on the ratio. ``n_clusters``: the independent units the variance
    rests on (users; ``n_rounds`` when every round is its own unit).
    """

    estimator: OffPolicyEstimator
    n_rounds: int
    n_clusters: int
    value_a: float
    value_b: float
    difference: float
    standard_error: float
    ci_low: float
    ci_high: float
    relative_difference: float
    relative_ci_low: float
    relative_ci_high: float
    p_value: float
    confidence: float
    variance_a: float
    variance_b: float
    covariance: float


def _offpolicy_influence(
    estimator: OffPolicyEstimator,
    reward: FloatArray,
    weight: FloatArray,
    q_logged: FloatArray | None,
    q_policy: FloatArray | None,
    which: str,
) -> tuple[float, FloatArray]:
    """The estimate and its per-round influence function ψ_i (summing to 0), so that
    ``Var(V̂) ≈ V/n²`` with ``V`` the clustered covariance of the sums of ψ."""
    if estimator == "ips":
        g = weight * reward
        value = float(g.mean())
        return value, g - value
    if estimator == "snips":
        mean_w = float(weight.mean())
        if mean_w <= 0:
            raise InputError(f"policy {which}: every importance weight is 0; SNIPS is undefined")
        value = float((weight * reward).sum() / weight.sum())
        return value, weight * (reward - value) / mean_w
    if q_logged is None or q_policy is None:
        raise InputError(
            f"policy {which}: the doubly robust estimator needs q_logged and q_policy per round"
        )
    g = q_policy + weight * (reward - q_logged)
    value = float(g.mean())
    return value, g - value


def paired_offpolicy_difference(
    *,
    reward: ArrayLike,
    weight_a: ArrayLike,
    weight_b: ArrayLike,
    estimator: OffPolicyEstimator = "ips",
    q_logged_a: ArrayLike | None = None,
    q_policy_a: ArrayLike | None = None,
    q_logged_b: ArrayLike | None = None,
    q_policy_b: ArrayLike | None = None,
    clusters: ArrayLike | None = None,
    confidence: float = 0.95,
) -> OffPolicyDifference:
    """Difference of two policies' off-policy values on the SAME logged rounds.

    Per round i with logged reward ``r_i`` and importance weights ``w_i = π(a_i|x_i) /
    μ(a_i|x_i)`` of each policy:

    * IPS: ``V̂ = mean(w r)``, influence ``ψ_i = w_i r_i - V̂``.
    * SNIPS: ``V̂ = Σ w r / Σ w``, influence ``ψ_i = w_i (r_i - V̂) / mean(w)`` (delta method).
    * DR: ``V̂ = mean(q̂_π(x_i) + w_i (r_i - q̂(x_i, a_i)))``, influence ``g_i - V̂``.

    The estimand is the value per logged round over the population of randomisation units
    (users): ``clusters`` labels each round's unit (None: every round is independent). The
    rounds of one user share the user, those of one slate also the logging draw, so the
    influence values are summed per cluster before the variance is taken
    (:func:`clustered_covariance`); ``ψ_i`` above is also the ratio linearisation of
    ``Σ_g T_g / Σ_g n_g`` over clusters, so users with many rounds are handled exactly.
    ``Var(D) = (V_AA + V_BB - 2 V_AB) / n²`` for ``D = V̂_B - V̂_A``: the two estimates share
    the logs, so their covariance is subtracted, as for paired per-user means. Interval
    ``D ± z_{1-α/2} · SE``. The relative difference uses Fieller with ``V_A = V_AA/n²``,
    ``V_B = V_BB/n²``, ``C_AB = V_AB/n²``; with non-negative rewards its lower end is cut at
    -100% (no policy earns a negative reward).
    References: Dudík, Langford & Li (2011), ICML, "Doubly robust policy evaluation and
    learning"; Swaminathan & Joachims (2015), NeurIPS (SNIPS); van der Vaart (1998),
    *Asymptotic Statistics*, ch. 3 (delta method); Cameron & Miller (2015), J. Human
    Resources 50:317 (cluster-robust variance).
    """
    r = _vector(reward, "reward")
    wa = _vector(weight_a, "weight_a")
    wb = _vector(weight_b, "weight_b")
    if not (r.size == wa.size == wb.size):
        raise InputError(
            f"off-policy vectors differ in length: reward {r.size}, weight_a {wa.size}, "
            f"weight_b {wb.size}"
        )
    if r.size < 2:
        raise InputError(f"an off-policy comparison needs at least 2 rounds, got {r.size}")
    if np.any(wa < 0) or np.any(wb < 0):
        raise InputError("importance weights must be non-negative")
    if estimator not in ("ips", "snips", "dr"):
        raise InputError(f"estimator must be 'ips', 'snips' or 'dr', got {estimator!r}")
    confidence = _confidence(confidence)
    # independent rounds (no clusters): the plain per-round variance, no n-long codes
    codes, n_clusters = (None, r.size) if clusters is None else cluster_codes(clusters, r.size)
    if n_clusters < 2:
        raise InputError(
            f"an off-policy comparison needs at least 2 independent units (clusters), got "
            f"{n_clusters}"
        )

    def opt(v: ArrayLike | None, name: str) -> FloatArray | None:
        return None if v is None else _vector(v, name)

    va, psi_a = _offpolicy_influence(
        estimator, r, wa, opt(q_logged_a, "q_logged_a"), opt(q_policy_a, "q_policy_a"), "A"
    )
    vb, psi_b = _offpolicy_influence(
        estimator, r, wb, opt(q_logged_b, "q_logged_b"), opt(q_policy_b, "q_policy_b"), "B"
    )
    n = r.size
    cov = clustered_covariance(np.column_stack([psi_a, psi_b]), codes, n_clusters) / n**2
    var_a, var_b, cov_ab = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    diff = vb - va
    se = math.sqrt(max(var_a + var_b - 2 * cov_ab, 0.0))
    z = float(norm_ppf(1 - (1 - confidence) / 2))
    # SE 0: the per-round contributions differ by a constant (almost always 0: same policy).
    p = float(2 * norm_sf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    rel = fieller_ratio(va, vb, var_a, var_b, cov_ab, critical=z, confidence=confidence)
    rel_low = rel.ci_low
    if bool(np.all(r >= 0)):
        # Non-negative rewards: both policies' true values are >= 0, so their ratio is >= 0 and
        # the relative difference >= -100%; the interval is cut to that parameter space
        # (coverage can only rise). Fieller's set can reach below it when V_A is large.
        rel_low = max(rel_low, -1.0)
    return OffPolicyDifference(
        estimator=estimator,
        n_rounds=int(n),
        n_clusters=n_clusters,
        value_a=va,
        value_b=vb,
        difference=diff,
        standard_error=se,
        ci_low=diff - z * se,
        ci_high=diff + z * se,
        relative_difference=rel.estimate,
        relative_ci_low=rel_low,
        relative_ci_high=rel.ci_high,
        p_value=p,
        confidence=confidence,
        variance_a=var_a,
        variance_b=var_b,
        covariance=cov_ab,
    )
