"""The references abkit is measured against: what a user would otherwise write or pick.

Each function is a bench *task* ``(params, clock) -> TaskOutcome`` run in its own process by
:mod:`abkit.bench.worker`; only the code inside ``with clock:`` is timed. The references are
written the way a competent user would write them, not as straw men: pandas reads only the
columns it needs, DuckDB gets the whole query in one statement, implicit keeps its default
(all-core) threading, torch runs under ``inference_mode``.

SQL lives here (and not under ``abkit/data``) on purpose: these are the bare DuckDB baselines,
deliberately outside abkit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from abkit.bench.harness import Clock, SkipTask, TaskOutcome
from abkit.bench.lstm_model import torch_next_item
from abkit.bench.workloads import _replay_chunk, training_data

TORCH_INSTALL = "pip install torch==2.13.0"


def duckdb_copy(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """DuckDB's own bulk load of the file into a fresh database file: the practical limit.

    ``CREATE TABLE events AS SELECT * FROM read_csv(path)`` (``read_parquet`` for Parquet),
    then ``CHECKPOINT`` and close, so the rows are on disk as they are after abkit's ingest.
    """
    import duckdb

    reader = "read_parquet" if params["format"] == "parquet" else "read_csv"
    with clock:
        con = duckdb.connect(params["db"])
        con.execute(f"CREATE TABLE events AS SELECT * FROM {reader}(?)", [params["path"]])
        rows = con.execute("SELECT count(*) FROM events").fetchone()
        con.execute("CHECKPOINT")
        con.close()
    count = float(rows[0]) if rows else 0.0
    return TaskOutcome(units=count, check=count)


def duckdb_group_by(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """A bare DuckDB ``GROUP BY`` over the same rows abkit's compare reads: per assigned user,
    did they purchase in the experiment window; per arm, units and conversions. One statement,
    no inference (the floor for any engine-based implementation)."""
    import duckdb

    sql = """
        WITH buyers AS (
            SELECT DISTINCT user_id FROM events
            WHERE dataset = ? AND event_type = 'purchase' AND ts >= ? AND ts < ?
        )
        SELECT a.variant, count(*) AS units, count(b.user_id) AS conversions
        FROM assignments a LEFT JOIN buyers b USING (user_id)
        WHERE a.dataset = ? AND a.experiment = ?
        GROUP BY a.variant ORDER BY a.variant
    """
    ds = params["dataset"]
    with clock:
        con = duckdb.connect(params["db"], read_only=True)
        rows = con.execute(
            sql, [ds, params["start"], params["end"], ds, params["experiment"]]
        ).fetchall()
        con.close()
    return TaskOutcome(units=float(params["events"]), check=float(sum(r[2] for r in rows)))


def pandas_compare(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """The obvious pandas A/B analysis: read the events and assignments (Parquet, only the
    columns needed), group by user (converted = any purchase in the window), group by arm,
    then a pooled two-proportion z-test and a Wald interval with scipy."""
    import numpy as np
    import pandas as pd
    from scipy import stats

    with clock:
        events = pd.read_parquet(params["events_parquet"], columns=["user_id", "event_type", "ts"])
        assignments = pd.read_parquet(params["assignments_parquet"])
        start, end = pd.Timestamp(params["start"]), pd.Timestamp(params["end"])
        window = events[(events["ts"] >= start) & (events["ts"] < end)]
        per_user = (
            window.assign(purchase=window["event_type"] == "purchase")
            .groupby("user_id")["purchase"]
            .max()
        )
        units = assignments.merge(
            per_user.rename("converted"), left_on="user_id", right_index=True, how="left"
        )
        units["converted"] = units["converted"].fillna(False).astype(bool)
        arms = units.groupby("variant")["converted"].agg(["sum", "count"])
        control, treatment = params["control"], params["treatment"]
        x1, n1 = float(arms.loc[control, "sum"]), float(arms.loc[control, "count"])
        x2, n2 = float(arms.loc[treatment, "sum"]), float(arms.loc[treatment, "count"])
        p1, p2, pooled = x1 / n1, x2 / n2, (x1 + x2) / (n1 + n2)
        z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        p_value = 2 * stats.norm.sf(abs(z))
        half = stats.norm.ppf(0.975) * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        _ = (p2 - p1 - half, p2 - p1 + half, p_value)
    return TaskOutcome(units=float(len(events)), check=float(np.sum(arms["sum"])))


def implicit_ranking(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """``implicit.evaluation.ranking_metrics_at_k`` on the same factors and split (implicit's
    CPU ALS model, its default all-core threading, seen items filtered as implicit does)."""
    import numpy as np
    from scipy.sparse import csr_matrix

    try:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.evaluation import ranking_metrics_at_k
    except ImportError:
        raise SkipTask("implicit is not installed", 'pip install "abkit-lift[als]"') from None
    from threadpoolctl import threadpool_limits

    data = np.load(params["split_npz"], allow_pickle=False)
    shape = tuple(int(x) for x in data["shape"])
    train = csr_matrix(
        (data["train_data"], data["train_indices"], data["train_indptr"]), shape=shape
    )
    test = csr_matrix((data["test_data"], data["test_indices"], data["test_indptr"]), shape=shape)
    factors = np.load(params["factors_npz"], allow_pickle=False)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=int(factors["item_factors"].shape[1]))
    model.user_factors = np.ascontiguousarray(factors["user_factors"], dtype=np.float32)
    model.item_factors = np.ascontiguousarray(factors["item_factors"], dtype=np.float32)
    k = int(params["k"])
    with clock:
        metrics = ranking_metrics_at_k(model, train, test, K=k, show_progress=False)
    users = int(np.count_nonzero(np.diff(test.indptr)))
    return TaskOutcome(units=float(users), check=float(metrics["ndcg"]))


def gemm_probe(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """The machine's float32 matrix-multiply throughput as numpy sees it: square
    ``n x n @ n x n`` products (BLAS's best case), default BLAS threading, best of several
    repetitions after a warm-up. ``units`` are floating-point operations (``2 n^3`` each)."""
    import time

    import numpy as np

    n = int(params["n"])
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=out)  # warm-up: thread pool start, page faults
    best = math.inf
    with clock:
        for _ in range(int(params["repeats"])):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
    # Report the best repetition as the throughput (the probe asks what the machine *can* do).
    clock.seconds = best
    return TaskOutcome(units=2.0 * n**3, note=f"{n}x{n} float32 matmul, best of repeats")


def torch_lstm(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """The same LSTM in torch eager mode on the CPU (``inference_mode``, default threads),
    on the same histories (built by the same code) in the same chunks of users; seen items
    set to ``-inf`` in the logits by index (as torch code does it), top-K by ``torch.topk``."""
    try:
        import torch
    except ImportError:
        raise SkipTask("torch is not installed", TORCH_INSTALL) from None
    import numpy as np

    weights = dict(np.load(params["weights_npz"], allow_pickle=False))
    arrays = dict(np.load(params["arrays_npz"], allow_pickle=False))
    data = training_data(arrays)
    model = torch_next_item(weights)
    seq_len, k = int(params["seq_len"]), int(params["k"])
    batch = _replay_chunk(data.n_items)  # the chunk abkit's replay feeds onnxruntime
    users = np.arange(data.n_users)

    def top_items(chunk: np.ndarray) -> np.ndarray:
        seen = data.seen_rows(chunk)
        rows = torch.from_numpy(np.repeat(np.arange(chunk.size), np.diff(seen.indptr)))
        items = torch.from_numpy(seen.indices.astype(np.int64))
        history = torch.from_numpy(data.histories(chunk, seq_len))
        return model(history, rows, items, k).numpy()

    top1 = 0.0
    with torch.inference_mode():
        top_items(users[:batch])  # warm-up (allocator, thread pool)
        with clock:
            for start in range(0, users.size, batch):
                top1 += float(top_items(users[start : start + batch])[:, 0].sum())
    return TaskOutcome(
        units=float(users.size),
        check=top1,
        note=f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"chunks of {batch} users",
    )


def obp_loop_ips(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """IPS with a bootstrap CI the way Open Bandit Pipeline-style evaluators do it: a per-row
    Python loop for the importance-weighted rewards ``w_i r_i = pi(a_i|x_i) / p_i * r_i``, then
    OBP's ``estimate_confidence_interval_by_bootstrap``: ``B`` resamples, each
    ``rng.choice(samples, n)`` and its mean, in a Python loop.

    Run on the first ``subsample`` rows only and extrapolated linearly to all rows (both parts
    are O(n) per resample), as the bench line says; running it whole would take hours.
    """
    import numpy as np

    data = np.load(params["offpolicy_npz"], allow_pickle=False)
    total = len(data["reward"])
    n = min(int(params["subsample"]), total)
    reward = data["reward"][:n].tolist()
    pscore = data["pscore"][:n].tolist()
    target = data["target_prob"][:n].tolist()
    boot = int(params["bootstrap"])
    rng = np.random.RandomState(int(params["seed"]))
    with clock:
        samples = []
        for r, p, q in zip(reward, pscore, target, strict=True):
            samples.append(q / p * r)
        values = np.asarray(samples)
        estimate = float(np.mean(values))
        means = [np.mean(rng.choice(values, size=values.shape[0])) for _ in range(boot)]
        low, high = np.percentile(means, [2.5, 97.5])
        _ = (low, high)
    return TaskOutcome(
        units=float(total),
        check=estimate,
        extrapolation=total / n,
        note=f"measured on {n:,} of {total:,} rows, time extrapolated linearly",
    )
