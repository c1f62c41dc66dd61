"""abkit.stats.dist gives scipy.stats' and scipy.optimize's numbers to the last bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from abkit.stats.dist import (
    Normal,
    StudentT,
    beta_ppf,
    brentq,
    chi2_sf,
    norm_cdf,
    norm_ppf,
    norm_sf,
    t_cdf,
    t_ppf,
    t_sf,
)

X = np.array([-math.inf, -40.0, -8.5, -1.959963984540054, -0.3, -0.0, 0.0, 1e-9, 0.7, 3.1, 38.0])
X = np.concatenate([X, np.random.default_rng(3).normal(scale=4, size=200), [math.inf, math.nan]])
Q = np.concatenate(
    [[1e-300, 1e-12, 0.025, 0.5, 0.8, 0.975, 1 - 1e-12], np.linspace(0.01, 0.99, 57)]
)
DF = [0.5, 1.0, 2.0, 3.7, 29.0, 118.4, 1e6, 1e300, math.inf, 0.0, -1.0, math.nan]


def _same(a: object, b: object) -> None:
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), strict=True)


def test_normal_matches_scipy_bitwise() -> None:
    _same(norm_cdf(X), stats.norm.cdf(X))
    _same(norm_sf(X), stats.norm.sf(X))
    _same(norm_ppf(Q), stats.norm.ppf(Q))
    for x in (-2.5, 0.0, 1.3, math.inf):
        assert float(Normal().sf(x)) == float(stats.norm().sf(x))
        assert float(Normal().cdf(x)) == float(stats.norm().cdf(x))
    assert float(Normal().ppf(0.975)) == float(stats.norm().ppf(0.975))


@pytest.mark.parametrize("df", DF)
def test_student_t_matches_scipy_bitwise(df: float) -> None:
    _same(t_cdf(X, df), stats.t.cdf(X, df))
    _same(t_sf(X, df), stats.t.sf(X, df))
    _same(t_ppf(Q, df), stats.t.ppf(Q, df))
    frozen, ours = stats.t(df), StudentT(df)
    for x in (-2.5, 0.0, 1.3):
        _same(float(ours.sf(x)), float(frozen.sf(x)))
        _same(float(ours.cdf(x)), float(frozen.cdf(x)))
    _same(float(ours.ppf(0.975)), float(frozen.ppf(0.975)))


@pytest.mark.parametrize("df", [1, 2, 3, 6])
def test_chi2_matches_scipy_bitwise(df: int) -> None:
    _same(chi2_sf(X, df), stats.chi2.sf(X, df))  # negative, infinite and NaN included
    for bad in (0, -1.0, math.nan):
        _same(chi2_sf(X, bad), stats.chi2.sf(X, bad))
    assert float(chi2_sf(3.5, df)) == float(stats.chi2.sf(3.5, df))
    counts = [5012, 4871, 5100, 4950, 5003, 4999, 5066][: df + 1]
    expected = [sum(counts) / len(counts)] * len(counts)
    result = stats.chisquare(counts, expected)
    terms = (np.asarray(counts, dtype=np.float64) - np.asarray(expected)) ** 2
    statistic = np.sum(terms / np.asarray(expected))
    assert float(statistic) == float(result.statistic)
    assert float(chi2_sf(statistic, float(df))) == float(result.pvalue)


def _problems() -> list[tuple[object, float, float, dict[str, float]]]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(300):
        c = rng.normal(size=4)
        r = float(rng.uniform(-2, 2))

        def f(x: float, c: np.ndarray = c, r: float = r, i: int = i) -> float:
            if i % 3 == 0:
                return float(np.exp(x) - np.exp(r) + c[3] * (x - r) ** 2)
            return float(
                (x - r) * (1 + c[0] ** 2 + 0.5 * c[1] * np.tanh(x)) + 0.1 * c[2] * (x - r) ** 3
            )

        kw = [{}, {"xtol": 1e-14, "rtol": 4 * np.finfo(float).eps, "maxiter": 200}, {"xtol": 1e-10}]
        out.append((f, -3.0, 3.0, kw[i % 3]))
    return out


def test_beta_ppf_matches_scipy_bitwise() -> None:
    """The Korn-Graubard interval's quantiles: ``beta.ppf(q, a, b)`` over the shapes it sees
    (a success count, non-integer effective sizes from 1e-2 to 1e6 trials)."""
    rng = np.random.default_rng(4)
    a = np.concatenate([[0.5, 1.0, 3.0, 1e6], rng.uniform(0.01, 1e5, 300)])
    b = np.concatenate([[0.5, 2.0, 1e5, 1.0], rng.uniform(0.5, 1e6, 300)])
    for q in (0.005, 0.025, 0.05, 0.5, 0.95, 0.975, 0.995):
        _same(beta_ppf(q, a, b), stats.beta.ppf(q, a, b))


def test_brentq_matches_scipy_step_for_step() -> None:
    for f, a, b, kw in _problems():
        try:
            expected: object = optimize.brentq(f, a, b, **kw)  # type: ignore[arg-type]
        except ValueError:
            expected = ValueError
        try:
            got: object = brentq(f, a, b, **kw)  # type: ignore[arg-type]
        except ValueError:
            got = ValueError
        assert got == expected


def test_brentq_refuses_what_scipy_refuses() -> None:
    with pytest.raises(ValueError, match="different signs"):
        brentq(lambda x: x * x + 1, -1.0, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        brentq(lambda x: math.nan if x > 0 else -1.0, -1.0, 1.0)
    with pytest.raises(RuntimeError, match="converge"):
        brentq(lambda x: x - 0.3, 0.0, 1.0, maxiter=1)
    assert brentq(lambda x: x, 0.0, 1.0) == 0.0
