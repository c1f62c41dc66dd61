"""The accuracy check: DeLong's AUC variance (fast algorithm) against independent references
(scipy's Mann-Whitney U, DeLong's structural components by their definition, a bootstrap,
coverage by simulation), the exact McNemar test against statsmodels, and the base-rate
comparison of a 93%-negative problem."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from abkit.errors import InputError
from abkit.stats.classification import (
    accuracy_check,
    delong_auc,
    exact_mcnemar_greater,
    midranks,
)


def _tied_sample(rng: np.random.Generator, m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores rounded to one decimal (many ties), positives shifted up."""
    scores = np.round(np.r_[rng.normal(0.6, 1, m), rng.normal(0, 1, n)], 1)
    labels = np.r_[np.ones(m, int), np.zeros(n, int)]
    order = rng.permutation(m + n)
    return scores[order], labels[order]


def _delong_by_definition(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """DeLong et al. (1988) written out: psi over all m x n pairs, O(mn)."""
    x, y = scores[labels == 1], scores[labels == 0]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), float(v10.var(ddof=1) / x.size + v01.var(ddof=1) / y.size)


def test_midranks_match_scipy() -> None:
    x = np.round(np.random.default_rng(1).normal(size=500), 1)
    np.testing.assert_allclose(midranks(x), sps.rankdata(x, method="average"))


@pytest.mark.parametrize(("m", "n", "seed"), [(30, 70, 0), (200, 2600, 1), (5, 9, 2)])
def test_auc_is_mann_whitney_u_and_variance_is_delongs(m: int, n: int, seed: int) -> None:
    scores, labels = _tied_sample(np.random.default_rng(seed), m, n)
    est = delong_auc(scores, labels)
    u = sps.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    assert est.auc == pytest.approx(u / (m * n), rel=1e-12)
    auc, variance = _delong_by_definition(scores, labels)
    assert est.auc == pytest.approx(auc, rel=1e-12)
    assert est.se**2 == pytest.approx(variance, rel=1e-9)
    z = sps.norm.ppf(0.975)
    assert est.ci_low == pytest.approx(max(0, auc - z * variance**0.5))
    assert est.ci_high == pytest.approx(min(1, auc + z * variance**0.5))


def test_delong_se_agrees_with_a_stratified_bootstrap() -> None:
    rng = np.random.default_rng(5)
    scores, labels = _tied_sample(rng, 150, 850)
    est = delong_auc(scores, labels)
    x, y = scores[labels == 1], scores[labels == 0]
    aucs = []
    for _ in range(1000):
        bx = rng.choice(x, x.size)
        by = rng.choice(y, y.size)
        aucs.append(sps.mannwhitneyu(bx, by).statistic / (x.size * y.size))
    # the bootstrap SE of 1,000 resamples is itself uncertain by about 2%
    assert est.se == pytest.approx(np.std(aucs, ddof=1), rel=0.1)


@pytest.mark.slow
def test_delong_interval_covers_the_binormal_auc() -> None:
    """Binormal scores, positives N(d, 1), negatives N(0, 1): AUC = Phi(d / sqrt 2)."""
    rng = np.random.default_rng(11)
    d, sims = 1.0, 1000
    truth = sps.norm.cdf(d / np.sqrt(2))
    labels = np.r_[np.ones(60, int), np.zeros(440, int)]
    covered = 0
    for _ in range(sims):
        scores = np.r_[rng.normal(d, 1, 60), rng.normal(0, 1, 440)]
        est = delong_auc(scores, labels)
        covered += est.ci_low <= truth <= est.ci_high
    half = 1.96 * np.sqrt(0.05 * 0.95 / sims) + 0.01  # normal-approximation slack at m = 60
    assert abs(covered / sims - 0.95) < half


