"""abkit's side of each benchmark, and the (untimed) preparation of the data both sides use.

Every function is a bench *task* ``(params, clock) -> TaskOutcome`` run in its own process by
:mod:`abkit.bench.worker`; only the code inside ``with clock:`` is timed. Preparation tasks
(``prep_*``) write files into the bench's work folder and are not reported. The data:

* **simulate / compare / ingest**: one simulated shop (:func:`abkit.simulate.simulate`,
  about 50 events per user over a 7-day pre-period and a 14-day experiment). ``compare`` reads
  it from the store; its pandas reference reads the same rows exported to Parquet; ``ingest``
  loads the first rows of it, exported as CSV and Parquet (``user_id, session_id, item_id,
  event_type, ts, value, variant``: the plain A/B export abkit documents).
* **als**: synthetic implicit feedback (users in taste clusters, Zipf item popularity), a
  leave-last-out split, one ALS model trained once by abkit's ``als`` recommender and saved;
  abkit and implicit evaluate that same saved model.
* **lstm**: a next-item LSTM with random weights of a realistic size, served from abkit's ONNX
  graph and rebuilt in torch from the same weights (:mod:`abkit.bench.lstm_model`).
* **offpolicy**: in :mod:`abkit.bench.ope`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from abkit_recommenders.als import ALSRecommender
from abkit_recommenders.lstm import LSTMRecommender

from abkit.bench.harness import Clock, SkipTask, TaskOutcome
from abkit.bench.lstm_model import onnx_model_bytes, random_weights
from abkit.compare.arms import compare_arms
from abkit.data.engines import spark_session
from abkit.data.ingest import ingest_file
from abkit.data.parquet import export_store
from abkit.errors import MissingExtraError
from abkit.plugins import TrainingData
from abkit.replay.lstm_contract import SIDECAR_FORMAT, sidecar_path
from abkit.replay.runner import CHUNK_CELLS, no_progress, rank_users
from abkit.simulate import SimulationConfig, simulate


def _write_json(path: str, payload: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(payload, indent=1, default=str))


# -- simulate, ingest, compare ----------------------------------------------------------------


def abkit_simulate(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """``abkit simulate``: the whole dataset, chunked, in one transaction."""

    config = SimulationConfig(
        users=int(params["users"]),
        items=int(params["items"]),
        days=int(params["days"]),
        pre_days=int(params["pre_days"]),
        lift=0.2,
        seed=int(params["seed"]),
        dataset=str(params["dataset"]),
        experiment=str(params["experiment"]),
    )
    import duckdb  # noqa: F401  # the libraries the simulator loads count as setup
    import pyarrow  # noqa: F401

    with clock:
        summary = simulate(config, params["db"])
    _write_json(
        params["info"],
        {
            "dataset": summary.dataset,
            "experiment": summary.experiment,
            "events": summary.events,
            "impressions": summary.impressions,
            "users": summary.users,
            "arms": list(config.arms),
            "start": config.experiment_start.isoformat(),
            "end": config.experiment_end.isoformat(),
        },
    )
    return TaskOutcome(
        units=float(summary.events),
        note=f"{summary.users:,} users, {summary.items:,} items, {summary.events:,} events, "
        f"{summary.impressions:,} impressions",
    )


def prep_export(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """Export the CSV and Parquet sources of the ingest benchmark: the first ``ingest_rows``
    simulated events with each user's variant."""
    import duckdb

    con = duckdb.connect(params["db"], read_only=True)
    ds, exp = params["dataset"], params["experiment"]
    source = (
        "SELECT e.user_id, e.session_id, e.item_id, e.event_type, e.ts, e.value, a.variant "
        "FROM (SELECT * FROM events WHERE dataset = $ds ORDER BY user_id, ts LIMIT $n) e "
        "LEFT JOIN (SELECT user_id, variant FROM assignments WHERE dataset = $ds "
        "AND experiment = $exp) a USING (user_id) ORDER BY e.user_id, e.ts"
    )
    bind = {"ds": ds, "exp": exp, "n": int(params["ingest_rows"])}
    if not bind["n"]:
        con.close()
        return TaskOutcome(units=0.0)
    con.execute(
        f"COPY ({source}) TO '{_sql_path(params['ingest_csv'])}' (FORMAT csv, HEADER)", bind
    )
    con.execute(
        f"COPY ({source}) TO '{_sql_path(params['ingest_parquet'])}' (FORMAT parquet)", bind
    )
    row = con.execute(f"SELECT count(*) FROM ({source})", bind).fetchone()
    con.close()
    return TaskOutcome(units=float(row[0]) if row else 0.0)


