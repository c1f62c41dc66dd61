"""The traffic simulator: determinism, planted truth, propensities, structure, atomic writes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import integrate, stats

from abkit.data.store import open_store
from abkit.errors import InputError, StoreError
from abkit.simulate import SimulationConfig, SimulationSummary, World, simulate
from abkit.simulate.generate import SESSION_SPAN
from tests.conftest import file_digest

DATA_TABLES = ("events", "impressions", "assignments", "experiments", "items", "truth")


def _con(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def _truth(con: duckdb.DuckDBPyConnection) -> dict[tuple[str | None, str], float]:
    rows = con.execute("SELECT variant, metric, value FROM truth").fetchall()
    return {(variant, metric): value for variant, metric, value in rows}


# -- config validation ----------------------------------------------------------------------

INVALID = [
    ({"users": 1}, "users must be at least 2, got 1"),
    ({"users": 2.5}, "users must be an integer, got 2.5"),
    ({"items": 3}, "items must be at least 4, got 3"),
    ({"slots": 0}, "slots must be at least 1, got 0"),
    ({"days": 0}, "days must be at least 1, got 0"),
    ({"pre_days": -1}, "pre_days must be at least 0, got -1"),
    ({"seed": -3}, "seed must be at least 0, got -3"),
    ({"arms": ("only",), "split": (1.0,)}, "arms needs at least two arm names, got 'only'"),
    ({"arms": ("a", "a")}, "arms: duplicate arm name 'a'"),
    ({"arms": ("a", " ")}, "arms: arm names must not be empty"),
    ({"split": (0.5, 0.3, 0.2)}, "split has 3 shares but arms has 2 arms"),
    ({"split": (1.2, -0.2)}, "split: every share must be positive, got 1.2, -0.2"),
    ({"split": (0.5, 0.6)}, "split: shares must sum to 1, got 1.1"),
    ({"lift": -1.5}, "lift must be a relative change of at least -1, got -1.5"),
    ({"lift": math.nan}, "lift must be a relative change of at least -1, got nan"),
    ({"arm_lifts": (0.0, 0.1, 0.2)}, "arm_lifts has 3 values but arms has 2 arms"),
    ({"arm_lifts": (0.1, 0.2)}, "arm_lifts: the control arm's lift must be 0.0, got 0.1"),
    ({"arm_lifts": (0.0, -2.0)}, "arm_lifts: every lift must be a relative change of at least -1"),
    ({"srm": 1.0}, "srm must be a fraction in [0, 1), got 1"),
    ({"srm": -0.1}, "srm must be a fraction in [0, 1), got -0.1"),
    ({"base_conversion": 0.0}, "base_conversion must be a probability in (0, 1), got 0"),
    ({"base_conversion": 1.0}, "base_conversion must be a probability in (0, 1), got 1"),
    ({"dataset": ""}, "dataset must not be empty"),
    ({"experiment": "  "}, "experiment must not be empty"),
]


@pytest.mark.parametrize(("changes", "message"), INVALID)
def test_invalid_config_names_the_option(changes: dict, message: str) -> None:
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        SimulationConfig(**changes)


def test_config_normalises_and_reports_its_windows() -> None:
    from datetime import datetime, timedelta, timezone

    aware = datetime(2024, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    config = SimulationConfig(arms=["a", "b", "c"], split=[0.2, 0.3, 0.5], start=aware)  # type: ignore[arg-type]
    assert config.arms == ("a", "b", "c")
    assert config.start == datetime(2024, 3, 1, 0, 0)
    assert config.lifts == (0.0, 0.2, 0.2)
    assert config.experiment_start == datetime(2024, 3, 8)
    assert config.experiment_end == datetime(2024, 3, 22)
    assert SimulationConfig(arm_lifts=(0.0, -0.1)).lifts == (0.0, -0.1)


# -- the world: deterministic latent state and exact truths ---------------------------------


def test_world_is_a_pure_function_of_the_config() -> None:
    config = SimulationConfig(users=500, items=60, seed=3)
    a, b = World.from_config(config), World.from_config(config)
    other = World.from_config(SimulationConfig(users=500, items=60, seed=4))
    for name in ("user_taste", "user_conversion", "user_arm", "item_price", "successors"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.user_taste, other.user_taste)
    assert not np.array_equal(a.user_arm, other.user_arm)


def test_world_policies_are_distributions_and_control_is_uniform() -> None:
    world = World.from_config(SimulationConfig(users=200, items=50, arms=("c", "t1", "t2"),
                                               split=(0.4, 0.3, 0.3)))  # fmt: skip
    users = np.arange(20)
    uniform = world.policy_probs("c", users)
    np.testing.assert_allclose(uniform, 1 / 50)
    for arm in ("t1", "t2", 2):
        probs = world.policy_probs(arm, users)
        assert probs.shape == (20, 50)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
        assert (probs > 0).all()
    assert world.temperature("t1") == 1.0
    assert world.temperature("t2") == 0.5
    # The softmax is over the affinity: its log-odds between two items are s/τ differences.
    s = world.affinity(users)
    probs = world.policy_probs("t2", users)
    np.testing.assert_allclose(
        np.log(probs[:, 0] / probs[:, 1]), (s[:, 0] - s[:, 1]) / 0.5, rtol=1e-9
    )
    rel = world.relevance(users)
    np.testing.assert_allclose(world.relevance(users, np.arange(20)), rel[users, np.arange(20)])
    assert world.position_bias[0] == 1.0
    assert np.all(np.diff(world.position_bias) < 0)


def test_world_maps_stored_ids_and_rejects_others() -> None:
    world = World.from_config(SimulationConfig(users=100, items=20))
    np.testing.assert_array_equal(world.user_index(["0", "17", "99"]), [0, 17, 99])
    np.testing.assert_array_equal(world.item_index(np.array(["3", "19"])), [3, 19])
    with pytest.raises(InputError, match=re.escape("user id '100' is not in this world (0..99)")):
        world.user_index(["100"])
    with pytest.raises(InputError, match=re.escape("item id 'x7' is not a simulated item id")):
        world.item_index(["1", "x7"])
    with pytest.raises(InputError, match=re.escape("unknown arm 'treatmnt' (did you mean")):
        world.policy_probs("treatmnt", np.arange(3))


def test_expected_ctr_matches_a_direct_sum_and_validates_shapes() -> None:
    world = World.from_config(SimulationConfig(users=50, items=10, slots=3))
    users = np.array([0, 1, 2, 2])
    position = np.array([1, 2, 3, 1])
    probs = world.policy_probs("treatment", users)
    rel = world.relevance(users)
    direct = np.mean([world.position_bias[position[j] - 1] * probs[j] @ rel[j] for j in range(4)])
    assert world.expected_ctr(probs, users, position) == pytest.approx(direct, rel=1e-12)
    with pytest.raises(InputError, match=re.escape("expected_ctr: positions must be in 1..3")):
        world.expected_ctr(probs, users, np.array([0, 1, 2, 3]))
    with pytest.raises(InputError, match=re.escape("probs must be (4, 10) and position (4,)")):
        world.expected_ctr(probs[:3], users, position)


@pytest.mark.parametrize(
    ("base", "lift"), [(0.05, 0.2), (0.05, -0.3), (0.3, 1.0), (0.5, 2.0), (0.05, -1.0)]
)
def test_conversion_truth_is_the_exact_beta_expectation(base: float, lift: float) -> None:
    """E[min(1, q(1+L))] against numerical integration over the Beta density (clip included)."""
    world = World.from_config(SimulationConfig(users=10, items=10, base_conversion=base, lift=lift))
    a, b = 4.0 * base, 4.0 * (1 - base)
    c = 1 + lift
    kink = [1 / c] if c > 1 else None
    expected, _ = integrate.quad(
        lambda q: min(1.0, c * q) * stats.beta.pdf(q, a, b), 0, 1, points=kink, limit=200
    )
    assert world.conversion_rate("treatment") == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert world.conversion_rate("control") == pytest.approx(base, rel=1e-12)
    clipped = stats.beta.sf(1 / c, a, b) if c > 1 else 0.0
    assert world.clipped_share("treatment") == pytest.approx(clipped, rel=1e-9, abs=1e-15)


def test_default_beta_almost_never_clips_and_purchases_are_exact() -> None:
    world = World.from_config(SimulationConfig(users=10, items=10))
    assert world.clipped_share("treatment") < 2e-4
    assert world.conversion_rate("treatment") / world.conversion_rate("control") - 1 == (
        pytest.approx(0.2, abs=1e-3)
    )
    x = np.arange(4)
    poisson = stats.poisson(0.3)
    expected = 1 + np.dot(x, poisson.pmf(x)) + 4 * poisson.sf(3)
    assert world.purchases_per_converter() == pytest.approx(expected, rel=1e-12)


# -- the simulated store (the shared sim_db fixture) -----------------------------------------


def test_sim_db_has_every_table_and_consistent_ids(sim_db: Path, sim_config) -> None:
    con = _con(sim_db)
    assert con.execute("SELECT dataset, source, unit FROM datasets").fetchall() == [
        ("sim", "simulate", "user")
    ]
    (params,) = con.execute("SELECT params FROM datasets").fetchone()
    assert '"seed": 7' in params
    n_items, bad_price = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE price <= 0 OR category IS NULL) FROM items"
    ).fetchone()
    assert (n_items, bad_price) == (200, 0)
    # Every stored id maps to a world index; every event item is in the catalogue.
    max_user, max_item, orphan = con.execute(
        "SELECT max(CAST(user_id AS INT)), max(CAST(e.item_id AS INT)), "
        "count(*) FILTER (WHERE i.item_id IS NULL) "
        "FROM events e LEFT JOIN items i USING (dataset, item_id)"
    ).fetchone()
    assert max_user < sim_config.users
    assert max_item < sim_config.items
    assert orphan == 0
    # One assignment per user; every user visits in the experiment window (no SRM here).
    n_assigned, distinct = con.execute(
        "SELECT count(*), count(DISTINCT user_id) FROM assignments"
    ).fetchone()
    assert n_assigned == distinct == sim_config.users
    experiment = con.execute(
        "SELECT variants, split, control, start_ts, end_ts FROM experiments"
    ).fetchone()
    assert experiment == (
        ["control", "treatment"],
        [0.5, 0.5],
        "control",
        sim_config.experiment_start,
        sim_config.experiment_end,
    )
    # ~50 events per user (1M users ≈ 50M events); purchases carry the item's price.
    n_events, bad_value = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE (event_type = 'purchase') "
        "!= (value IS NOT NULL)) FROM events"
    ).fetchone()
    assert 35 < n_events / sim_config.users < 65
    assert bad_value == 0
    mismatched = con.execute(
        "SELECT count(*) FROM events e JOIN items i USING (dataset, item_id) "
        "WHERE e.event_type = 'purchase' AND e.value != i.price"
    ).fetchone()[0]
    assert mismatched == 0
    ids = con.execute(
        "SELECT count(*), count(DISTINCT impression_id), min(position), max(position) "
        "FROM impressions"
    ).fetchone()
    assert ids[0] == ids[1]
    assert ids[2:] == (1, sim_config.slots)


def test_sim_db_times_fall_in_their_windows(sim_db: Path, sim_config) -> None:
    con = _con(sim_db)
    start, split_at, end = sim_config.start, sim_config.experiment_start, sim_config.experiment_end
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM events").fetchone()
    assert start <= lo < hi < end
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM impressions").fetchone()
    assert split_at <= lo < hi < end
    # A session stays inside one day, and lasts less than SESSION_SPAN.
    crossing = con.execute(
        "SELECT count(*) FROM (SELECT session_id FROM events GROUP BY user_id, session_id "
        "HAVING date_trunc('day', min(ts)) != date_trunc('day', max(ts)) "
        f"OR max(ts) - min(ts) >= INTERVAL {SESSION_SPAN} SECOND)"
    ).fetchone()[0]
    assert crossing == 0
    # assigned_at is the user's first event in the experiment window.
    wrong = con.execute(
        "SELECT count(*) FROM assignments a JOIN (SELECT user_id, min(ts) AS first_ts "
        "FROM events WHERE ts >= ? GROUP BY user_id) f USING (user_id) "
        "WHERE a.assigned_at != f.first_ts",
        [split_at],
    ).fetchone()[0]
    assert wrong == 0
    # Pre-period traffic exists (for CUPED), for most but not all users.
    pre_users = con.execute(
        "SELECT count(DISTINCT user_id) FROM events WHERE ts < ?", [split_at]
    ).fetchone()[0]
    assert 0.6 * sim_config.users < pre_users < sim_config.users


def test_split_is_near_the_design(sim_db: Path, sim_config) -> None:
    con = _con(sim_db)
    counts = dict(con.execute("SELECT variant, count(*) FROM assignments GROUP BY 1").fetchall())
    n = sum(counts.values())
    z = (counts["treatment"] - n / 2) / math.sqrt(n / 4)
    assert abs(z) < 4


def test_observed_conversion_matches_the_planted_truth(sim_db: Path) -> None:
    """Each user converts independently with the arm's truth rate: a binomial z-band."""
    con = _con(sim_db)
    truth = _truth(con)
    rows = con.execute(
        "SELECT a.variant, count(*), count(p.user_id) FROM assignments a LEFT JOIN "
        "(SELECT DISTINCT e.user_id FROM events e, experiments x "
        " WHERE e.event_type = 'purchase' AND e.ts >= x.start_ts) p USING (user_id) GROUP BY 1"
    ).fetchall()
    for arm, n, converted in rows:
        p = truth[(arm, "conversion_rate")]
        z = (converted / n - p) / math.sqrt(p * (1 - p) / n)
        assert abs(z) < 4, (arm, converted / n, p)
    assert truth[(None, "lift")] == 0.2
    assert truth[("treatment", "conversion_lift")] == pytest.approx(0.2, abs=1e-3)


