"""Sequential inference: the mSPRT formulas against direct integration, the group-sequential
recursion against an independent bivariate normal, and peeking simulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from abkit.stats import sequential
from abkit.stats.proportions import pooled_z_test
from abkit.stats.sufficient import ArmAggregates


def test_msprt_likelihood_ratio_is_the_normal_mixture() -> None:
    # Lambda = int N(est; theta, V) / N(est; 0, V) dN(theta; 0, tau^2), integrated numerically.
    est, var, tau2 = 0.013, 2.1e-5, 4e-5
    value, _ = integrate.quad(
        lambda th: stats.norm.pdf(est, th, math.sqrt(var)) / stats.norm.pdf(est, 0, math.sqrt(var))
        * stats.norm.pdf(th, 0, math.sqrt(tau2)),
        -0.1, 0.1, points=[0.0, est], epsabs=1e-13,
    )  # fmt: skip
    assert float(sequential.msprt_log_lr(est, var, tau2)) == pytest.approx(
        math.log(value), rel=1e-8
    )


def test_confidence_sequence_bounds_are_where_lambda_hits_one_over_alpha() -> None:
    est, var, tau2, alpha = 0.02, 3e-5, 5e-5, 0.05
    lower, upper = sequential.confidence_sequence(est, var, tau2, alpha)
    for bound in (float(lower), float(upper)):
        assert float(sequential.msprt_log_lr(est, var, tau2, null=bound)) == pytest.approx(
            math.log(1 / alpha), rel=1e-9
        )


def test_always_valid_p_is_a_running_minimum_and_degenerate_looks_are_neutral() -> None:
    p = sequential.always_valid_p_values([0.0, 0.02, 0.001, 0.05], [0.0, 1e-4, 1e-4, 1e-4], 1e-4)
    assert p[0] == 1.0  # zero variance: no evidence
    assert np.all(np.diff(p) <= 0)
    assert p[2] == p[1]


def test_tau2_tuning_formula() -> None:
    # Howard et al. 2021: rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / m.
    assert sequential.tune_tau2(2.0, 0.05) == pytest.approx(
        2.0 * (-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1))
    )


def test_crossing_probability_against_a_bivariate_normal() -> None:
    # Two looks at information 1 and 3 (unequal spacing), bounds 2.0 and 2.2:
    # corr(Z1, Z2) = sqrt(1/3); P(no crossing) is a rectangle probability.
    rho = math.sqrt(1 / 3)
    mvn = stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]])
    b1, b2 = 2.0, 2.2
    inside = mvn.cdf([b1, b2]) - mvn.cdf([-b1, b2]) - mvn.cdf([b1, -b2]) + mvn.cdf([-b1, -b2])
    ours = sequential.crossing_probability([b1, b2], [1.0, 3.0])
    assert ours == pytest.approx(1 - inside, abs=2e-5)
    assert sequential.crossing_probability([stats.norm.isf(0.025)]) == pytest.approx(
        0.05, abs=1e-12
    )


def _aggregates(name: str, x: int, n: int) -> ArmAggregates:
    return ArmAggregates(name=name, units=n, y_sum=float(x), y_sum_sq=float(x))


def test_sequential_comparison_path() -> None:
    looks = [
        (_aggregates("C", 20, 400), _aggregates("T", 30, 410)),
        (_aggregates("C", 41, 800), _aggregates("T", 66, 805)),
        (_aggregates("C", 60, 1200), _aggregates("T", 101, 1190)),
    ]
    result, path = sequential.sequential_comparison("conversion", looks, alpha=0.05)
    assert len(path) == 3
    assert result.looks == 3
    p_path = [look.always_valid_p_value for look in path]
    assert p_path == sorted(p_path, reverse=True)
    assert result.p_value == p_path[-1]
    last = path[-1]
    assert last.naive_p_value == pytest.approx(float(pooled_z_test(101, 1190, 60, 1200)[1]))
    # The confidence sequence is wider than the fixed-sample interval at the same look.
    diff = 101 / 1190 - 60 / 1200
    se = math.sqrt(101 / 1190 * (1 - 101 / 1190) / 1190 + 0.05 * 0.95 / 1200)
    assert last.diff_cs_upper - last.diff_cs_lower > 2 * 1.96 * se
    assert last.diff_cs_lower < diff < last.diff_cs_upper
    v_final = 101 / 1190 * (1 - 101 / 1190) / 1190 + 0.05 * 0.95 / 1200
    assert result.tau2_diff == pytest.approx(sequential.tune_tau2(v_final, 0.05))


def _peeking(rng: np.random.Generator, sims: int, looks: int, per_look: int, p: float, lift: float):
    """Cumulative conversions of two arms over equally spaced looks (binomial increments)."""
    x_c = np.cumsum(rng.binomial(per_look, p, size=(sims, looks)), axis=1).astype(float)
    x_t = np.cumsum(rng.binomial(per_look, p * (1 + lift), size=(sims, looks)), axis=1).astype(
        float
    )
    n = per_look * np.arange(1, looks + 1, dtype=float)
    return x_c, x_t, n


def _always_valid(x_c: np.ndarray, x_t: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    p_c, p_t = x_c / n, x_t / n
    var = p_t * (1 - p_t) / n + p_c * (1 - p_c) / n
    tau2 = sequential.tune_tau2(1.0, alpha) * var[:, -1:]  # tuned at each run's final look
    return sequential.always_valid_p_values(p_t - p_c, var, tau2)


@pytest.mark.slow
@pytest.mark.parametrize(("looks", "per_look"), [(14, 500), (100, 100)])
def test_peeking_inflates_the_naive_test_but_not_the_msprt(looks, per_look) -> None:
    # A/A: daily looks (14) and near-continuous looks (100). Naive repeated z-tests reject
    # far more often than alpha; the always-valid p-value keeps P(any rejection) <= alpha.
    rng = np.random.default_rng(42 + looks)
    sims, alpha = 3000, 0.05
    x_c, x_t, n = _peeking(rng, sims, looks, per_look, 0.05, 0.0)
    _, naive_p = pooled_z_test(x_t, n, x_c, n)
    naive_any = float(np.mean(np.any(naive_p <= alpha, axis=1)))
    valid_any = float(np.mean(np.any(_always_valid(x_c, x_t, n, alpha) <= alpha, axis=1)))
    assert naive_any > 0.15
    assert valid_any <= alpha
    # ... while a real +30% lift is still found by the end in most runs.
    x_c, x_t, n = _peeking(rng, 1000, looks, per_look, 0.05, 0.3)
    assert float(np.mean(_always_valid(x_c, x_t, n, alpha)[:, -1] <= alpha)) > 0.5


@pytest.mark.slow
def test_library_path_agrees_with_the_vectorised_simulation() -> None:
    rng = np.random.default_rng(3)
    x_c, x_t, n = _peeking(rng, 20, 7, 300, 0.08, 0.1)
    vectorised = _always_valid(x_c, x_t, n, 0.05)
    for i in range(20):
        looks = [
            (
                _aggregates("C", int(x_c[i, k]), int(n[k])),
                _aggregates("T", int(x_t[i, k]), int(n[k])),
            )
            for k in range(7)
        ]
        _result, path = sequential.sequential_comparison("conversion", looks)
        assert [look.always_valid_p_value for look in path] == pytest.approx(list(vectorised[i]))
