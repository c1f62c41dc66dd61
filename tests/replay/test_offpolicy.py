"""Off-policy estimators: hand-worked values, invalid inputs, bootstrap, calibration."""

from __future__ import annotations

import re

import numpy as np
import pytest

from abkit.errors import InputError
from abkit.replay.offpolicy import (
    Estimate,
    estimate_policy_value,
    fit_reward_table,
    parse_estimators,
    poisson_bootstrap_ratio,
)

R = np.array([1.0, 0.0, 1.0, 0.0])
MU = np.array([0.5, 0.25, 0.5, 0.25])
PI = np.array([1.0, 0.5, 0.0, 0.5])  # weights 2, 2, 0, 2


def _ci(e: Estimate) -> tuple[float, float, float]:
    """(low, high, se) of an estimate that has an interval."""
    assert e.ci_low is not None
    assert e.ci_high is not None
    assert e.se is not None
    return e.ci_low, e.ci_high, e.se


def est(name: str, **kw: object):
    return estimate_policy_value(R, MU, PI, estimator=name, min_ess=1, **kw)  # type: ignore[arg-type]


UNBOUNDED = (-np.inf, np.inf)  # rewards without a range: the plain normal interval


def test_ips_by_hand() -> None:
    e = est("ips", reward_range=UNBOUNDED)
    assert e.value == pytest.approx(0.5)  # (2*1 + 0 + 0 + 0) / 4
    assert e.se == pytest.approx(0.5)  # sd(2, 0, 0, 0) / sqrt(4) = 1 / 2
    assert e.ci_low == pytest.approx(0.5 - 1.959963984540054 * 0.5)
    clicks = est("ips")  # the default range [0, 1]: the same estimate, the interval clipped
    assert (clicks.value, clicks.se) == (e.value, e.se)
    assert (clicks.ci_low, clicks.ci_high) == (0.0, 1.0)
    assert e.ess == pytest.approx(3.0)  # (2+2+0+2)^2 / (4+4+0+4)
    assert e.diagnostics.max_weight == 2.0
    assert e.diagnostics.mean_weight == pytest.approx(1.5)
    assert e.diagnostics.nonzero == 3


def test_snips_by_hand() -> None:
    e = est("snips")
    assert e.value == pytest.approx(1 / 3)  # 2 / (2 + 2 + 0 + 2)
    # delta method with one round per cluster: sqrt(n/(n-1) sum w^2 (r - V)^2) / sum w
    squares = 4 * (2 / 3) ** 2 + 4 * (1 / 3) ** 2 * 2
    assert e.se == pytest.approx(np.sqrt(4 / 3 * squares) / 6)
    assert e.clusters == 4


def test_dr_by_hand() -> None:
    q_logged = np.array([0.5, 0.2, 0.4, 0.1])
    q_policy = np.array([0.6, 0.3, 0.2, 0.1])
    e = est("dr", q_logged=q_logged, q_policy=q_policy)
    terms = [0.6 + 2 * 0.5, 0.3 + 2 * (0 - 0.2), 0.2, 0.1 + 2 * (0 - 0.1)]
    assert e.value == pytest.approx(np.mean(terms))
    assert e.se == pytest.approx(np.std(terms, ddof=1) / 2)


# -- clustered by randomisation unit ------------------------------------------------------------


def test_ips_clustered_by_hand() -> None:
    """IPS terms t = (2, 0, 0, 0), V = 0.5; rounds 2-4 belong to one user. Linearisation
    e = t - V = (1.5, -.5, -.5, -.5); cluster totals (1.5, -1.5); G = 2:
    SE = sqrt(2/1 * (1.5^2 + 1.5^2)) / 4 = 3/4 (the per-round SE is 1/2)."""
    e = est("ips", clusters=np.array([7, 9, 9, 9]), reward_range=UNBOUNDED)
    assert e.value == pytest.approx(0.5)
    assert e.se == pytest.approx(0.75)
    assert e.clusters == 2
    assert e.ci_high == pytest.approx(0.5 + 1.959963984540054 * 0.75)
    assert e.to_dict()["clusters"] == 2
    # string labels, and one label per round, give the same as codes / no clustering
    assert est("ips", clusters=np.array(["u1", "u2", "u2", "u2"])).se == pytest.approx(0.75)
    assert est("ips", clusters=np.arange(4)).se == pytest.approx(est("ips").se)