def test_revenue_matches_its_truth(sim_db: Path) -> None:
    con = _con(sim_db)
    truth = _truth(con)
    rows = con.execute(
        "SELECT a.variant, list(coalesce(r.revenue, 0)) FROM assignments a LEFT JOIN "
        "(SELECT e.user_id, sum(value) AS revenue FROM events e, experiments x "
        " WHERE e.event_type = 'purchase' AND e.ts >= x.start_ts GROUP BY 1) r "
        "USING (user_id) GROUP BY 1"
    ).fetchall()
    for arm, revenue in rows:
        values = np.asarray(revenue)
        se = values.std(ddof=1) / math.sqrt(len(values))
        assert abs(values.mean() - truth[(arm, "revenue_per_user")]) < 4 * se


def test_pre_period_is_a_correlated_covariate(sim_db: Path) -> None:
    """Pre-period purchases share the user's q_u: CUPED has something to work with."""
    con = _con(sim_db)
    pre, post = con.execute(
        "SELECT list(pre ORDER BY user_id), list(post ORDER BY user_id) FROM ("
        " SELECT a.user_id,"
        "  count(*) FILTER (WHERE e.event_type = 'purchase' AND e.ts < x.start_ts) AS pre,"
        "  count(*) FILTER (WHERE e.event_type = 'purchase' AND e.ts >= x.start_ts) > 0 AS post"
        " FROM assignments a JOIN events e USING (user_id), experiments x GROUP BY 1)"
    ).fetchone()
    r = np.corrcoef(np.asarray(pre, float), np.asarray(post, float))[0, 1]
    assert r > 0.05


