"""Where the aggregation SQL runs: the DuckDB store (the default) or Apache Spark.

:func:`open_source` gives a :class:`~abkit.data.store.Store` whose ``con`` executes abkit's
queries. For ``engine="spark"`` it is a :class:`SparkConnection`: every query of
:mod:`abkit.data.aggregate` and :mod:`abkit.data.info` -- the very text DuckDB runs -- is
compiled to Spark SQL with sqlglot (:mod:`abkit.data.dialects`) and run by ``spark.sql`` over
temporary views of the abkit tables; only the few result rows (arms x looks) come back to the
driver. The tables come from

* a folder written by ``abkit export`` (``--source DIR``; a local path or any
  Hadoop-compatible URI such as ``s3a://bucket/abkit``, ``hdfs://...``), or
* ``catalog:DB``: tables of the abkit schema in a database of the Spark catalog.

The session is ``--spark-master`` (default ``local[*]``), or Spark Connect when
``SPARK_REMOTE`` is set (``sc://host:15002``). Its time zone is UTC, as the store's
timestamps are.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from abkit._util import unknown_choice
from abkit.data.dialects import compile_sql, inline_params
from abkit.data.schema import TABLES
from abkit.data.store import Store, open_store
from abkit.errors import InputError, MissingExtraError, StoreError, param

if TYPE_CHECKING:
    import numpy as np

Engine = Literal["duckdb", "spark"]
ENGINES = ("duckdb", "spark")
DEFAULT_MASTER = "local[*]"
CATALOG_PREFIX = "catalog:"


class SparkResult:
    """The collected rows of one Spark query, read like a DuckDB result."""

    def __init__(self, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        self.columns = list(columns)
        self.rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def fetchnumpy(self) -> dict[str, np.ndarray]:
        import numpy as np

        out: dict[str, np.ndarray] = {}
        for i, name in enumerate(self.columns):
            values = [r[i] for r in self.rows]
            array = np.empty(len(values), dtype=object)
            array[:] = values
            out[name] = array
        return out


class SparkConnection:
    """Runs abkit's DuckDB-dialect queries in a Spark session (module docstring)."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> SparkResult:
        text = compile_sql(inline_params(sql, params), "spark")
        try:
            frame = self.spark.sql(text)
            rows = [tuple(r) for r in frame.collect()]
        except Exception as exc:
            raise _spark_error(exc) from None
        return SparkResult(frame.columns, rows)

    def close(self) -> None:
        """The session stays up for the process (starting one takes seconds)."""


def _spark_error(exc: Exception) -> StoreError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreError(f"Spark: {text[:300]}")


