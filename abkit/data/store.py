"""The traffic store: one DuckDB file holding datasets, experiments and replay runs.

Open it with :func:`open_store`. Opening turns DuckDB's low-level failures into one-line
:class:`~abkit.errors.StoreError` messages (not a database, locked by another process, a
schema of another version), and a write that fails inside :meth:`Store.transaction` leaves the
data as it was and gives back the space it took in the file (or, on a full disk, says how that
space comes back).

DuckDB lets one process at a time open a file for writing, and none while another process has
it open at all (a notebook's read-only connection blocks writers too). Commands that work for
seconds before they write (simulate, ingest, replay) call :func:`check_writable` first, so a
locked store fails before the work rather than after it, and pass ``wait`` to retry the lock
(every :data:`LOCK_POLL_SECONDS`) until a deadline. Opening for writing also removes the
temporary files that a killed abkit process left next to the store
(:func:`remove_stale_temp_files`).
"""

from __future__ import annotations

import glob
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from abkit import __version__
from abkit._util import unknown_choice
from abkit.data.schema import SCHEMA_VERSION, TABLES, create_statements
from abkit.data.sql import quote_ident
from abkit.errors import (
    AbkitError,
    AbkitWarning,
    InputError,
    StoreError,
    StoreLockedError,
    param,
)

if TYPE_CHECKING:
    import duckdb

    T = TypeVar("T")

DEFAULT_DB = "abkit.duckdb"
DB_ENV_VAR = "ABKIT_DB"

_LOCK_PID = re.compile(r"PID (\d+)")

#: How often a ``wait`` retries a locked store.
LOCK_POLL_SECONDS = 0.2

#: Kinds of private temporary files written next to a store, ``.NAME.KIND-PID.tmp`` (and the
#: DuckDB ``.wal`` of one); only :mod:`abkit.simulate` stages through one today.
TEMP_FILE_KINDS = ("simulate",)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _kept_message(path: Path, exc: Exception, kept: int) -> str:
    """``exc`` as one line, and the space that a failed write left inside the store file."""
    space = (
        f"{path} kept the {kept / 1e6:.1f} MB that the failed write took, as free space inside "
        "it: the next abkit write to it gives them back once its disk has room"
    )
    if isinstance(exc, AbkitError):
        return f"{exc.message}; {space}"
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"{path}: writing failed ({first}); nothing was written, but {space}"


def default_db_path() -> Path:
    """``$ABKIT_DB`` when set, else ``./abkit.duckdb``."""
    return Path(os.environ.get(DB_ENV_VAR) or DEFAULT_DB)