def test_logged_propensities_are_the_world_policy(sim_db: Path, sim_config) -> None:
    con = _con(sim_db)
    world = World.from_config(sim_config)
    for arm in sim_config.arms:
        frame = con.execute(
            "SELECT user_id, item_id, propensity FROM impressions WHERE variant = ? "
            "ORDER BY impression_id LIMIT 3000",
            [arm],
        ).df()
        users = world.user_index(frame["user_id"])
        items = world.item_index(frame["item_id"])
        probs = world.policy_probs(arm, users)
        np.testing.assert_allclose(
            frame["propensity"].to_numpy(), probs[np.arange(len(users)), items], rtol=1e-12
        )
        # The logged arm is the user's world arm.
        assert set(world.user_arm[users]) == {sim_config.arms.index(arm)}


def test_empirical_ctr_matches_the_truth_and_expected_ctr(sim_db: Path, sim_config) -> None:
    con = _con(sim_db)
    truth = _truth(con)
    world = World.from_config(sim_config)
    for arm in sim_config.arms:
        frame = con.execute(
            "SELECT user_id, position, click FROM impressions WHERE variant = ?", [arm]
        ).df()
        users = world.user_index(frame["user_id"])
        position = frame["position"].to_numpy()
        exact = world.expected_ctr(world.policy_probs(arm, users), users, position)
        assert exact == pytest.approx(truth[(arm, "policy_ctr")], rel=1e-9)
        n = len(frame)
        observed = frame["click"].mean()
        assert abs(observed - exact) < 4 * math.sqrt(exact * (1 - exact) / n), arm
        # The truth of this policy on the other arm's rounds (the off-policy target).
        other = next(a for a in sim_config.arms if a != arm)
        rounds = con.execute(
            "SELECT user_id, position FROM impressions WHERE variant = ?", [other]
        ).df()
        other_users = world.user_index(rounds["user_id"])
        on_other = world.expected_ctr(
            world.policy_probs(arm, other_users), other_users, rounds["position"].to_numpy()
        )
        assert on_other == pytest.approx(truth[(arm, f"policy_ctr_on:{other}")], rel=1e-9)
    # The personalised policy really is better than uniform.
    assert truth[("treatment", "policy_ctr")] > 2 * truth[("control", "policy_ctr")]