def spark_session(master: str | None = None) -> Any:
    """The Spark session abkit uses: Spark Connect when ``SPARK_REMOTE`` is set, else
    ``master`` (default ``local[*]``). Without pyspark (or Java) this is a one-line error with
    the install line (exit 2).

    Python workers: a session that runs on this machine (``local``, ``local[N]``,
    ``local-cluster[...]``) starts its Python workers with this very interpreter
    (``sys.executable``), unless ``PYSPARK_PYTHON`` is set, which wins. Spark's own default is
    the first ``python3`` on ``PATH``, which for ``.venv/bin/abkit`` run without activating the
    venv is another Python that lacks abkit, pyarrow and numpy. The Spark conf
    ``spark.pyspark.python`` cannot do this: only ``spark-submit`` reads it, a session started
    from Python takes its workers' interpreter from the ``PYSPARK_PYTHON`` environment
    variable alone. So abkit sets that variable while it creates the session (the JVM it
    launches inherits it) and restores the environment afterwards. The driver is this process;
    Spark's fallback for Python it runs on the driver's behalf (``PYSPARK_DRIVER_PYTHON``,
    else ``PYSPARK_PYTHON``) thus is this interpreter too, and a ``PYSPARK_DRIVER_PYTHON`` the
    user set is left alone. Other masters (``spark://``, ``yarn``, ``k8s://``) run executors on
    other machines, where this path may not exist: their Python is the cluster's setting
    (``PYSPARK_PYTHON`` or ``spark.pyspark.python``), unchanged; so is Spark Connect."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise MissingExtraError("pyspark", "spark", "--engine spark") from None
    builder = SparkSession.builder.appName("abkit")
    if not os.environ.get("SPARK_REMOTE"):
        check_master_reachable(master or DEFAULT_MASTER)
        builder = builder.master(master or DEFAULT_MASTER)
        builder = builder.config("spark.ui.enabled", "false")
        builder = builder.config("spark.ui.showConsoleProgress", "false").config(
            "spark.sql.shuffle.partitions", os.environ.get("ABKIT_SPARK_PARTITIONS", "8")
        )
    builder = builder.config("spark.sql.session.timeZone", "UTC").config(
        # dataset=2024 is the dataset called "2024", not a number
        "spark.sql.sources.partitionColumnTypeInference.enabled",
        "false",
    )
    try:
        with _python_workers(None if os.environ.get("SPARK_REMOTE") else master or DEFAULT_MASTER):
            spark = builder.getOrCreate()
        if not os.environ.get("SPARK_REMOTE"):
            spark.sparkContext.setLogLevel("ERROR")
        return spark
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "JAVA" in text.upper():
            raise MissingExtraError("Java 17+ and pyspark", "spark", "--engine spark") from None
        where = os.environ.get("SPARK_REMOTE") or master or DEFAULT_MASTER
        raise StoreError(
            f"{param('spark_master')} {where}: cannot start Spark ({text[:200]})"
        ) from None


def _is_local_master(master: str) -> bool:
    """``local``, ``local[N]``, ``local[N,F]``, ``local[*]``, ``local-cluster[...]``: executors
    on this machine."""
    return master == "local" or master.startswith(("local[", "local-cluster["))


@contextmanager
def _python_workers(master: str | None) -> Iterator[None]:
    """``PYSPARK_PYTHON`` is ``sys.executable`` inside the block when ``master`` is local and
    the variable is unset or empty (:func:`spark_session`); the environment is restored after."""
    before = os.environ.get("PYSPARK_PYTHON")
    if master is None or not _is_local_master(master) or before:
        yield
        return
    os.environ["PYSPARK_PYTHON"] = sys.executable
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYSPARK_PYTHON", None)
        else:
            os.environ["PYSPARK_PYTHON"] = before


def check_master_reachable(master: str, timeout: float = 5.0) -> None:
    """A standalone master (``spark://host:port[,host:port]``) that accepts no connection is
    refused in seconds with one line, instead of Spark's minute of retries and stack traces."""
    import socket

    if not master.startswith("spark://"):
        return
    for address in master[len("spark://") :].split(","):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return
        except (OSError, ValueError):
            continue
    raise StoreError(
        f"{param('spark_master')} {master}: no Spark master answers there (nothing accepted a "
        "connection); check the URL, or leave it out for local[*]"
    )


def register_views(spark: Any, source: str) -> None:
    """Temporary views ``events``, ``assignments``, ... over ``source`` (module docstring);
    a missing table or column, or another schema version, is a one-line :class:`StoreError`."""
    from abkit.data.parquet import check_meta_version, columns_of

    catalog = source.startswith(CATALOG_PREFIX)
    for table in TABLES:
        try:
            if catalog:
                database = source[len(CATALOG_PREFIX) :]
                if not database:
                    raise InputError(f"{param('source')} {source}: expected catalog:DATABASE")
                frame = spark.table(f"`{database.replace('`', '``')}`.`{table}`")
            else:
                frame = spark.read.parquet(f"{source.rstrip('/')}/{table}")
        except InputError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise StoreError(
                f"{param('source')} {source}: cannot read the table {table} ({first[:200]}); "
                "expected a folder written by `abkit export` or catalog:DB with the abkit tables"
            ) from None
        missing = [c for c in columns_of(table) if c not in frame.columns]
        if missing:
            raise StoreError(
                f"{param('source')} {source}: table {table} has no column {missing[0]} "
                "(a schema of another abkit version?)"
            )
        frame.select(*columns_of(table)).createOrReplaceTempView(table)
    meta = dict(spark.sql("SELECT key, value FROM abkit_meta").collect())
    check_meta_version(source, {str(k): str(v) for k, v in meta.items()})


def check_engine(engine: str, source: str | None) -> None:
    if engine not in ENGINES:
        raise InputError(f"{param('engine')}: " + unknown_choice("engine", engine, ENGINES))
    if engine == "spark" and not source:
        raise InputError(
            f"{param('engine')} spark needs {param('source')}: a folder written by "
            "`abkit export`, or catalog:DB"
        )
    if engine == "duckdb" and source:
        raise InputError(f"{param('source')} is read by {param('engine')} spark only")


@contextmanager
def open_source(
    db: str | Path | None,
    *,
    engine: str = "duckdb",
    source: str | None = None,
    spark_master: str | None = None,
) -> Iterator[Store]:
    """The store ``db`` (DuckDB), or ``source`` read by Spark, as a read-only
    :class:`Store`."""
    check_engine(engine, source)
    if engine == "duckdb":
        with open_store(db) as store:
            yield store
        return
    assert source is not None
    spark = spark_session(spark_master)
    register_views(spark, source)
    yield Store(Path(source), SparkConnection(spark), read_only=True)  # type: ignore[arg-type]
