"""`abkit replay --engine spark`: the same metrics and per-user values as the DuckDB engine."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from abkit.cli.main import app
from abkit.replay.runner import replay

# a JVM per session (10-60 s): in the full run, not the quick layer
pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _per_user(db: Path, run_id: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT user_id, metric, value FROM run_user_metrics WHERE run_id = ? ORDER BY ALL",
            [run_id],
        ).fetchall()
    finally:
        con.close()


def test_als_replay_equals_duckdb(spark, sim_db, sim_export, tmp_path, runner) -> None:
    duck_db = tmp_path / "duck.duckdb"  # a copy: sim_db is shared read-only
    duck_db.write_bytes(sim_db.read_bytes())
    out = tmp_path / "runs.duckdb"
    args = ["replay", "--model", "als", "--k", "5,10", "--json"]
    duck = runner.invoke(app, [*args, "--db", str(duck_db)])
    assert duck.exit_code == 0, duck.output
    on_spark = runner.invoke(
        app, [*args, "--db", str(out), "--engine", "spark", "--source", str(sim_export)]
    )
    assert on_spark.exit_code == 0, on_spark.output
    d, s = json.loads(duck.output), json.loads(on_spark.output)
    assert s["metrics"] == d["metrics"]  # every mean and coverage, exactly
    assert s["metrics"]["ndcg@10"] > 0
    assert s["users"] == d["users"] > 100
    assert s["fingerprint"] == d["fingerprint"]
    per_user = _per_user(out, s["run_id"])
    assert per_user == _per_user(duck_db, d["run_id"])
    assert {m for _, m, _ in per_user} >= {"ndcg@10", "recall@5"}


def test_popularity_in_many_partitions(spark, sim_db, sim_export) -> None:
    kept: dict[str, tuple] = {}

    def keep(tag):
        def before_store(result, users, per_user):
            kept[tag] = (users.tolist(), {k: v.tolist() for k, v in per_user.items()})

        return before_store

    # chunks of 400 users: the ~1,000 evaluated users are scored in several partitions
    duck = replay(sim_db, model="popularity", write=False, chunk_users=400, before_store=keep("d"))
    on_spark = replay(
        None,
        model="popularity",
        write=False,
        chunk_users=400,
        before_store=keep("s"),
        engine="spark",
        source=str(sim_export),
    )
    assert duck.users > 800
    assert [(m.name, m.value) for m in on_spark.metrics] == [
        (m.name, m.value) for m in duck.metrics
    ]
    assert kept["s"] == kept["d"]
