"""`--engine spark` on info and compare: every JSON number equals DuckDB's to 1e-9.

All tests share ONE local Spark session (the `spark` fixture); keep them few and small."""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

import duckdb
import pytest

from abkit.cli.main import app
from abkit.compare.arms import compare_arms
from abkit.data.info import store_info
from tests._json_close import assert_json_close

# a JVM per session (10-60 s): in the full run, not the quick layer
pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_compare_equals_duckdb(spark, sim_db: Path, sim_export: Path, runner) -> None:
    args = ["--metric", "conversion", "--metric", "mean", "--metric", "ratio"]
    args += ["--ratio", "revenue_per_order", "--claim", "0.1", "--json"]
    duck = _json(runner.invoke(app, ["compare", "--db", str(sim_db), *args]))
    on_spark = _json(
        runner.invoke(app, ["compare", "--engine", "spark", "--source", str(sim_export), *args])
    )
    assert_json_close(duck, on_spark)
    assert [c["metric"] for c in on_spark["comparisons"]] == [
        "conversion", "mean", "revenue_per_order",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "options",
    [
        {"metrics": ("ratio",), "ratio": "orders_per_session", "looks": "daily"},
        {"metrics": ("conversion", "mean"), "cuped": True},
    ],
    ids=["daily-looks-sessions", "cuped"],
)
def test_daily_looks_and_cuped_equal_duckdb(spark, sim_db, sim_export, options) -> None:
    duck = compare_arms(sim_db, **options).to_dict()
    on_spark = compare_arms(None, engine="spark", source=str(sim_export), **options).to_dict()
    assert_json_close(json.loads(json.dumps(duck, default=str)),
                      json.loads(json.dumps(on_spark, default=str)))  # fmt: skip


def test_info_equals_duckdb(spark, sim_db: Path, sim_export: Path) -> None:
    duck = store_info(sim_db).to_dict()
    on_spark = store_info(None, engine="spark", source=str(sim_export)).to_dict()
    assert on_spark.pop("path") == str(sim_export)
    duck.pop("path")
    assert_json_close(json.loads(json.dumps(duck, default=str)),
                      json.loads(json.dumps(on_spark, default=str)))  # fmt: skip


def test_bad_sources_are_one_line_exit_2(spark, sim_export: Path, tmp_path: Path, runner) -> None:
    # a table without one of its columns (another schema version)
    broken = tmp_path / "broken"
    shutil.copytree(sim_export, broken)
    part = next((broken / "assignments").rglob("*.parquet"))
    with duckdb.connect() as con:  # not duckdb's default connection, shared by every test
        con.execute(
            f"COPY (SELECT * EXCLUDE (assigned_at) FROM read_parquet('{part}')) "
            f"TO '{tmp_path / 'a.parquet'}' (FORMAT PARQUET)"
        )
    (tmp_path / "a.parquet").replace(part)
    result = runner.invoke(app, ["compare", "--engine", "spark", "--source", str(broken)])
    assert result.exit_code == 2
    assert "table assignments has no column assigned_at" in result.output
    # a missing table
    shutil.rmtree(broken / "events")
    result = runner.invoke(app, ["info", "--engine", "spark", "--source", str(broken)])
    assert result.exit_code == 2
    assert "cannot read the table events" in result.output
    # a standalone master nobody listens on: refused in seconds, not after Spark's retries
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    master = f"spark://127.0.0.1:{port}"
    args = ["info", "--engine", "spark", "--source", str(sim_export), "--spark-master", master]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert f"--spark-master {master}: no Spark master answers there" in result.output
    # a catalog database that does not exist
    result = runner.invoke(app, ["info", "--engine", "spark", "--source", "catalog:nope"])
    assert result.exit_code == 2
    assert "cannot read the table" in result.output


def test_without_pyspark_the_install_line(monkeypatch, sim_export: Path, runner) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    result = runner.invoke(app, ["compare", "--engine", "spark", "--source", str(sim_export)])
    assert result.exit_code == 2
    assert 'pip install "abkit-lift[spark]"' in result.output
    result = runner.invoke(app, ["compare", "--engine", "spark"])
    assert result.exit_code == 2
    assert "--engine spark needs --source" in result.output


def test_printed_spark_sql_runs_in_spark(spark, sim_db: Path, sim_export: Path) -> None:
    """`abkit sql --dialect spark` executed by Spark gives DuckDB's rows of the duckdb one."""
    from abkit.compare.warehouse import aggregation_sql
    from abkit.data.engines import register_views

    metrics = ("conversion", "mean", "ratio")
    duck_sql = aggregation_sql("duckdb", db=sim_db, metrics=metrics, ratio="revenue_per_order")
    spark_sql = aggregation_sql("spark", db=sim_db, metrics=metrics, ratio="revenue_per_order")
    con = duckdb.connect(str(sim_db), read_only=True)
    try:
        expected = con.execute(duck_sql).fetchall()
    finally:
        con.close()
    register_views(spark, str(sim_export))
    got = [tuple(r) for r in spark.sql(spark_sql).collect()]
    assert [r[:3] for r in got] == [r[:3] for r in expected]  # metric, arm, units
    for g, e in zip(got, expected, strict=True):
        # Spark types the 0.0 literals as DECIMAL: compare the numbers
        assert [float(x) for x in g[3:]] == pytest.approx([float(x) for x in e[3:]], rel=1e-12)


@pytest.mark.slow
def test_cli_workers_use_abkits_python_without_the_venv_on_path(tmp_path: Path) -> None:
    """`.venv/bin/abkit replay --engine spark`, venv not activated: the first `python3` on PATH
    is not abkit's interpreter (here a stub that exits), yet the Python workers of the local
    session run, as they start with ``sys.executable`` (``spark_session``)."""
    import importlib.util
    import os
    import subprocess

    if importlib.util.find_spec("pyspark") is None:
        if os.environ.get("CI"):
            pytest.fail('CI runs the spark tests: pip install -e ".[test,spark]"')
        pytest.skip('pyspark is not installed (pip install "abkit-lift[spark]")')
    from abkit.data.parquet import export_store
    from abkit.simulate import SimulationConfig, simulate

    db = tmp_path / "sim.duckdb"
    simulate(SimulationConfig(users=300, items=50, days=7, pre_days=2, seed=3), db)
    export_store(db, tmp_path / "export")
    stub = tmp_path / "stub-bin"
    stub.mkdir()
    (stub / "python3").write_text("#!/bin/sh\necho 'not abkit python' >&2\nexit 97\n")
    (stub / "python3").chmod(0o755)
    venv_bin = Path(sys.executable).parent
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != venv_bin]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_REMOTE", "VIRTUAL_ENV"}
    }
    env |= {
        "PATH": os.pathsep.join([str(stub), *path]),
        "ABKIT_SPARK_PARTITIONS": "1",
        # a short run: the JVM's quick compiler only, no whole-stage code generation
        "PYSPARK_SUBMIT_ARGS": "--driver-java-options -XX:TieredStopAtLevel=1 "
        "--conf spark.sql.codegen.wholeStage=false pyspark-shell",
    }
    command = [str(venv_bin / "abkit"), "replay", "--engine", "spark", "--model", "popularity"]
    command += ["--source", str(tmp_path / "export"), "--db", str(tmp_path / "runs.duckdb")]
    command += ["--spark-master", "local[1]", "--json"]
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["model"] == "popularity"
    assert result["users"] > 50
    assert 0 < result["metrics"]["ndcg@10"] <= 1
