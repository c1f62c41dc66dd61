"""The store as a folder of Parquet files: ``abkit export`` and ``abkit ingest --format
abkit-parquet``, and what other engines (Spark, a warehouse's external tables) read.

Layout of an export folder ``DIR``::

    DIR/abkit_meta/part-0.parquet                 schema_version, created_by (one file)
    DIR/TABLE/dataset=NAME/part-0.parquet         every data table (a ``dataset`` column)
    DIR/runs/part-0.parquet                       replay runs and their tables (one file
    DIR/run_user_metrics/part-0.parquet           each, only the runs of the exported
    DIR/run_estimates/part-0.parquet              datasets; ``replay --runs-out DIR`` adds
    DIR/run_rounds/part-0.parquet                 run-ID.parquet files beside them)

One folder per table of :data:`abkit.data.schema.TABLES`, with the store's column names and
types; the ``dataset`` column is the Hive partition (``dataset=NAME``, URI-escaped). A table
with no rows for the exported datasets is ONE empty file holding the full schema (the
``dataset`` column included), so every engine finds every table. ``abkit_meta`` records the
schema version: a folder of another version is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abkit.data.schema import SCHEMA_VERSION, TABLES
from abkit.data.sql import quote_ident
from abkit.data.store import default_db_path, discard_if_new, open_store
from abkit.errors import InputError, StoreError, param

if TYPE_CHECKING:
    import duckdb

#: tables keyed by ``run_id`` instead of ``dataset`` (written unpartitioned)
RUN_TABLES = ("run_user_metrics", "run_estimates", "run_rounds")
#: tables written partitioned by ``dataset``; ``runs`` is not (runs are appended run by run)
DATASET_TABLES = tuple(t for t in TABLES if t not in ("abkit_meta", "runs", *RUN_TABLES))
FORMAT_NAME = "abkit-parquet"


@dataclass(frozen=True, kw_only=True)
class ExportResult:
    """What ``abkit export`` wrote: the folder, the datasets and the rows per table."""

    out: str
    datasets: tuple[str, ...]
    rows: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def columns_of(table: str) -> list[str]:
    """The column names of ``table`` in schema order (from the DDL of :data:`TABLES`)."""
    names = []
    for line in TABLES[table].strip().splitlines():
        word = line.strip().split(" ", 1)[0]
        if word and word != "PRIMARY":
            names.append(word)
    return names


def _selection(table: str, datasets: Sequence[str]) -> tuple[str, list[Any]]:
    cols = ", ".join(quote_ident(c) for c in columns_of(table))
    marks = ", ".join("?" for _ in datasets)
    if table == "abkit_meta":
        return f"SELECT {cols} FROM abkit_meta ORDER BY key", []
    if table in RUN_TABLES:
        return (
            f"SELECT {cols} FROM {quote_ident(table)} WHERE run_id IN "
            f"(SELECT run_id FROM runs WHERE dataset IN ({marks})) ORDER BY ALL",
            list(datasets),
        )
    return (
        f"SELECT {cols} FROM {quote_ident(table)} WHERE dataset IN ({marks}) ORDER BY ALL",
        list(datasets),
    )


def export_store(
    db: str | Path | None, out: str | Path, *, dataset: str | None = None
) -> ExportResult:
    """Write the store at ``db`` (every dataset, or only ``dataset``) to the folder ``out``
    (module docstring). ``out`` must not exist or be an empty folder: an export is never
    merged into another. Written under a temporary name and renamed, so a failed export
    leaves nothing behind."""
    import shutil

    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        what = "is a file" if not target.is_dir() else "is a folder that is not empty"
        raise InputError(
            f"{param('out')} {target}: {what}; expected a new or empty folder (an export is "
            "never merged into existing files)"
        )
    staging = target.with_name(f".{target.name}.export-tmp")
    shutil.rmtree(staging, ignore_errors=True)
    rows: dict[str, int] = {}
    with open_store(db) as store:
        names = [store.resolve_dataset(dataset)] if dataset else store.datasets()
        try:
            for table in TABLES:
                sql, params = _selection(table, names)
                data = store.con.sql(sql, params=params).to_arrow_table()
                folder = staging / table
                count = data.num_rows
                rows[table] = count
                if count == 0 or table not in DATASET_TABLES:
                    folder.mkdir(parents=True)
                    pq.write_table(data, folder / "part-0.parquet")
                    continue
                pads.write_dataset(
                    data,
                    folder,
                    format="parquet",
                    partitioning=pads.partitioning(
                        pa.schema([("dataset", pa.string())]), flavor="hive"
                    ),
                    basename_template="part-{i}.parquet",
                    existing_data_behavior="error",
                )
            if target.exists():
                target.rmdir()
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return ExportResult(out=str(target), datasets=tuple(names), rows=rows)


# -- reading an export folder -------------------------------------------------------------------


def table_glob(root: str, table: str) -> str:
    """The glob of a table's Parquet files under an export folder."""
    return f"{root.rstrip('/')}/{table}/**/*.parquet"