def test_snips_clustered_by_hand() -> None:
    """SNIPS V = 1/3; e = w (r - V) = (4/3, -2/3, 0, -2/3); clusters {0, 1}, {2, 3}: totals
    (2/3, -2/3); SE = sqrt(2 * 8/9) / sum w = (4/3) / 6."""
    e = est("snips", clusters=np.array([0, 0, 1, 1]))
    assert e.value == pytest.approx(1 / 3)
    assert e.se == pytest.approx((4 / 3) / 6)


def test_one_cluster_has_no_interval_and_bad_labels_are_refused() -> None:
    e = est("ips", clusters=np.zeros(4, dtype=int))
    assert e.value == pytest.approx(0.5)
    assert e.clusters == 1
    assert e.se is not None
    assert np.isnan(e.se)
    with pytest.raises(
        InputError,
        match=re.escape("clusters: expected one cluster label per row (4), got shape (3,)"),
    ):
        est("ips", clusters=np.arange(3))


def _clustered_log(seed: int, users: int = 200, rounds: int = 40):
    """Uniform logs over 4 actions; each user has a persistent click propensity, so a
    user's rounds are correlated. Target policy: always action 0."""
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(users), rounds)
    taste = rng.beta(0.5, 2.0, users)[user]
    action = rng.integers(0, 4, user.size)
    reward = (rng.random(user.size) < 0.02 + taste * (action == 0)).astype(float)
    return user, reward, np.full(user.size, 0.25), (action == 0).astype(float)


def test_bootstrap_resamples_clusters_not_rounds() -> None:
    """With correlated rounds, the cluster Poisson bootstrap matches the clustered normal
    interval and is clearly wider than a per-round one (the old behaviour)."""
    user, r, mu, pi = _clustered_log(3)
    for name in ("ips", "snips"):
        normal = estimate_policy_value(r, mu, pi, estimator=name, clusters=user)
        boot = estimate_policy_value(
            r, mu, pi, estimator=name, clusters=user, ci="bootstrap", n_boot=2000,
            rng=np.random.default_rng(1),
        )  # fmt: skip
        rows = estimate_policy_value(
            r, mu, pi, estimator=name, ci="bootstrap", n_boot=2000, rng=np.random.default_rng(1)
        )
        assert normal.clusters == boot.clusters == 200
        low, high, se = _ci(normal)
        boot_low, boot_high, _ = _ci(boot)
        rows_low, rows_high, _ = _ci(rows)
        assert boot_low == pytest.approx(low, abs=0.2 * se)
        assert boot_high == pytest.approx(high, abs=0.2 * se)
        assert (boot_high - boot_low) > 1.5 * (rows_high - rows_low)


def test_cluster_bootstrap_equals_broadcast_poisson_weights() -> None:
    """Bootstrapping per-cluster totals (what abkit does) has the distribution of one
    Poisson(1) weight per cluster broadcast to each of its rounds (the definition)."""
    user, r, mu, pi = _clustered_log(4, users=300, rounds=10)
    t = r * pi / mu
    pooled = poisson_bootstrap_ratio(
        np.bincount(user, weights=t), np.bincount(user), n_boot=8000, rng=np.random.default_rng(2)
    )
    weights = np.random.default_rng(3).poisson(1.0, size=(8000, 300))[:, user]
    direct = (weights @ t) / weights.sum(axis=1)
    assert pooled.mean() == pytest.approx(direct.mean(), abs=0.05 * direct.std())
    assert pooled.std() == pytest.approx(direct.std(), rel=0.05)


def test_replay_on_uniform_logs_and_refusal_otherwise() -> None:
    mu = np.full(4, 0.25)
    e = estimate_policy_value(R, mu, PI, estimator="replay", min_ess=1)
    assert e.value == pytest.approx(0.5)  # sum pi r / sum pi = 1 / 2
    refused = est("replay")
    assert refused.value is None
    assert refused.ci_low is None
    assert refused.refused == (
        "replay needs uniformly random logs, but the propensities range from 0.25 to 0.5; "
        "use ips, snips or dr"
    )
    assert refused.raw_value == pytest.approx(1 / 2)


def test_dr_equals_ips_with_a_zero_reward_model() -> None:
    zero = np.zeros(4)
    assert est("dr", q_logged=zero, q_policy=zero).value == pytest.approx(est("ips").value)


