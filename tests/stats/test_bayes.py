"""Exact Beta-Binomial comparisons: the closed-form sum against numerical integration and a
seeded Monte Carlo, the expected loss, and bad inputs."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from abkit.errors import InputError
from abkit.stats.bayes import _integrate, beta_binomial_comparison, expected_loss, prob_greater

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
params = st.integers(1, 3_000)


@SETTINGS
@given(params, params, params, params)
def test_exact_sum_matches_numerical_integration(a1, b1, a2, b2) -> None:
    assert prob_greater(a1, b1, a2, b2) == pytest.approx(_integrate(a1, b1, a2, b2), abs=1e-8)


@SETTINGS
@given(params, params, params, params)
def test_complement_and_mirror_symmetries(a1, b1, a2, b2) -> None:
    p = prob_greater(a1, b1, a2, b2)
    assert p + prob_greater(a2, b2, a1, b1) == pytest.approx(1.0, abs=1e-9)
    assert prob_greater(b2, a2, b1, a1) == pytest.approx(p, abs=1e-9)


def test_non_integer_parameters_use_integration() -> None:
    expected = integrate.quad(
        lambda p: stats.beta.pdf(p, 2.5, 10.2) * stats.beta.cdf(p, 3.3, 9.1), 0, 1
    )[0]
    assert prob_greater(2.5, 10.2, 3.3, 9.1) == pytest.approx(expected, abs=1e-9)


def test_against_seeded_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    t = rng.beta(521, 9481, 400_000)
    c = rng.beta(481, 9521, 400_000)
    result = beta_binomial_comparison(480, 10_000, 520, 10_000)
    se = np.sqrt(0.25 / 400_000)
    assert result.prob_treatment_better == pytest.approx(float(np.mean(t > c)), abs=4 * se)
    loss = float(np.mean(np.maximum(c - t, 0)))
    assert result.expected_loss_treatment == pytest.approx(loss, rel=0.03)
    assert result.expected_loss_control == pytest.approx(
        float(np.mean(np.maximum(t - c, 0))), rel=0.01
    )
    assert "not a p-value" in result.label


def test_expected_loss_identity() -> None:
    # E[max(C - T, 0)] - E[max(T - C, 0)] = E[C] - E[T].
    keep_t = expected_loss(30, 70, 20, 80)
    keep_c = expected_loss(20, 80, 30, 70)
    assert keep_c - keep_t == pytest.approx(0.3 - 0.2, abs=1e-12)


def test_large_counts_stay_exact_and_fast() -> None:
    # 1.5 million terms would be needed for a_T; the sum runs over the smallest parameter.
    p = prob_greater(150_001, 9_850_001, 140_001, 9_860_001)
    assert p == pytest.approx(_integrate(150_001, 9_850_001, 140_001, 9_860_001), abs=1e-9)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((5, 10, 12, 10), {}, "conversions must be in [0, units], got 12 of 10"),
        ((5, 10, 3, 10), {"prior_alpha": 0.0}, "the Beta prior needs positive parameters, got Beta(0.0, 1.0)"),  # noqa: E501
    ],
)  # fmt: skip
def test_invalid_inputs(args, kwargs, message) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        beta_binomial_comparison(*args, **kwargs)