def _read_parquet(root: str, table: str) -> str:
    """The DuckDB ``read_parquet(...)`` of ``table``'s files under a local export folder. The
    path is a literal (DuckDB takes no parameters in table functions), escaped as one."""
    path = "'" + table_glob(root, table).replace("'", "''") + "'"
    partitioned = any(p.name.startswith("dataset=") for p in (Path(root) / table).iterdir())
    hive = (
        "hive_partitioning = true, hive_types = {'dataset': VARCHAR}"
        if partitioned
        else "hive_partitioning = false"
    )
    return f"read_parquet({path}, {hive}, union_by_name = true)"


def read_sql(root: str, table: str) -> str:
    """A DuckDB ``SELECT`` of ``table`` from a local export folder, columns in schema order."""
    cols = ", ".join(quote_ident(c) for c in columns_of(table))
    return f"SELECT {cols} FROM {_read_parquet(root, table)}"


def check_export_folder(root: Path) -> None:
    """Refuse a folder that is not an abkit export of this schema version (one line)."""
    missing = [t for t in TABLES if not (root / t).is_dir()]
    if not root.is_dir() or missing:
        what = (
            f"has no table folder {missing[0]}/"
            if root.is_dir()
            else "is a file"
            if root.exists()
            else "does not exist"
        )
        raise InputError(
            f"{root}: {what}; expected a folder written by `abkit export` "
            f"(one folder per table: {', '.join(TABLES)})"
        )


def check_table_columns(reader: duckdb.DuckDBPyConnection, root: Path, table: str) -> None:
    """Refuse (one line naming the folder, the table and the columns) a table of an export
    folder that has no Parquet file, cannot be read, or lacks a column of the abkit schema.
    Reads the files' schemas only (``reader`` is any DuckDB connection, no store)."""
    import duckdb

    folder = root / table
    expected = columns_of(table)
    if not any(p.is_file() for p in folder.rglob("*.parquet")):
        raise InputError(
            f"{folder}: the export has no Parquet file for table {table} (expected the abkit "
            f"schema v{SCHEMA_VERSION} columns: {', '.join(expected)})"
        )
    try:
        found = reader.execute(f"SELECT * FROM {_read_parquet(str(root), table)} LIMIT 0")
        names = {d[0] for d in found.description or ()}
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{folder}: cannot read its Parquet files ({first})") from None
    missing = [c for c in expected if c not in names]
    if missing:
        raise InputError(
            f"{folder}: the export lacks column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (expected the abkit schema v{SCHEMA_VERSION} columns: "
            f"{', '.join(expected)})"
        )


def check_meta_version(root: str, meta: dict[str, str]) -> None:
    """A folder of another schema version is refused rather than misread."""
    version = meta.get("schema_version")
    if version != str(SCHEMA_VERSION):
        raise StoreError(
            f"{root}: abkit schema version {version or 'unknown'}, this abkit reads version "
            f"{SCHEMA_VERSION}; re-export it with a matching abkit"
        )


