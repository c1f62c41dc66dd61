"""Storing a replay run: the rows it writes, and that writing them does not import pandas."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from abkit.data.replay_sql import insert_run
from abkit.data.store import open_store

USERS = np.array(["u1", "ü-2", "", "user with spaces", "7"], dtype=object)
METRICS = {
    "recall@10": np.array([0.0, 0.5, 1.0, 0.25, 1 / 3]),
    "ndcg@10": np.array([0.1, 0.2, 0.3, 0.4, 0.5]),
}
ROUNDS = {
    "impression_id": np.array([3, 1, 2**40], dtype=np.int64),
    "weight": np.array([0.5, 2.0, 0.0]),
    "reward": np.array([1.0, 0.0, 1.0]),
    "q_logged": np.array([math.nan, 0.25, 0.5]),
    "q_policy": np.array([0.1, math.nan, 0.75]),
}


def _run(run_id: str) -> dict[str, object]:
    return {
        "run_id": run_id,
        "name": None,
        "dataset": "shop",
        "model": "random",
        "kind": "offpolicy",
        "params": "{}",
        "split": "{}",
        "ks": [10],
        "fingerprint": "f",
        "code_version": "0",
        "created_at": datetime(2024, 1, 1),
        "users": len(USERS),
        "summary": "{}",
    }


def _store(db: Path, run_id: str = "r1") -> None:
    with open_store(db, write=True) as store, store.transaction() as con:
        insert_run(
            con,
            run=_run(run_id),
            user_ids=USERS,
            user_metrics=METRICS,
            estimates=[],
            rounds=ROUNDS,
        )


def test_stored_rows_are_the_inputs(tmp_path: Path) -> None:
    db = tmp_path / "runs.duckdb"
    _store(db)
    with open_store(db) as store:
        users = store.con.execute(
            "SELECT run_id, user_id, metric, value FROM run_user_metrics ORDER BY rowid"
        ).fetchall()
        rounds = store.con.execute(
            "SELECT * FROM run_rounds ORDER BY rowid"
        ).fetchall()  # fmt: skip
    # the order of np.tile(user_ids) / np.repeat(metrics): every user of one metric, in turn
    assert users == [
        ("r1", str(u), name, float(v))
        for name, values in METRICS.items()
        for u, v in zip(USERS, values, strict=True)
    ]
    assert len(rounds) == 3
    for row, i in zip(rounds, range(3), strict=True):
        assert row[0] == "r1"
        assert row[1] == int(ROUNDS["impression_id"][i])
        stored = np.array(row[2:], dtype=np.float64)
        expected = np.array([ROUNDS[c][i] for c in ("weight", "reward", "q_logged", "q_policy")])
        np.testing.assert_array_equal(stored, expected)  # NaN stays NaN (not NULL)


def test_storing_a_run_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow.array() imports pandas (+0.3 s, +46 MiB per replay); the store builds its
    Arrow columns from buffers instead."""
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from tests.data.test_replay_sql import _store\n"
        f"_store(Path({str(tmp_path / 'runs.duckdb')!r}))\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONWARNINGS": ""},
    )
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "pyarrow" in modules
    assert sorted(m for m in modules if m.split(".")[0] == "pandas") == []
