"""`abkit power` and abkit.stats.power: statsmodels cross-checks, round trips, several arms,
the claim sample size checked by simulation, bad inputs, and the command line."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from abkit.cli.main import app
from abkit.errors import InputError
from abkit.stats import power as pw
from abkit.stats.proportions import ratio_score_statistic

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
rates = st.floats(0.01, 0.6)
lifts = st.floats(0.05, 0.5)


@SETTINGS
@given(rates, lifts)
def test_cohen_h_matches_normal_ind_power(p, lift) -> None:
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    target = p * (1 + lift)
    ref = NormalIndPower().solve_power(proportion_effectsize(target, p), alpha=0.05, power=0.8)
    assert pw.sample_size_proportions(p, target, method="cohen-h") == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("power", [0.051, 0.06, 0.1, 0.3])
def test_cohen_h_matches_normal_ind_power_near_alpha(power) -> None:
    # Near alpha the wrong-direction rejections are a large part of the power, and the root
    # lies far from the closed form (it crashed there).
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    ref = NormalIndPower().solve_power(proportion_effectsize(0.06, 0.05), alpha=0.05, power=power)
    got = pw.sample_size_proportions(0.05, 0.06, method="cohen-h", power=power)
    assert got == pytest.approx(ref, rel=1e-6)


@SETTINGS
@given(rates, lifts, st.integers(50, 100_000))
def test_pooled_power_matches_statsmodels(p, lift, n) -> None:
    from statsmodels.stats.proportion import power_proportions_2indep

    target = p * (1 + lift)
    ref = power_proportions_2indep(target - p, p, n).power
    assert pw.power_proportions(p, target, n) == pytest.approx(ref, rel=1e-7, abs=1e-12)


@SETTINGS
@given(rates, lifts)
def test_sample_size_gives_the_target_power(p, lift) -> None:
    target = p * (1 + lift)
    for method in pw.METHODS:
        if method == "pooled-cc":
            continue  # the Fleiss-Tytun-Ury formula approximates the corrected test's power
        n = pw.sample_size_proportions(p, target, method=method)
        assert pw.power_proportions(p, target, n, method=method) == pytest.approx(0.8, abs=1e-4)


@SETTINGS
@given(rates, st.integers(200, 200_000))
def test_mde_round_trip(p, n) -> None:
    result = pw.power(baseline=p, n_per_arm=n)
    if result.target >= 1:
        return
    assert result.solved_for == "mde"
    assert pw.power_proportions(p, result.target, n) == pytest.approx(0.8, abs=1e-6)
    again = pw.power(baseline=p, mde=result.mde_relative, n_per_arm=n)
    assert again.power == pytest.approx(0.8, abs=1e-6)


def test_means_match_statsmodels() -> None:
    from statsmodels.stats.power import NormalIndPower

    result = pw.power(metric="mean", baseline=10.0, sd=20.0, mde=0.05)
    ref = NormalIndPower().solve_power(0.5 / 20.0, alpha=0.05, power=0.8)
    assert result.n_per_arm_exact == pytest.approx(ref, rel=1e-4)
    assert result.n_per_arm == math.ceil(result.n_per_arm_exact)
    assert result.method == "normal"


def test_several_arms_split_alpha_by_bonferroni() -> None:
    three = pw.power(baseline=0.05, mde=0.2, arms=3)
    assert three.alpha_per_comparison == pytest.approx(0.025)
    assert three.n_per_arm_exact == pytest.approx(
        pw.sample_size_proportions(0.05, 0.06, alpha=0.025)
    )
    assert three.total_units == 3 * three.n_per_arm
    assert any("Bonferroni" in note for note in three.notes)


def test_claim_units_match_compare_whatever_the_number_of_arms() -> None:
    # `abkit power --claim --arms 3` once split alpha over 2 comparisons while `abkit compare
    # --claim` (whose verdicts are per comparison, unadjusted) sized at alpha: one convention
    # now, the unadjusted alpha, one-sided at alpha/2.
    from abkit.stats.proportions import claim_check_proportions

    x_t, x_c, n = 330, 250, 5000
    check = claim_check_proportions(x_t, n, x_c, n, 0.1)
    for arms in (2, 3, 5):
        result = pw.power(baseline=x_c / n, mde=(x_t / x_c) - 1, claim=0.1, arms=arms)
        assert result.n_per_arm == check.units_needed
        assert result.alpha_per_comparison == 0.05
        assert result.total_units == arms * result.n_per_arm
    assert any("unadjusted alpha" in note for note in result.notes)


def test_absolute_mde() -> None:
    relative = pw.power(baseline=0.05, mde=0.2)
    absolute = pw.power(baseline=0.05, mde=0.01, relative=False)
    assert absolute.n_per_arm == relative.n_per_arm == 8158


@pytest.mark.slow
def test_claim_sample_size_reaches_its_power_by_simulation() -> None:
    # "Units needed to show lift > 10% when the true lift is 30%" at baseline 5%: at that n,
    # the one-sided Koopman score test at alpha/2 rejects H0: lift <= 10% in about 80% of
    # simulated experiments.
    result = pw.power(baseline=0.05, mde=0.3, claim=0.1)
    n = result.n_per_arm
    rng = np.random.default_rng(9)
    x_c = rng.binomial(n, 0.05, 20_000)
    x_t = rng.binomial(n, 0.065, 20_000)
    z = np.asarray(ratio_score_statistic(x_t, n, x_c, n, 1.1))
    rate = float(np.mean(z >= stats.norm.isf(0.025)))
    assert rate == pytest.approx(0.8, abs=0.015)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baseline": 1.5, "mde": 0.2}, "baseline must be a rate strictly between 0 and 1, got 1.5"),  # noqa: E501
        ({"baseline": 0.05}, "give mde (to get the sample size), n_per_arm (to get the MDE), or both (to get the power)"),  # noqa: E501
        ({"baseline": 0.5, "mde": 1.5}, "the target rate (baseline + MDE) must be a rate strictly between 0 and 1, got 1.25"),  # noqa: E501
        ({"baseline": 0.05, "mde": 0.0}, "mde must not be 0"),
        ({"baseline": 0.05, "mde": 0.2, "arms": 1}, "arms must be at least 2 (a control and a treatment), got 1"),  # noqa: E501
        ({"baseline": 0.05, "mde": 0.2, "alpha": 1.0}, "alpha must be in (0, 1), got 1.0"),
        ({"baseline": 0.05, "mde": 0.2, "method": "arcsine"}, "unknown method 'arcsine'; expected one of: pooled, unpooled, cohen-h, pooled-cc"),  # noqa: E501
        ({"baseline": 10.0, "mde": 0.2, "metric": "mean"}, "metric mean needs sd, the per-unit standard deviation (> 0)"),  # noqa: E501
        ({"baseline": 0.05, "mde": 0.2, "metric": "ratio"}, "unknown metric 'ratio'; expected one of: conversion, mean"),  # noqa: E501
        ({"baseline": 0.05, "claim": 0.2}, "claim needs mde, the true relative lift you expect (e.g. mde 0.3)"),  # noqa: E501
        ({"baseline": 0.05, "claim": 0.2, "mde": 0.1}, "to show the lift exceeds 0.2 the true lift (mde 0.1) must be larger"),  # noqa: E501
        ({"baseline": 0.05, "n_per_arm": 1}, "n_per_arm must be at least 2 units per arm, got 1"),
        ({"baseline": 0.05, "mde": 0.2, "target_power": 0.01}, "target_power must be above alpha (0.05 per comparison), got 0.01: a test reaches that power with no data"),  # noqa: E501
        ({"baseline": 0.05, "n_per_arm": 100, "alpha": 0.5, "target_power": 0.2}, "target_power must be above alpha (0.5 per comparison)"),  # noqa: E501
    ],
)  # fmt: skip
def test_invalid_power_inputs(kwargs, message) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        pw.power(**kwargs)


# -- command line -----------------------------------------------------------------------------


def test_cli_power_sample_size(runner) -> None:
    result = runner.invoke(app, ["power", "--baseline", "0.05", "--mde", "0.2"])
    assert result.exit_code == 0, result.stderr
    assert (
        "To detect +20.0% (5.00% -> 6.00%, +1.00 pp) with 80% power at alpha 0.05" in result.stdout
    )
    assert "8,158 units per arm, 16,316 in total over 2 arms." in result.stdout
    for text in ("pooled (abkit default)", "8,155", "8,143", "8,357"):
        assert text in result.stdout


def test_cli_power_json(runner) -> None:
    result = runner.invoke(
        app, ["power", "--baseline", "0.05", "--n", "10000", "--mde", "0.2", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["solved_for"] == "power"
    assert payload["power"] == pytest.approx(0.8732575, abs=1e-6)
    assert payload["n_per_arm"] == 10_000


def test_cli_power_mde_and_claim(runner) -> None:
    mde = runner.invoke(app, ["power", "--baseline", "0.05", "--n", "8158"])
    assert mde.exit_code == 0, mde.stderr
    assert "the minimum detectable effect is +20.0%" in mde.stdout
    claim = runner.invoke(
        app, ["power", "--baseline", "0.05", "--mde", "0.3", "--claim", "0.1", "--json"]
    )
    assert claim.exit_code == 0, claim.stderr
    payload = json.loads(claim.stdout)
    assert payload["claim"] == 0.1
    assert payload["method"] == "farrington-manning"
    assert payload["n_per_arm"] == pw.power(baseline=0.05, mde=0.3, claim=0.1).n_per_arm


def test_cli_power_bad_input_exits_2(runner) -> None:
    result = runner.invoke(app, ["power", "--baseline", "0.05"])
    assert result.exit_code == 2
    assert "give --mde (to get the sample size)" in result.stderr