def test_tiny_effective_sample_size_is_refused() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    mu = np.full(n, 0.5)
    mu[0] = 1e-6  # one round the logging policy almost never shows
    pi = np.full(n, 0.02)
    r = (rng.random(n) < 0.05).astype(float)
    e = estimate_policy_value(r, mu, pi, estimator="ips")
    assert e.value is None
    assert e.diagnostics.max_weight == pytest.approx(20_000)
    assert e.refused == (
        f"the importance weights leave an effective sample size of {e.ess:.1f} out of 5,000 "
        "rounds (largest weight 20,000); below 30, so a few rounds decide the estimate"
    )
    assert e.ess < 2


def test_uneven_weights_are_flagged() -> None:
    n = 20_000
    w = np.where(np.arange(n) % 200 == 0, 200.0, 0.0)  # a deterministic policy, 200 items
    r = np.where(np.arange(n) % 400 == 0, 1.0, 0.0)
    e = estimate_policy_value(r, np.full(n, 1 / 200), w / 200, estimator="ips")
    assert e.value == pytest.approx(r[w > 0].mean() * 1.0, rel=1e-12)
    assert e.flags == ("uneven weights: ESS is 0.5% of the rounds; the interval may undercover",)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rewards": []}, "no logged rounds to estimate from"),
        ({"propensities": [0.5, 0.0, 0.5, 0.5]}, "propensity of round 1 is 0.0, expected (0, 1]"),
        ({"propensities": [0.5, 0.5, 1.5, 0.5]}, "propensity of round 2 is 1.5, expected (0, 1]"),
        ({"target_probs": [1.2, 0, 0, 0]}, "target policy probabilities must lie in [0, 1]"),
        ({"rewards": [1.0, np.nan, 0, 0]}, "rewards must be finite numbers"),
        (
            {"target_probs": [1.0]},
            "rewards, propensities and target probabilities differ in length",
        ),
        (
            {"estimator": "ipw"},
            "unknown estimator 'ipw' (did you mean 'ips'?); expected one of: "
            "dr, ips, replay, snips",
        ),
        ({"estimator": "dr"}, "the dr estimator needs a reward model (q_logged and q_policy)"),
        ({"alpha": 1.5}, "alpha must be between 0 and 1, got 1.5"),
        ({"ci": "wald"}, "unknown interval method 'wald'; expected one of: bootstrap, normal"),
    ],
)
def test_invalid_inputs(kwargs: dict, message: str) -> None:
    args = {"rewards": R, "propensities": MU, "target_probs": PI, "estimator": "ips"}
    args.update(kwargs)
    for key in ("rewards", "propensities", "target_probs"):
        args[key] = np.asarray(args[key], dtype=float)
    with pytest.raises(InputError, match=re.escape(message)):
        estimate_policy_value(**args)  # type: ignore[arg-type]


def test_parse_estimators() -> None:
    assert parse_estimators("ips, SNIPS,ips") == ("ips", "snips")
    with pytest.raises(
        InputError,
        match=re.escape("estimators: unknown estimator 'sinps' (did you mean 'snips'?)"),
    ):
        parse_estimators("ips,sinps")


# -- bounded rewards: no zero-width interval, clipped, rare-click coverage ----------------------


@pytest.mark.parametrize("ci", ["normal", "bootstrap"])
def test_no_reward_gives_the_exact_binomial_upper_end(ci: str) -> None:
    """400 uniform rounds (propensity 0.1), a deterministic policy matching 40, no click:
    IPS = SNIPS = 0 with SE 0, and the interval is the exact one for 0 successes in 40 trials
    (scipy's Clopper-Pearson), not [0, 0]."""
    from scipy import stats

    n = 400
    pi = (np.arange(n) % 10 == 0).astype(float)
    exact = stats.binomtest(0, 40).proportion_ci(0.95, method="exact")
    for name in ("ips", "snips"):
        e = estimate_policy_value(np.zeros(n), np.full(n, 0.1), pi, estimator=name, ci=ci)  # type: ignore[arg-type]
        assert (e.value, e.se) == (0.0, 0.0)
        assert e.ci_low == 0.0
        assert e.ci_high == pytest.approx(exact.high, rel=1e-9)  # 1 - 0.025^(1/40) = 0.088


