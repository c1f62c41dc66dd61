"""Sequential inference: the mSPRT formulas against direct integration, the group-sequential
recursion against an independent bivariate normal, and peeking simulations."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import integrate, stats

from abkit.errors import InputError
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
    # Tuned for the planned horizon (default 10,000 per arm) with the per-unit variance
    # sigma_T^2 + sigma_C^2 plugged in: tau^2 = tune_tau2(variance at the horizon).
    unit_var = 101 / 1190 * (1 - 101 / 1190) + 0.05 * 0.95
    assert result.horizon == 10_000
    assert result.tau2_diff == pytest.approx(sequential.tune_tau2(unit_var / 10_000, 0.05))
    # The confidence sequence is the running intersection of the per-look bands.
    diffs = [t.mean - c.mean for c, t in looks]
    variances = [
        t.mean * (1 - t.mean) / t.units + c.mean * (1 - c.mean) / c.units for c, t in looks
    ]
    units = [t.mean * (1 - t.mean) + c.mean * (1 - c.mean) for c, t in looks]
    lo, hi = sequential.confidence_sequence(
        np.array(diffs), np.array(variances), sequential.mixture_tau2(np.array(units), 10_000)
    )
    assert [x.diff_cs_lower for x in path] == pytest.approx(list(np.maximum.accumulate(lo)))
    assert [x.diff_cs_upper for x in path] == pytest.approx(list(np.minimum.accumulate(hi)))


def _peeking(rng: np.random.Generator, sims: int, looks: int, per_look: int, p: float, lift: float):
    """Cumulative conversions of two arms over equally spaced looks (binomial increments)."""
    x_c = np.cumsum(rng.binomial(per_look, p, size=(sims, looks)), axis=1).astype(float)
    x_t = np.cumsum(rng.binomial(per_look, p * (1 + lift), size=(sims, looks)), axis=1).astype(
        float
    )
    n = per_look * np.arange(1, looks + 1, dtype=float)
    return x_c, x_t, n


def _always_valid(
    x_c: np.ndarray, x_t: np.ndarray, n: np.ndarray, alpha: float, horizon: int = 10_000
) -> np.ndarray:
    """abkit's p-value path, vectorised: the mixture fixed by the planned horizon, the
    per-unit variance plugged in at each look."""
    p_c, p_t = x_c / n, x_t / n
    unit_var = p_t * (1 - p_t) + p_c * (1 - p_c)
    tau2 = sequential.mixture_tau2(unit_var, horizon, alpha)
    return sequential.always_valid_p_values(p_t - p_c, unit_var / n, tau2)


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


# -- the confidence sequence is a running intersection, consistent with the p-value ------------


def test_p_value_and_confidence_sequence_agree_at_every_look() -> None:
    # abkit once reported the running-minimum p-value next to the LAST look's band only: an
    # early, strong effect that fades left p <= alpha while the band contained 0. With the
    # running intersection, p <= alpha exactly when the sequence excludes 0, at every look.
    rng = np.random.default_rng(5)
    disagreements = 0
    for _ in range(40):
        x_c, x_t, n = _peeking(rng, 1, 12, 400, 0.1, float(rng.choice([0.0, 0.25, 0.5])))
        looks = [
            (
                _aggregates("C", int(x_c[0, k]), int(n[k])),
                _aggregates("T", int(x_t[0, k]), int(n[k])),
            )
            for k in range(12)
        ]
        _result, path = sequential.sequential_comparison("conversion", looks, horizon=2_000)
        for look in path:
            excludes = not (look.diff_cs_lower <= 0 <= look.diff_cs_upper)
            if abs(look.always_valid_p_value - 0.05) > 1e-9:
                disagreements += (look.always_valid_p_value <= 0.05) != excludes
    assert disagreements == 0


def test_a_fading_effect_keeps_the_sequence_off_zero() -> None:
    # Look 1 shows a large lift; by look 3 the estimate is back near 0. The p-value stays at
    # its minimum (<= alpha), so the sequence must still exclude 0 (the last band alone does
    # not).
    looks = [
        (_aggregates("C", 50, 1000), _aggregates("T", 110, 1000)),
        (_aggregates("C", 400, 8000), _aggregates("T", 470, 8000)),
        (_aggregates("C", 2000, 40000), _aggregates("T", 2010, 40000)),
    ]
    result, _path = sequential.sequential_comparison("conversion", looks, horizon=1_000)
    assert result.p_value <= 0.05
    last_band = sequential.confidence_sequence(
        2010 / 40000 - 0.05,
        (2010 / 40000 * (1 - 2010 / 40000) + 0.05 * 0.95) / 40000,
        sequential.mixture_tau2(2010 / 40000 * (1 - 2010 / 40000) + 0.05 * 0.95, 1_000),
    )
    assert float(last_band[0]) < 0 < float(last_band[1])
    assert result.diff_cs_lower > 0 or math.isnan(result.diff_cs_lower)
    assert result.lift_cs_lower > 0 or math.isnan(result.lift_cs_lower)


def test_an_empty_intersection_is_reported() -> None:
    # +100% early, -50% later, both overwhelming: no single effect fits every look.
    looks = [
        (_aggregates("C", 500, 10_000), _aggregates("T", 1000, 10_000)),
        (_aggregates("C", 50_000, 1_000_000), _aggregates("T", 25_000, 1_000_000)),
    ]
    result, path = sequential.sequential_comparison(
        "conversion", looks, look_labels=["2024-01-10", "2024-01-11"]
    )
    assert math.isnan(result.diff_cs_lower)
    assert math.isnan(result.diff_cs_upper)
    assert path[0].diff_cs_lower > 0  # the first look alone is a proper band
    assert result.notes[0] == (
        "the confidence sequence for the difference is empty from 2024-01-11 on: the bands of "
        "different looks exclude each other, so the effect is not stable over time (or the "
        "normal approximation fails); no single value is consistent with every look"
    )
    assert result.notes[1].startswith("the confidence sequence for the lift is empty from")


@pytest.mark.parametrize("horizon", [0, 1, -5, 2.5, True])
def test_invalid_horizon(horizon) -> None:
    looks = [(_aggregates("C", 20, 400), _aggregates("T", 30, 410))]
    with pytest.raises(
        InputError,
        match=re.escape(
            f"horizon must be a whole number of units per arm, at least 2, got {horizon}"
        ),
    ):
        sequential.sequential_comparison("conversion", looks, horizon=horizon)


# -- repeated invocations: re-running the whole analysis every day ----------------------------


def test_daily_reruns_reproduce_one_path() -> None:
    # Each day the whole analysis is re-run on the data so far and today's p-value read. The
    # mixture is fixed by the horizon (not by the data at the latest look), so each re-run
    # reproduces the earlier days exactly: the readings ARE one always-valid path.
    rng = np.random.default_rng(8)
    x_c, x_t, n = _peeking(rng, 3, 15, 250, 0.08, 0.1)
    for i in range(3):
        looks = [
            (
                _aggregates("C", int(x_c[i, k]), int(n[k])),
                _aggregates("T", int(x_t[i, k]), int(n[k])),
            )
            for k in range(15)
        ]
        _final, path = sequential.sequential_comparison("conversion", looks)
        for day in range(1, 16):
            today, _ = sequential.sequential_comparison("conversion", looks[:day])
            assert today.p_value == path[day - 1].always_valid_p_value
            assert today.diff_cs_lower == path[day - 1].diff_cs_lower
            assert today.lift_cs_upper == path[day - 1].lift_cs_upper


@pytest.mark.slow
def test_reruns_keep_the_error_rate_where_latest_look_tuning_does_not() -> None:
    # A/A, 5,000 looks of 8 units per arm (p = 0.2) -- a dashboard re-running the analysis
    # after every few units -- with the horizon (10,000 per arm) fixed in advance.
    # abkit: by the test above, re-running at every look reads one path, so P(any false
    # rejection) is that path's crossing probability: <= alpha by Ville's inequality.
    # The old tuning (tau^2 = the formula applied to the variance at the LATEST look) gave a
    # different mixture at every re-run. Each re-run rejects at least when its own last look
    # has Lambda >= 1/alpha, i.e. |z| >= 3.0352: a constant boundary at every look, whose
    # crossing probability grows without bound with the number of looks (for Gaussian data
    # 0.032 at 100 looks, 0.054 at 1,000, 0.061 at 2,000: crossing_probability). That lower
    # bound on the old rule alone exceeds alpha here.
    alpha, looks, per_look, p = 0.05, 5_000, 8, 0.2
    rng = np.random.default_rng(3)
    n = per_look * np.arange(1, looks + 1, dtype=np.float64)
    c = sequential.tune_tau2(1.0, alpha)
    new_hits = old_hits = sims = 0
    for _ in range(3):  # chunks keep the memory small
        chunk = 500
        counts = np.cumsum(rng.binomial(per_look, p, size=(2, chunk, looks)), axis=2)
        p_c, p_t = counts[0] / n, counts[1] / n
        unit_var = p_t * (1 - p_t) + p_c * (1 - p_c)
        est, var = p_t - p_c, unit_var / n
        valid = sequential.always_valid_p_values(
            est, var, sequential.mixture_tau2(unit_var, 10_000, alpha)
        )
        new_hits += int(np.any(valid <= alpha, axis=1).sum())
        old_today = sequential.msprt_log_lr(est, var, c * var)  # each re-run's own last look
        old_hits += int(np.any(old_today >= math.log(1 / alpha), axis=1).sum())
        sims += chunk
    assert new_hits / sims <= alpha  # 0.031 with this seed
    assert old_hits / sims > alpha  # 0.067 with this seed (binomial s.e. 0.0065)
    b_old = math.sqrt(2 * (1 + c) / c * (math.log(1 / alpha) + 0.5 * math.log(1 + c)))
    assert b_old == pytest.approx(3.0352, abs=1e-4)


def test_claim_from_the_confidence_sequence_flips_exactly_at_its_ends() -> None:
    # The side p-value equals alpha where the claim sits on an end of the lift's sequence (the
    # band ends are where Lambda = 1/alpha), and the verdict flips there.
    looks = [(_aggregates("C", 500, 10_000), _aggregates("T", 575, 10_000))]
    result, _ = sequential.sequential_comparison("conversion", looks)
    lo, hi = result.lift_cs_lower, result.lift_cs_upper
    for claim, side in ((lo, "p_value_below"), (hi, "p_value_above")):
        at_end = sequential.sequential_comparison("conversion", looks, claim=claim)[0].claim
        assert at_end is not None
        assert getattr(at_end, side) == pytest.approx(1.0)  # the estimate is on the other side
        other = "p_value_above" if side == "p_value_below" else "p_value_below"
        assert getattr(at_end, other) == pytest.approx(0.05, rel=1e-6)
    verdicts = [
        sequential.sequential_comparison("conversion", looks, claim=c)[0].claim.verdict  # type: ignore[union-attr]
        for c in (lo - 1e-6, lo + 1e-6, hi - 1e-6, hi + 1e-6)
    ]
    assert verdicts == ["supported", "not decided", "not decided", "refuted"]


def test_claim_keeps_an_earlier_looks_exclusion() -> None:
    # A fading effect: look 1's band lies above +20%; at look 2 the estimate (+17.5%) is below
    # the claim, but the running intersection still lies above it, and so does the verdict.
    # A third look that contradicts both empties the sequence: then nothing is decided.
    looks = [
        (_aggregates("C", 50, 1000), _aggregates("T", 110, 1000)),
        (_aggregates("C", 400, 8000), _aggregates("T", 470, 8000)),
        (_aggregates("C", 2000, 40000), _aggregates("T", 2010, 40000)),
    ]
    result, path = sequential.sequential_comparison(
        "conversion", looks[:2], horizon=1_000, claim=0.2
    )
    assert result.claim is not None
    assert path[1].lift < 0.2 < path[0].lift_cs_lower == result.lift_cs_lower
    assert result.claim.verdict == "supported"
    assert result.claim.p_value_above <= 0.05
    assert result.claim.max_supported_lift == result.lift_cs_lower
    emptied, _ = sequential.sequential_comparison("conversion", looks, horizon=1_000, claim=0.2)
    assert emptied.claim is not None
    assert math.isnan(emptied.lift_cs_lower)
    assert emptied.claim.verdict == "not decided"
