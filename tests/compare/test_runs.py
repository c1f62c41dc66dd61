"""abkit.compare.runs and abkit.data.runs_sql on runs written straight into a store."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abkit.compare.runs import compare_runs
from abkit.data.runs_sql import RunRecord, fetch_run
from abkit.data.store import open_store
from abkit.errors import InputError, StoreError
from abkit.replay.runs import get_run, list_runs, run_rounds, run_user_values
from abkit.stats.multiplicity import adjust
from abkit.stats.paired import compare_paired, paired_offpolicy_difference
from tests._fake_runs import add_run, correlated_users


@pytest.fixture
def ranking_db(db_path: Path) -> Path:
    base, cand = correlated_users(1, 400, shift=0.05)
    worse = np.clip(base - 0.02, 0, 1)
    hit_b = (base > 0.25).astype(float)
    hit_c = (cand > 0.25).astype(float)
    add_run(db_path, "run-a", user_metrics={"ndcg@10": base, "hit_rate@10": hit_b}, name="als64")
    add_run(db_path, "run-b", user_metrics={"ndcg@10": cand, "hit_rate@10": hit_c}, name="als128")
    add_run(db_path, "run-c", user_metrics={"ndcg@10": worse, "hit_rate@10": hit_b}, model="pop")
    return db_path


def test_two_runs_compare_like_the_paired_functions(ranking_db: Path) -> None:
    result = compare_runs(ranking_db, ["run-a", "run-b"], n_resamples=200, seed=3)
    assert result.kind == "ranking"
    assert result.metrics == ("ndcg@10", "hit_rate@10")
    assert result.paired_users == 400
    base, cand = correlated_users(1, 400, shift=0.05)
    row = result.rows[0]
    expected = compare_paired(base, cand, n_resamples=200, seed=3)
    assert row.metric == "ndcg@10"
    assert (row.reference, row.candidate) == ("als64", "als128")
    assert row.result.difference == pytest.approx(expected.difference)
    assert row.result.ci_low == pytest.approx(expected.ci_low)
    assert row.result.bootstrap == expected.bootstrap
    hit = result.rows[1]
    assert hit.metric == "hit_rate@10"
    assert hit.result.mcnemar is not None
    assert row.result.mcnemar is None
    # the family is both metrics: Holm over the two p-values
    raw = [r.result.p_value for r in result.rows]
    assert [r.p_adjusted for r in result.rows] == pytest.approx(list(adjust(raw, "holm")))


def test_three_runs_form_a_metrics_by_models_family(ranking_db: Path) -> None:
    result = compare_runs(ranking_db, ["run-a", "run-b", "run-c"], n_resamples=0)
    assert [(r.metric, r.candidate_run) for r in result.rows] == [
        ("ndcg@10", "run-b"),
        ("ndcg@10", "run-c"),
        ("hit_rate@10", "run-b"),
        ("hit_rate@10", "run-c"),
    ]
    raw = [r.result.p_value for r in result.rows]
    bh = compare_runs(ranking_db, ["run-a", "run-b", "run-c"], n_resamples=0, correction="bh")
    assert [r.p_adjusted for r in bh.rows] == pytest.approx(list(adjust(raw, "bh")))
    # identical hit vectors: no difference at all
    same = result.rows[3]
    assert same.result.difference == 0
    assert same.result.p_value == 1.0


def test_runs_are_found_by_unique_name_and_metrics_can_be_chosen(ranking_db: Path) -> None:
    result = compare_runs(ranking_db, ["als64", "als128"], metrics=["hit_rate@10"], n_resamples=0)
    assert [r.metric for r in result.rows] == ["hit_rate@10"]
    assert result.to_dict()["comparisons"][0]["candidate_run"] == "run-b"


def test_paired_interval_narrower_than_unpaired_on_the_same_runs(ranking_db: Path) -> None:
    result = compare_runs(ranking_db, ["run-a", "run-b"], metrics=["ndcg@10"], n_resamples=0)
    r = result.rows[0].result
    assert r.ci_high - r.ci_low < 0.5 * (r.unpaired_ci_high - r.unpaired_ci_low)


def test_users_missing_from_one_run_are_left_out_with_a_note(db_path: Path) -> None:
    base, cand = correlated_users(2, 50)
    add_run(db_path, "a", user_metrics={"ndcg@10": base})
    add_run(
        db_path, "b", user_metrics={"ndcg@10": cand[:40]}, user_ids=[f"u{i:05d}" for i in range(40)]
    )
    result = compare_runs(db_path, ["a", "b"], n_resamples=0)
    assert result.paired_users == 40
    assert result.notes == (
        "ndcg@10: 10 user(s) scored by only some runs were left out of the pairing",
    )
    assert result.rows[0].result.difference == pytest.approx(float(np.mean(cand[:40] - base[:40])))


def test_offpolicy_runs_compare_estimators_with_a_claim(db_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 3000
    action = rng.integers(0, 4, n)
    rates = np.array([0.05, 0.06, 0.07, 0.12])
    reward = (rng.random(n) < rates[action]).astype(float)
    ids = np.arange(n)
    w_random = np.ones(n)  # the uniform logging policy itself
    w_best = (action == 3) * 4.0
    add_run(
        db_path,
        "random",
        kind="offpolicy",
        rounds={"impression_id": ids, "weight": w_random, "reward": reward},
        model="random",
    )
    add_run(
        db_path,
        "best",
        kind="offpolicy",
        rounds={"impression_id": ids, "weight": w_best, "reward": reward},
        model="als",
    )
    result = compare_runs(db_path, ["random", "best"], claim=0.2)
    assert result.kind == "offpolicy"
    assert result.metrics == ("ips", "snips")
    assert result.paired_rounds == n
    ips = result.offpolicy[0]
    expected = paired_offpolicy_difference(reward=reward, weight_a=w_random, weight_b=w_best)
    assert ips.result.difference == pytest.approx(expected.difference)
    assert ips.result.ci_low == pytest.approx(expected.ci_low)
    assert ips.claim is not None
    # true lift 0.12 / 0.075 - 1 = +60%: "beats random by 20%" is supported from logs alone
    assert ips.claim.verdict == "supported"
    assert ips.claim.max_supported_lift > 0.2
    assert ips.claim.max_supported_lift == pytest.approx(ips.result.relative_ci_low, rel=1e-6)
    refuted = compare_runs(db_path, ["random", "best"], claim=1.5, estimators=["snips"])
    assert refuted.offpolicy[0].claim is not None
    assert refuted.offpolicy[0].claim.verdict == "refuted"


def test_offpolicy_claim_bound_is_cut_at_minus_100_percent(db_path: Path) -> None:
    # A rare, noisy candidate: Fieller's set reaches below -100%, which no policy can earn with
    # non-negative rewards; the interval is cut there, and the claim's bound with it.
    rng = np.random.default_rng(10)  # candidate 0.05 vs 0.03: Fieller's lower end -311%
    n = 400
    action = rng.integers(0, 20, n)
    reward = (rng.random(n) < 0.03).astype(float)
    ids = np.arange(n)
    uniform = {"impression_id": ids, "weight": np.ones(n), "reward": reward}
    narrow = {"impression_id": ids, "weight": (action == 0) * 20.0, "reward": reward}
    add_run(db_path, "uniform", kind="offpolicy", model="random", rounds=uniform)
    add_run(db_path, "narrow", kind="offpolicy", model="als", rounds=narrow)
    row = compare_runs(db_path, ["uniform", "narrow"], claim=0.2).offpolicy[0]
    assert row.result.relative_ci_low == -1.0
    assert row.claim is not None
    assert row.claim.max_supported_lift == -1.0


def _log_impressions(
    db: Path, user: np.ndarray, *, unit: str = "user", slate: np.ndarray | None = None
) -> None:
    """The logged impressions behind fake off-policy runs: impression i belongs to user[i]."""
    import pandas as pd

    from abkit.data.store import open_store, utcnow

    n = user.size
    frame = pd.DataFrame(
        {
            "impression_id": np.arange(n, dtype=np.int64),
            "slate_id": slate if slate is not None else np.arange(n, dtype=np.int64),
            "user_id": [f"user{u}" for u in user],
            "item_id": "i0",
            "position": 1,
            "propensity": 0.25,
            "click": 0,
        }
    )
    with open_store(db, write=True) as store, store.transaction() as con:
        store.add_dataset("sim", source="test", unit=unit)
        con.register("fake_log", frame)
        con.execute(
            "INSERT INTO impressions (dataset, impression_id, slate_id, user_id, ts, item_id, "
            "position, propensity, click) SELECT 'sim', impression_id, slate_id, user_id, ?, "
            "item_id, position, propensity, click FROM fake_log",
            [utcnow()],
        )
        con.unregister("fake_log")


def _two_policies(db: Path, user: np.ndarray, seed: int = 6) -> tuple[np.ndarray, ...]:
    """Uniform logs over 4 actions, persistent per-user tastes for action 3; stores a
    uniform-policy run and an always-action-3 run on the same rounds."""
    rng = np.random.default_rng(seed)
    taste = rng.beta(0.5, 2.0, user.max() + 1)[user]
    action = rng.integers(0, 4, user.size)
    reward = (rng.random(user.size) < np.where(action == 3, taste, 0.05)).astype(float)
    ids = np.arange(user.size)
    w_random, w_best = np.ones(user.size), (action == 3) * 4.0
    add_run(db, "random", kind="offpolicy", model="random",
            rounds={"impression_id": ids, "weight": w_random, "reward": reward})  # fmt: skip
    add_run(db, "best", kind="offpolicy",
            rounds={"impression_id": ids, "weight": w_best, "reward": reward})  # fmt: skip
    return reward, w_random, w_best


def test_offpolicy_comparison_is_clustered_by_the_logged_user(db_path: Path) -> None:
    """150 users x 20 rounds: the rounds of a user share the user's taste. The comparison
    clusters by the user of each logged impression; per-round SEs would be too narrow."""
    user = np.repeat(np.arange(150), 20)
    _log_impressions(db_path, user)
    reward, w_random, w_best = _two_policies(db_path, user)
    result = compare_runs(db_path, ["random", "best"])
    assert result.paired_rounds == 3000
    assert result.paired_units == 150
    assert result.to_dict()["paired_units"] == 150
    assert result.notes == ()
    for row in result.offpolicy:
        clustered = paired_offpolicy_difference(
            reward=reward, weight_a=w_random, weight_b=w_best,
            estimator=row.estimator,  # type: ignore[arg-type]
            clusters=user,
        )  # fmt: skip
        per_round = paired_offpolicy_difference(
            reward=reward, weight_a=w_random, weight_b=w_best,
            estimator=row.estimator,  # type: ignore[arg-type]
        )  # fmt: skip
        assert row.result.n_clusters == 150
        assert row.result.standard_error == pytest.approx(clustered.standard_error, rel=1e-12)
        assert row.result.standard_error > 1.3 * per_round.standard_error


def test_offpolicy_comparison_on_impression_level_logs_clusters_by_slate(db_path: Path) -> None:
    """Datasets whose unit is the impression (OBD) cluster the slots of one slate together."""
    user = np.arange(3000)  # no user ids: each row is its own "user"
    slate = np.repeat(np.arange(1000), 3)
    _log_impressions(db_path, user, unit="impression", slate=slate)
    reward, w_random, w_best = _two_policies(db_path, slate)
    result = compare_runs(db_path, ["random", "best"], estimators=["ips"])
    assert result.paired_units == 1000
    expected = paired_offpolicy_difference(
        reward=reward, weight_a=w_random, weight_b=w_best, clusters=slate
    )
    assert result.offpolicy[0].result.standard_error == pytest.approx(expected.standard_error)


def test_offpolicy_rounds_without_logged_impressions_are_their_own_units(db_path: Path) -> None:
    user = np.repeat(np.arange(50), 4)
    reward, w_random, w_best = _two_policies(db_path, user)  # no impressions in the store
    result = compare_runs(db_path, ["random", "best"], estimators=["ips"])
    assert result.paired_units == 200
    assert result.notes == (
        "200 round(s) are no longer in the logged impressions, so their user is unknown: "
        "each counts as its own unit in the clustered variance",
    )
    expected = paired_offpolicy_difference(reward=reward, weight_a=w_random, weight_b=w_best)
    assert result.offpolicy[0].result.n_clusters == 200
    assert result.offpolicy[0].result.standard_error == pytest.approx(expected.standard_error)


def test_offpolicy_dr_needs_stored_predictions(db_path: Path) -> None:
    ids = np.arange(10)
    reward = np.tile([0.0, 1.0], 5)
    q = np.full(10, 0.5)
    with_q = {"impression_id": ids, "reward": reward, "q_logged": q, "q_policy": q}
    all_three = ("ips", "snips", "dr")
    add_run(
        db_path,
        "a",
        kind="offpolicy",
        rounds={**with_q, "weight": np.ones(10)},
        estimators=all_three,
    )
    add_run(
        db_path,
        "b",
        kind="offpolicy",
        rounds={**with_q, "weight": np.ones(10) * 2},
        estimators=all_three,
    )
    add_run(
        db_path,
        "c",
        kind="offpolicy",
        rounds={"impression_id": ids, "weight": np.ones(10), "reward": reward},
    )
    add_run(
        db_path,
        "d",
        kind="offpolicy",
        rounds={**with_q, "weight": np.ones(10)},
        estimators=("ips",),
    )
    assert compare_runs(db_path, ["a", "b"]).metrics == ("ips", "snips", "dr")
    assert compare_runs(db_path, ["a", "c"]).metrics == ("ips", "snips")
    # predictions stored but no DR estimate asked for: DR only on request
    assert compare_runs(db_path, ["a", "d"]).metrics == ("ips", "snips")
    assert compare_runs(db_path, ["a", "d"], estimators=["dr"]).metrics == ("dr",)
    with pytest.raises(
        InputError, match=re.escape("estimators dr needs the reward model's predictions")
    ):
        compare_runs(db_path, ["a", "c"], estimators=["dr"])


@pytest.mark.parametrize(
    ("setup", "runs", "kwargs", "error", "message"),
    [
        (
            {},
            ["r1"],
            {},
            InputError,
            "compare needs at least two runs: the reference first, then the others",
        ),
        ({}, ["r1", "r1"], {}, InputError, "a run is listed twice; list each run once"),
        (
            {},
            ["r1", "rr1"],
            {},
            StoreError,
            "unknown run 'rr1' (did you mean 'r1'?); list the runs with `abkit runs`",
        ),
        (
            {"split": "leave-last-out"},
            ["r1", "r2"],
            {},
            InputError,
            "runs r1 and r2 use different splits (temporal:2024-01-20T00:00:00 vs "
            "leave-last-out): their test users differ, so they cannot be paired; replay both "
            "with the same split",
        ),
        (
            {"fingerprint": "a" * 32, "dataset": "other"},
            ["r1", "r2"],
            {},
            InputError,
            "runs r1 and r2 were replayed on different datasets (sim vs other), so their users "
            "cannot be paired; compare runs of one dataset",
        ),
        (
            {"split": "leave-last-out", "dataset": "other"},  # the datasets, not the splits
            ["r1", "r2"],
            {},
            InputError,
            "runs r1 and r2 were replayed on different datasets (sim vs other), so their users "
            "cannot be paired; compare runs of one dataset",
        ),
        (
            {"fingerprint": "a" * 32},
            ["r1", "r2"],
            {},
            InputError,
            f"runs r1 and r2 were replayed on different data (fingerprint {'f' * 12} vs "
            f"{'a' * 12}), so they cannot be paired",
        ),
        (
            {"kind": "offpolicy"},
            ["r1", "r2"],
            {},
            InputError,
            "run r2 is an off-policy run but r1 is a ranking run; compare runs of one kind",
        ),
        (
            {},
            ["r1", "r2"],
            {"metrics": ["ndcg@20"]},
            InputError,
            "metrics: unknown metric 'ndcg@20' (did you mean 'ndcg@10'?)",
        ),
        ({}, ["r1", "r2"], {"claim": 0.2}, InputError, "claim applies to off-policy runs"),
        (
            {},
            ["r1", "r2"],
            {"correction": "holms"},
            InputError,
            "correction: unknown correction 'holms' (did you mean 'holm'?)",
        ),
        (
            {},
            ["r1", "r2"],
            {"n_resamples": 10},
            InputError,
            "n_resamples must be 0 (off) or at least 100 resamples, got 10",
        ),
    ],
)
def test_refusals(db_path: Path, setup, runs, kwargs, error, message) -> None:
    base, cand = correlated_users(3, 20)
    add_run(db_path, "r1", user_metrics={"ndcg@10": base})
    add_run(db_path, "r2", user_metrics={"ndcg@10": cand}, **setup)
    with pytest.raises(error, match=re.escape(message)):
        compare_runs(db_path, runs, **kwargs)


def test_the_same_data_under_two_dataset_names_still_pairs(db_path: Path) -> None:
    base, cand = correlated_users(3, 20)
    add_run(db_path, "r1", user_metrics={"ndcg@10": base})
    add_run(db_path, "r2", user_metrics={"ndcg@10": cand}, dataset="copy")  # same fingerprint
    assert compare_runs(db_path, ["r1", "r2"], n_resamples=0).paired_users == 20


def test_a_metric_only_one_run_has_names_the_run_that_lacks_it(db_path: Path) -> None:
    base, cand = correlated_users(3, 20)
    add_run(db_path, "r1", user_metrics={"ndcg@10": base, "ndcg@20": base})
    add_run(db_path, "r2", user_metrics={"ndcg@10": cand})
    with pytest.raises(
        InputError,
        match=re.escape(
            "metrics ndcg@20: run(s) r2 have no such metric (the runs share ndcg@10); replay "
            "them with the same ks"
        ),
    ):
        compare_runs(db_path, ["r1", "r2"], metrics=["ndcg@20"])


def test_ambiguous_name_and_empty_store(db_path: Path) -> None:
    base, _ = correlated_users(3, 5)
    with pytest.raises(StoreError, match=re.escape("no such database")):
        compare_runs(db_path, ["a", "b"])
    add_run(db_path, "x1", user_metrics={"ndcg@10": base}, name="als")
    add_run(db_path, "x2", user_metrics={"ndcg@10": base}, name="als")
    with pytest.raises(
        StoreError, match=re.escape("run name 'als' is ambiguous (x1, x2); pass a run id")
    ):
        compare_runs(db_path, ["als", "x1"])


def test_one_lookup_rule_for_every_reader(db_path: Path) -> None:
    """Run id first, else a unique name; the same errors from the library's every entry."""
    with open_store(db_path, write=True):
        pass
    with pytest.raises(
        StoreError,
        match=re.escape(
            "unknown run 'x1': the store holds no replay runs; create one with `abkit replay`"
        ),
    ):
        get_run(db_path, "x1")
    base, _ = correlated_users(3, 5)
    add_run(db_path, "x1", user_metrics={"ndcg@10": base}, name="als")
    add_run(db_path, "x2", user_metrics={"ndcg@10": base}, name="als")
    add_run(db_path, "als", user_metrics={"ndcg@10": base}, name="solo")
    assert get_run(db_path, "x2").run_id == "x2"
    assert get_run(db_path, "solo").run_id == "als"  # a unique name
    assert get_run(db_path, "als").run_id == "als"  # an id wins over a name
    assert run_user_values(db_path, "solo", "ndcg@10")[1].tolist() == base.tolist()
    unknown = "unknown run 'sol' (did you mean 'solo'?); list the runs with `abkit runs`"
    for read in (
        lambda: get_run(db_path, "sol"),
        lambda: run_user_values(db_path, "sol", "ndcg@10"),
        lambda: run_rounds(db_path, "sol"),
        lambda: compare_runs(db_path, ["x1", "sol"]),
    ):
        with pytest.raises(StoreError, match=re.escape(unknown)):
            read()
    add_run(db_path, "x3", user_metrics={"ndcg@10": base}, name="pop")
    add_run(db_path, "x4", user_metrics={"ndcg@10": base}, name="pop")
    with (
        open_store(db_path) as store,
        pytest.raises(
            StoreError, match=re.escape("run name 'pop' is ambiguous (x3, x4); pass a run id")
        ),
    ):
        fetch_run(store.con, "pop")


