"""Shared fixtures. Tests never touch ./abkit.duckdb: each gets its own file under tmp_path."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from typer.testing import CliRunner

# CI runs every property test on the same examples (no flaky reds from a new random draw) and
# without per-example deadlines (a loaded 2-core machine is slow, not wrong).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# -- the Open Bandit Dataset -----------------------------------------------------------------
# Two copies of the OBD sample (Saito et al., ZOZO, CC BY 4.0), laid out alike
# (obd/{random,bts}/{all,men,women}/{campaign}.csv.gz with item_context.csv.gz):
#
# * the full sample, 10,000 rows per file, in ../shared/data/obd beside a development checkout;
# * tests/fixtures/obd, shipped with the repository: the LAST 3,000 rows of each file (see its
#   README.md; the last rows keep the Bernoulli TS Women's row whose propensity is 1e-6, so
#   the estimator refusals are tested on the fixture too).
#
# Tests use OBD: the full sample when ../shared has it, else the fixture, so a fresh clone
# skips no OBD test. Numbers that depend on the data (row counts, click rates, rendered
# lifts) are pinned for both: OBD_ROWS, and obd_pinned(full=..., fixture=...).
# ABKIT_TEST_OBD=fixture uses the fixture even where the full sample exists.
OBD_SAMPLE = SHARED / "data" / "obd"
OBD_FIXTURE = REPO / "tests" / "fixtures" / "obd"
OBD_FULL = OBD_SAMPLE.exists() and os.environ.get("ABKIT_TEST_OBD") != "fixture"
OBD = OBD_SAMPLE if OBD_FULL else OBD_FIXTURE
OBD_ROWS = 10_000 if OBD_FULL else 3_000  # rows per file


def obd_pinned(*, full: Any, fixture: Any) -> Any:
    """The value a test pins for the OBD copy in use (see the comment above OBD)."""
    return full if OBD_FULL else fixture


@pytest.fixture(autouse=True)
def _no_default_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run every test in its own folder with $ABKIT_DB unset."""
    monkeypatch.delenv("ABKIT_DB", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.duckdb"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes, or None when it does not exist (for 'unchanged' checks)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


# -- simulated traffic shared by many test files (written once per session) -------------------


@pytest.fixture(scope="session")
def sim_config():
    """The config of :func:`sim_db`: small, but with every feature of the simulator."""
    from abkit.simulate import SimulationConfig

    return SimulationConfig(users=3000, items=200, days=14, pre_days=7, lift=0.2, seed=7)


@pytest.fixture(scope="session")
def sim_db(tmp_path_factory: pytest.TempPathFactory, sim_config) -> Path:
    """A store holding one simulated dataset ('sim', experiment 'carousel'). Read it only:
    it is shared by every test of the session."""
    from abkit.simulate import simulate

    path = tmp_path_factory.mktemp("sim") / "sim.duckdb"
    simulate(sim_config, path)
    return path


@contextmanager
def holding_write_lock(path: Path, *, read_only: bool = False) -> Iterator[int]:
    """Another process holds DuckDB's write lock on ``path`` for the block; yields its PID.

    ``read_only=True``: it holds a read-only connection instead (a notebook reading the
    store), which blocks writers just the same.
    """
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}, read_only={read_only}); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
        time.sleep(0.1)  # let the OS release the lock before the caller inspects the file


class ReleaseOnFirstRetry:
    """Stands in for ``time`` in abkit.data.store: the first retry sleep runs ``release``, so
    the lock is freed exactly while a wait is under way (no timing in the test)."""

    def __init__(self, release) -> None:
        import time

        self.release = release
        self.sleeps = 0
        self.monotonic = time.monotonic
        self._sleep = time.sleep

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps == 1:
            self.release()
        self._sleep(seconds)


# -- Apache Spark (tests marked `spark`) ------------------------------------------------------
# ONE local session for the whole test run: starting one takes 10-35 s. Without pyspark the
# spark tests skip locally, but fail in CI (CI=true), which installs the `spark` extra.


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    import importlib.util

    if importlib.util.find_spec("pyspark") is None:
        if os.environ.get("CI"):
            pytest.fail('CI runs the spark tests: pip install -e ".[test,spark]"')
        pytest.skip('pyspark is not installed (pip install "abkit-lift[spark]")')
    from abkit.data.engines import spark_session

    os.environ.setdefault("ABKIT_SPARK_PARTITIONS", "2")
    session = spark_session("local[2]")
    # tiny data: compiling whole-stage code costs more than it saves (~40% of a query here)
    session.conf.set("spark.sql.codegen.wholeStage", "false")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sim_export(tmp_path_factory: pytest.TempPathFactory, sim_db: Path) -> Path:
    """:func:`sim_db` written by `abkit export` (read it only)."""
    from abkit.data.parquet import export_store

    out = tmp_path_factory.mktemp("export") / "sim"
    export_store(sim_db, out)
    return out