def test_sessions_have_learnable_sequential_structure(sim_db: Path) -> None:
    """Next view = the most frequent successor (learnt on even users) beats the most popular
    item by a wide margin on odd users: a sequence model has something to learn."""
    con = _con(sim_db)
    con.execute(
        "CREATE TEMP TABLE pairs AS SELECT CAST(user_id AS INT) % 2 AS fold, item_id AS prev, "
        "lead(item_id) OVER (PARTITION BY user_id, session_id ORDER BY ts) AS next "
        "FROM events WHERE event_type = 'view'"
    )
    seq_hit, pop_hit = con.execute(
        "WITH counts AS (SELECT prev, next, count(*) AS n FROM pairs WHERE fold = 0 "
        " AND next IS NOT NULL GROUP BY 1, 2), "
        "best AS (SELECT prev, arg_max(next, n) AS guess FROM counts GROUP BY 1), "
        "top AS (SELECT mode(next) AS item FROM pairs WHERE fold = 0 AND next IS NOT NULL) "
        "SELECT avg(CAST(p.next = b.guess AS INT)), avg(CAST(p.next = t.item AS INT)) "
        "FROM pairs p LEFT JOIN best b USING (prev), top t WHERE p.fold = 1 AND p.next IS NOT NULL"
    ).fetchone()
    assert seq_hit > 0.2
    assert seq_hit > 3 * pop_hit


