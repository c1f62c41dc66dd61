"""The replay runner on small hand-built stores: splits, stored runs, refusals."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abkit.data.store import open_store
from abkit.errors import InputError, ModelError, StoreError
from abkit.replay.runner import replay
from abkit.replay.runs import get_run, list_runs, run_rounds, run_user_values
from abkit.replay.splits import SplitSpec, parse_split
from tests.conftest import file_digest
from tests.replay.helpers import START, events_frame, structured_events, write_store

# u1 trains on a, b and then views c and a again; u2 trains on a and views b; u3 only appears
# after the cut-off (cold); u4 trains on c and views only c again (no new item)
ROWS = [
    ("u1", "a", 0), ("u1", "b", 1), ("u1", "c", 5), ("u1", "a", 6),
    ("u2", "a", 1), ("u2", "b", 7),
    ("u3", "a", 6),
    ("u4", "c", 2), ("u4", "c", 8),
]  # fmt: skip


@pytest.fixture
def small(db_path: Path) -> Path:
    return write_store(db_path, events=events_frame(ROWS), items=["a", "b", "c", "d"])


def test_temporal_split_by_hand(small: Path) -> None:
    result = replay(small, model="popularity", split="temporal:2024-01-04", ks=[1, 2])
    # training popularity: a (u1, u2) = 2, b (u1) = 1, c (u4) = 1, d = 0
    # u1 (seen a, b): ranks c, d -> c is relevant (a is not new) -> hit at rank 1
    # u2 (seen a): ranks b, c -> b relevant at rank 1; u3 cold; u4 has no new test item
    assert result.users == 2
    assert result.cold_users == 1
    assert result.split == "temporal:2024-01-04T00:00:00"
    assert result.metric("hit_rate@1") == 1.0
    assert result.metric("ndcg@2") == 1.0
    assert result.metric("precision@2") == 0.5
    assert result.metric("coverage@1") == pytest.approx(2 / 4)  # c and b
    assert result.metric("coverage@2") == pytest.approx(3 / 4)  # c, d, b
    users, values = run_user_values(small, result.run_id, "ndcg@2")
    assert users.tolist() == ["u1", "u2"]
    assert values.tolist() == [1.0, 1.0]
    record = get_run(small, result.run_id)
    assert record.kind == "ranking"
    assert record.ks == (1, 2)
    assert record.fingerprint == result.fingerprint
    assert record.params["exclude_seen"] is True
    assert record.summary["metrics"]["ndcg@2"] == 1.0
    assert record.code_version.startswith("abkit ")


def test_keep_seen_counts_repeat_items(small: Path) -> None:
    result = replay(
        small,
        model="popularity",
        split="temporal:2024-01-04",
        ks=[1],
        exclude_seen=False,
        write=False,
    )
    # everyone's top item is a (2 training users); u1's test items c, a -> hit;
    # u2's b -> miss; u4's c (seen, now counted) -> miss
    assert result.users == 3
    assert result.metric("hit_rate@1") == pytest.approx(1 / 3)
    assert json.loads(result.params_json)["exclude_seen"] is False


def test_leave_last_out(small: Path) -> None:
    result = replay(small, model="popularity", split="leave-last-out", ks=[1], write=False)
    # last items: u1 -> a (seen before: dropped), u2 -> b (new), u3 single event, u4 -> c (seen)
    assert result.users == 1
    assert result.split == "leave-last-out:seed=0"  # the replay's seed breaks ties


def test_runs_are_listed_and_fingerprints_pair_equal_data(small: Path) -> None:
    a = replay(small, model="popularity", split="temporal:2024-01-04", ks=[2], name="first")
    b = replay(small, model="random", split="temporal:2024-01-04", ks=[2])
    c = replay(small, model="random", split="temporal:2024-01-05", ks=[2])
    runs = list_runs(small)
    assert [r.run_id for r in runs] == [a.run_id, b.run_id, c.run_id]
    assert runs[0].name == "first"
    assert a.fingerprint == b.fingerprint != c.fingerprint
    with pytest.raises(StoreError, match="unknown run 'nope'"):
        get_run(small, "nope")


def test_default_temporal_cutoff_is_at_80_percent_of_the_time_range(small: Path) -> None:
    result = replay(small, model="random", ks=[2], write=False)
    # events span days 0 .. 8: the cut-off is day 6.4, rounded up to the second
    assert result.split == "temporal:2024-01-07T09:36:00"
    assert parse_split(result.split) == SplitSpec(
        kind="temporal", cutoff=START.replace(day=7, hour=9, minute=36)
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"model": "alss"},
            InputError,
            "unknown model 'alss' (did you mean 'als'?); expected one of: als, ctr, logistic, "
            "lstm, popularity, random",
        ),
        ({"ks": [5]}, InputError, "ks 5 is larger than the catalogue (4 items)"),
        (
            {"split": "temporal:2023-12-01"},
            InputError,
            "the training split of dataset 't' (temporal:2023-12-01T00:00:00) is empty: no "
            "interaction to fit the model on",
        ),
        (
            {"split": "temporal:2024-02-01"},
            InputError,
            "no user of dataset 't' has both training and new test interactions under split "
            "temporal:2024-02-01T00:00:00; try another split",
        ),
        (
            {"split": "temporal:tomorrow"},
            InputError,
            "split 'temporal:tomorrow': expected a date or time like 2024-01-10 or "
            "2024-01-10T12:00:00",
        ),
        (
            {"split": "random"},
            InputError,
            "split: unknown split 'random'; expected one of: leave-last-out, temporal "
            "(temporal takes :DATE or :SHARE, e.g. temporal:2024-01-10)",
        ),
        (
            {"estimators": ["ipss"]},
            InputError,
            "estimators: unknown estimator 'ipss' (did you mean 'ips'?)",
        ),
        (
            {"estimators": ["ips"]},
            InputError,
            "dataset 't' has no logged impressions at or after 2024-01-07 09:36:00 to "
            "estimate from",
        ),
        ({"dataset": "other"}, StoreError, "unknown dataset 'other'"),
        (
            {"params": {"smooth": 1}},
            InputError,
            "unknown parameter of model 'popularity' 'smooth' (did you mean 'smoothing'?)",
        ),
        ({"policy": "greedy"}, InputError, "policy: unknown policy 'greedy'"),
        ({"device": "tpu"}, InputError, "device: unknown device 'tpu'"),
        ({"model_path": "missing.npz"}, InputError, "model_path missing.npz: no such file"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    small: Path, kwargs: dict, error: type[Exception], message: str
) -> None:
    before = file_digest(small)
    args: dict = {"model": "popularity", "ks": [2], **kwargs}
    with pytest.raises(error, match=re.escape(message)) as caught:
        replay(small, **args)
    assert "\n" not in str(caught.value)
    assert file_digest(small) == before


def test_bad_model_files_write_nothing(small: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "m.onnx"
    corrupt.write_bytes(b"not an onnx file at all")
    before = file_digest(small)
    with pytest.raises(ModelError, match=re.escape(f"{corrupt}: missing its sidecar m.json")):
        replay(small, model="lstm", model_path=corrupt, split="temporal:2024-01-04", ks=[2])
    corrupt.with_suffix(".json").write_text("{}")
    with pytest.raises(
        ModelError, match=re.escape(f"{corrupt.with_suffix('.json')}: not a valid lstm sidecar")
    ):
        replay(small, model="lstm", model_path=corrupt, split="temporal:2024-01-04", ks=[2])
    npz = tmp_path / "pop.npz"
    npz.write_bytes(b"garbage")
    with pytest.raises(ModelError, match=re.escape(f"{npz}: not a readable .npz model file")):
        replay(small, model="popularity", model_path=npz, split="temporal:2024-01-04", ks=[2])
    assert file_digest(small) == before


def test_a_saved_model_replays_identically(small: Path, tmp_path: Path) -> None:
    from abkit.plugins import create_recommender
    from abkit.replay.runner import load_training_data

    data, split, _ = load_training_data(small, split="temporal:2024-01-04")
    model = create_recommender("popularity")
    model.fit(data)
    model.save(tmp_path / "pop.npz")
    fitted = replay(small, model="popularity", split=split, ks=[2], write=False)
    loaded = replay(
        small, model="popularity", split=split, ks=[2], write=False, model_path=tmp_path / "pop.npz"
    )
    assert loaded.metrics == fitted.metrics
    with pytest.raises(ModelError, match="trained on data with fingerprint"):
        replay(
            small,
            model="popularity",
            split="temporal:2024-01-07",
            ks=[2],
            model_path=tmp_path / "pop.npz",
        )


def test_sampled_metrics_warn(tmp_path: Path) -> None:
    db = write_store(tmp_path / "s.duckdb", events=structured_events(n_users=60, seed=1))
    result = replay(db, model="popularity", sampled=10, ks=[5], write=False)
    assert result.warnings == (
        "sampled metrics (each user's relevant items ranked among 10 random items) do not "
        "preserve the order of models; use full ranking to compare models",
    )
    full = replay(db, model="popularity", ks=[5], write=False)
    assert result.metric("ndcg@5") > full.metric("ndcg@5")  # easier: few candidates


def test_chunking_does_not_change_results(tmp_path: Path) -> None:
    db = write_store(tmp_path / "s.duckdb", events=structured_events(n_users=80, seed=2))
    whole = replay(db, model="random", ks=[3, 10], write=False)
    chunked = replay(db, model="random", ks=[3, 10], write=False, chunk_users=7)
    assert whole.metrics == chunked.metrics


# -- off-policy on a hand-built log --------------------------------------------------------


def _uniform_logs(n: int, n_items: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    item = rng.integers(0, n_items, size=n)
    ctr = np.where(item < 3, 0.3, 0.05)  # items 0-2 are much better
    return pd.DataFrame(
        {
            "impression_id": np.arange(n),
            "user_id": [f"v{i % 50}" for i in range(n)],
            "ts": [START] * n,
            "variant": "random",
            "item_id": [f"i{j:02d}" for j in item],
            "position": 1 + np.arange(n) % 2,
            "propensity": 1 / n_items,
            "click": (rng.random(n) < ctr).astype(int),
        }
    )


def test_offpolicy_run_on_uniform_logs(tmp_path: Path) -> None:
    logs = _uniform_logs(4000, 10, seed=0)
    db = write_store(
        tmp_path / "o.duckdb", impressions=logs, items=[f"i{j:02d}" for j in range(10)]
    )
    before = file_digest(db)
    result = replay(db, model="random", estimators="replay,ips,snips,dr", policy="stochastic")
    assert file_digest(db) != before
    ctr = logs["click"].mean()
    for name in ("replay", "ips", "snips"):
        assert result.estimate(name).value == pytest.approx(ctr, rel=1e-12)
    assert result.estimate("dr").value == pytest.approx(ctr, abs=0.01)
    assert result.estimate("ips").ess == pytest.approx(4000)
    assert result.kind == "offpolicy"
    assert result.split == "temporal"
    rounds = run_rounds(db, result.run_id)
    assert rounds["impression_id"].tolist() == list(range(4000))
    np.testing.assert_allclose(rounds["weight"], 1.0)
    np.testing.assert_array_equal(rounds["reward"], logs["click"].to_numpy())
    with open_store(db) as store:
        row = store.con.execute(
            "SELECT value, ci_low, ci_high, ess, n, diagnostics FROM run_estimates "
            "WHERE run_id = ? AND estimator = 'ips'",
            [result.run_id],
        ).fetchone()
    assert row[0] == pytest.approx(ctr)
    assert row[1] < ctr < row[2]
    assert row[4] == 4000
    assert json.loads(row[5])["refused"] is None


def test_a_topk_policy_of_good_items_is_estimated_higher(tmp_path: Path) -> None:
    """A popularity model trained on clicks would show items 0-2; here a uniform policy is
    compared with the top-k policy of a model whose scores favour the good items."""
    logs = _uniform_logs(20_000, 10, seed=1)
    events = pd.DataFrame(
        {  # everyone interacted with items 0, 1, 2 before the logs
            "user_id": [f"w{k}" for k in range(30)],
            "item_id": [f"i{k % 3:02d}" for k in range(30)],
            "event_type": "view",
            "ts": [START.replace(day=1) - pd.Timedelta(days=1)] * 30,
        }
    )
    db = write_store(
        tmp_path / "o.duckdb",
        impressions=logs,
        events=events,
        items=[f"i{j:02d}" for j in range(10)],
    )
    good = replay(
        db,
        model="popularity",
        estimators="ips,snips",
        policy="topk",
        exclude_seen=False,
        split="temporal:2024-01-01",
        write=False,
    )
    uniform = replay(
        db,
        model="random",
        estimators="ips",
        policy="stochastic",
        split="temporal:2024-01-01",
        write=False,
    )
    assert good.estimate("snips").value == pytest.approx(0.3, abs=0.03)
    assert uniform.estimate("ips").value == pytest.approx(0.3 * 0.3 + 0.7 * 0.05, abs=0.01)
    assert not math.isnan(good.estimate("ips").ess)


def test_before_store_sees_the_outcome_and_can_refuse_it(small: Path) -> None:
    """The hook runs after the evaluation and before any write: raising there leaves the
    store's bytes as they were; passing stores the run as usual."""
    seen: list[tuple[str, list[str], list[str]]] = []

    def refuse(result, user_ids, per_user) -> None:  # type: ignore[no-untyped-def]
        seen.append((result.fingerprint, list(user_ids), sorted(per_user)))
        raise StoreError("refused by the hook")

    before = file_digest(small)
    args: dict = {"model": "popularity", "split": "temporal:2024-01-04", "ks": [2]}
    with pytest.raises(StoreError, match="refused by the hook"):
        replay(small, **args, name="x", before_store=refuse)
    assert file_digest(small) == before
    assert list_runs(small) == []
    [(fingerprint, user_ids, metrics)] = seen
    assert user_ids == ["u1", "u2"]
    assert "ndcg@2" in metrics
    calls: list[str] = []
    result = replay(small, **args, before_store=lambda r, u, p: calls.append(r.run_id))
    assert calls == [result.run_id]
    assert result.fingerprint == fingerprint
    assert [r.run_id for r in list_runs(small)] == [result.run_id]
