"""The exact claim test for small counts: its conditional law against scipy, Fisher at ratio 1,
its bounds against scipy's conditional odds-ratio interval, and its size by exact enumeration
(where the score test was liberal with unequal arms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.stats.contingency import odds_ratio

from abkit.stats import exact_ratio, proportions
from abkit.stats.sufficient import ArmAggregates

TABLES = [(7, 34, 1, 34), (1, 1000, 0, 9000), (12, 900, 30, 4000), (3, 5, 2, 5), (0, 50, 4, 60)]


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("psi", [0.3, 1.0, 1.2, 4.0])
def test_conditional_tails_match_scipy_noncentral_hypergeometric(table, psi) -> None:
    x1, n1, x2, n2 = table
    law = stats.nchypergeom_fisher(n1 + n2, n1, x1 + x2, psi)
    upper, lower = exact_ratio.conditional_tails(x1, n1, x2, n2, psi)
    assert upper == pytest.approx(law.sf(x1 - 1), rel=1e-6, abs=1e-14)  # BiasedUrn: ~1e-8
    assert lower == pytest.approx(law.cdf(x1), rel=1e-6, abs=1e-14)


@pytest.mark.parametrize("table", TABLES)
def test_at_ratio_one_both_sides_are_fishers_one_sided_tests(table) -> None:
    x1, n1, x2, n2 = table
    above, below = exact_ratio.exact_ratio_p_values(x1, n1, x2, n2, 1.0)
    cells = [[x1, n1 - x1], [x2, n2 - x2]]
    assert above == pytest.approx(stats.fisher_exact(cells, alternative="greater").pvalue)
    assert below == pytest.approx(stats.fisher_exact(cells, alternative="less").pvalue)


def test_bounds_below_one_are_the_conditional_odds_ratio_bounds() -> None:
    # Where the bound is below 1 on the lower side (or above 1 on the upper side) no nuisance
    # bound is involved and the ratio bound is Cornfield's exact conditional odds-ratio bound.
    x1, n1, x2, n2 = 4, 200, 3, 150
    ref = odds_ratio([[x1, n1 - x1], [x2, n2 - x2]], kind="conditional").confidence_interval(0.95)
    lower, upper = exact_ratio.exact_ratio_bounds(x1, n1, x2, n2)
    assert lower < 1 < upper
    assert lower == pytest.approx(ref.low, rel=1e-6)
    assert upper == pytest.approx(ref.high, rel=1e-6)


def test_bounds_above_one_use_the_nuisance_bound_and_are_dual_to_the_p_values() -> None:
    x1, n1, x2, n2 = 20, 1000, 5, 9000
    lower, upper = exact_ratio.exact_ratio_bounds(x1, n1, x2, n2)
    assert lower > 1
    assert exact_ratio.exact_ratio_p_values(x1, n1, x2, n2, lower)[0] == pytest.approx(0.025)
    assert exact_ratio.exact_ratio_p_values(x1, n1, x2, n2, upper)[1] == pytest.approx(0.025)
    assert exact_ratio.exact_ratio_p_values(x1, n1, x2, n2, lower * 0.99)[0] < 0.025
    assert exact_ratio.exact_ratio_p_values(x1, n1, x2, n2, lower * 1.01)[0] > 0.025


def _claim_error_rates(n1: int, n2: int, p2: float, claim: float = 0.2) -> tuple[float, float]:
    """P(supported), P(refuted) of abkit's claim check at true lift = claim, by enumerating
    every table with non-negligible probability (the rest has mass below 1e-12)."""
    p1 = p2 * (1 + claim)
    x1s = np.arange(int(stats.binom.ppf(1e-13, n1, p1)), int(stats.binom.isf(1e-13, n1, p1)) + 2)
    x2s = np.arange(int(stats.binom.ppf(1e-13, n2, p2)), int(stats.binom.isf(1e-13, n2, p2)) + 2)
    x1s, x2s = x1s[x1s <= n1], x2s[x2s <= n2]
    w1, w2 = stats.binom.pmf(x1s, n1, p1), stats.binom.pmf(x2s, n2, p2)
    supported = refuted = 0.0
    for x2, wa in zip(x2s, w2, strict=True):
        for x1, wb in zip(x1s, w1, strict=True):
            if wa * wb < 1e-15:
                continue
            above, below, _ = proportions.claim_p_values(int(x1), n1, int(x2), n2, claim)
            supported += wa * wb * (above <= 0.025)
            refuted += wa * wb * (below <= 0.025)
    return supported, refuted


@pytest.mark.parametrize(
    ("n1", "n2", "p2"),
    [
        (1000, 9000, 0.0005),  # score test: P(supported) 0.057
        (1000, 9000, 0.001),
        (1000, 9000, 0.002),  # score test: 0.039
        (1000, 9000, 0.005),  # score test: 0.033 (6 expected treatment conversions)
        (9000, 1000, 0.0005),
        (9000, 1000, 0.002),
        (5000, 5000, 0.001),
        (5000, 5000, 0.002),
    ],
)
@pytest.mark.slow  # exact enumeration over every table: seconds each
def test_claim_size_at_lift_equal_to_claim_by_exact_enumeration(n1, n2, p2) -> None:
    supported, refuted = _claim_error_rates(n1, n2, p2)
    assert supported <= 0.025 * 1.1
    assert refuted <= 0.025 * 1.1


def test_the_score_test_alone_was_liberal_here() -> None:
    # The enumeration above can fail: the score test on the same grid point exceeds the level.
    n1, n2, p2 = 1000, 9000, 0.0005
    p1 = 1.2 * p2
    x1s, x2s = np.arange(15), np.arange(25)
    w = stats.binom.pmf(x2s, n2, p2)[:, None] * stats.binom.pmf(x1s, n1, p1)[None, :]
    never = np.array(
        [
            [proportions.claim_p_values(int(a), n1, int(b), n2, 0.2, exact="never")[0] for a in x1s]
            for b in x2s
        ]
    )
    assert float((w * (never <= 0.025)).sum()) > 0.05


def test_one_conversion_against_none_is_no_longer_supported() -> None:
    control = ArmAggregates(name="C", units=9000, y_sum=0.0, y_sum_sq=0.0)
    treatment = ArmAggregates(name="T", units=1000, y_sum=1.0, y_sum_sq=1.0)
    result = proportions.compare_proportions(control, treatment, claim=0.2)
    assert result.claim is not None
    assert result.claim.verdict == "not decided"
    assert result.claim.method == proportions.CLAIM_EXACT_METHOD
    assert result.claim.to_dict()["method"].startswith("exact conditional test")
    assert result.claim.max_supported_lift < 0.2
    assert any("claim +20% is decided by an exact test" in n for n in result.notes)
    never = proportions.compare_proportions(control, treatment, claim=0.2, exact="never")
    assert never.claim is not None
    assert never.claim.verdict == "supported"  # the old answer


def test_large_counts_keep_the_score_test() -> None:
    check = proportions.claim_check_proportions(1300, 10_000, 1000, 10_000, 0.2)
    assert check.method == proportions.CLAIM_SCORE_METHOD
    z = float(proportions.ratio_score_statistic(1300, 10_000, 1000, 10_000, 1.2))
    assert check.p_value_above == stats.norm.sf(z)
    lower, upper = proportions.koopman_interval(1300, 10_000, 1000, 10_000)
    assert (check.max_supported_lift, check.min_refuted_lift) == (lower - 1, upper - 1)
    assert not proportions.claim_needs_exact(1300, 10_000, 1000, 10_000, 0.2)


def test_rule_threshold_grows_with_imbalance() -> None:
    assert proportions.claim_min_expected(1000, 1000) == 10
    assert proportions.claim_min_expected(1000, 9000) == 90
    # 9000 x 0.01 x 1.2-ish expected in the treatment arm with equal arms: score test
    assert not proportions.claim_needs_exact(108, 9000, 90, 9000, 0.2)
    # ... but with a 1:9 split the treatment's ~12 expected conversions are below 90
    assert proportions.claim_needs_exact(12, 1000, 90, 9000, 0.2)
    assert math.isfinite(proportions.claim_min_expected(1, 10**6))


# -- conversion rates near 1: the unconditional test ---------------------------------------------


@pytest.mark.parametrize(
    ("n1", "n2", "p2", "claim"),
    [
        (30, 270, 0.99, -0.03),  # score test alone: P(refuted) 0.050
        (60, 60, 0.99, -0.1),  # 0.036
        (900, 100, 0.99, 0.005),  # P(supported) 0.052
        (300, 300, 0.97, -0.2),
    ],
)
@pytest.mark.slow  # exact enumeration over every table: seconds each
def test_claim_size_near_rate_one_by_exact_enumeration(n1, n2, p2, claim) -> None:
    supported, refuted = _claim_error_rates(n1, n2, p2, claim)
    assert supported <= 0.025 * 1.1
    assert refuted <= 0.025 * 1.1


@pytest.mark.parametrize(
    ("table", "claim", "verdict"),
    [
        ((300, 400, 396, 400), -0.3, "supported"),  # Koopman: -28.8% to -20.1%
        ((198, 200, 170, 200), 0.3, "refuted"),  # Koopman: +10.5% to +24.8%
        ((90, 100, 100, 100), -0.5, "supported"),  # all 100 control users converted
    ],
)
def test_claims_near_rate_one_are_decided(table, claim, verdict) -> None:
    # The conditional test, bounded over the control rate, decided none of these (both
    # p-values 1): near rate 1 the odds ratio of a rate-ratio null swings with the rate.
    check = proportions.claim_check_proportions(*table, claim)
    assert check.method == proportions.UNCONDITIONAL_METHOD
    assert check.verdict == verdict
    lower, upper = proportions.koopman_interval(*table)
    assert check.max_supported_lift == pytest.approx(lower - 1, abs=0.01)
    if math.isfinite(check.min_refuted_lift):
        assert check.min_refuted_lift == pytest.approx(upper - 1, abs=0.01)


def _brute_force_unconditional(x1, n1, x2, n2, theta, alpha=0.05, grid=4001):
    """The same test from its definition, without truncation and on a fine grid."""
    gamma = alpha / 50
    low = 0.0 if x2 == 0 else stats.beta.ppf(gamma / 2, x2, n2 - x2 + 1)
    high = 1.0 if x2 == n2 else stats.beta.ppf(1 - gamma / 2, x2 + 1, n2 - x2)
    a, b = np.arange(n1 + 1)[:, None], np.arange(n2 + 1)[None, :]
    with np.errstate(all="ignore"):
        z = proportions.ratio_score_statistic(a, n1, b, n2, theta)
    z_obs = proportions.ratio_score_statistic(x1, n1, x2, n2, theta)
    best_above = best_below = 0.0
    for p2 in np.linspace(low, high, grid):
        p1 = min(theta * p2, 1.0)
        w = stats.binom.pmf(a, n1, p1) * stats.binom.pmf(b, n2, p2)
        best_above = max(best_above, float(w[z >= z_obs - 1e-9].sum()))
        if theta * p2 <= 1:
            best_below = max(best_below, float(w[z <= z_obs + 1e-9].sum()))
    return min(1.0, best_above + gamma), min(1.0, best_below + gamma)


@pytest.mark.parametrize(
    ("table", "theta"),
    [
        ((18, 20, 20, 20), 0.8),
        ((27, 30, 25, 30), 1.2),
        ((40, 50, 49, 50), 0.9),
        ((9, 10, 95, 100), 0.9),  # 1:10 arms
        ((97, 100, 8, 10), 1.1),  # 10:1 arms
    ],
)
@pytest.mark.slow  # exact enumeration over every table: seconds each
def test_unconditional_p_values_match_the_definition(table, theta) -> None:
    got = exact_ratio.unconditional_ratio_p_values(*table, theta)
    ref = _brute_force_unconditional(*table, theta)
    assert got == pytest.approx(ref, abs=2e-3)  # the grid's sup: 65 points against 4001


def test_unconditional_bounds_are_dual_to_the_p_values() -> None:
    table = (300, 400, 396, 400)
    lower, upper = exact_ratio.unconditional_ratio_bounds(*table)
    assert exact_ratio.unconditional_ratio_p_values(*table, lower * 0.999)[0] <= 0.025
    assert exact_ratio.unconditional_ratio_p_values(*table, lower * 1.001)[0] > 0.025
    assert exact_ratio.unconditional_ratio_p_values(*table, upper * 1.001)[1] <= 0.025
    assert exact_ratio.unconditional_ratio_p_values(*table, upper * 0.999)[1] > 0.025


def test_the_unconditional_test_is_noted_like_the_conditional_one() -> None:
    control = ArmAggregates(name="C", units=400, y_sum=396.0, y_sum_sq=396.0)
    treatment = ArmAggregates(name="T", units=400, y_sum=300.0, y_sum_sq=300.0)
    result = proportions.compare_proportions(control, treatment, claim=-0.3)
    assert result.claim is not None
    assert result.claim.method == proportions.UNCONDITIONAL_METHOD
    assert any("claim -30% is decided by an exact test" in n for n in result.notes)