def test_user_taste_shows_in_views(sim_db: Path, sim_config) -> None:
    """Users view their favourite categories far more than the catalogue's share of them."""
    con = _con(sim_db)
    top_share = con.execute(
        "SELECT avg(share) FROM (SELECT user_id, max(n) / sum(n) AS share FROM ("
        " SELECT e.user_id, i.category, count(*) AS n FROM events e JOIN items i "
        " USING (dataset, item_id) WHERE e.event_type = 'view' GROUP BY 1, 2) GROUP BY 1 "
        " HAVING sum(n) >= 20)"
    ).fetchone()[0]
    assert top_share > 3 / 20


# -- determinism, SRM, atomic writes -----------------------------------------------------------


def _dump(path: Path, dataset: str = "sim") -> dict[str, list]:
    con = _con(path)
    out = {}
    for table in DATA_TABLES:
        out[table] = con.execute(
            f"SELECT * EXCLUDE (dataset) FROM {table} WHERE dataset = ? ORDER BY ALL", [dataset]
        ).fetchall()
    con.close()
    return out


def test_same_seed_same_tables_other_seed_other_tables(tmp_path: Path) -> None:
    config = SimulationConfig(users=300, items=40, days=5, pre_days=2, seed=11)
    simulate(config, tmp_path / "a.duckdb")
    simulate(config, tmp_path / "b.duckdb")
    simulate(
        SimulationConfig(users=300, items=40, days=5, pre_days=2, seed=12), tmp_path / "c.duckdb"
    )
    a, b, c = (_dump(tmp_path / f"{x}.duckdb") for x in "abc")
    assert a == b
    for table in ("events", "impressions", "assignments", "items"):
        assert a[table] != c[table], table