def test_intervals_are_clipped_to_the_reward_range_and_rewards_checked() -> None:
    r = np.array([1.0, 0.0, 1.0, 1.0])
    e = estimate_policy_value(r, np.full(4, 0.5), np.ones(4), estimator="ips", min_ess=1)
    # the OBP formula gives 1.5, above the range: the point is clipped like its interval
    assert (e.value, e.clipped) == (1.0, True)
    assert e.value_unclipped == pytest.approx(1.5)
    low, high, _ = _ci(e)
    assert 0 <= low <= high == 1.0  # the normal interval 1.5 +- 1.1 reaches above 1
    with pytest.raises(
        InputError, match=re.escape("reward of round 1 is 2.0, outside the reward's range [0, 1]")
    ):
        estimate_policy_value(
            np.array([0.0, 2.0]), np.full(2, 0.5), np.ones(2), estimator="ips", min_ess=1
        )
    scaled = estimate_policy_value(
        np.zeros(40), np.full(40, 0.5), np.full(40, 0.5), estimator="snips",
        reward_range=(0.0, 10.0), min_ess=1,
    )  # fmt: skip
    assert scaled.ci_high == pytest.approx(10 * (1 - 0.025 ** (1 / 40)))


def test_dr_below_the_range_is_clipped_to_it_like_its_interval() -> None:
    """DR's model term is unbounded: no click, the reward model predicting 0.4 at the logged
    items and 0.05 under the policy, gives DR terms 0.05 + 2 (0 - 0.4) < 0 on the matched
    rounds and a mean of -0.35, outside [0, 1]. The point is reported as 0, the interval's
    own end, and the formula's value stays beside it (``value_unclipped``); with rewards
    unbounded nothing is clipped."""
    r = np.zeros(8)
    mu = np.full(8, 0.5)
    pi = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])  # weights 2 (matched) or 0
    q_logged, q_policy = np.full(8, 0.4), np.full(8, 0.05)
    unclipped = float(np.mean(q_policy + pi / mu * (r - q_logged)))
    assert unclipped == pytest.approx(-0.35)
    e = estimate_policy_value(
        r, mu, pi, estimator="dr", q_logged=q_logged, q_policy=q_policy, min_ess=1
    )
    low, high, _ = _ci(e)
    assert (e.value, e.clipped) == (0.0, True)
    assert e.value_unclipped == pytest.approx(unclipped)
    assert e.raw_value == e.value_unclipped
    assert e.value == low == 0.0 < high
    payload = e.to_dict()
    assert (payload["value"], payload["ci"][0]) == (0.0, 0.0)
    assert payload["value_unclipped"] == pytest.approx(unclipped)
    free = estimate_policy_value(
        r, mu, pi, estimator="dr", q_logged=q_logged, q_policy=q_policy, min_ess=1,
        reward_range=UNBOUNDED,
    )  # fmt: skip
    assert free.value == free.value_unclipped == pytest.approx(unclipped)
    assert not free.clipped
    # the key is always there: equal to value inside the range, None with value when refused
    inside = est("dr", q_logged=np.full(4, 0.5), q_policy=np.full(4, 0.5)).to_dict()
    assert inside["value_unclipped"] == inside["value"] is not None
    refused = estimate_policy_value(
        r, mu, pi, estimator="dr", q_logged=q_logged, q_policy=q_policy, min_ess=100
    )
    assert refused.to_dict()["value_unclipped"] is None
    assert refused.raw_value == pytest.approx(unclipped)  # still kept for the diagnostics


def test_rare_click_intervals_cover_at_least_the_nominal_rate() -> None:
    """Seeded simulation: 3,000 logged rounds, a deterministic target policy, uniform
    (propensity 0.1) or uneven (0.02, 0.1, 0.3: weights 3 to 50) logs, click rates giving
    0.6 to 13 expected clicks among the matched rounds, some with none at all. Every 95%
    interval of IPS, SNIPS and DR covers the true rate in at least 93% of 200 replicates (the
    plain normal interval covers 80% in the uneven design at rate 0.01)."""
    rng = np.random.default_rng(7)
    n, reps = 3000, 200
    q = np.full(n, 0.01)
    for design in ("uniform", "uneven"):
        for rate in (0.002, 0.01, 0.03):
            covered = {"ips": 0, "snips": 0, "dr": 0}
            for _ in range(reps):
                mu = np.full(n, 0.1) if design == "uniform" else rng.choice([0.02, 0.1, 0.3], n)
                matched = rng.random(n) < mu
                r = np.where(matched, rng.random(n) < rate, rng.random(n) < 0.05).astype(float)
                for name in covered:
                    e = estimate_policy_value(
                        r, mu, matched.astype(float), estimator=name, q_logged=q, q_policy=q,
                        min_ess=1,
                    )  # fmt: skip
                    low, high, _ = _ci(e)
                    assert 0 <= low <= high <= 1
                    covered[name] += low <= rate <= high
            for name, hits in covered.items():
                assert hits / reps >= 0.93, (design, rate, name, hits / reps)


