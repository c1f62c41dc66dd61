"""``abkit replay --engine spark``: users scored in Spark partitions.

The driver reads the split (the split SQL of :mod:`abkit.data.replay_sql`, run by Spark) and
fits the model -- or loads it -- exactly as the DuckDB engine does. Then the fitted model is
saved to its own file format (``.npz`` factors or counts, or the ONNX graph and its sidecar)
and those BYTES travel to the executors with the training matrix and the relevant items, in
one ``.npz`` payload (never a pickled model). Each executor loads the model once per Python
worker and, for each chunk of users (the same chunks the DuckDB engine scores, so each user
is ranked by the same arithmetic), ranks the catalogue, grades the top ``max(ks)`` with
:func:`abkit.replay.metrics.ranking_metrics` and returns the per-user values and top items
(``mapInPandas``). The driver gets one row per evaluated user back: the run's means,
coverage and the per-user table are computed from them as the DuckDB engine computes them.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abkit.plugins import Recommender, TrainingData, create_recommender
from abkit.replay.metrics import CoverageCounter, ranking_metrics

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def _model_suffix(model: str) -> str:
    return ".onnx" if model == "lstm" else ".npz"


def build_payload(
    model: str,
    recommender: Recommender,
    data: TrainingData,
    users: np.ndarray,
    rel_indptr: np.ndarray,
    rel_items: np.ndarray,
) -> bytes:
    """The fitted model's files and the arrays the executors need, as one ``.npz``."""
    import numpy as np

    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="abkit-spark-") as tmp:
        recommender.save(Path(tmp) / f"model{_model_suffix(model)}")
        names = sorted(p.name for p in Path(tmp).iterdir())
        for i, name in enumerate(names):
            arrays[f"file{i}"] = np.frombuffer((Path(tmp) / name).read_bytes(), dtype=np.uint8)
    # each user's training items in time order, repeats included (the sequence models' input)
    arrays.update(
        file_names=np.asarray(names, dtype=str),
        train_user_idx=np.repeat(np.arange(data.n_users), np.diff(data.seq_indptr)),
        train_item_idx=data.seq_items.astype(np.int64),
        user_ids=np.asarray(data.user_ids, dtype=str),
        item_ids=np.asarray(data.item_ids, dtype=str),
        n_train_users=np.asarray([data.n_train_users], dtype=np.int64),
        fingerprint=np.asarray([data.fingerprint], dtype=str),
        users=np.asarray(users, dtype=np.int64),
        rel_indptr=np.asarray(rel_indptr, dtype=np.int64),
        rel_items=np.asarray(rel_items, dtype=np.int64),
        counts=np.asarray(data.item_user_counts()),
    )
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


@functools.lru_cache(maxsize=2)
def _state(digest: str, payload: bytes, model: str, params_json: str) -> tuple[Any, ...]:
    """Per Python worker, once per run: the training data and the loaded model."""
    import numpy as np

    del digest  # the cache key; the payload's bytes are compared only when digests match
    arrays = dict(np.load(io.BytesIO(payload), allow_pickle=False))
    data = TrainingData.from_arrays(
        user_idx=arrays["train_user_idx"],
        item_idx=arrays["train_item_idx"],
        user_ids=arrays["user_ids"],
        item_ids=arrays["item_ids"],
        n_train_users=int(arrays["n_train_users"][0]),
        fingerprint=str(arrays["fingerprint"][0]),
    )
    recommender = create_recommender(model, json.loads(params_json))
    with tempfile.TemporaryDirectory(prefix="abkit-spark-") as tmp:
        for i, name in enumerate(arrays["file_names"].tolist()):
            (Path(tmp) / name).write_bytes(arrays[f"file{i}"].tobytes())
        recommender.load(Path(tmp) / f"model{_model_suffix(model)}", data)
    return data, recommender, arrays


def score_chunks(
    frames: Iterator[pd.DataFrame],
    *,
    digest: str,
    payload: bytes,
    model: str,
    params_json: str,
    ks: Sequence[int],
    exclude_seen: bool,
    map_denominator: str,
    names: Sequence[str],
) -> Iterator[pd.DataFrame]:
    """The ``mapInPandas`` function: each input row is one chunk ``[start, stop)`` of the
    evaluated users; each output row one user (``pos``, every metric, ``top`` items)."""
    import pandas as pd

    data, recommender, arrays = _state(digest, payload, model, params_json)
    users, rel_indptr, rel_items = arrays["users"], arrays["rel_indptr"], arrays["rel_items"]
    k_max = max(ks)
    for frame in frames:
        for start, stop in zip(frame["start"].tolist(), frame["stop"].tolist(), strict=True):
            batch = users[start:stop]
            indptr = rel_indptr[start : stop + 1] - rel_indptr[start]
            rel = rel_items[rel_indptr[start] : rel_indptr[stop]]
            top, _ = recommender.recommend(data, batch, k_max, exclude_seen=exclude_seen)
            values = ranking_metrics(
                top,
                indptr,
                rel,
                ks=ks,
                n_items=data.n_items,
                item_user_counts=arrays["counts"],
                n_train_users=data.n_train_users,
                map_denominator=map_denominator,  # type: ignore[arg-type]
            )
            out = {"pos": range(start, stop), **{n: values[n] for n in names}}
            out["top"] = list(top.astype("int64"))
            yield pd.DataFrame(out)


def rank_users_spark(
    spark: Any,
    model: str,
    recommender: Recommender,
    data: TrainingData,
    users: np.ndarray,
    rel_indptr: np.ndarray,
    rel_items: np.ndarray,
    *,
    ks: tuple[int, ...],
    exclude_seen: bool,
    map_denominator: str,
    chunk: int,
) -> tuple[dict[str, np.ndarray], CoverageCounter]:
    """Per-user metric values (in the order of ``users``) and the coverage counter, scored in
    Spark partitions (module docstring)."""
    import numpy as np

    k_max = max(ks)
    names = list(
        ranking_metrics(
            np.zeros((0, k_max), dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            ks=ks,
            n_items=data.n_items,
            item_user_counts=data.item_user_counts(),
            n_train_users=data.n_train_users,
            map_denominator=map_denominator,  # type: ignore[arg-type]
        )
    )
    payload = build_payload(model, recommender, data, users, rel_indptr, rel_items)
    digest = hashlib.blake2b(payload, digest_size=16).hexdigest()
    starts = list(range(0, int(users.size), chunk))
    chunks = spark.createDataFrame(
        [(s, min(s + chunk, int(users.size))) for s in starts], "start long, stop long"
    ).repartition(max(1, len(starts)))
    schema = ", ".join(["pos long", *[f"`{n}` double" for n in names], "top array<long>"])
    scorer = functools.partial(
        score_chunks,
        digest=digest,
        payload=payload,
        model=model,
        params_json=json.dumps(recommender.params(), sort_keys=True),
        ks=ks,
        exclude_seen=exclude_seen,
        map_denominator=map_denominator,
        names=names,
    )
    with warnings.catch_warnings():
        # pyspark's own notes on the pandas version and its copies, not about the data
        warnings.simplefilter("ignore")
        result = chunks.mapInPandas(scorer, schema).toPandas().sort_values("pos")
    per_user = {n: result[n].to_numpy(dtype=np.float64) for n in names}
    coverage = CoverageCounter(ks, data.n_items)
    if len(result):
        coverage.update(np.stack(result["top"].to_list()).astype(np.int64))
    return per_user, coverage