def _holder(pid: str) -> str:
    """Describe the process holding a lock: its PID and, when readable, its command line."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"process {pid}"
    words = [w for w in raw.decode(errors="replace").split("\x00") if w]
    # Show "abkit simulate ..." rather than ".../python .../bin/abkit simulate ..."
    for i, word in enumerate(words):
        if Path(word).name == "abkit" or word.endswith("abkit.cli.main"):
            words = ["abkit", *words[i + 1 :]]
            break
    # one line: a `python -c` holder's script carries newlines (and tabs) of its own
    command = " ".join(" ".join(words).split())[:80]
    return f"process {pid} ({command})" if command else f"process {pid}"


def _translate_open_error(path: Path, exc: Exception, *, waited: float = 0.0) -> StoreError:
    text = str(exc)
    if "Could not set lock" in text or "Conflicting lock" in text:
        match = _LOCK_PID.search(text)
        who = _holder(match.group(1)) if match else "another process"
        if waited > 0:
            return StoreLockedError(
                f"{path}: the database is still locked by {who} after waiting {waited:g} s; "
                f"try again when it has finished or pass another {param('db')}",
                path=str(path),
                holder=who,
            )
        return StoreLockedError(
            f"{path}: the database is locked by {who}; wait for it to finish or pass another "
            f"{param('db')}",
            path=str(path),
            holder=who,
        )
    if "not a valid DuckDB database" in text or "Serialization Error" in text:
        return StoreError(f"{path}: not a DuckDB database (expected a store written by abkit)")
    if "older" in text or "newer" in text or "version" in text.lower():
        return StoreError(f"{path}: written by an incompatible DuckDB version ({text.strip()})")
    return StoreError(f"{path}: cannot open the database ({text.strip().splitlines()[0]})")


class Store:
    """An open abkit store. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, *, read_only: bool) -> None:
        self.path = path
        self.con = con
        self.read_only = read_only

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: commit when the block ends, roll back when it raises.

        DuckDB writes a large transaction's rows into the file before it commits; a rollback
        keeps the file at its grown size (the blocks stay inside it, free). So after a failed
        block that grew the file, the space is given back at once (:meth:`_give_back`); when
        that cannot be done (a full disk: even the checkpoint needs a few bytes), the error
        says how many MB the file kept and how they come back.
        """
        size = _file_size(self.path)
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except Exception as exc:
            self.con.execute("ROLLBACK")
            self._refused(exc, size)
            raise
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        try:
            self.con.execute("COMMIT")  # a failed commit is rolled back by DuckDB itself
        except Exception as exc:
            self._refused(exc, size)
            raise

    def _refused(self, exc: Exception, size: int) -> None:
        """After a rolled-back write: give back the space it took, or say how it comes back."""
        kept = _file_size(self.path) - size
        if kept > 0:
            kept = self._give_back(size)
        if kept > 0:
            raise StoreError(_kept_message(self.path, exc, kept)) from exc

    def _give_back(self, size: int) -> int:
        """Shrink the file back after a rollback; returns the bytes it still has over ``size``.

        A checkpoint that writes the catalog truncates the free blocks at the file's end: a
        table created and dropped in one transaction is such a change, invisible otherwise.
        """
        import duckdb

        try:
            (db,) = self.con.execute("SELECT current_database()").fetchone()  # type: ignore[misc]
            scratch = f"{quote_ident(db)}.main.{quote_ident(f'abkit_give_back_{os.getpid()}')}"
            self.con.execute("BEGIN TRANSACTION")
            try:
                self.con.execute(f"CREATE TABLE {scratch} (x INTEGER)")
                self.con.execute(f"DROP TABLE {scratch}")
                self.con.execute("COMMIT")
            except duckdb.Error:
                self.con.execute("ROLLBACK")
                raise
            self.con.execute(f"CHECKPOINT {quote_ident(db)}")
        except duckdb.Error:
            pass  # a full disk: the message says how the space comes back
        return _file_size(self.path) - size

    # -- datasets ---------------------------------------------------------------------------

    def datasets(self) -> list[str]:
        rows = self.con.execute("SELECT dataset FROM datasets ORDER BY dataset").fetchall()
        return [r[0] for r in rows]

    def resolve_dataset(self, name: str | None) -> str:
        """The dataset called ``name``; with ``None``, the only dataset in the file."""
        names = self.datasets()
        if name is None:
            if len(names) == 1:
                return names[0]
            if not names:
                raise StoreError(
                    f"{self.path}: the store holds no dataset yet; "
                    "add one with `abkit simulate` or `abkit ingest`"
                )
            raise StoreError(
                f"{self.path}: holds several datasets ({', '.join(names)}); "
                f"choose one with {param('dataset')}"
            )
        if name not in names:
            raise StoreError(f"{self.path}: " + unknown_choice("dataset", name, names))
        return name

    def has_dataset(self, name: str) -> bool:
        row = self.con.execute("SELECT count(*) FROM datasets WHERE dataset = ?", [name])
        return bool(row.fetchone()[0])  # type: ignore[index]

    def add_dataset(
        self, name: str, *, source: str, unit: str = "user", params: str = "{}"
    ) -> None:
        """Register a dataset (inside the caller's transaction)."""
        self.con.execute(
            "INSERT INTO datasets VALUES (?, ?, ?, ?, ?)",
            [name, source, unit, params, utcnow()],
        )

    def drop_dataset(self, name: str) -> None:
        """Delete a dataset and everything derived from it (runs included), atomically."""
        with self.transaction() as con:
            self._delete_runs(con, "dataset = ?", [name])
            for table in _DATASET_TABLES:
                con.execute(f"DELETE FROM {quote_ident(table)} WHERE dataset = ?", [name])

    def drop_runs(self, dataset: str, *, name_prefix: str) -> int:
        """Delete the runs of ``dataset`` whose name starts with ``name_prefix``; their count."""
        with self.transaction() as con:
            return self._delete_runs(
                con, "dataset = ? AND starts_with(name, ?)", [dataset, name_prefix]
            )

    @staticmethod
    def _delete_runs(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> int:
        """Delete the runs matching ``where`` (a fixed SQL condition on ``runs``) and their rows."""
        ids = [
            r[0] for r in con.execute(f"SELECT run_id FROM runs WHERE {where}", params).fetchall()
        ]
        if ids:
            for table in ("run_user_metrics", "run_estimates", "run_rounds", "runs"):
                con.execute(
                    f"DELETE FROM {quote_ident(table)} WHERE list_contains(?, run_id)", [ids]
                )
        return len(ids)


# Tables keyed by dataset; children first so a future foreign key would not object.
_DATASET_TABLES = (
    "runs",
    "truth",
    "items",
    "experiments",
    "assignments",
    "impression_features",
    "impressions",
    "events",
    "ingests",
    "datasets",
)


def utcnow() -> datetime:
    """The current UTC time as a naive timestamp (DuckDB TIMESTAMP columns are UTC)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()
    return {r[0] for r in rows}


def _check_schema(path: Path, con: duckdb.DuckDBPyConnection) -> None:
    tables = _tables(con)
    if "abkit_meta" not in tables:
        raise StoreError(
            f"{path}: a DuckDB database but not an abkit store (it has no abkit_meta table)"
        )
    row = con.execute("SELECT value FROM abkit_meta WHERE key = 'schema_version'").fetchone()
    found = int(row[0]) if row else -1
    if found != SCHEMA_VERSION:
        raise StoreError(
            f"{path}: store schema version {found}, but this abkit reads version "
            f"{SCHEMA_VERSION}; re-create it with this version of abkit"
        )
    missing = set(TABLES) - tables
    if missing:
        raise StoreError(f"{path}: damaged store, missing tables: {', '.join(sorted(missing))}")


def _initialise(con: duckdb.DuckDBPyConnection) -> None:

    con.execute("BEGIN TRANSACTION")
    for statement in create_statements():
        con.execute(statement)
    con.execute(
        "INSERT INTO abkit_meta VALUES ('schema_version', ?), ('created_by', ?)",
        [str(SCHEMA_VERSION), f"abkit {__version__}"],
    )
    con.execute("COMMIT")


def _check_path(db_path: Path, *, write: bool) -> bool:
    """Refuse paths that cannot be a store; return whether the file exists."""
    if db_path.is_dir():
        raise StoreError(f"{db_path}: is a directory, expected a DuckDB file")
    exists = db_path.exists()
    if not exists and not write:
        raise StoreError(
            f"{db_path}: no such database; create one with `abkit simulate` or `abkit ingest`"
        )
    if not exists and not db_path.parent.exists():
        raise StoreError(f"{db_path}: folder {db_path.parent} does not exist")
    return exists


def _ensure_schema(con: duckdb.DuckDBPyConnection, db_path: Path, *, write: bool) -> None:
    """Create the schema in a new or empty file (when writing), then check its version."""
    if write and not _tables(con):
        _initialise(con)  # a new file, or an empty DuckDB file (e.g. from `duckdb x.duckdb`)
    _check_schema(db_path, con)


def check_wait(wait: float) -> float:
    """``wait`` (seconds to retry a locked store) if it is a number >= 0."""
    if not wait >= 0:  # also refuses NaN
        raise InputError(f"--wait must be a number of seconds >= 0, got {wait:g}")
    return float(wait)


def _retry_locked(db_path: Path, wait: float, attempt: Callable[[], T]) -> T:
    """``attempt()`` (a DuckDB open), retried while the file is locked, until ``wait`` seconds
    have passed; DuckDB errors become one-line :class:`StoreError` messages."""
    import duckdb

    deadline = time.monotonic() + check_wait(wait)
    told = False
    while True:
        try:
            return attempt()
        except duckdb.Error as exc:
            error = _translate_open_error(db_path, exc, waited=wait)
        left = deadline - time.monotonic()
        if not isinstance(error, StoreLockedError) or left <= 0:
            raise error
        if not told:  # say why nothing happens for a while
            warnings.warn(
                AbkitWarning(
                    f"{db_path}: locked by {error.holder}; waiting up to {wait:g} s for it"
                ),
                stacklevel=3,
            )
            told = True
        time.sleep(min(LOCK_POLL_SECONDS, left))


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (when unsure: alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. another user's process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def remove_stale_temp_files(
    path: str | Path, *, include_pid: int | None = None, warn: bool = True
) -> list[Path]:
    """Remove the temporary files that dead abkit processes left next to the store ``path``.

    They are ``.NAME.KIND-PID.tmp`` and its ``.wal`` (:data:`TEMP_FILE_KINDS`), e.g. the
    staging store of a ``kill -9``-ed ``abkit simulate``. A file is removed only when its
    process is gone (a live process's file is never touched; a PID reused by another live
    process keeps it too), or when ``include_pid`` names its PID (the caller's own PID: a
    file it has not created yet can only be stale). Warns (:class:`AbkitWarning`, one line
    naming the files) when ``warn`` and something was removed; returns the removed paths.
    """
    db_path = Path(path)
    pattern = re.compile(
        rf"^\.{re.escape(db_path.name)}\.(?:{'|'.join(TEMP_FILE_KINDS)})-(\d+)\.tmp(?:\.wal)?$"
    )
    removed: list[Path] = []
    size = 0
    try:
        candidates = sorted(db_path.parent.glob(f".{glob.escape(db_path.name)}.*.tmp*"))
    except OSError:
        return removed
    for candidate in candidates:
        match = pattern.match(candidate.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != include_pid and _pid_alive(pid):
            continue
        try:
            found = candidate.stat().st_size
            candidate.unlink()
        except FileNotFoundError:
            continue  # another process cleaned up first
        except OSError:
            continue  # not ours to remove (permissions): leave it
        removed.append(candidate)
        size += found
    if removed and warn:
        names = ", ".join(p.name for p in removed)
        warnings.warn(
            AbkitWarning(
                f"{db_path.parent}: removed temporary files left by a killed abkit process "
                f"({size / 1e6:.1f} MB): {names}"
            ),
            stacklevel=2,
        )
    return removed


@contextmanager
def discard_if_new(path: Path) -> Iterator[None]:
    """A store file that did not exist before the block is removed (with its WAL) when the
    block fails, so a refused command that created it leaves no file behind. A lock error is
    let through untouched: another process holds the file, and may just have created it."""
    existed = path.exists()
    try:
        yield
    except StoreLockedError:
        raise
    except BaseException:
        if not existed:
            for leftover in (path, path.with_name(path.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise


def check_writable(path: str | Path | None = None, *, wait: float = 0.0) -> Path:
    """Fail now, not after minutes of work, when the store cannot be written.

    Opens the store at ``path`` for writing and closes it again (the file's bytes stay as
    they are), retrying a lock for up to ``wait`` seconds, checks the schema of an existing
    store, and removes stale temporary files of killed processes next to it
    (:func:`remove_stale_temp_files`). A missing file passes when its folder exists: it is
    created by the write. Returns the resolved path. The lock is not kept: a process may
    still take it before the caller writes, which the caller's own ``open_store(...,
    wait=...)`` then reports.
    """
    import duckdb

    db_path = Path(path) if path is not None else default_db_path()
    check_wait(wait)
    if not _check_path(db_path, write=True):
        remove_stale_temp_files(db_path)
        return db_path
    con = _retry_locked(db_path, wait, lambda: duckdb.connect(str(db_path), read_only=False))
    try:
        if _tables(con):  # an empty DuckDB file is initialised by the write itself
            _check_schema(db_path, con)
    finally:
        con.close()
    remove_stale_temp_files(db_path)
    return db_path


def open_store(path: str | Path | None = None, *, write: bool = False, wait: float = 0.0) -> Store:
    """Open the store at ``path`` (default :func:`default_db_path`).

    ``write=False`` opens read-only and requires an existing abkit store. ``write=True``
    creates the file and its schema when missing, and removes stale temporary files of
    killed processes next to it (:func:`remove_stale_temp_files`). While another process
    holds a conflicting lock, the open is retried every :data:`LOCK_POLL_SECONDS` for up to
    ``wait`` seconds. Raises :class:`StoreError` (or :class:`StoreLockedError`, naming the
    holder) with a one-line message on any failure.
    """
    import duckdb

    db_path = Path(path) if path is not None else default_db_path()
    _check_path(db_path, write=write)
    con = _retry_locked(db_path, wait, lambda: duckdb.connect(str(db_path), read_only=not write))
    try:
        _ensure_schema(con, db_path, write=write)
    except BaseException:
        con.close()
        raise
    if write:
        remove_stale_temp_files(db_path)
    return Store(db_path, con, read_only=not write)


def attach_store(
    con: duckdb.DuckDBPyConnection, path: str | Path, alias: str, *, wait: float = 0.0
) -> Store:
    """Attach the store at ``path`` for writing to an existing connection and make it current.

    Used by ingest, which stages and validates a file in an in-memory database first and
    then copies it into the store on the same connection. Same checks (and ``wait``) as
    :func:`open_store`.
    """
    db_path = Path(path)
    _check_path(db_path, write=True)
    _retry_locked(
        db_path, wait, lambda: con.execute(f"ATTACH ? AS {quote_ident(alias)}", [str(db_path)])
    )
    con.execute(f"USE {quote_ident(alias)}")
    _ensure_schema(con, db_path, write=True)
    remove_stale_temp_files(db_path)
    return Store(db_path, con, read_only=False)