# -- bootstrap -------------------------------------------------------------------------------


def test_pooled_poisson_bootstrap_matches_per_round_draws() -> None:
    """Pooling identical rounds is exact: same distribution as one Poisson(1) per round."""
    rng = np.random.default_rng(1)
    n = 4000
    num = np.where(rng.random(n) < 0.1, 5.0, 0.0)
    den = np.ones(n)
    pooled = poisson_bootstrap_ratio(num, den, n_boot=4000, rng=np.random.default_rng(2))
    counts = np.random.default_rng(3).poisson(1.0, size=(4000, n))
    direct = (counts @ num) / (counts @ den)
    assert pooled.mean() == pytest.approx(direct.mean(), abs=0.004)
    assert pooled.std() == pytest.approx(direct.std(), rel=0.05)


def test_bootstrap_interval_agrees_with_the_normal_one() -> None:
    rng = np.random.default_rng(4)
    n = 20_000
    mu = rng.choice([0.1, 0.2, 0.4], size=n)
    pi = rng.choice([0.0, 0.1, 0.3], size=n)
    r = (rng.random(n) < 0.1).astype(float)
    for name in ("ips", "snips"):
        normal = estimate_policy_value(r, mu, pi, estimator=name)
        boot = estimate_policy_value(
            r, mu, pi, estimator=name, ci="bootstrap", n_boot=2000, rng=np.random.default_rng(5)
        )
        assert boot.value == normal.value
        # the Monte Carlo SD of a 2.5% / 97.5% percentile over 2,000 resamples is ~0.06 SE
        low, high, se = _ci(normal)
        assert boot.ci_low == pytest.approx(low, abs=0.15 * se)
        assert boot.ci_high == pytest.approx(high, abs=0.15 * se)


def test_reward_table_shrinks_toward_the_slot_rate() -> None:
    items = np.array([0, 0, 1, 1, 1, 1])
    slots = np.array([1, 1, 1, 1, 2, 2])
    clicks = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    q = fit_reward_table(items, slots, clicks, n_items=3, n_positions=2, prior_rounds=2)
    slot1 = 2 / 4
    assert q[0, 1] == pytest.approx((2 + 2 * slot1) / (2 + 2))
    assert q[2, 1] == pytest.approx(slot1)  # never shown: the slot's rate
    assert q[1, 2] == pytest.approx((1 + 2 * 0.5) / (2 + 2))


# -- calibration against exact truth ----------------------------------------------------------


def _dr_terms(
    world_probs: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    pos: np.ndarray,
    clicks: np.ndarray,
    n_items: int,
    slots: int,
) -> tuple[np.ndarray, np.ndarray]:
    fold = np.arange(users.size) % 2
    tables = [
        fit_reward_table(
            items[fold == f], pos[fold == f], clicks[fold == f], n_items=n_items, n_positions=slots
        )
        for f in (0, 1)
    ]
    other = 1 - fold
    q_logged = np.where(other == 0, tables[0][items, pos], tables[1][items, pos])
    expected = [world_probs[users] @ t for t in tables]
    rows = np.arange(users.size)
    q_policy = np.where(other == 0, expected[0][rows, pos], expected[1][rows, pos])
    return q_logged, q_policy