@pytest.mark.parametrize(("b", "c"), [(12, 3), (40, 25), (7, 7), (3, 12), (1, 0)])
def test_exact_mcnemar_matches_statsmodels(b: int, c: int) -> None:
    two_sided = mcnemar([[50, b], [c, 50]], exact=True).pvalue
    one_sided = exact_mcnemar_greater(b, c)
    assert one_sided == pytest.approx(sps.binomtest(b, b + c, 0.5, "greater").pvalue)
    if b > c:
        assert one_sided == pytest.approx(two_sided / 2)
    assert exact_mcnemar_greater(0, 0) == 1.0


def test_accuracy_of_093_is_the_base_rate_when_93_percent_are_negatives() -> None:
    """13 negatives per positive: the base rate is 13/14 = 0.929. A model that separates the
    classes a little but never predicts 'yes' scores exactly the majority's accuracy."""
    rng = np.random.default_rng(3)
    labels = np.r_[np.ones(500, int), np.zeros(6500, int)]
    probabilities = np.clip(0.07 + 0.05 * labels + rng.normal(0, 0.03, labels.size), 0, 1)
    check = accuracy_check(probabilities, labels)
    assert check.majority_accuracy == pytest.approx(13 / 14)
    assert check.accuracy == pytest.approx(13 / 14)
    assert (check.model_only_right, check.majority_only_right) == (0, 0)
    assert check.p_value == 1.0
    assert not check.beats_majority
    assert check.auc.auc > 0.8  # it ranks well, yet its accuracy says nothing
    # the base-rate forecaster's scores
    base = 500 / 7000
    assert check.brier_base == pytest.approx(base * (1 - base))
    assert check.log_loss_base == pytest.approx(
        -(base * np.log(base) + (1 - base) * np.log1p(-base))
    )


def test_scores_and_calibration_by_hand() -> None:
    p = np.array([0.9, 0.2, 0.65, 0.05, 0.3, 0.95])
    y = np.array([1, 0, 0, 0, 1, 1])
    check = accuracy_check(p, y, bins=2)
    assert check.accuracy == pytest.approx(4 / 6)  # 0.65 and 0.3 are wrong
    assert check.log_loss == pytest.approx(
        -np.mean([np.log(0.9), np.log(0.8), np.log(0.35), np.log(0.95), np.log(0.3), np.log(0.95)])
    )
    assert check.brier == pytest.approx(np.mean((p - y) ** 2))
    low, high = check.calibration
    assert (low.n, low.observed, low.mean_predicted) == (3, 1 / 3, pytest.approx(0.55 / 3))
    assert (high.n, high.observed) == (3, 2 / 3)
    lo, hi = proportion_confint(2, 3, alpha=0.05, method="wilson")
    assert (high.observed_ci_low, high.observed_ci_high) == (pytest.approx(lo), pytest.approx(hi))
    ece = 0.5 * abs(1 / 3 - 0.55 / 3) + 0.5 * abs(2 / 3 - 2.5 / 3)
    assert check.ece == pytest.approx(ece)
    # the accuracy beside the majority (negatives and positives tie at 3: label 0)
    assert (check.majority_label, check.majority_accuracy) == (0, 0.5)
    assert (check.model_only_right, check.majority_only_right) == (2, 1)


@pytest.mark.parametrize(
    ("p", "y", "message"),
    [
        ([0.2, 1.2, 0.3, 0.4], [0, 1, 0, 1], "scores must be probabilities in [0, 1]"),
        ([0.2, np.nan, 0.3, 0.4], [0, 1, 0, 1], "scores must be probabilities in [0, 1]"),
        ([0.2, 0.1, 0.3, 0.4], [0, 2, 0, 1], "labels must be 0 or 1"),
        (
            [0.2, 0.1, 0.3, 0.4],
            [0, 0, 0, 1],
            "at least two positives and two negatives (got 1 and 3)",
        ),
    ],
)
def test_invalid_inputs(p: list, y: list, message: str) -> None:
    with pytest.raises(InputError) as err:
        accuracy_check(np.array(p), np.array(y))
    assert message in str(err.value)
