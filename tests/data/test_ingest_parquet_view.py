"""Parquet ingest validates through a view over the file and inserts from it (no staging copy).

Row numbers come from the Parquet reader (``file_row_number``) and must match the row order of
the file across row groups; a file that holds a column of that name falls back to the staging
table; a file changed between validation and insert is refused and the store stays unchanged.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import abkit.data.ingest as ingest_module
from abkit.data.ingest import ingest_file
from abkit.data.store import open_store
from abkit.errors import InputError
from tests.conftest import file_digest

T0 = datetime(2024, 3, 1, 12)


def _rows(db: Path, sql: str) -> list[tuple]:
    with open_store(db) as store:
        return store.con.execute(sql).fetchall()


def _impressions(n: int, *, bad_row: int | None = None, extra: dict | None = None) -> pa.Table:
    columns = {
        "ts": pa.array([T0 + timedelta(seconds=i) for i in range(n)], pa.timestamp("us")),
        "item_id": [f"i{i}" for i in range(n)],
        "position": [0 if i == bad_row else 1 + i % 3 for i in range(n)],
        "propensity": [0.25] * n,
        "click": [i % 2 for i in range(n)],
    }
    return pa.table({**columns, **(extra or {})})


def test_impression_ids_follow_file_order_across_row_groups(db_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "imps.parquet"
    pq.write_table(_impressions(7), path, row_group_size=2)
    result = ingest_file(path, db_path, preset="impressions")
    assert result.rows == 7
    assert _rows(db_path, "SELECT impression_id, item_id, ts FROM impressions ORDER BY 1") == [
        (i, f"i{i}", T0 + timedelta(seconds=i)) for i in range(7)
    ]


def test_bad_row_in_a_later_row_group_is_named(db_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "imps.parquet"
    pq.write_table(_impressions(9, bad_row=6), path, row_group_size=2)
    message = (
        f"{path}: row 7, column 'position': position 0 is not a slot number (expected 1, 2, ...)"
    )
    with pytest.raises(InputError, match=re.escape(message)):
        ingest_file(path, db_path, preset="impressions")
    assert not db_path.exists()


def test_a_column_named_file_row_number_falls_back_to_staging(
    db_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "imps.parquet"
    table = _impressions(5, extra={"file_row_number": [50, 40, 30, 20, 10]})
    pq.write_table(table, path, row_group_size=2)
    ingest_file(path, db_path, preset="impressions")
    assert _rows(db_path, "SELECT impression_id, item_id FROM impressions ORDER BY 1") == [
        (i, f"i{i}") for i in range(5)
    ]


def test_a_file_changed_during_the_ingest_is_refused(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_file(_write(tmp_path / "first.parquet", 3), db_path, preset="impressions")
    before = file_digest(db_path)
    path = _write(tmp_path / "imps.parquet", 4)
    insert_rows = ingest_module._insert_rows

    def insert_then_touch(*args, **kwargs):
        insert_rows(*args, **kwargs)
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    monkeypatch.setattr(ingest_module, "_insert_rows", insert_then_touch)
    message = f"{path}: the file changed while it was ingested; nothing was written"
    with pytest.raises(InputError, match=re.escape(message)):
        ingest_file(path, db_path, preset="impressions", dataset="second")
    assert file_digest(db_path) == before


def _write(path: Path, n: int) -> Path:
    pq.write_table(_impressions(n), path)
    return path


def _events(n: int, copies: dict[int, int]) -> pa.Table:
    """Events whose row ``i`` in ``copies`` repeats row ``copies[i]`` exactly."""
    base = [(f"u{i % 5}", f"i{i}", T0 + timedelta(seconds=i)) for i in range(n)]
    rows = [base[copies.get(i, i)] for i in range(n)]
    return pa.table(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "event_type": ["view"] * n,
            "ts": pa.array([r[2] for r in rows], pa.timestamp("us")),
        }
    )


def test_copies_are_found_through_the_view_across_row_groups(db_path: Path, tmp_path: Path) -> None:
    """Exact copies in a Parquet file (read through the view, rows numbered across row
    groups) are counted and named, kept without --dedupe; a clean file has none."""
    path = tmp_path / "events.parquet"
    pq.write_table(_events(12, {5: 1, 9: 1, 11: 3}), path, row_group_size=4)
    result = ingest_file(path, db_path)
    assert (result.duplicate_rows, result.first_duplicate_row) == (3, 6)
    assert result.warnings[0] == (
        f"{path}: 3 row(s) are exact copies of an earlier row (the first: row 6, a copy of row "
        "2); they are kept, as repeated events can be genuine: pass --dedupe to drop them"
    )
    assert _rows(db_path, "SELECT count(*) FROM events") == [(12,)]
    clean = tmp_path / "clean.parquet"
    pq.write_table(_events(12, {}), clean, row_group_size=4)
    result = ingest_file(clean, db_path, dataset="clean")
    assert (result.duplicate_rows, result.warnings) == (0, ())
