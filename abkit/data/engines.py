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
    the install line (exit 2)."""
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