@pytest.mark.slow
@pytest.mark.parametrize("logging_arm", ["control", "treatment"])
def test_intervals_cover_the_exact_truth_at_about_the_nominal_rate(logging_arm: str) -> None:
    """Logged rounds drawn from the simulator's world; the target is the other arm's policy.

    Control logs are uniform (propensity 1/items); treatment logs are a softmax policy with
    exact propensities. The truth is the target policy's exact CTR on the same contexts
    (:meth:`World.expected_ctr`). Over 200 replicates the 95% intervals must cover it between
    90% and 99% of the time (a binomial band of about +-3 standard errors).
    """
    from abkit.simulate import SimulationConfig
    from abkit.simulate.world import World

    world = World.from_config(SimulationConfig(users=1500, items=40, days=7, pre_days=1, seed=11))
    n_users, n_items, slots = 1500, 40, world.config.slots
    everyone = np.arange(n_users)
    relevance = world.relevance(everyone)
    target_arm = "treatment" if logging_arm == "control" else "control"
    target = world.policy_probs(target_arm, everyone)
    logging = world.policy_probs(logging_arm, everyone)
    cum = np.cumsum(logging, axis=1)
    rng = np.random.default_rng(2024)
    covered = {"ips": 0, "snips": 0, "dr": 0}
    reps, n = 200, 4000
    for _ in range(reps):
        users = rng.integers(0, n_users, size=n)
        pos = rng.integers(1, slots + 1, size=n)
        u = rng.random(n)[:, None]
        items = np.minimum((cum[users] < u).sum(axis=1), n_items - 1)
        clicks = (rng.random(n) < world.position_bias[pos - 1] * relevance[users, items]).astype(
            float
        )
        truth = float(
            np.mean(
                world.position_bias[pos - 1]
                * np.einsum("ij,ij->i", target[users], relevance[users])
            )
        )
        mu = logging[users, items]
        pi = target[users, items]
        q_logged, q_policy = _dr_terms(target, users, items, pos, clicks, n_items, slots)
        for name in covered:
            e = estimate_policy_value(
                clicks, mu, pi, estimator=name, q_logged=q_logged, q_policy=q_policy
            )
            assert e.refused is None
            low, high, _ = _ci(e)
            covered[name] += low <= truth <= high
    for name, hits in covered.items():
        assert 0.90 <= hits / reps <= 0.99, (name, hits / reps)


def test_superposition_bootstrap_matches_independent_poisson_weights() -> None:
    """Small groups drawn by superposition, a large pooled group, replicates in many blocks:
    the replicates have the distribution of one independent Poisson(1) weight per entry."""
    rng = np.random.default_rng(11)
    num = np.concatenate([rng.exponential(3.0, size=500), np.zeros(5000)])  # 500 distinct
    den = np.ones(num.size)
    out = poisson_bootstrap_ratio(
        num, den, n_boot=20_000, rng=np.random.default_rng(5), block=10_000
    )
    counts = np.random.default_rng(6).poisson(1.0, size=(2000, num.size))
    direct = (counts @ num) / counts.sum(axis=1)
    assert out.mean() == pytest.approx(direct.mean(), rel=0.01)
    assert out.std() == pytest.approx(direct.std(), rel=0.05)


def test_superposition_bootstrap_with_replicates_that_draw_nothing() -> None:
    """Two entries: about e^-2 of the replicates draw no entry at all (NaN, 0/0)."""
    out = poisson_bootstrap_ratio(
        np.array([1.0, 3.0]), np.array([1.0, 1.0]), n_boot=50_000, rng=np.random.default_rng(8)
    )
    assert np.isnan(out).mean() == pytest.approx(np.exp(-2), abs=0.01)
    # given a draw, the ratio is the mean of the drawn values: E = 2 by symmetry
    assert np.nanmean(out) == pytest.approx(2.0, abs=0.02)


@pytest.mark.parametrize("estimator", ["ips", "snips", "dr", "replay"])
@pytest.mark.parametrize("ci", ["normal", "bootstrap"])
def test_independent_rounds_equal_one_round_clusters(estimator: str, ci: str) -> None:
    """No clusters skips the codes and per-cluster sums: the same numbers as one-round
    clusters (here bit for bit; to 1e-12 is the promise)."""
    rng = np.random.default_rng(11)
    n = 5_003
    mu = np.full(n, 0.25) if estimator == "replay" else rng.choice([0.1, 0.3, 0.6], size=n)
    pi = rng.uniform(0, 1, size=n)
    r = (rng.uniform(size=n) < 0.2).astype(float)
    q = rng.uniform(0, 0.3, size=(2, n))
    kw = dict(estimator=estimator, q_logged=q[0], q_policy=q[1], ci=ci, n_boot=200, min_ess=1)
    plain = estimate_policy_value(r, mu, pi, rng=np.random.default_rng(5), **kw)  # type: ignore[arg-type]
    clustered = estimate_policy_value(
        r,
        mu,
        pi,
        clusters=np.arange(n),
        rng=np.random.default_rng(5),
        **kw,  # type: ignore[arg-type]
    )
    assert plain.clusters == clustered.clusters == n
    assert plain.flags == clustered.flags
    for a, b in [
        (plain.value, clustered.value),
        (plain.se, clustered.se),
        (plain.ci_low, clustered.ci_low),
        (plain.ci_high, clustered.ci_high),
    ]:
        assert a is not None
        assert b is not None
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15)