def test_chunks_do_not_change_the_world_and_progress_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import abkit.simulate.core as core

    monkeypatch.setattr(core, "CHUNK_CELLS", 40 * 50)  # 50 users per chunk
    monkeypatch.setattr(core, "MIN_CHUNK_USERS", 1)
    seen: list[tuple[int, int]] = []
    config = SimulationConfig(users=180, items=40, days=3, pre_days=1, seed=2)
    summary = simulate(config, tmp_path / "s.duckdb", on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(50, 180), (100, 180), (150, 180), (180, 180)]
    dump = _dump(tmp_path / "s.duckdb")
    assert len(dump["events"]) == summary.events
    assert len(dump["impressions"]) == summary.impressions
    assert summary.assignments == sum(summary.arm_users.values()) == 180
    # Slate and impression ids stay unique across chunks.
    ids = [row[0] for row in dump["impressions"]]
    assert len(ids) == len(set(ids))


def test_summary_reports_what_was_written(tmp_path: Path) -> None:
    config = SimulationConfig(users=200, items=30, days=3, pre_days=1, seed=5)
    summary = simulate(config, tmp_path / "s.duckdb")
    assert isinstance(summary, SimulationSummary)
    con = _con(tmp_path / "s.duckdb")
    assert summary.events == con.execute("SELECT count(*) FROM events").fetchone()[0]
    assert (
        summary.sessions
        == con.execute("SELECT count(DISTINCT session_id) FROM events").fetchone()[0]
    )
    truth = _truth(con)
    assert summary.truth["conversion_rate[treatment]"] == truth[("treatment", "conversion_rate")]
    assert summary.truth["lift"] == 0.2
    payload = summary.to_dict()
    assert payload["arm_users"] == summary.arm_users
    assert payload["config"]["seed"] == 5
    assert payload["config"]["start"] == "2024-01-01T00:00:00"


