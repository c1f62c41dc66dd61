"""The references abkit is measured against: what a user would otherwise write or pick.

Each function is a bench *task* ``(params, clock) -> TaskOutcome`` run in its own process by
:mod:`abkit.bench.worker`; only the code inside ``with clock:`` is timed. The references are
written the way a competent user would write them, not as straw men: DuckDB loads the file
with one statement, implicit keeps its own (all-core) threading with BLAS at one thread as it
asks, torch runs under ``inference_mode``. The compare peers (tea-tasting) are whole programs
in :mod:`abkit.bench.peers`; the off-policy references are in :mod:`abkit.bench.ope`.

SQL lives here (and not under ``abkit/data``) on purpose: these are the bare DuckDB baselines,
deliberately outside abkit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
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


def implicit_replay(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """implicit on its own: ``AlternatingLeastSquares`` with abkit's default parameters
    (factors, regularization, alpha, iterations, seed; BLAS limited to 1 thread as implicit
    asks, implicit's own default threading), fitted on the same training matrix, then
    ``implicit.evaluation.ranking_metrics_at_k`` (seen items filtered as implicit does)."""
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
    defaults = json.loads(Path(params["info_json"]).read_text())
    k = int(params["k"])
    with clock, threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=int(defaults["factors"]),
            regularization=float(defaults["regularization"]),
            alpha=float(defaults["alpha"]),
            iterations=int(defaults["iterations"]),
            random_state=int(defaults["seed"]),
            calculate_training_loss=False,
        )
        model.fit(train.astype(np.float32), show_progress=False)
        metrics = ranking_metrics_at_k(model, train, test, K=k, show_progress=False)
    users = int(np.count_nonzero(np.diff(test.indptr)))
    return TaskOutcome(units=float(users), check=float(metrics["ndcg"]))


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