@dataclass(frozen=True, kw_only=True)
class ParquetIngestResult:
    """What ``abkit ingest DIR --format abkit-parquet`` added to the store."""

    source: str
    db: str
    datasets: tuple[str, ...]
    rows: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest_export(
    folder: str | Path, db: str | Path | None, *, dataset: str | None = None, wait: float = 0.0
) -> ParquetIngestResult:
    """Load an export folder (every dataset, or only ``dataset``) into the store at ``db``,
    whole or not at all. A dataset or run already in the store is refused.

    The folder is checked before the store is opened (every table folder, its Parquet files,
    the schema version, every column), so a refused folder leaves the store as it was; a store
    that this call created is removed again when the load fails."""
    import duckdb

    root = Path(folder)
    check_export_folder(root)
    reader = duckdb.connect()
    try:
        check_table_columns(reader, root, "abkit_meta")
        meta = dict(reader.execute(read_sql(str(root), "abkit_meta")).fetchall())
        check_meta_version(str(root), meta)
        for table in TABLES:
            if table != "abkit_meta":
                check_table_columns(reader, root, table)
        found = [
            r[0]
            for r in reader.execute(
                f"SELECT dataset FROM ({read_sql(str(root), 'datasets')}) ORDER BY dataset"
            ).fetchall()
        ]
    finally:
        reader.close()
    if dataset is not None and dataset not in found:
        raise InputError(
            f"{param('dataset')} {dataset}: not in {root} (it holds {', '.join(found) or 'none'})"
        )
    names = [dataset] if dataset is not None else found
    rows: dict[str, int] = {}
    db_path = Path(db) if db is not None else default_db_path()
    # a store created for this ingest is removed when it fails: no file left behind
    with discard_if_new(db_path), open_store(db_path, write=True, wait=wait) as store:
        clash = [n for n in names if store.has_dataset(n)]
        if clash:
            raise InputError(
                f"dataset '{clash[0]}' is already in {store.path}; drop it first "
                f"(`abkit datasets drop {clash[0]}`) or ingest into another {param('db')}"
            )
        with store.transaction() as con:
            for table in TABLES:
                if table == "abkit_meta":
                    continue
                rows[table] = _copy_table(con, str(root), table, names)
    return ParquetIngestResult(source=str(root), db=str(db), datasets=tuple(names), rows=rows)


def _copy_table(con: duckdb.DuckDBPyConnection, root: str, table: str, names: Sequence[str]) -> int:
    import duckdb

    cols = ", ".join(quote_ident(c) for c in columns_of(table))
    marks = ", ".join("?" for _ in names)
    source = read_sql(root, table)
    if table in RUN_TABLES:
        runs = read_sql(root, "runs")
        where = f"run_id IN (SELECT run_id FROM ({runs}) WHERE dataset IN ({marks}))"
    else:
        where = f"dataset IN ({marks})"
    try:
        before = con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()
        con.execute(
            f"INSERT INTO {quote_ident(table)} ({cols}) SELECT {cols} FROM ({source}) "
            f"WHERE {where}",
            list(names),
        )
        after = con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{root}/{table}: cannot load it into the store ({first})") from None
    return int(after[0]) - int(before[0])  # type: ignore[index]


def append_runs(db: str | Path, out: str | Path, run_ids: Sequence[str]) -> list[str]:
    """Write the runs ``run_ids`` of the store ``db`` into the folder ``out`` (an export
    folder, or a new folder of run tables only) as ``TABLE/run-ID.parquet``, one file per run
    and table; a run already there is refused. Returns the files written."""
    import pyarrow.parquet as pq

    root = Path(out)
    written: list[str] = []
    with open_store(db) as store:
        for run_id in run_ids:
            if (root / "runs" / f"run-{run_id}.parquet").exists():
                raise InputError(f"{param('runs_out')} {root}: run {run_id} is already there")
            for table in ("runs", *RUN_TABLES):
                cols = ", ".join(quote_ident(c) for c in columns_of(table))
                # a cursor of its own: the store's connection may hold an unfinished result
                data = (
                    store.con.cursor()
                    .sql(
                        f"SELECT {cols} FROM {quote_ident(table)} WHERE run_id = ? ORDER BY ALL",
                        params=[run_id],
                    )
                    .to_arrow_table()
                )
                folder = root / table
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / f"run-{run_id}.parquet"
                pq.write_table(data, target)
                written.append(str(target))
    return written
