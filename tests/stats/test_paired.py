"""abkit.stats.paired: hand-worked cases, scipy/statsmodels references, REFERENCE.md values,
invalid inputs with their exact messages, and coverage simulations."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from abkit.errors import InputError
from abkit.stats import paired
from abkit.stats.paired import (
    bootstrap_one_sided,
    bootstrap_upper_bound,
    cohens_dz,
    compare_paired,
    fieller_ratio,
    mcnemar,
    mcnemar_table,
    one_sample_t,
    paired_bootstrap,
    paired_offpolicy_difference,
    paired_t,
    relative_difference_interval,
    welch_interval,
)


def _correlated(rng: np.random.Generator, n: int, shift: float = 0.0, noise: float = 0.1):
    """Per-user values of two models that share most of their variance (like NDCG)."""
    ease = rng.gamma(2.0, 0.15, n)
    baseline = np.clip(ease + rng.normal(0, noise, n), 0, None)
    candidate = np.clip(ease + shift + rng.normal(0, noise, n), 0, None)
    return baseline, candidate


# -- t ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_paired_t_matches_scipy(alternative: str) -> None:
    rng = np.random.default_rng(3)
    b, c = _correlated(rng, 200, shift=0.01)
    ours = paired_t(b, c, alternative=alternative, confidence=0.9)  # type: ignore[arg-type]
    ref = stats.ttest_rel(c, b, alternative=alternative)
    ci = ref.confidence_interval(0.9)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours.t_statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert ours.ci_low == pytest.approx(ci.low, rel=1e-9) if np.isfinite(ci.low) else True
    assert ours.ci_high == pytest.approx(ci.high, rel=1e-9) if np.isfinite(ci.high) else True
    assert (ours.ci_low == -math.inf) == (alternative == "less")
    assert (ours.ci_high == math.inf) == (alternative == "greater")


def test_one_sample_t_hand_worked() -> None:
    # x = [1, 2, 3]: mean 2, sd 1, se 1/sqrt(3); t = 2*sqrt(3) = 3.4641 on 2 df
    r = one_sample_t([1, 2, 3])
    assert r.t_statistic == pytest.approx(2 * math.sqrt(3))
    assert r.p_value == pytest.approx(2 * stats.t.sf(2 * math.sqrt(3), 2))
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)
    assert (r.ci_low, r.ci_high) == pytest.approx((2 - half, 2 + half))


@pytest.mark.parametrize(
    ("values", "null", "alternative", "p"),
    [
        ([0.5, 0.5, 0.5], 0.5, "two-sided", 1.0),
        ([0.5, 0.5, 0.5], 0.0, "two-sided", 0.0),
        ([0.5, 0.5, 0.5], 0.0, "greater", 0.0),
        ([0.5, 0.5, 0.5], 0.0, "less", 1.0),
        ([0.0, 0.0], 0.0, "less", 1.0),
    ],
)
def test_one_sample_t_without_variance(values, null, alternative, p) -> None:
    r = one_sample_t(values, null=null, alternative=alternative)
    assert r.p_value == p
    assert r.standard_error == 0


def test_identical_vectors_give_a_zero_difference() -> None:
    x = np.random.default_rng(0).random(50)
    result = compare_paired(x, x, n_resamples=200)
    assert result.difference == 0
    assert (result.ci_low, result.ci_high) == (0, 0)
    assert result.p_value == 1.0
    assert result.cohens_dz == 0
    assert result.relative_difference == 0
    assert result.bootstrap is not None
    assert (result.bootstrap.ci_low, result.bootstrap.ci_high) == (0, 0)


def test_welch_interval_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    b, c = _correlated(rng, 120, shift=0.02)
    ref = stats.ttest_ind(c, b, equal_var=False).confidence_interval(0.95)
    assert welch_interval(b, c) == pytest.approx((ref.low, ref.high), rel=1e-9)


def test_cohens_dz_hand_worked() -> None:
    # d = [1, 2, 3]: mean 2, sd 1 -> d_z = 2
    assert cohens_dz([0, 0, 0], [1, 2, 3]) == pytest.approx(2.0)
    assert cohens_dz([0, 0], [1, 1]) == math.inf
    assert cohens_dz([1, 1], [0, 0]) == -math.inf


# -- paired narrower than unpaired --------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(30, 300))
def test_paired_interval_narrower_than_unpaired_when_users_share_variance(
    seed: int, n: int
) -> None:
    b, c = _correlated(np.random.default_rng(seed), n, shift=0.01, noise=0.05)
    result = compare_paired(b, c, n_resamples=0)
    assert result.ci_high - result.ci_low < result.unpaired_ci_high - result.unpaired_ci_low


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_swapping_the_vectors_mirrors_the_result(seed: int) -> None:
    b, c = _correlated(np.random.default_rng(seed), 40, shift=0.02)
    ab = paired_t(b, c)
    ba = paired_t(c, b)
    assert ab.mean == pytest.approx(-ba.mean, abs=1e-12)
    assert ab.ci_low == pytest.approx(-ba.ci_high, abs=1e-12)
    assert ab.p_value == pytest.approx(ba.p_value, rel=1e-9)


# -- ratio ------------------------------------------------------------------------------------


def test_fieller_without_baseline_variance_is_the_scaled_candidate_interval() -> None:
    # V_A = 0 and C = 0: (B - ρA)² ≤ c² V_B  ->  ρ = B/A ± c·sqrt(V_B)/A
    r = fieller_ratio(2.0, 3.0, 0.0, 0.04, 0.0, critical=1.96, confidence=0.95)
    assert r.ci_low + 1 == pytest.approx(1.5 - 1.96 * 0.2 / 2)
    assert r.ci_high + 1 == pytest.approx(1.5 + 1.96 * 0.2 / 2)
    assert r.estimate == pytest.approx(0.5)


def test_fieller_is_unbounded_when_the_baseline_is_not_distinguishable_from_zero() -> None:
    r = fieller_ratio(0.1, 0.2, 0.01, 0.01, 0.0, critical=1.96, confidence=0.95)
    assert not r.bounded
    assert (r.ci_low, r.ci_high) == (-math.inf, math.inf)


def test_fieller_and_delta_agree_on_large_samples() -> None:
    b, c = _correlated(np.random.default_rng(8), 20_000, shift=0.01)
    fieller = relative_difference_interval(b, c)
    delta = relative_difference_interval(b, c, method="delta")
    assert fieller.ci_low == pytest.approx(delta.ci_low, abs=2e-4)
    assert fieller.ci_high == pytest.approx(delta.ci_high, abs=2e-4)
    assert fieller.estimate == pytest.approx(c.mean() / b.mean() - 1)


# -- bootstrap --------------------------------------------------------------------------------


def test_bootstrap_is_reproducible_and_independent_of_the_block_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b, c = _correlated(np.random.default_rng(1), 300, shift=0.01)
    first = paired_bootstrap(b, c, seed=42, n_resamples=500)
    assert paired_bootstrap(b, c, seed=42, n_resamples=500) == first
    assert paired_bootstrap(b, c, seed=43, n_resamples=500) != first
    monkeypatch.setattr(paired, "_BLOCK_ELEMENTS", 300 * 7)  # blocks of 7 resamples
    assert paired_bootstrap(b, c, seed=42, n_resamples=500) == first


def test_bootstrap_agrees_with_the_t_interval_on_moderate_samples() -> None:
    b, c = _correlated(np.random.default_rng(2), 2000, shift=0.01)
    boot = paired_bootstrap(b, c, seed=0, n_resamples=2000)
    t = paired_t(b, c)
    assert boot.difference == pytest.approx(t.mean)
    assert boot.standard_error == pytest.approx(t.standard_error, rel=0.1)
    assert boot.ci_low == pytest.approx(t.ci_low, abs=0.2 * t.standard_error)
    assert boot.ci_high == pytest.approx(t.ci_high, abs=0.2 * t.standard_error)


def test_bootstrap_upper_bound_test() -> None:
    x = np.random.default_rng(4).normal(-1.0, 1.0, 400)  # clearly below 0
    p, upper = bootstrap_upper_bound(x, threshold=0.0, alpha=0.05, seed=1, n_resamples=500)
    assert p == pytest.approx(1 / 501)
    assert upper < 0
    p, upper = bootstrap_upper_bound(x, threshold=-2.0, alpha=0.05, seed=1, n_resamples=500)
    assert p == 1.0
    assert upper > -2.0


def test_bootstrap_bound_agrees_with_the_add_one_p_value_by_hand() -> None:
    """Draws 1..99 (B = 99), alpha 0.05: p = (1 + #{θ* ≥ x}) / 100 ≤ 0.05 needs at most 4
    draws at or above x, so the bound is the 5th largest draw, 95. The plain 95% quantile
    (94.1) disagrees with the test for any x in (94.1, 95]: the old rule's defect."""
    draws = np.arange(1.0, 100.0)
    p, upper = bootstrap_one_sided(draws, threshold=94.5, alpha=0.05)
    assert p == pytest.approx(6 / 100)  # 95..99 are >= 94.5: not rejected
    assert upper == 95.0
    assert upper >= 94.5  # the bound agrees: 94.5 is inside it
    assert np.quantile(draws, 0.95) == pytest.approx(94.1)  # the old bound said "below"
    p, upper = bootstrap_one_sided(draws, threshold=95.5, alpha=0.05)
    assert p == pytest.approx(5 / 100)  # rejected (p <= alpha)
    assert upper == 95.0 < 95.5
    # Holm's factor 2 halves the level: at most 1 draw (p <= 0.025) -> the 2nd largest
    assert bootstrap_one_sided(draws, threshold=0.0, alpha=0.05, multiplier=2)[1] == 98.0
    # too few resamples for the level: never rejects, unbounded
    assert bootstrap_one_sided(draws[:10], threshold=1e9, alpha=0.05)[1] == math.inf


@settings(max_examples=200, deadline=None)
@given(
    draws=st.lists(st.integers(-20, 20), min_size=20, max_size=300),
    threshold=st.integers(-21, 21).map(lambda v: v / 2),
    alpha=st.sampled_from([0.01, 0.025, 0.05, 0.1, 0.2]),
    multiplier=st.integers(1, 5),
)
def test_bootstrap_decision_and_bound_never_disagree(
    draws: list[int], threshold: float, alpha: float, multiplier: int
) -> None:
    """Ties and thresholds on the draws included: rejected (Holm-adjusted add-one p <=
    alpha) exactly when the bound is below the threshold."""
    p, upper = bootstrap_one_sided(
        np.asarray(draws, float), threshold=threshold, alpha=alpha, multiplier=multiplier
    )
    assert (min(1.0, multiplier * p) <= alpha) == (upper < threshold)


# -- McNemar (REFERENCE.md) ---------------------------------------------------------------------


def test_mcnemar_reference_values() -> None:
    table = [[794, 150], [86, 570]]
    chi2 = mcnemar_table(table, method="chi2")
    assert chi2.statistic == pytest.approx(17.36, abs=5e-3)
    assert chi2.p_value == pytest.approx(3.1e-5, rel=0.02)
    assert mcnemar_table(table, method="chi2-corrected").statistic == pytest.approx(16.82, abs=5e-3)


@pytest.mark.parametrize("table", [[[794, 150], [86, 570]], [[10, 3], [9, 20]], [[5, 0], [1, 5]]])
def test_mcnemar_matches_statsmodels(table) -> None:
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    assert mcnemar_table(table).p_value == pytest.approx(sm_mcnemar(table, exact=True).pvalue)
    for method, correction in (("chi2", False), ("chi2-corrected", True)):
        ref = sm_mcnemar(table, exact=False, correction=correction)
        ours = mcnemar_table(table, method=method)  # type: ignore[arg-type]
        assert ours.statistic == pytest.approx(ref.statistic)
        assert ours.p_value == pytest.approx(ref.pvalue)


def test_mcnemar_from_vectors() -> None:
    b = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    c = np.array([1, 0, 0, 1, 1, 1, 1, 0])
    r = mcnemar(b, c)
    assert (r.both, r.baseline_only, r.candidate_only, r.neither) == (2, 2, 3, 1)
    assert r.p_value == pytest.approx(1.0)  # 2 * P(Bin(5, .5) <= 2) = 1
    assert mcnemar([0, 1], [0, 1]).p_value == 1.0  # no discordant pair
    assert compare_paired(b, c, n_resamples=0).mcnemar == r
    assert compare_paired(b + 0.5, c, n_resamples=0).mcnemar is None


# -- off-policy -------------------------------------------------------------------------------


def test_offpolicy_ips_difference_hand_worked() -> None:
    reward = np.array([1.0, 0.0, 1.0, 0.0])
    wa = np.array([1.0, 1.0, 1.0, 1.0])
    wb = np.array([2.0, 0.0, 2.0, 0.0])
    r = paired_offpolicy_difference(reward=reward, weight_a=wa, weight_b=wb)
    # g_A = [1,0,1,0] (mean .5), g_B = [2,0,2,0] (mean 1); d = [1,0,1,0]: var 1/3, n 4
    assert (r.value_a, r.value_b, r.difference) == (0.5, 1.0, 0.5)
    assert r.standard_error == pytest.approx(math.sqrt((1 / 3) / 4))
    assert r.relative_difference == pytest.approx(1.0)


def test_offpolicy_difference_clustered_by_hand() -> None:
    """Same rounds as above; rounds 2 and 3 belong to one user. ψ_B - ψ_A =
    (.5, -.5, .5, -.5); cluster totals (.5, 0, -.5), G = 3: V = 3/2 (.25 + .25) = .75,
    SE = sqrt(.75) / 4."""
    reward = np.array([1.0, 0.0, 1.0, 0.0])
    wa = np.ones(4)
    wb = np.array([2.0, 0.0, 2.0, 0.0])
    r = paired_offpolicy_difference(reward=reward, weight_a=wa, weight_b=wb, clusters=[0, 1, 1, 2])
    assert r.n_clusters == 3
    assert r.n_rounds == 4
    assert r.standard_error == pytest.approx(math.sqrt(0.75) / 4)
    # psi_A totals (.5, 0, -.5): V_A = 3/2 * .5 / 16
    assert r.variance_a == pytest.approx(0.75 / 16)
    rows = paired_offpolicy_difference(reward=reward, weight_a=wa, weight_b=wb)
    per_round = paired_offpolicy_difference(
        reward=reward, weight_a=wa, weight_b=wb, clusters=["a", "b", "c", "d"]
    )
    assert per_round == rows
    assert rows.n_clusters == 4


def test_offpolicy_same_policy_is_no_difference() -> None:
    rng = np.random.default_rng(0)
    reward = rng.binomial(1, 0.1, 500).astype(float)
    w = rng.choice([0.0, 5.0], 500)
    for estimator in ("ips", "snips", "dr"):
        q = np.full(500, 0.1)
        r = paired_offpolicy_difference(
            reward=reward, weight_a=w, weight_b=w, estimator=estimator,
            q_logged_a=q, q_policy_a=q, q_logged_b=q, q_policy_b=q,
        )  # fmt: skip
        assert r.difference == 0
        assert r.p_value == 1.0


def test_offpolicy_snips_value() -> None:
    reward = np.array([1.0, 0.0, 1.0, 1.0])
    w = np.array([2.0, 1.0, 0.0, 1.0])
    r = paired_offpolicy_difference(
        reward=reward, weight_a=np.ones(4), weight_b=w, estimator="snips"
    )
    assert r.value_b == pytest.approx(3 / 4)  # (2 + 0 + 0 + 1) / (2 + 1 + 0 + 1)
    assert r.value_a == pytest.approx(3 / 4)


# -- invalid inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: paired_t([1, 2, 3], [1, 2]),
            "paired vectors differ in length: baseline has 3 units, candidate 2",
        ),
        (lambda: paired_t([1], [1]), "a paired comparison needs at least 2 units, got 1"),
        (
            lambda: paired_t([1, math.nan], [1, 2]),
            "baseline: value nan at position 1 is not a finite number",
        ),
        (
            lambda: paired_t([[1, 2]], [[1, 2]]),
            "baseline: expected a 1-D vector of per-unit values, got shape (1, 2)",
        ),
        (
            lambda: paired_t([1, 2], [1, 2], confidence=1.0),
            "confidence must be between 0 and 1 (exclusive), got 1.0",
        ),
        (
            lambda: paired_t([1, 2], [1, 2], alternative="bigger"),  # type: ignore[arg-type]
            "alternative must be 'two-sided', 'less' or 'greater', got 'bigger'",
        ),
        (
            lambda: paired_bootstrap([1, 2], [1, 2], seed=1, n_resamples=10),
            "n_resamples must be at least 100, got 10",
        ),
        (lambda: mcnemar([0, 2], [0, 1]), "McNemar's test needs 0/1 values in both vectors"),
        (lambda: mcnemar_table([[1, 2, 3]]), "a McNemar table must be 2x2 of non-negative counts"),
        (
            lambda: mcnemar_table([[1, 2], [3, 4]], method="fisher"),  # type: ignore[arg-type]
            "method must be 'exact', 'chi2' or 'chi2-corrected', got 'fisher'",
        ),
        (
            lambda: paired_offpolicy_difference(reward=[1, 0], weight_a=[1, 1], weight_b=[1]),
            "off-policy vectors differ in length: reward 2, weight_a 2, weight_b 1",
        ),
        (
            lambda: paired_offpolicy_difference(reward=[1, 0], weight_a=[1, -1], weight_b=[1, 1]),
            "importance weights must be non-negative",
        ),
        (
            lambda: paired_offpolicy_difference(
                reward=[1, 0], weight_a=[1, 1], weight_b=[1, 1], estimator="dr"
            ),
            "policy A: the doubly robust estimator needs q_logged and q_policy per round",
        ),
        (
            lambda: paired_offpolicy_difference(
                reward=[1, 0], weight_a=[0, 0], weight_b=[1, 1], estimator="snips"
            ),
            "policy A: every importance weight is 0; SNIPS is undefined",
        ),
        (
            lambda: paired_offpolicy_difference(
                reward=[1, 0], weight_a=[1, 1], weight_b=[1, 1], clusters=[4, 4]
            ),
            "an off-policy comparison needs at least 2 independent units (clusters), got 1",
        ),
        (
            lambda: paired_offpolicy_difference(
                reward=[1, 0], weight_a=[1, 1], weight_b=[1, 1], clusters=[1, 2, 3]
            ),
            "clusters: expected one cluster label per row (2), got shape (3,)",
        ),
        (
            lambda: bootstrap_one_sided([], threshold=0, alpha=0.05),
            "bootstrap draws must be a non-empty 1-D vector without NaN",
        ),
        (
            lambda: relative_difference_interval([1, 2], [1, 2], method="bayes"),  # type: ignore[arg-type]
            "method must be 'fieller' or 'delta', got 'bayes'",
        ),
    ],
)
def test_invalid_inputs(call, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        call()


# -- coverage by simulation -------------------------------------------------------------------


def _band(coverage: float, sims: int, level: float = 0.95) -> bool:
    return abs(coverage - level) <= 3 * math.sqrt(level * (1 - level) / sims)


@pytest.mark.slow
def test_paired_intervals_cover_the_true_difference() -> None:
    """Zero-inflated, skewed per-user values (like NDCG@10: most users 0); the true mean
    difference is known by construction. t, bootstrap and Fieller all cover at ~95%."""
    rng = np.random.default_rng(2024)
    sims, n = 400, 400
    hit_b, hit_c, gain = 0.3, 0.33, 0.5
    true_diff = (hit_c - hit_b) * gain
    true_rel = hit_c / hit_b - 1
    covered = {"t": 0, "bootstrap": 0, "fieller": 0}
    narrower = 0
    for sim in range(sims):
        u = rng.random(n)  # shared "ease": the same users are hit by both models
        b = (u < hit_b) * gain
        c = (u < hit_c) * gain
        flip = rng.random(n) < 0.1  # some independent disagreement
        c = np.where(flip, (rng.random(n) < hit_c) * gain, c)
        r = compare_paired(b, c, n_resamples=400, seed=sim)
        assert r.bootstrap is not None
        covered["t"] += r.ci_low <= true_diff <= r.ci_high
        covered["bootstrap"] += r.bootstrap.ci_low <= true_diff <= r.bootstrap.ci_high
        covered["fieller"] += r.relative_ci_low <= true_rel <= r.relative_ci_high
        narrower += (r.ci_high - r.ci_low) < (r.unpaired_ci_high - r.unpaired_ci_low)
    for name, hits in covered.items():
        assert _band(hits / sims, sims), (name, hits / sims)
    assert narrower == sims


@pytest.mark.slow
def test_offpolicy_difference_covers_the_true_difference() -> None:
    """Uniform logging over 5 actions, reward rates known; policy A always plays action 0,
    policy B plays action 4: the true difference of conversion rates is p4 - p0."""
    rng = np.random.default_rng(7)
    rates = np.array([0.05, 0.06, 0.07, 0.08, 0.10])
    sims, n = 400, 4000
    hits = {"ips": 0, "snips": 0}
    rel_hits = 0
    for _ in range(sims):
        action = rng.integers(0, 5, n)
        reward = (rng.random(n) < rates[action]).astype(float)
        wa = (action == 0) * 5.0
        wb = (action == 4) * 5.0
        for estimator in hits:
            r = paired_offpolicy_difference(
                reward=reward,
                weight_a=wa,
                weight_b=wb,
                estimator=estimator,  # type: ignore[arg-type]
            )
            hits[estimator] += r.ci_low <= rates[4] - rates[0] <= r.ci_high
            if estimator == "ips":
                rel_hits += r.relative_ci_low <= rates[4] / rates[0] - 1 <= r.relative_ci_high
    for estimator, count in hits.items():
        assert _band(count / sims, sims), (estimator, count / sims)
    assert _band(rel_hits / sims, sims), rel_hits / sims


@pytest.mark.slow
def test_offpolicy_difference_clustered_by_user_covers_and_per_round_does_not() -> None:
    """Users contribute 40 rounds each and differ in how much they like action 4 (a
    persistent taste ~ Beta(0.5, 2), mean 0.2); every other action clicks at 0.1. Uniform
    logs over 5 actions; policy A plays action 0, policy B action 4: the true difference per
    round is 0.2 - 0.1 = 0.1. The old per-round variance treats 4,000 correlated rounds as
    independent and under-covers; clustering by user is in the binomial band of 95%."""
    rng = np.random.default_rng(31)
    sims, users, rounds = 400, 100, 40
    user = np.repeat(np.arange(users), rounds)
    taste = rng.beta(0.5, 2.0, size=(sims, users))[:, user]  # (sims, rounds), drawn at once
    action = rng.integers(0, 5, size=taste.shape)
    rate = np.where(action == 4, taste, 0.1)
    reward = (rng.random(taste.shape) < rate).astype(float)
    wa, wb = (action == 0) * 5.0, (action == 4) * 5.0
    truth = 0.1
    hits = {("ips", True): 0, ("ips", False): 0, ("snips", True): 0, ("snips", False): 0}
    for s in range(sims):
        for estimator, clustered in hits:
            r = paired_offpolicy_difference(
                reward=reward[s],
                weight_a=wa[s],
                weight_b=wb[s],
                estimator=estimator,  # type: ignore[arg-type]
                clusters=user if clustered else None,
            )
            hits[estimator, clustered] += r.ci_low <= truth <= r.ci_high
    for estimator in ("ips", "snips"):
        assert _band(hits[estimator, True] / sims, sims), (estimator, hits)
        assert hits[estimator, False] / sims < 0.90, (estimator, hits)


@pytest.mark.parametrize("k", [1, 2])
def test_clustered_covariance_without_codes_is_one_row_per_cluster(k: int) -> None:
    rng = np.random.default_rng(4)
    psi = rng.normal(size=(1_001, k)) if k == 2 else rng.exponential(size=1_001) - 1
    one_row = paired.clustered_covariance(psi, np.arange(1_001, dtype=np.int64), 1_001)
    np.testing.assert_allclose(paired.clustered_covariance(psi, None, 1_001), one_row,
                               rtol=1e-12, atol=0)  # fmt: skip
    with pytest.raises(InputError, match="one cluster per row"):
        paired.clustered_covariance(psi, None, 1_000)


def test_offpolicy_difference_without_clusters_equals_one_round_clusters() -> None:
    rng = np.random.default_rng(8)
    n = 2_000
    reward = (rng.uniform(size=n) < 0.3).astype(float)
    wa, wb = rng.exponential(size=(2, n))
    for estimator in ("ips", "snips"):
        plain = paired.paired_offpolicy_difference(
            reward=reward, weight_a=wa, weight_b=wb, estimator=estimator
        )
        clustered = paired.paired_offpolicy_difference(
            reward=reward, weight_a=wa, weight_b=wb, estimator=estimator, clusters=np.arange(n)
        )
        a, b = plain.to_dict(), clustered.to_dict()
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float):
                assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-15, nan_ok=True), key
            else:
                assert a[key] == b[key], key


