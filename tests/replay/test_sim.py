"""Acceptance on simulated traffic: model ordering, and off-policy estimates vs planted truth."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from abkit.replay.offpolicy import estimate_policy_value
from abkit.replay.runner import replay
from tests.test_offpolicy import _dr_terms

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def structured_sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated shop with enough history per user for personalisation to matter:
    300 items, 14 pre-period days + 21 experiment days, 3,000 users."""
    from abkit.simulate import SimulationConfig, simulate

    path = tmp_path_factory.mktemp("structured") / "sim.duckdb"
    simulate(SimulationConfig(users=3000, items=300, days=21, pre_days=14, seed=3), path)
    return path


@pytest.mark.slow
def test_als_beats_popularity_beats_random(structured_sim: Path) -> None:
    ndcg = {
        name: replay(structured_sim, model=name, ks=[10], write=False).metric("ndcg@10")
        for name in ("random", "popularity", "als")
    }
    assert ndcg["popularity"] > 2 * ndcg["random"]
    assert ndcg["als"] > 1.2 * ndcg["popularity"]


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="training the lstm needs torch==2.13.0")
def test_lstm_beats_popularity(structured_sim: Path) -> None:
    lstm = replay(structured_sim, model="lstm", ks=[10], write=False).metric("ndcg@10")
    popularity = replay(structured_sim, model="popularity", ks=[10], write=False)
    assert lstm > 1.2 * popularity.metric("ndcg@10")


def test_runs_on_the_shared_simulation(sim_db: Path, tmp_path: Path) -> None:
    """Ranking and off-policy runs on conftest's simulation; paired runs share a fingerprint."""
    import shutil

    db = tmp_path / "copy.duckdb"
    shutil.copy(sim_db, db)
    pop = replay(
        db, model="popularity", estimators="ips,snips,dr", policy="stochastic", variant="control"
    )
    rnd = replay(
        db, model="random", estimators="ips,snips,dr", policy="stochastic", variant="control"
    )
    assert pop.fingerprint == rnd.fingerprint  # same users, same logged rounds
    assert pop.metric("ndcg@10") > rnd.metric("ndcg@10")
    for est in (*pop.estimates, *rnd.estimates):
        assert est.refused is None
        assert est.ci_low < est.value < est.ci_high
    # the uniform policy on uniform logs: every weight is 1, IPS is the logs' CTR
    assert rnd.estimate("ips").diagnostics.max_weight == pytest.approx(1.0)


def _known_policy_estimates(db: Path, seed: int) -> tuple[float, dict[str, tuple]]:
    """The treatment arm's policy estimated from the control arm's uniform logs."""
    import duckdb

    from abkit.simulate import SimulationConfig
    from abkit.simulate.world import World

    config = SimulationConfig(users=800, items=40, days=5, pre_days=1, seed=seed)
    world = World.from_config(config)
    with duckdb.connect(str(db), read_only=True) as con:
        logs = con.execute(
            "SELECT user_id, item_id, position, propensity, click FROM impressions "
            "WHERE variant = 'control' ORDER BY impression_id"
        ).df()
        truth = con.execute(
            "SELECT value FROM truth WHERE variant = 'treatment' "
            "AND metric = 'policy_ctr_on:control'"
        ).fetchone()[0]
    users = world.user_index(logs["user_id"].to_numpy())
    items = world.item_index(logs["item_id"].to_numpy())
    pos = logs["position"].to_numpy()
    clicks = logs["click"].to_numpy(dtype=float)
    target = world.policy_probs("treatment", np.arange(config.users))
    q_logged, q_policy = _dr_terms(target, users, items, pos, clicks, config.items, config.slots)
    out = {}
    for name in ("ips", "snips", "dr"):
        e = estimate_policy_value(
            clicks,
            logs["propensity"].to_numpy(),
            target[users, items],
            estimator=name,
            q_logged=q_logged,
            q_policy=q_policy,
        )
        out[name] = (e.ci_low, e.ci_high)
    return float(truth), out


@pytest.mark.slow
def test_estimates_of_a_known_policy_cover_the_stored_truth(tmp_path: Path) -> None:
    """Across 20 simulated shops, the 95% intervals cover the stored truth at least 17 times
    out of 20 for each estimator (P(fewer) is 1.6% at the nominal rate)."""
    from abkit.simulate import SimulationConfig, simulate

    covered = {"ips": 0, "snips": 0, "dr": 0}
    seeds = range(100, 120)
    for seed in seeds:
        db = tmp_path / f"s{seed}.duckdb"
        simulate(SimulationConfig(users=800, items=40, days=5, pre_days=1, seed=seed), db)
        truth, intervals = _known_policy_estimates(db, seed)
        for name, (low, high) in intervals.items():
            covered[name] += low <= truth <= high
        db.unlink()
    for name, hits in covered.items():
        assert hits >= 17, (name, hits)
