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
variance ``V`` (re-estimated at each look), mixing the alternative over
``theta ~ N(theta0, tau^2)`` gives the likelihood ratio

    Lambda = sqrt(V / (V + tau^2)) exp(tau^2 (theta^ - theta0)^2 / (2 V (V + tau^2)))

a nonnegative martingale under H0; by Ville's inequality ``P(ever Lambda >= 1/alpha) <= alpha``.
The always-valid p-value is the running minimum of ``min(1, 1/Lambda)``, and the confidence
sequence is the running *intersection* over the looks of the bands
``theta^ +- sqrt(V (V + tau^2) / tau^2 (2 log(1/alpha) + log((V + tau^2) / V)))``, so the two
agree: the p-value is ``<= alpha`` exactly when the sequence excludes ``theta0``. (An empty
intersection means the bands of different looks contradict each other -- a drifting effect or
a failed normal approximation -- and the result says so.) Both may be looked at after every
day (or every unit) without inflating the error rate.

**Tuning, fixed in advance.** The mixture is put on the *standardised* effect: with ``sigma^2``
the per-unit variance of the difference (``sigma_T^2 + sigma_C^2``; ``V = sigma_T^2 / n_T +
sigma_C^2 / n_C``), ``tau^2 = rho^2 sigma^2`` where ``rho^2`` is chosen before the data and
``sigma^2`` is a plug-in estimate at each look -- the asymptotic confidence sequences of
Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas (2021, "Time-uniform central limit theory and
asymptotic confidence sequences", arXiv:2103.06476) and the normal mixture of Howard, Ramdas,
McAuliffe & Sekhon (2021, Ann Stat 49:1055). ``rho^2`` makes the sequence tightest at a planned
horizon of ``n*`` units per arm (Howard et al. 2021, eq. 14):

    rho^2 = (2 log(1/alpha) + log(1 + 2 log(1/alpha))) / n*

``n*`` is ``--horizon`` (default :data:`DEFAULT_HORIZON` = 10,000 units per arm); it must be
fixed before looking and never set to the observed final ``n``. With balanced arms
``V / tau^2 = 1 / (rho^2 n)``, so ``Lambda`` at a look depends only on that look's z statistic
and its ``n``: re-running the whole analysis every day on the data so far reproduces the same
p-value path, and reading "today's" p-value each day is reading one always-valid path. (abkit
once tuned ``tau^2`` to the variance at the *latest* look; every daily re-run then used a
different mixture, and the union of those tests over many re-runs exceeds alpha.) A horizon far
from the real size costs width, never validity. The relative lift gets its own sequence on the
log scale (delta-method per-unit variance of ``log(m_T / m_C)``), tuned the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from abkit.errors import InputError, param
from abkit.stats.claims import check_claim
from abkit.stats.dist import brentq, norm_sf
from abkit.stats.means import welch_test
from abkit.stats.proportions import pooled_z_test
from abkit.stats.ratio import ratio_estimate
from abkit.stats.results import ClaimCheck, LookComparison, SequentialResult, Verdict
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
    bounds: Sequence[float] | npt.NDArray[np.float64],
    information: Sequence[float] | None = None,
    *,
    grid: int = _GRID,
) -> float:
    """``P(|Z_k| >= b_k for some k)`` under H0 for looks at ``information`` (default 1..K).

    Recursive numerical integration (module docstring); accurate to about 1e-6 for K <= 50.
    """
    from scipy import stats  # the normal density with a scale; only sequential designs need it

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
    return float(brentq(lambda c: crossing_probability([c] * looks) - alpha, 1.0, 10.0, xtol=1e-10))


def obrien_fleming_bounds(looks: int, alpha: float = 0.05) -> tuple[float, ...]:
    """O'Brien-Fleming bounds ``c sqrt(K / k)``, k = 1..K, with overall level ``alpha``."""
    shape = np.sqrt(looks / np.arange(1, looks + 1))
    c = brentq(lambda c: crossing_probability(c * shape) - alpha, 1.0, 10.0, xtol=1e-10)
    return tuple(float(v) for v in c * shape)


# -- mSPRT and confidence sequences -----------------------------------------------------------

DEFAULT_HORIZON = 10_000
"""Planned units per arm the mixture is tuned for when no ``--horizon`` is given."""


def tune_tau2(final_variance: float, alpha: float = 0.05) -> float:
    """Mixture variance tightest where the estimate's variance is ``final_variance``
    (Howard et al. 2021, eq. 14): ``V (2 log(1/alpha) + log(1 + 2 log(1/alpha)))``."""
    log_term = 2 * math.log(1 / alpha)
    return float(final_variance * (log_term + math.log(1 + log_term)))


def mixture_tau2(
    unit_variance: np.ndarray | float, horizon: int, alpha: float = 0.05
) -> np.ndarray:
    """``tau^2 = rho^2 sigma^2`` at each look: ``rho^2`` fixed by the planned ``horizon`` (units
    per arm), ``sigma^2 = unit_variance`` the plug-in per-unit variance of the difference at
    that look (module docstring). Equals :func:`tune_tau2` of the variance at the horizon."""
    return np.asarray(unit_variance, dtype=np.float64) * tune_tau2(1.0, alpha) / horizon