def test_offpolicy_relative_interval_stays_above_minus_100_percent() -> None:
    # The uniform policy (weight 1) against a target that matches 41 of 4,000 rounds with
    # weight 50, one of them clicked: the target's value is not distinguishable from 0, so
    # Fieller's raw set reaches below -100%, which no pair of non-negative rates can reach;
    # the interval is cut there and nowhere else.
    n = 4000
    reward = np.zeros(n)
    reward[::100] = 1.0  # 40 clicks
    weight_a = np.ones(n)
    weight_b = np.zeros(n)
    weight_b[50::100] = 50.0  # 40 matched rounds without a click
    weight_b[100] = 50.0  # and one clicked
    result = paired_offpolicy_difference(reward=reward, weight_a=weight_a, weight_b=weight_b)
    z = float(stats.norm.ppf(0.975))
    raw = fieller_ratio(
        result.value_a,
        result.value_b,
        result.variance_a,
        result.variance_b,
        result.covariance,
        critical=z,
        confidence=0.95,
    )
    assert raw.bounded
    assert raw.ci_low < -1  # the case the cut is for
    assert result.relative_ci_low == -1.0
    # the same Fieller bound, computed along another path (numpy's sums and BLAS dot products
    # round differently per CPU kernel: one ulp apart on an AMD EPYC), so to a relative 1e-12
    assert result.relative_ci_high == pytest.approx(raw.ci_high, rel=1e-12)
    # a signed reward keeps Fieller's set as it is
    signed = paired_offpolicy_difference(
        reward=reward - 0.001, weight_a=weight_a, weight_b=weight_b
    )
    assert signed.relative_ci_low != -1.0
