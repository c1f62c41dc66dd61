"""Write replay-run records straight into a store, for tests of comparisons and gates that
must not depend on training a model (the replay runner is tested in its own files)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abkit.data.store import open_store, utcnow


def add_run(
    db: Path,
    run_id: str,
    *,
    user_metrics: Mapping[str, np.ndarray] | None = None,
    user_ids: Sequence[str] | None = None,
    rounds: Mapping[str, np.ndarray] | None = None,
    model: str = "als",
    name: str | None = None,
    kind: str = "ranking",
    params: Mapping[str, Any] | None = None,
    split: str = "temporal:2024-01-20T00:00:00",
    fingerprint: str = "f" * 32,
    dataset: str = "sim",
    ks: Sequence[int] = (10,),
    estimators: Sequence[str] = (),
) -> None:
    """Insert one run; ``user_metrics`` maps ``"ndcg@10"`` to a vector over ``user_ids``
    (default ``u00000, u00001, ...``); ``rounds`` has impression_id, weight, reward and
    optionally q_logged / q_policy; ``estimators`` adds (empty) rows to run_estimates."""
    with open_store(db, write=True) as store, store.transaction() as con:
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id, name, dataset, model, kind, json.dumps(dict(params or {})), split,
                list(ks), fingerprint, "test", utcnow(), None, None,
            ],
        )  # fmt: skip
        if user_metrics:
            n = len(next(iter(user_metrics.values())))
            ids = list(user_ids) if user_ids is not None else [f"u{i:05d}" for i in range(n)]
            frames = [
                pd.DataFrame({"user_id": ids, "metric": metric, "value": np.asarray(v, float)})
                for metric, v in user_metrics.items()
            ]
            frame = pd.concat(frames, ignore_index=True)
            con.register("fake_metrics", frame)
            con.execute(
                "INSERT INTO run_user_metrics SELECT ?, user_id, metric, value FROM fake_metrics",
                [run_id],
            )
            con.unregister("fake_metrics")
        for estimator in estimators:
            con.execute(
                "INSERT INTO run_estimates (run_id, estimator, value) VALUES (?, ?, 0.0)",
                [run_id, estimator],
            )
        if rounds is not None:
            n = len(rounds["impression_id"])
            frame = pd.DataFrame(
                {
                    "impression_id": np.asarray(rounds["impression_id"], dtype=np.int64),
                    "weight": np.asarray(rounds["weight"], float),
                    "reward": np.asarray(rounds["reward"], float),
                    "q_logged": np.asarray(rounds.get("q_logged", np.full(n, np.nan)), float),
                    "q_policy": np.asarray(rounds.get("q_policy", np.full(n, np.nan)), float),
                }
            )
            con.register("fake_rounds", frame)
            con.execute(
                "INSERT INTO run_rounds SELECT ?, impression_id, weight, reward, "
                "CASE WHEN isnan(q_logged) THEN NULL ELSE q_logged END, "
                "CASE WHEN isnan(q_policy) THEN NULL ELSE q_policy END FROM fake_rounds",
                [run_id],
            )
            con.unregister("fake_rounds")


def correlated_users(
    seed: int, n: int, *, shift: float = 0.0, noise: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """NDCG-like per-user values of two models sharing most of their variance."""
    rng = np.random.default_rng(seed)
    ease = rng.gamma(2.0, 0.15, n)
    base = np.clip(ease + rng.normal(0, noise, n), 0, 1)
    cand = np.clip(ease * (1 + shift) + rng.normal(0, noise, n), 0, 1)
    return base, cand
