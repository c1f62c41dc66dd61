"""Models trained from impression logs (OBD: clicks, exposures, context) and the temporal split
of impression logs; references are computed independently from the raw files with pandas
or statsmodels."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from abkit_recommenders.contextual import ClickRateRecommender, LogisticRecommender

from abkit.data.ingest import ingest_file
from abkit.errors import InputError
from abkit.plugins import Exposures, TrainingData
from abkit.replay.runner import replay
from tests.conftest import OBD

LOG = OBD / "random" / "women" / "women.csv.gz"


@pytest.fixture(scope="module")
def women(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("obd-imp") / "obd.duckdb"
    ingest_file(LOG, db, preset="obd")
    return db


@pytest.fixture(scope="module")
def logs() -> pd.DataFrame:
    frame = pd.read_csv(LOG, index_col=0)
    frame["ts"] = pd.to_datetime(frame["timestamp"]).dt.tz_convert(None)
    return frame


def test_ingest_stores_the_context_sparse(women: Path, logs: pd.DataFrame) -> None:
    con = duckdb.connect(str(women), read_only=True)
    stored = con.execute(
        "SELECT impression_id, feature, value FROM impression_features ORDER BY 1, 2"
    ).fetchall()
    con.close()
    rows = logs.reset_index(drop=True)
    categorical = rows.melt(value_vars=[f"user_feature_{k}" for k in range(4)], ignore_index=False)
    numeric = rows.melt(
        value_vars=[c for c in logs.columns if c.startswith("user-item_affinity_")],
        ignore_index=False,
    )
    numeric = numeric[numeric["value"] != 0]
    expected = [
        (int(i), f"{name}={value}", 1.0)
        for i, name, value in zip(
            categorical.index, categorical["variable"], categorical["value"], strict=True
        )
    ] + [
        (int(i), name, float(value))
        for i, name, value in zip(numeric.index, numeric["variable"], numeric["value"], strict=True)
    ]
    assert sorted(stored) == sorted(expected)


def test_temporal_split_of_the_impressions_and_popularity_ips(
    women: Path, logs: pd.DataFrame
) -> None:
    result = replay(
        women, model="popularity", estimators="ips,snips", split="temporal:0.5", write=False
    )
    cutoff = pd.Timestamp(result.split.removeprefix("temporal:"))
    first, last = logs["ts"].min(), logs["ts"].max()
    assert cutoff - (first + (last - first) / 2) < pd.Timedelta(seconds=1)
    train, later = logs[logs["ts"] < cutoff], logs[logs["ts"] >= cutoff]
    assert result.rounds == len(later)
    assert result.train_interactions == int(train["click"].sum())
    # independent top-k popularity policy: items by training clicks (each OBD user is one
    # impression), ties by item id as text (the catalogue's order); slot p shows rank p
    clicks = train.groupby("item_id")["click"].sum()
    items = sorted(str(i) for i in range(logs["item_id"].max() + 1))
    ranked = sorted(items, key=lambda i: (-clicks.get(int(i), 0), i))
    shown = later["position"].map(lambda p: int(ranked[p - 1]))
    weight = (later["item_id"] == shown) / later["propensity_score"]
    ips = result.estimate("ips")
    assert ips.value == pytest.approx(float((weight * later["click"]).mean()), rel=1e-12)
    assert ips.diagnostics.nonzero == int((weight > 0).sum())
    assert ips.ci_low is not None
    assert ips.ci_low <= ips.value <= ips.ci_high
    assert '"train_on": "impressions"' in result.params_json


@pytest.mark.parametrize("model", ["ctr", "logistic"])
def test_impression_models_give_offpolicy_estimates_with_intervals(women: Path, model: str) -> None:
    result = replay(
        women, model=model, estimators="replay,ips,snips,dr", split="temporal:0.5", write=False
    )
    assert result.kind == "offpolicy"
    assert result.policy == "topk"
    for estimate in result.estimates:
        assert estimate.refused is None
        assert estimate.ci_low is not None
        assert estimate.ci_high is not None
        assert 0 <= estimate.ci_low <= estimate.ci_high <= 1  # clicks: clipped to [0, 1]
        # DR's formula may fall just below 0 (its model term is unbounded); the clipped
        # interval then holds the range's end
        assert estimate.ci_low <= min(max(estimate.value, 0.0), 1.0) <= estimate.ci_high
        if estimate.estimator != "dr":
            assert 0 <= estimate.value <= 1


def test_random_keeps_every_round_under_plain_temporal(women: Path, logs: pd.DataFrame) -> None:
    every = replay(women, model="random", estimators="ips", policy="stochastic", write=False)
    later = replay(
        women,
        model="random",
        estimators="ips",
        policy="stochastic",
        split="temporal:0.5",
        write=False,
    )
    assert every.rounds == len(logs)
    assert later.rounds < len(logs)


def test_impression_logs_refuse_leave_last_out(women: Path) -> None:
    with pytest.raises(InputError, match="split by time"):
        replay(women, model="logistic", estimators="ips", split="leave-last-out", write=False)


def test_impression_model_refuses_event_data(sim_db: Path) -> None:
    with pytest.raises(InputError, match="learns from logged impressions"):
        replay(sim_db, model="ctr", write=False)


def _exposure_data(
    users: np.ndarray,
    items: np.ndarray,
    positions: np.ndarray,
    clicks: np.ndarray,
    *,
    n_items: int,
    context: np.ndarray | None = None,
    names: list[str] | None = None,
) -> TrainingData:
    import scipy.sparse as sp

    n_users = int(users.max()) + 1
    clicked = np.flatnonzero(clicks > 0)
    order = clicked[np.argsort(users[clicked], kind="stable")]
    return TrainingData.from_arrays(
        user_idx=users[order],
        item_idx=items[order],
        user_ids=[f"u{u:06d}" for u in range(n_users)],
        item_ids=[f"i{i}" for i in range(n_items)],
        n_train_users=n_users,
        exposures=Exposures(
            user_idx=users,
            item_idx=items,
            position=positions,
            reward=clicks.astype(float),
            propensity=np.full(users.size, 1.0 / n_items),
        ),
        context=None if context is None else sp.csr_matrix(context),
        context_names=None if names is None else np.asarray(names),
    )


def test_ctr_is_the_slot_corrected_click_rate_worked_by_hand() -> None:
    # slot 1 is clicked twice as often as slot 2 overall: theta = (4/3, 2/3)
    users = np.arange(6)
    items = np.array([0, 0, 1, 1, 1, 0])
    positions = np.array([1, 1, 1, 2, 2, 2])
    clicks = np.array([1, 0, 1, 0, 1, 0])
    data = _exposure_data(users, items, positions, clicks, n_items=2)
    model = ClickRateRecommender(prior=1.0)
    model.fit(data)
    overall = 3 / 6
    theta = {1: (2 / 3) / overall, 2: (1 / 3) / overall}
    exp0 = 2 * theta[1] + theta[2]  # item 0: slots 1, 1, 2
    exp1 = theta[1] + 2 * theta[2]  # item 1: slots 1, 2, 2
    scores = model.score(data, np.array([0]))[0]
    assert scores[0] == pytest.approx((1 + overall) / (exp0 + 1), rel=1e-6)
    assert scores[1] == pytest.approx((2 + overall) / (exp1 + 1), rel=1e-6)


def test_logistic_matches_statsmodels_maximum_likelihood() -> None:
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(7)
    n, n_items = 6000, 3
    x = rng.integers(0, 2, size=n).astype(float)  # one binary user feature
    affinity = rng.exponential(1.0, size=(n, n_items)) * (rng.random((n, n_items)) < 0.3)
    items = rng.integers(0, n_items, size=n)
    positions = rng.integers(1, 3, size=n)
    b = np.array([-2.0, -1.0, -1.5])
    w = np.array([1.0, -1.0, 0.0])
    z = b[items] + 0.4 * (positions == 2) + w[items] * x + 0.8 * affinity[np.arange(n), items]
    clicks = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    names = ["user_feature_0=a", *[f"user-item_affinity_i{i}" for i in range(n_items)]]
    context = np.column_stack([x, affinity])
    data = _exposure_data(
        np.arange(n), items, positions, clicks, n_items=n_items, context=context, names=names
    )
    model = LogisticRecommender(l2=1e-8, max_iter=2000)
    model.fit(data)
    assert model.converged
    # the same likelihood in statsmodels: item dummies, slot-2 dummy, item x feature, affinity
    design = np.column_stack(
        [
            *(items == a for a in range(n_items)),
            positions == 2,
            *((items == a) * x for a in range(n_items)),
            affinity[np.arange(n), items],
        ]
    ).astype(float)
    reference = sm.Logit(clicks, design).fit(disp=0, maxiter=200)
    # scores are b_a + w_a x + g aff (no slot effect): they differ from the reference's
    # linear predictor without its slot term by one constant (where the intercept sits)
    scores = model.score(data, np.arange(n))[np.arange(n), items]
    theirs = design @ reference.params - reference.params[n_items] * (positions == 2)
    assert np.ptp(scores - theirs) < 1e-3


def test_a_context_cell_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "random" / "women"
    folder.mkdir(parents=True)
    frame = pd.read_csv(LOG, index_col=0).head(50)
    frame["user-item_affinity_3"] = frame["user-item_affinity_3"].astype(object)
    frame.loc[frame.index[7], "user-item_affinity_3"] = "n/a"
    frame.to_csv(folder / "women.csv.gz", compression="gzip")
    db = tmp_path / "bad.duckdb"
    with pytest.raises(InputError, match="column 'user-item_affinity_3': expected numbers"):
        ingest_file(folder / "women.csv.gz", db, preset="obd")
    if db.exists():
        con = duckdb.connect(str(db), read_only=True)
        assert con.execute("SELECT count(*) FROM impressions").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM impression_features").fetchone() == (0,)
        con.close()
