"""Means (Welch + Fieller), delta-method ratios and CUPED: references, consistency, and the
simulations that show why the naive per-impression variance and a covariance-free relative
CUPED interval are wrong."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy import stats

from abkit.errors import InputError
from abkit.stats.cuped import compare_cuped, cuped_estimates
from abkit.stats.means import compare_means, fieller_interval, fieller_statistic, welch_test
from abkit.stats.ratio import compare_ratios, naive_ratio_variance, ratio_estimate
from abkit.stats.sufficient import ArmAggregates

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mean_arm(name: str, y: np.ndarray, x: np.ndarray | None = None) -> ArmAggregates:
    extra = {}
    if x is not None:
        extra = {"x_sum": float(x.sum()), "x_sum_sq": float(x @ x), "xy_sum": float(x @ y)}
    return ArmAggregates(
        name=name, units=len(y), y_sum=float(y.sum()), y_sum_sq=float(y @ y), **extra
    )


def _ratio_arm(name: str, y: np.ndarray, d: np.ndarray, row_y_sum_sq: float) -> ArmAggregates:
    return ArmAggregates(
        name=name, units=len(y), y_sum=float(y.sum()), y_sum_sq=float(y @ y),
        d_sum=float(d.sum()), d_sum_sq=float(d @ d), yd_sum=float(y @ d),
        row_y_sum_sq=row_y_sum_sq,
    )  # fmt: skip


# Values on a 0.1 grid: nearly identical floats would make scipy warn about cancellation.
samples = st.lists(st.integers(-10_000, 10_000).map(lambda v: v / 10), min_size=3, max_size=60)


# -- means ----------------------------------------------------------------------------------


@SETTINGS
@given(samples, samples)
@example([0.1, 0.1, 0.1], [0.0, 0.1, 0.2])  # numpy variance 1.9e-34; scipy warns
@example([0.1, 0.1, 0.1], [0.2, 0.2, 0.2])
def test_welch_matches_scipy_on_raw_data(a, b) -> None:
    """scipy where it is defined; abkit's documented answer for constant samples, where scipy
    warns (catastrophic cancellation: ``[0.1, 0.1, 0.1]`` has a numpy variance of 1.9e-34)
    or returns NaN. Values on a 0.1 grid are either all equal or spread by at least 1e-4 of
    their magnitude, far from both thresholds."""
    y1, y2 = np.array(a), np.array(b)
    t, df, p = welch_test(y1.mean(), y1.var(ddof=1), len(y1), y2.mean(), y2.var(ddof=1), len(y2))
    constant1, constant2 = np.ptp(y1) == 0, np.ptp(y2) == 0
    if constant1 and constant2:
        same = y1[0] == y2[0]
        assert (t, df, p) == ((0.0, len(y1) + len(y2) - 2, 1.0) if same else (t, df, 0.0))
        assert same or t == math.copysign(math.inf, y1[0] - y2[0])
        return
    if constant1 or constant2:
        # one constant arm: the one-sample t-test of the other arm against the constant
        other, constant, sign = (y2, y1[0], -1) if constant1 else (y1, y2[0], 1)
        ref = stats.ttest_1samp(other, constant)
        assert df == pytest.approx(len(other) - 1, rel=1e-12)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            ref = stats.ttest_ind(y1, y2, equal_var=False)
        sign = 1
        assert df == pytest.approx(ref.df, rel=1e-6)
    assert t == pytest.approx(sign * ref.statistic, rel=1e-6, abs=1e-9)
    assert p == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0.1, 0.1, 0.1], [0.0, 0.1, 0.2]),  # seed 12 of the property test: numpy var 1.9e-34
        ([0.1, 0.1, 0.1], [0.3, 0.3, 0.3, 0.3]),
        ([0.3, 0.3, 0.3], [0.3, 0.3]),
        ([2000.1] * 5, [2000.0, 2000.2, 2000.4]),
    ],
)
def test_welch_on_constant_samples_takes_their_variance_as_zero(a, b) -> None:
    from abkit.stats.means import resolved_variance

    y1, y2 = np.array(a), np.array(b)
    assert resolved_variance(y1.mean(), y1.var(ddof=1)) == 0.0
    t, df, p = welch_test(y1.mean(), y1.var(ddof=1), len(y1), y2.mean(), y2.var(ddof=1), len(y2))
    if np.ptp(y2) > 0:
        ref = stats.ttest_1samp(y2, y1[0])
        assert (t, df, p) == pytest.approx((-ref.statistic, len(y2) - 1, ref.pvalue), rel=1e-9)
    elif y1[0] == y2[0]:
        assert (t, df, p) == (0.0, len(y1) + len(y2) - 2, 1.0)
    else:
        assert (t, p) == (-math.inf, 0.0)
    # the same answer from sums of squares, whose rounding leaves about eps * mean^2
    result = compare_means(_mean_arm("C", y2), _mean_arm("T", y1))
    assert result.p_value == pytest.approx(p, rel=1e-6, abs=1e-300)


def test_a_small_but_real_spread_is_not_taken_as_zero() -> None:
    from abkit.stats.means import resolved_variance

    y = np.array([1000.0, 1000.001, 1000.002])  # sd 1e-6 of the mean: real, if tiny
    assert resolved_variance(y.mean(), y.var(ddof=1)) == pytest.approx(1e-6)


@SETTINGS
@given(samples, samples)
def test_compare_means_difference_interval_matches_scipy(a, b) -> None:
    y_t, y_c = np.array(a) + 2000, np.array(b) + 2000  # positive means, a defined lift
    if y_t.var() == 0 or y_c.var() == 0:
        return
    result = compare_means(_mean_arm("C", y_c), _mean_arm("T", y_t))
    with warnings.catch_warnings():
        # scipy's own reference loses precision on near-constant samples: not a comparison
        warnings.simplefilter("error", RuntimeWarning)
        try:
            ref = stats.ttest_ind(y_t, y_c, equal_var=False)
        except RuntimeWarning:
            return
    ci = ref.confidence_interval(0.95)
    assert (result.diff_ci_lower, result.diff_ci_upper) == pytest.approx(
        (ci.low, ci.high), rel=1e-6, abs=1e-6
    )
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)
    # Fieller's interval is consistent with Welch's test: 0 is outside iff p < alpha.
    if abs(result.p_value - 0.05) > 1e-6:
        assert (result.p_value < 0.05) == (result.lift_ci_lower > 0 or result.lift_ci_upper < 0)


def test_fieller_interval_bounds_solve_the_test() -> None:
    lo, hi = fieller_interval(12.0, 10.0, 0.5, 0.4, 0.1, 1.96)
    for rho in (lo, hi):
        assert abs(fieller_statistic(12.0, 10.0, 0.5, 0.4, 0.1, rho)) == pytest.approx(1.96)
    assert lo < 1.2 < hi
    # A control mean indistinguishable from 0 gives an unbounded set.
    assert fieller_interval(1.0, 0.1, 0.1, 0.1, 0.0, 1.96) == (-math.inf, math.inf)


def test_unbounded_lift_is_said() -> None:
    rng = np.random.default_rng(0)
    control = _mean_arm("C", rng.normal(0.0, 1.0, 50))
    treatment = _mean_arm("T", rng.normal(0.5, 1.0, 50))
    result = compare_means(control, treatment)
    assert math.isinf(result.lift_ci_lower)
    assert math.isinf(result.lift_ci_upper)
    assert any("unbounded (Fieller)" in note for note in result.notes)


def test_mean_claim_units_needed_scale() -> None:
    rng = np.random.default_rng(1)
    control = _mean_arm("C", rng.gamma(2.0, 5.0, 4000))
    treatment = _mean_arm("T", rng.gamma(2.0, 5.0, 4000) * 1.1)
    result = compare_means(control, treatment, claim=0.0)
    claim = result.claim
    assert claim is not None
    statistic = fieller_statistic(
        treatment.mean, control.mean, treatment.variance / 4000, control.variance / 4000, 0.0, 1.0
    )
    expected = 4000 * ((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / statistic) ** 2
    assert claim.units_needed == math.ceil(expected)
    assert claim.p_value_above == pytest.approx(
        stats.t.sf(statistic, welch_df_of(control, treatment))
    )


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("claim", [-0.5, 0.0, 0.5, 0.9, 1.2, 2.0])
def test_mean_claim_verdict_agrees_with_the_fieller_interval_for_either_sign(sign, claim) -> None:
    # A negative control mean (refunds, profit) turns the Fieller statistic's direction: the
    # verdict must still read off the interval (supported: it lies above 1 + claim).
    control = ArmAggregates(name="C", units=1000, y_sum=sign * 1000.0, y_sum_sq=5000.0)
    treatment = ArmAggregates(name="T", units=1000, y_sum=sign * 2000.0, y_sum_sq=8000.0)
    result = compare_means(control, treatment, claim=claim)
    check = result.claim
    assert check is not None
    lower, upper = result.lift_ci_lower + 1, result.lift_ci_upper + 1  # (0.75, 1.31) + 1
    rho = 1 + claim
    expected = "supported" if rho < lower else "refuted" if rho > upper else "not decided"
    assert check.verdict == expected
    assert (check.p_value_above <= 0.025) == (rho < lower)
    assert (check.p_value_below <= 0.025) == (rho > upper)


def welch_df_of(control: ArmAggregates, treatment: ArmAggregates) -> float:
    from abkit.stats.means import welch_df

    return welch_df(treatment.variance, treatment.units, control.variance, control.units)


@pytest.mark.parametrize(
    ("units", "message"),
    [
        (1, "arm 'C' has 1 unit(s); a mean comparison needs at least 2"),
        (0, "arm 'C' has 0 unit(s); a mean comparison needs at least 2"),
    ],
)
def test_means_need_two_units(units, message) -> None:
    control = ArmAggregates(name="C", units=units, y_sum=1.0, y_sum_sq=1.0)
    treatment = _mean_arm("T", np.array([1.0, 2.0, 3.0]))
    with pytest.raises(InputError, match=re.escape(message)):
        compare_means(control, treatment)


# -- ratios: the delta method -------------------------------------------------------------------


def test_delta_method_by_hand() -> None:
    y, d = np.array([1.0, 0.0, 3.0, 2.0]), np.array([2.0, 1.0, 5.0, 4.0])
    arm = _ratio_arm("A", y, d, row_y_sum_sq=6.0)
    ratio, var = ratio_estimate(arm)
    r = y.sum() / d.sum()
    cov = np.cov(np.vstack([y, d]))  # ddof = 1
    expected = (cov[0, 0] - 2 * r * cov[0, 1] + r**2 * cov[1, 1]) / (len(y) * d.mean() ** 2)
    assert ratio == pytest.approx(6 / 12)
    assert var == pytest.approx(expected)
    # Naive: 12 rows (impressions) with sum of squares 6 (0/1 clicks): s^2 / 12.
    rows = 12
    s2 = (6.0 - rows * r**2) / (rows - 1)
    assert naive_ratio_variance(arm) == pytest.approx(s2 / rows)


def _clustered_arms(rng: np.random.Generator, reps: int, users: int) -> tuple[np.ndarray, ...]:
    """Per-user clicks and impressions with heterogeneous users: CTR ~ Beta(0.2, 3.8)
    (mean 5%, intra-user correlation 0.2), 1 + Poisson(19) impressions each."""
    ctr = rng.beta(0.2, 3.8, size=(reps, users))
    impressions = 1 + rng.poisson(19, size=(reps, users))
    clicks = rng.binomial(impressions, ctr)
    return clicks.astype(float), impressions.astype(float)


@pytest.mark.slow
def test_naive_per_impression_variance_diverges_from_the_delta_method() -> None:
    # Users are randomised; their impressions are correlated (some users click a lot). Over
    # many replications the spread of the CTR estimate matches the delta-method variance, and
    # the naive variance that treats impressions as independent is several times too small,
    # so its A/A test rejects far more often than alpha.
    rng = np.random.default_rng(20240101)
    reps, users = 1000, 400
    y_t, d_t = _clustered_arms(rng, reps, users)
    y_c, d_c = _clustered_arms(rng, reps, users)
    ratios, delta_vars, naive_vars, rejected_delta, rejected_naive = [], [], [], 0, 0
    for i in range(reps):
        # clicks are 0/1 per impression, so the per-row sum of squares equals the clicks
        t = _ratio_arm("T", y_t[i], d_t[i], row_y_sum_sq=float(y_t[i].sum()))
        c = _ratio_arm("C", y_c[i], d_c[i], row_y_sum_sq=float(y_c[i].sum()))
        r, v = ratio_estimate(t)
        ratios.append(r)
        delta_vars.append(v)
        naive_vars.append(naive_ratio_variance(t))
        result = compare_ratios(c, t)
        rejected_delta += result.p_value <= 0.05
        naive_z = result.diff / math.sqrt(naive_ratio_variance(t) + naive_ratio_variance(c))
        rejected_naive += 2 * stats.norm.sf(abs(naive_z)) <= 0.05
        assert result.design_effect is not None
    empirical = float(np.var(ratios, ddof=1))
    assert float(np.mean(delta_vars)) == pytest.approx(empirical, rel=0.12)
    assert float(np.mean(naive_vars)) < empirical / 3  # design effect about 4.8
    band = 1.96 * math.sqrt(0.05 * 0.95 / reps)
    assert abs(rejected_delta / reps - 0.05) <= band + 0.005
    assert rejected_naive / reps > 0.25


def test_design_effect_reported_on_a_clustered_case() -> None:
    rng = np.random.default_rng(5)
    y_t, d_t = _clustered_arms(rng, 1, 3000)
    y_c, d_c = _clustered_arms(rng, 1, 3000)
    t = _ratio_arm("T", y_t[0], d_t[0], row_y_sum_sq=float(y_t[0].sum()))
    c = _ratio_arm("C", y_c[0], d_c[0], row_y_sum_sq=float(y_c[0].sum()))
    result = compare_ratios(c, t)
    assert result.design_effect is not None
    assert result.design_effect > 2.5
    assert result.method == "z-test, delta-method variance over randomisation units"


def test_ratio_with_empty_denominator_is_refused() -> None:
    arm = ArmAggregates(
        name="A", units=3, y_sum=0.0, y_sum_sq=0.0, d_sum=0.0, d_sum_sq=0.0, yd_sum=0.0
    )
    with pytest.raises(
        InputError,
        match=re.escape(
            "arm 'A': the ratio's denominator is 0 for every unit (nothing to divide by)"
        ),
    ):
        ratio_estimate(arm)


# -- CUPED --------------------------------------------------------------------------------------


def _correlated(rng: np.random.Generator, n: int, factor: float) -> tuple[np.ndarray, np.ndarray]:
    x = rng.gamma(2.0, 5.0, n)
    y = factor * (x + 5.0) + rng.normal(0.0, 2.0, n)
    return y, x


def test_cuped_difference_equals_ancova() -> None:
    # CUPED with theta pooled within arms is the treatment coefficient of the regression
    # y ~ 1 + treatment + x (common slope), an independent reference.
    import statsmodels.api as sm

    rng = np.random.default_rng(11)
    y_c, x_c = _correlated(rng, 800, 1.0)
    y_t, x_t = _correlated(rng, 1200, 1.05)
    c, t = _mean_arm("C", y_c, x_c), _mean_arm("T", y_t, x_t)
    result = compare_cuped(c, t)
    design = np.column_stack([
        np.ones(2000), np.r_[np.zeros(800), np.ones(1200)], np.r_[x_c, x_t]
    ])  # fmt: skip
    fit = sm.OLS(np.r_[y_c, y_t], design).fit()
    assert result.diff == pytest.approx(fit.params[1], rel=1e-9)
    _a_t, _a_c, v_t, v_c, cov, theta = cuped_estimates(c, t)
    assert theta == pytest.approx(fit.params[2], rel=1e-9)
    # The adjusted difference's variance is the textbook CUPED one (the covariances cancel).
    plain = sum(
        (arm.covariance_matrix("x")[0] - 2 * theta * arm.covariance_matrix("x")[1]
         + theta**2 * arm.covariance_matrix("x")[2]) / arm.units
        for arm in (c, t)
    )  # fmt: skip
    assert v_t + v_c - 2 * cov == pytest.approx(plain, rel=1e-9)
    assert result.variance_reduction is not None
    assert result.variance_reduction > 0.8


@pytest.mark.slow
def test_cuped_relative_interval_needs_the_covariance() -> None:
    # Over repeated experiments with a strongly predictive covariate, the spread of the CUPED
    # lift matches the delta-method standard error WITH the covariance of the adjusted means,
    # the Fieller interval covers the true lift (+10%) at its nominal rate, and the standard
    # error without the covariance is several times too large.
    rng = np.random.default_rng(7)
    reps, n = 800, 1000
    lifts, se_full, se_without_cov, covered = [], [], [], 0
    for _ in range(reps):
        c = _mean_arm("C", *_correlated(rng, n, 1.0))
        t = _mean_arm("T", *_correlated(rng, n, 1.1))
        a_t, a_c, v_t, v_c, cov, _ = cuped_estimates(c, t)
        r = a_t / a_c
        lifts.append(r - 1)
        se_full.append(math.sqrt(v_t - 2 * r * cov + r * r * v_c) / a_c)
        se_without_cov.append(math.sqrt(v_t + r * r * v_c) / a_c)
        result = compare_cuped(c, t)
        covered += result.lift_ci_lower < 0.1 < result.lift_ci_upper
    spread = float(np.std(lifts, ddof=1))
    assert float(np.mean(se_full)) == pytest.approx(spread, rel=0.1)
    assert float(np.mean(se_without_cov)) > 2 * spread
    assert abs(covered / reps - 0.95) <= 1.96 * math.sqrt(0.95 * 0.05 / reps) + 0.005


def test_cuped_needs_the_covariate() -> None:
    c = _mean_arm("C", np.array([1.0, 2.0, 3.0]))
    t = _mean_arm("T", np.array([1.0, 2.0, 4.0]))
    with pytest.raises(
        InputError, match=re.escape("arm 'C': CUPED needs the pre-period covariate sums")
    ):
        compare_cuped(c, t)
