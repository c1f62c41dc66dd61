"""abkit.stats.dist gives scipy.stats' and scipy.optimize's numbers to the last bit."""

from __future__ import annotations

import math
from pathlib import Path

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
    """Arrays go through scipy's ufuncs: bit for bit (plain numbers: see below)."""
    _same(norm_cdf(X), stats.norm.cdf(X))
    _same(norm_sf(X), stats.norm.sf(X))
    _same(norm_ppf(Q), stats.norm.ppf(Q))
    for x in (-2.5, 0.0, 1.3, math.inf):
        assert float(Normal().sf(x)) == pytest.approx(float(stats.norm().sf(x)), rel=1e-15)
        assert float(Normal().cdf(x)) == pytest.approx(float(stats.norm().cdf(x)), rel=1e-15)
    assert float(Normal().ppf(0.975)) == pytest.approx(float(stats.norm().ppf(0.975)), rel=1e-15)


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
    # a plain number of 1 or 2 degrees of freedom is computed by math (a few ulp, see below)
    assert float(chi2_sf(3.5, df)) == pytest.approx(float(stats.chi2.sf(3.5, df)), rel=1e-14)
    counts = [5012, 4871, 5100, 4950, 5003, 4999, 5066][: df + 1]
    expected = [sum(counts) / len(counts)] * len(counts)
    result = stats.chisquare(counts, expected)
    terms = (np.asarray(counts, dtype=np.float64) - np.asarray(expected)) ** 2
    statistic = np.sum(terms / np.asarray(expected))
    assert float(statistic) == float(result.statistic)
    assert float(chi2_sf(statistic, float(df))) == pytest.approx(float(result.pvalue), rel=1e-14)


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


# -- plain numbers: computed with math, no scipy (the default compare path) -------------------


def _close(got: list[float], want: np.ndarray, rel: float) -> None:
    got_a = np.asarray(got, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(got_a), np.isnan(want))
    np.testing.assert_allclose(got_a, want, rtol=rel, atol=0)


def test_plain_numbers_match_scipy_to_a_few_units_in_the_last_place() -> None:
    rng = np.random.default_rng(8)
    x = np.concatenate([X, rng.normal(scale=6, size=3000)])
    q = np.concatenate(
        [Q, rng.random(3000), rng.random(300) * 1e-9, 1 - rng.random(300) * 1e-9, [0.0, 1.0]]
    )
    finite = x[np.isfinite(x) & (np.abs(x) < 37)]  # beyond, the tails are subnormal
    _close([norm_cdf(float(v)) for v in finite], stats.norm.cdf(finite), 1e-13)
    _close([norm_sf(float(v)) for v in finite], stats.norm.sf(finite), 1e-13)
    _close([norm_ppf(float(v)) for v in q], stats.norm.ppf(q), 2e-15)
    chi = np.concatenate([np.abs(finite) * 7, [-1.0, 0.0]])
    for df in (1, 2, 1.0):
        _close([chi2_sf(float(v), df) for v in chi], stats.chi2.sf(chi, df), 1e-13)
    assert norm_ppf(0.5) == 0.0
    assert math.isnan(norm_ppf(1.5))
    assert norm_cdf(math.inf) == 1.0
    assert norm_sf(math.inf) == 0.0
    assert math.isnan(norm_cdf(math.nan))
    assert chi2_sf(3.0, 3) == pytest.approx(stats.chi2.sf(3.0, 3), rel=0, abs=0)  # scipy's path


def test_the_default_compare_imports_no_scipy(sim_db: Path, tmp_path: Path) -> None:
    """`abkit compare` on a simulated store: conversion, SRM, intervals, Holm, all from plain
    numbers; scipy (a fifth of a second to import) stays unimported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from abkit.cli.main import main\n"
        f"sys.argv = ['abkit', 'compare', '--db', {str(sim_db)!r}, '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('SCIPY' if any(m.startswith('scipy') for m in sys.modules) else 'NO-SCIPY')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip().splitlines()[-1] == "NO-SCIPY"
    assert '"comparisons"' in out.stdout