def test_srm_drops_non_control_users_detectably(tmp_path: Path) -> None:
    base = {"users": 4000, "items": 40, "days": 3, "pre_days": 1, "seed": 9}
    clean = simulate(SimulationConfig(**base), tmp_path / "clean.duckdb")
    broken = simulate(SimulationConfig(**base, srm=0.2), tmp_path / "srm.duckdb")
    # The same users are in control; treatment loses about 20% of its users.
    assert broken.arm_users["control"] == clean.arm_users["control"]
    kept = broken.arm_users["treatment"] / clean.arm_users["treatment"]
    assert 0.75 < kept < 0.85
    chi2 = stats.chisquare(list(broken.arm_users.values())).pvalue
    assert chi2 < 1e-6
    assert broken.truth["expected_share[treatment]"] == pytest.approx(0.4 / 0.9)
    assert broken.truth["design_share[treatment]"] == 0.5
    # A lost user leaves no trace in the experiment window, but keeps the pre-period.
    con = _con(tmp_path / "srm.duckdb")
    start = SimulationConfig(**base).experiment_start
    lost_traces = con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT user_id FROM events WHERE ts >= ? UNION "
        "SELECT DISTINCT user_id FROM impressions) WHERE user_id NOT IN "
        "(SELECT user_id FROM assignments)",
        [start],
    ).fetchone()[0]
    assert lost_traces == 0
    pre_only = con.execute(
        "SELECT count(DISTINCT user_id) FROM events WHERE ts < ? AND user_id NOT IN "
        "(SELECT user_id FROM assignments)",
        [start],
    ).fetchone()[0]
    assert pre_only > 0


def test_three_arms_with_their_own_lifts(tmp_path: Path) -> None:
    config = SimulationConfig(
        users=900, items=40, days=3, pre_days=0, arms=("a", "b", "c"), split=(0.5, 0.25, 0.25),
        arm_lifts=(0.0, 0.1, -0.5), seed=4,
    )  # fmt: skip
    summary = simulate(config, tmp_path / "s.duckdb")
    assert summary.truth["conversion_rate[b]"] == pytest.approx(0.055, rel=1e-4)
    assert summary.truth["conversion_rate[c]"] == pytest.approx(0.025, rel=1e-12)
    assert summary.truth["lift"] == 0.1
    # A sharper policy for the later arm, both better than uniform.
    ctr = {arm: summary.truth[f"policy_ctr[{arm}]"] for arm in "abc"}
    assert ctr["a"] < ctr["b"] < ctr["c"]
    con = _con(tmp_path / "s.duckdb")
    # No pre-period: every event is in the experiment window.
    assert con.execute("SELECT min(ts) FROM events").fetchone()[0] >= config.experiment_start


def test_existing_dataset_is_refused_and_the_file_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    config = SimulationConfig(users=100, items=20, days=2, pre_days=1)
    simulate(config, path)
    before = file_digest(path)
    message = f"{path}: dataset 'sim' already exists; choose another name with --dataset"
    with pytest.raises(StoreError, match=f"^{re.escape(message)}$"):
        simulate(config, path)
    assert file_digest(path) == before
    # Another dataset name lands next to it.
    simulate(SimulationConfig(users=100, items=20, days=2, pre_days=1, dataset="b"), path)
    with open_store(path) as store:
        assert store.datasets() == ["b", "sim"]


def test_a_failure_midway_leaves_the_file_byte_identical(tmp_path: Path) -> None:
    """Chunks are staged in a private file: the store is untouched until the final copy."""
    path = tmp_path / "s.duckdb"
    simulate(SimulationConfig(users=100, items=20, days=2, pre_days=1), path)
    before = file_digest(path)

    def fail(done: int, total: int) -> None:
        if done >= 100:
            raise KeyboardInterrupt

    config = SimulationConfig(users=300, items=20, days=2, pre_days=1, dataset="other")
    with pytest.raises(KeyboardInterrupt):
        simulate(config, path, on_progress=fail)
    assert file_digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.duckdb"]  # no staging leftovers
    with open_store(path) as store:
        assert store.datasets() == ["sim"]


def test_unusable_targets_fail_before_any_work(tmp_path: Path) -> None:
    config = SimulationConfig(users=100, items=20, days=2, pre_days=1)
    missing = tmp_path / "nope" / "s.duckdb"
    with pytest.raises(StoreError, match=re.escape(f"{missing}: folder {missing.parent} does")):
        simulate(config, missing)
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database")
    with pytest.raises(StoreError, match=re.escape(f"{junk}: not a DuckDB database")):
        simulate(config, junk)
    assert junk.read_text() == "not a database"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.duckdb"]