def test_run_record_has_one_type_and_two_views(db_path: Path) -> None:
    base, _ = correlated_users(3, 5)
    add_run(db_path, "x1", user_metrics={"ndcg@10": base}, params={"factors": 8}, ks=(5, 10))
    [listed] = list_runs(db_path)
    with open_store(db_path) as store:
        fetched = fetch_run(store.con, "x1")
        created = store.con.execute(
            "SELECT CAST(created_at AS VARCHAR) FROM runs WHERE run_id = 'x1'"
        ).fetchone()
    assert isinstance(listed, RunRecord)
    assert listed == fetched
    assert (listed.params, listed.ks, listed.summary, listed.label) == (
        {"factors": 8},
        (5, 10),
        {},
        "als",
    )
    full = listed.to_dict()
    assert (full["k"], full["metrics"], full["estimates"]) == ([5, 10], {}, {})
    assert full["created_at"] == listed.created_at.isoformat()
    provenance = listed.to_provenance_dict()
    assert list(provenance) == [
        "run_id", "name", "dataset", "model", "kind", "params", "split", "ks", "fingerprint",
        "code_version", "created_at", "users",
    ]  # fmt: skip
    assert provenance["created_at"] == created[0]


@pytest.mark.slow  # 200 generated datetimes, each through DuckDB
@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)))
def test_provenance_created_at_is_duckdbs_timestamp_text(ts: datetime) -> None:
    """Baseline files and ``compare --json`` carried DuckDB's VARCHAR cast of created_at;
    the record formats its datetime the same way."""
    record = RunRecord(
        run_id="r", name=None, dataset="d", model="m", kind="ranking", params={}, split="s",
        ks=(), fingerprint="f", code_version="c", created_at=ts, users=None, summary={},
    )  # fmt: skip
    # its own connection: a half-read result on duckdb's default one blocks whoever uses it
    # next (the README's OBD snippet, run later in the same process, did)
    with duckdb.connect() as con:
        text = con.execute("SELECT CAST(CAST(? AS TIMESTAMP) AS VARCHAR)", [ts]).fetchone()
    assert record.to_provenance_dict()["created_at"] == text[0]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--control", "run-b"], "--control"),
        (["--cuped", "--strict"], "--cuped, --strict"),
        (["--dataset", "nope", "--split", "50/50"], "--dataset, --split"),
    ],
)
def test_a_b_options_are_refused_when_comparing_runs(ranking_db: Path, extra, named) -> None:
    # They were ignored: --control run-b read as "use run-b as the reference" and was dropped.
    from typer.testing import CliRunner

    from abkit.cli.main import app

    result = CliRunner().invoke(app, ["compare", "run-a", "run-b", "--db", str(ranking_db), *extra])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {named}: A/B options only; replay runs are compared")


def test_an_unwritable_plot_path_is_refused_before_any_work(ranking_db: Path, tmp_path) -> None:
    from typer.testing import CliRunner

    from abkit.cli.main import app

    before = ranking_db.read_bytes()
    folder = tmp_path / "chart.png"
    folder.mkdir()
    for plot in (tmp_path / "missing" / "x.png", folder):
        result = CliRunner().invoke(
            app, ["compare", "run-a", "run-b", "--db", str(ranking_db), "--plot", str(plot)]
        )
        assert result.exit_code == 2
        assert result.stderr == f"error: --plot {plot}: expected a file in an existing folder\n"
    assert ranking_db.read_bytes() == before