def _sql_path(path: str) -> str:
    """A file path as a SQL string literal body (COPY ... TO takes no bound parameter)."""
    return str(path).replace("'", "''")


def abkit_ingest(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """``abkit ingest FILE`` into a fresh store: sniff, validate, cast, one transaction."""
    import duckdb  # noqa: F401  # imports are setup on both sides (the reference's too)

    with clock:
        result = ingest_file(Path(params["path"]), Path(params["db"]), dataset="bench")
    return TaskOutcome(units=float(result.rows), check=float(result.rows))


def prep_spark_export(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """``abkit export`` of the simulated store, for the Spark engine (not timed)."""
    export_store(params["db"], params["out"])
    return TaskOutcome(units=0.0)


SPARK_METRICS = ("conversion", "mean", "ratio")


def abkit_compare_engine(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """``abkit compare`` of conversion, mean and a ratio on ``params["engine"]``. On Spark the
    session start and one warm-up compare are setup (their seconds go in the note): the line
    measures a query on a running session, as a cluster user sees it."""
    import time

    import duckdb  # noqa: F401
    import scipy.stats  # noqa: F401

    engine = params["engine"]
    kwargs: dict[str, Any] = {
        "dataset": params["dataset"],
        "experiment": params["experiment"],
        "metrics": SPARK_METRICS,
        "ratio": "revenue_per_order",
    }
    note = ""
    if engine == "spark":
        try:
            import pyspark  # noqa: F401
        except ImportError:
            raise SkipTask("pyspark is not installed", 'pip install "abkit-lift[spark]"') from None
        started = time.perf_counter()
        spark_session(None)
        startup = time.perf_counter() - started
        started = time.perf_counter()
        compare_arms(None, engine="spark", source=params["source"], **kwargs)
        note = f"startup={startup:.3f};warmup={time.perf_counter() - started:.3f}"
        with clock:
            result = compare_arms(None, engine="spark", source=params["source"], **kwargs)
    else:
        with clock:
            result = compare_arms(params["db"], **kwargs)
    conversions = float(sum(a.conversions or 0 for a in result.arms if a.metric == "conversion"))
    return TaskOutcome(units=float(params["events"]), check=conversions, note=note)


# -- replay: ALS full ranking -----------------------------------------------------------------


def _synthetic_interactions(
    *, users: int, items: int, per_user: float, seed: int
) -> tuple[Any, Any, Any, Any]:
    """(train users, train items, test users, test items), leave-last-out, no repeats.

    Each user has a taste cluster; 70% of their items come from it, 30% from the whole
    catalogue, both by Zipf popularity, so a factor model has structure to find.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    clusters = 32
    popularity = 1.0 / np.arange(1, items + 1)
    item_cluster = rng.integers(0, clusters, size=items)
    counts = 2 + rng.poisson(per_user - 2, size=users)
    user = np.repeat(np.arange(users), counts)
    user_cluster = rng.integers(0, clusters, size=users)[user]
    global_draw = rng.choice(items, size=user.size, p=popularity / popularity.sum())
    # within-cluster draw: pick an item of the user's cluster by popularity
    order = np.lexsort((np.arange(items), item_cluster))
    starts = np.searchsorted(item_cluster[order], np.arange(clusters))
    ends = np.searchsorted(item_cluster[order], np.arange(clusters), side="right")
    sizes = np.maximum(ends - starts, 1)
    rank = np.minimum(
        (sizes[user_cluster] * rng.random(user.size) ** 3).astype(np.int64), sizes[user_cluster] - 1
    )
    cluster_draw = order[np.minimum(starts[user_cluster] + rank, items - 1)]
    item = np.where(rng.random(user.size) < 0.7, cluster_draw, global_draw)
    # drop repeats, keep the order of first occurrence (the "time" order)
    key = user.astype(np.int64) * items + item
    _, first = np.unique(key, return_index=True)
    first.sort()
    user, item = user[first], item[first]
    last = np.r_[user[1:] != user[:-1], True]
    counts_after = np.bincount(user, minlength=users)
    test_mask = last & (counts_after[user] >= 2)
    return user[~test_mask], item[~test_mask], user[test_mask], item[test_mask]


def _ids(n: int) -> Any:
    """Zero-padded string ids, so their sorted order is the index order."""
    import numpy as np

    return np.char.zfill(np.arange(n).astype(str), 8)


def training_data(arrays: Mapping[str, Any]) -> Any:

    n_users, n_items = int(arrays["n_users"]), int(arrays["n_items"])
    return TrainingData.from_arrays(
        user_idx=arrays["train_user"],
        item_idx=arrays["train_item"],
        user_ids=_ids(n_users),
        item_ids=_ids(n_items),
        n_train_users=n_users,
    )


def prep_als(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """Interactions and the split (arrays for abkit, CSR matrices for implicit), and one model
    fitted at abkit's defaults and saved (for the top-K and GEMM line); ``info_json`` gets the
    defaults and the replay's chunk of users."""
    import numpy as np
    from scipy.sparse import csr_matrix

    users, items = int(params["users"]), int(params["items"])
    tr_u, tr_i, te_u, te_i = _synthetic_interactions(
        users=users, items=items, per_user=float(params["per_user"]), seed=int(params["seed"])
    )
    arrays: dict[str, Any] = {
        "n_users": np.int64(users),
        "n_items": np.int64(items),
        "train_user": tr_u,
        "train_item": tr_i,
        "test_user": te_u,
        "test_item": te_i,
    }
    np.savez(params["arrays_npz"], **arrays)
    data = training_data(arrays)
    model = ALSRecommender()
    model.fit(data)
    model.save(Path(params["model_npz"]))
    test = csr_matrix((np.ones(te_u.size, dtype=np.float32), (te_u, te_i)), shape=(users, items))
    train = data.matrix.tocsr()
    np.savez(
        params["split_npz"],
        shape=np.array([users, items]),
        train_data=train.data,
        train_indices=train.indices,
        train_indptr=train.indptr,
        test_data=test.data,
        test_indices=test.indices,
        test_indptr=test.indptr,
    )
    _write_json(params["info_json"], {**model.params(), "chunk": _replay_chunk(items)})
    return TaskOutcome(units=float(tr_u.size))


def _als_data(params: Mapping[str, Any]) -> tuple[Any, Any]:
    import numpy as np

    arrays = dict(np.load(params["arrays_npz"], allow_pickle=False))
    return training_data(arrays), arrays


def _als_model(params: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    data, arrays = _als_data(params)
    model = ALSRecommender()
    model.load(Path(params["model_npz"]), data)
    return model, data, arrays


def _replay_chunk(n_items: int) -> int:
    """Users per scoring chunk, as abkit's replay runner chooses it."""

    return max(1, min(4096, CHUNK_CELLS // max(n_items, 1)))


def _test_users(arrays: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """(test users, CSR indptr over them, their relevant items), as the replay runner has
    them after the split."""
    import numpy as np

    order = np.lexsort((arrays["test_item"], arrays["test_user"]))
    test_user, test_item = arrays["test_user"][order], arrays["test_item"][order]
    users, counts = np.unique(test_user, return_counts=True)
    indptr = np.zeros(users.size + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return users, indptr, test_item


def abkit_als_replay(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """What ``abkit replay --model als`` does after the split, at abkit's defaults: fit
    ``ALSRecommender()`` (implicit, BLAS 1 thread), then the full-ranking replay loop
    (:func:`abkit.replay.runner.rank_users`): per chunk of test users the exact top-K with
    seen items excluded (:class:`abkit.plugins.InnerProductTopK`), every per-user metric at K,
    coverage, novelty and popularity bias. The check is the mean NDCG@K. Reading the split
    from the store and writing the run are not timed (implicit's side has no equivalent)."""
    import implicit.als  # noqa: F401  # imports are setup on both sides

    data, arrays = _als_data(params)
    k = int(params["k"])
    users, indptr, test_item = _test_users(arrays)
    with clock:
        model = ALSRecommender()
        model.fit(data)
        _, per_user = rank_users(
            model,
            data,
            users,
            indptr,
            test_item,
            ks=(k,),
            exclude_seen=True,
            sampled=None,
            seed=0,
            map_denominator="min",
            chunk_users=None,
            progress=no_progress,
        )
    return TaskOutcome(
        units=float(users.size),
        check=float(per_user[f"ndcg@{k}"].mean()),
        note=f"chunks of {_replay_chunk(data.n_items)} users",
    )


def abkit_als_topk(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """The exact top-K alone, as the replay asks it of the model: ``ALSRecommender.recommend``
    on every chunk of test users (seen items excluded; :class:`abkit.plugins.InnerProductTopK`
    scores the items of largest norm and settles each user by the Cauchy-Schwarz bound)."""
    model, data, arrays = _als_model(params)
    users, _, _ = _test_users(arrays)
    k, batch = int(params["k"]), _replay_chunk(data.n_items)
    model.recommend(data, users[:batch], k)  # warm-up (the norm index, BLAS)
    top1 = 0.0
    with clock:
        for start in range(0, users.size, batch):
            items, _ = model.recommend(data, users[start : start + batch], k)
            top1 += float(items[:, 0].sum())
    return TaskOutcome(units=float(users.size), check=top1, note=f"chunks of {batch} users")


def abkit_als_gemm(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """The scoring GEMM alone: ``ALSRecommender.score`` (``user_factors[batch] @
    item_factors.T``, float32, the process's BLAS threads) over the same chunks of test
    users: what any full-ranking top-K computes before it selects."""
    model, data, arrays = _als_model(params)
    users, _, _ = _test_users(arrays)
    batch = _replay_chunk(data.n_items)
    model.score(data, users[:batch])  # warm-up (BLAS threads)
    with clock:
        for start in range(0, users.size, batch):
            model.score(data, users[start : start + batch])
    factors = int(model.item_factors.shape[1])
    return TaskOutcome(units=float(users.size), note=f"chunks of {batch} users, {factors} factors")


# -- LSTM inference ---------------------------------------------------------------------------


def prep_lstm(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """Random weights, user histories, abkit's ONNX file and its sidecar."""
    import numpy as np

    users, items, seq_len = int(params["users"]), int(params["items"]), int(params["seq_len"])
    rng = np.random.default_rng(int(params["seed"]))
    weights: dict[str, Any] = random_weights(
        items=items,
        embedding=int(params["embedding"]),
        hidden=int(params["hidden"]),
        seed=int(params["seed"]),
    )
    np.savez(params["weights_npz"], **weights)
    lengths = rng.integers(seq_len // 2, 2 * seq_len, size=users)
    arrays: dict[str, Any] = {
        "n_users": np.int64(users),
        "n_items": np.int64(items),
        "train_user": np.repeat(np.arange(users), lengths),
        "train_item": rng.integers(0, items, size=int(lengths.sum())),
    }
    np.savez(params["arrays_npz"], **arrays)
    data = training_data(arrays)
    model_path = Path(params["model_onnx"])
    model_path.write_bytes(onnx_model_bytes(weights, seq_len=seq_len))
    sidecar = {
        "format": SIDECAR_FORMAT,
        "item_ids": _ids(items).tolist(),
        "seq_len": seq_len,
        "fingerprint": data.fingerprint,
    }
    sidecar_path(model_path).write_text(json.dumps(sidecar))
    return TaskOutcome(units=float(users))


def abkit_lstm(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """``LSTMRecommender.recommend`` (onnxruntime, CPU) over every user in batches: histories,
    the seen-item mask, the graph with its in-graph TopK."""
    import numpy as np

    arrays = dict(np.load(params["arrays_npz"], allow_pickle=False))
    data = training_data(arrays)
    model = LSTMRecommender(device="cpu")
    try:
        model.load(Path(params["model_onnx"]), data)
    except MissingExtraError as exc:
        raise SkipTask(str(exc), 'pip install "abkit-lift[onnx]"') from None
    users = np.arange(data.n_users)
    k, batch = int(params["k"]), _replay_chunk(data.n_items)
    model.recommend(data, users[:batch], k)  # warm-up (session arenas, thread pool)
    top1 = 0.0
    with clock:
        for start in range(0, users.size, batch):
            items, _ = model.recommend(data, users[start : start + batch], k)
            top1 += float(items[:, 0].sum())
    return TaskOutcome(units=float(users.size), check=top1, note=f"chunks of {batch} users")


# -- a self-check of the harness --------------------------------------------------------------


def allocate(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """Touch ``mb`` megabytes inside the timed region and free them: the measured peak must
    exceed the setup memory by about that much (``tests/bench/test_bench.py`` checks it)."""
    import numpy as np

    size = int(params["mb"]) * 1_000_000
    with clock:
        block = np.ones(size, dtype=np.uint8)
        total = int(block[::4096].sum())
        del block
    return TaskOutcome(units=float(size), check=float(total))