def check_horizon(horizon: int) -> int:
    """The planned units per arm, validated (``--horizon``)."""
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 2:
        raise InputError(
            f"{param('horizon')} must be a whole number of units per arm, at least 2, got {horizon}"
        )
    return int(horizon)


def msprt_log_lr(
    estimate: np.ndarray | float,
    variance: np.ndarray | float,
    tau2: float | np.ndarray,
    null: float = 0.0,
) -> np.ndarray:
    """``log Lambda`` of the normal-mixture SPRT (0 where ``V`` or ``tau^2`` is not positive)."""
    est = np.asarray(estimate, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    tau = np.asarray(tau2, dtype=np.float64)
    ok = np.isfinite(est) & np.isfinite(var) & (var > 0) & np.isfinite(tau) & (tau > 0)
    safe_var = np.where(ok, var, 1.0)
    safe_est = np.where(ok, est, null)
    safe_tau = np.where(ok, tau, 1.0)
    value = 0.5 * np.log(safe_var / (safe_var + safe_tau)) + safe_tau * (safe_est - null) ** 2 / (
        2 * safe_var * (safe_var + safe_tau)
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
    """The normal-mixture band at each look, by itself (infinite where ``V`` or ``tau^2`` is
    not positive). The confidence *sequence* is the running intersection of these bands:
    :func:`running_intersection`."""
    est = np.asarray(estimate, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    tau = np.asarray(tau2, dtype=np.float64)
    ok = np.isfinite(var) & (var > 0) & np.isfinite(tau) & (tau > 0)
    safe = np.where(ok, var, 1.0)
    safe_tau = np.where(ok, tau, 1.0)
    half = np.sqrt(
        safe
        * (safe + safe_tau)
        / safe_tau
        * (2 * math.log(1 / alpha) + np.log((safe + safe_tau) / safe))
    )
    half = np.where(ok, half, np.inf)
    return est - half, est + half


def running_intersection(
    lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(max of the lower bounds so far, min of the upper bounds so far, empty)`` over the
    looks (last axis); looks without a band (NaN) are skipped. Where the intersection is empty
    both bounds are NaN and ``empty`` is True."""
    lo = np.fmax.accumulate(np.asarray(lower, dtype=np.float64), axis=-1)
    hi = np.fmin.accumulate(np.asarray(upper, dtype=np.float64), axis=-1)
    empty = lo > hi
    return np.where(empty, np.nan, lo), np.where(empty, np.nan, hi), empty


# -- a comparison over looks ------------------------------------------------------------------

Kind = Literal["conversion", "mean", "ratio"]


def _estimates(
    kind: Kind, control: ArmAggregates, treatment: ArmAggregates
) -> tuple[float, float, float, float, float, float, float]:
    """``(diff, Var diff, per-unit var of the diff, log ratio, Var log ratio, per-unit var of the
    log ratio, naive p)`` at one look; a per-unit variance is ``n_T V_T + n_C V_C``."""

    nan = math.nan
    if min(control.units, treatment.units) < 2:
        return nan, nan, nan, nan, nan, nan, nan
    if kind == "ratio":
        if not (control.d_sum and treatment.d_sum):
            return nan, nan, nan, nan, nan, nan, nan
        m_t, v_t = ratio_estimate(treatment)
        m_c, v_c = ratio_estimate(control)
        diff, var = m_t - m_c, v_t + v_c
        naive_p = 2 * norm_sf(abs(diff) / math.sqrt(var)) if var > 0 else 1.0
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
    n_t, n_c = treatment.units, control.units
    unit_var = n_t * v_t + n_c * v_c
    if m_t > 0 and m_c > 0:
        log_ratio, log_var = math.log(m_t / m_c), v_t / m_t**2 + v_c / m_c**2
        log_unit_var = n_t * v_t / m_t**2 + n_c * v_c / m_c**2
    else:
        log_ratio, log_var, log_unit_var = nan, nan, nan
    return diff, var, unit_var, log_ratio, log_var, log_unit_var, float(naive_p)


def sequential_comparison(
    kind: Kind,
    looks: Sequence[tuple[ArmAggregates, ArmAggregates]],
    *,
    alpha: float = 0.05,
    horizon: int = DEFAULT_HORIZON,
    metric: str | None = None,
    look_labels: Sequence[str] | None = None,
    claim: float | None = None,
) -> tuple[SequentialResult, tuple[LookComparison, ...]]:
    """Always-valid p-values and confidence sequences over cumulative looks.

    ``looks`` holds ``(control, treatment)`` aggregates of the cumulative data at each look,
    oldest first (one look = a single analysis). ``horizon`` is the planned units per arm the
    mixture is tuned for, fixed before the data (module docstring). ``look_labels`` name the
    looks in notes (default ``look 1``, ``look 2``...). Returns the result at the last look and
    the path (one :class:`LookComparison` per look); a look's values depend only on the data
    up to it, so re-running on a prefix of ``looks`` reproduces that prefix of the path.
    ``claim`` (a relative lift) adds the claim judged from the lift's confidence sequence
    (:func:`sequential_claim_check`) as the result's ``claim``.
    """
    if not looks:
        raise InputError("a sequential analysis needs at least one look")
    horizon = check_horizon(horizon)
    rows = np.array([_estimates(kind, c, t) for c, t in looks], dtype=np.float64)
    diff, var, unit_var, log_ratio, log_var, log_unit_var, naive_p = rows.T
    if not (math.isfinite(var[-1]) and var[-1] > 0):
        raise InputError(
            "the sequential test needs a positive variance at the last look "
            "(every unit has the same outcome)"
        )
    tau2 = mixture_tau2(unit_var, horizon, alpha)
    tau2_log = mixture_tau2(log_unit_var, horizon, alpha)
    p_path = always_valid_p_values(diff, var, tau2)
    d_lo, d_hi, d_empty = running_intersection(*confidence_sequence(diff, var, tau2, alpha))
    l_lo, l_hi, l_empty = running_intersection(
        *confidence_sequence(log_ratio, log_var, tau2_log, alpha)
    )
    l_lo, l_hi = np.expm1(l_lo), np.expm1(l_hi)
    labels = list(look_labels) if look_labels is not None else []
    if len(labels) != len(looks):
        labels = [f"look {i + 1}" for i in range(len(looks))]
    notes = []
    for name, empty in (("difference", d_empty), ("lift", l_empty)):
        if empty[-1]:
            first = labels[int(np.argmax(empty))]
            notes.append(
                f"the confidence sequence for the {name} is empty from {first} on: the bands of "
                "different looks exclude each other, so the effect is not stable over time (or "
                "the normal approximation fails); no single value is consistent with every look"
            )
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
        method="mSPRT with a normal mixture on the standardised effect (always-valid p-value, "
        "confidence sequence = running intersection)",
        p_value=last.always_valid_p_value,
        p_adjusted=last.always_valid_p_value,
        diff_cs_lower=last.diff_cs_lower,
        diff_cs_upper=last.diff_cs_upper,
        lift_cs_lower=last.lift_cs_lower,
        lift_cs_upper=last.lift_cs_upper,
        tau2_diff=float(tau2[-1]),
        tau2_log_lift=float(tau2_log[-1]),
        horizon=horizon,
        looks=len(looks),
        significant=last.always_valid_p_value <= alpha,
        notes=tuple(notes),
        claim=(
            None
            if claim is None
            else sequential_claim_check(
                claim,
                log_ratio,
                log_var,
                tau2_log,
                alpha=alpha,
                lift_cs=(last.lift_cs_lower, last.lift_cs_upper),
            )
        ),
    )
    return result, path


def sequential_claim_check(
    claim: float,
    log_ratios: np.ndarray,
    log_variances: np.ndarray,
    tau2_log: np.ndarray,
    *,
    alpha: float,
    lift_cs: tuple[float, float],
) -> ClaimCheck:
    """The claim "lift >= ``claim``" judged from the lift's confidence sequence.

    *supported* when the whole always-valid lift interval ``lift_cs`` (the running intersection
    at the last look) lies above the claim, *refuted* when it lies below, else *not decided*
    (also when the intersection is empty). ``p_value_above`` is the running minimum over the
    looks of the mixture's always-valid p-value at ``log(1 + claim)``, counted only at looks
    whose estimate is above the claim (``p_value_below``: below); each is compared with
    ``alpha`` itself, and ``p_value_above <= alpha`` exactly when some look's band, hence the
    running intersection (unless it is empty), lies above the claim (the same mixture, the
    same ``alpha``).
    ``units_needed`` is None: a sample size for an always-valid test is not computed.
    """
    claim = check_claim(claim)
    null = math.log1p(claim)
    est = np.asarray(log_ratios, dtype=np.float64)
    p = np.minimum(1.0, np.exp(-msprt_log_lr(est, log_variances, tau2_log, null=null)))
    finite = np.isfinite(est)
    above = np.where(finite & (est > null), p, 1.0)
    below = np.where(finite & (est < null), p, 1.0)
    lower, upper = lift_cs
    verdict: Verdict
    if lower > claim:  # NaN (an empty intersection) compares False: not decided
        verdict = "supported"
    elif upper < claim:
        verdict = "refuted"
    else:
        verdict = "not decided"
    return ClaimCheck(
        claim=claim,
        lift=float(math.expm1(est[-1])) if finite[-1] else math.nan,
        p_value_above=float(above.min()),
        p_value_below=float(below.min()),
        verdict=verdict,
        max_supported_lift=float(lower),
        min_refuted_lift=float(upper),
        units_needed=None,
        alpha=alpha,
        level_each_side=alpha,
        method="the lift's always-valid confidence sequence (mSPRT, log scale) against "
        "1 + claim; each side's always-valid p-value compared with alpha",
    )
