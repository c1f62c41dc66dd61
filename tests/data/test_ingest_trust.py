"""Ingest refuses or reports data that would silently mislead (the "trust" items).

Whole numbers only in integer columns (CSV and Parquet), exact duplicate rows counted, kept
with a warning or dropped by ``dedupe``, implausible timestamps warned about, and the designed
split taken as percentages or fractions in the library too. Messages are checked exactly.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abkit.data.ingest import PLAUSIBLE_TS_FROM, ingest_file
from abkit.data.store import open_store
from abkit.errors import InputError
from tests.conftest import file_digest

IMPRESSIONS = ["ts", "item_id", "position", "propensity", "click", "conversion"]


def _rows(db: Path, sql: str) -> list[tuple]:
    with open_store(db) as store:
        return store.con.execute(sql).fetchall()


def _write(path: Path, header: list[str], rows: list[list]) -> Path:
    """The rows as CSV (every value written with str) or, for a .parquet path, as Parquet with
    the types pyarrow infers from the Python values."""
    if path.suffix == ".parquet":
        columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
        pq.write_table(pa.table(columns), path)
    else:
        lines = [",".join(header)] + [
            ",".join("" if v is None else str(v) for v in r) for r in rows
        ]
        path.write_text("\n".join(lines) + "\n")
    return path


# -- whole numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("click", 0.5, "expected 0 or 1, found 0.5"),
        ("click", 0.7, "expected 0 or 1, found 0.7"),
        ("conversion", 0.5, "expected 0 or 1, found 0.5"),
        ("position", 1.5, "position 1.5 is not a slot number (expected 1, 2, ...)"),
    ],
)
def test_fractions_in_integer_columns_are_refused(
    db_path, tmp_path, suffix, column, value, message
) -> None:
    good = {"ts": "2024-01-01", "item_id": "i1", "position": 1.0, "propensity": 0.5}
    good |= {"click": 1.0, "conversion": 0.0}
    bad = good | {column: value}
    path = _write(
        tmp_path / f"imps{suffix}", IMPRESSIONS, [list(good.values())] * 6 + [list(bad.values())]
    )
    with pytest.raises(InputError) as info:
        ingest_file(path, db_path)
    assert str(info.value) == f"{path}: row 7, column '{column}': {message}"
    assert not db_path.exists()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_whole_numbers_written_as_floats_are_accepted(db_path, tmp_path, suffix) -> None:
    # 1.0 is the whole number 1 (pandas writes integer columns with a NaN as floats)
    path = _write(
        tmp_path / f"imps{suffix}",
        ["impression_id", *IMPRESSIONS],
        [
            [7.0, "2024-01-01", "i1", 2.0, 0.5, 1.0, 0.0],
            [8.0, "2024-01-01", "i2", 1.0, 0.5, 0.0, 1.0],
        ],
    )
    result = ingest_file(path, db_path)
    assert result.clicks == 1
    assert _rows(db_path, "SELECT impression_id, position, click, conversion FROM impressions") == [
        (7, 2, 1, 0),
        (8, 1, 0, 1),
    ]


def test_a_fraction_in_impression_id_is_refused(db_path, tmp_path) -> None:
    path = _write(
        tmp_path / "imps.parquet",
        ["impression_id", *IMPRESSIONS],
        [[1.0, "2024-01-01", "i1", 1, 0.5, 1, 0], [1.5, "2024-01-01", "i1", 1, 0.5, 1, 0]],
    )
    with pytest.raises(InputError) as info:
        ingest_file(path, db_path)
    assert (
        str(info.value)
        == f"{path}: row 2, column 'impression_id': expected a whole number, found 1.5"
    )


def test_text_that_is_no_number_still_says_cannot_parse(db_path, tmp_path) -> None:
    path = _write(tmp_path / "imps.csv", IMPRESSIONS[:5], [["2024-01-01", "i1", 1, 0.5, "yes"]])
    with pytest.raises(InputError) as info:
        ingest_file(path, db_path)
    assert str(info.value) == f"{path}: row 1, column 'click': cannot parse 'yes' as 0 or 1"


# -- exact duplicate rows ------------------------------------------------------------------------

EVENTS = ["user_id", "variant", "event_type", "ts", "item_id", "value"]
# Row 1 is unique, rows 2-501 are one purchase repeated 500 times, rows 502-503 are unique.
DUPLICATED = (
    [["u0", "A", "view", "2024-01-01T00:00:00", "i0", None]]
    + [["u1", "A", "purchase", "2024-01-02T00:00:00", "i1", 5.0]] * 500
    + [["u2", "B", "view", "2024-01-03T00:00:00", "i2", None]]
    + [["u2", "B", "view", "2024-01-03T00:00:01", "i2", None]]  # not a copy: one second later
)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_duplicate_rows_are_kept_and_warned_about(db_path, tmp_path, suffix) -> None:
    path = _write(tmp_path / f"events{suffix}", EVENTS, DUPLICATED)
    result = ingest_file(path, db_path)
    assert (result.rows, result.duplicate_rows, result.first_duplicate_row) == (503, 499, 3)
    assert result.duplicates_dropped == 0
    assert result.duplicates_skipped == 0  # about assignments, not rows (see IngestResult)
    assert result.warnings == (
        f"{path}: 499 row(s) are exact copies of an earlier row (the first: row 3, a copy of "
        "row 2); they are kept, as repeated events can be genuine: pass --dedupe to drop them",
    )
    assert _rows(db_path, "SELECT count(*), sum(value) FROM events") == [(503, 2500.0)]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_dedupe_drops_the_copies_and_keeps_the_first(db_path, tmp_path, suffix) -> None:
    path = _write(tmp_path / f"events{suffix}", EVENTS, DUPLICATED)
    result = ingest_file(path, db_path, dedupe=True)
    assert (result.rows, result.duplicate_rows, result.duplicates_dropped) == (4, 499, 499)
    assert result.first_duplicate_row == 3
    assert result.warnings == ()
    assert (result.users, result.assignments_added) == (3, 3)
    assert _rows(db_path, "SELECT user_id, event_type, value FROM events ORDER BY ts") == [
        ("u0", "view", None),
        ("u1", "purchase", 5.0),
        ("u2", "view", None),
        ("u2", "view", None),
    ]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_dedupe_of_impressions_recounts_clicks_and_keeps_row_numbers(
    db_path, tmp_path, suffix
) -> None:
    row = ["2024-01-01", "i1", 1, 0.5, 1, 0]
    other = ["2024-01-02", "i2", 2, 0.5, 0, 0]
    path = _write(tmp_path / f"imps{suffix}", IMPRESSIONS, [row, row, other, row])
    result = ingest_file(path, db_path, dedupe=True)
    assert (result.rows, result.clicks, result.duplicates_dropped) == (2, 1, 2)
    # Impression ids made from row numbers stay those of the file (rows 1 and 3).
    assert _rows(db_path, "SELECT impression_id, item_id FROM impressions ORDER BY 1") == [
        (0, "i1"),
        (2, "i2"),
    ]


def test_dedupe_before_the_impression_id_check(db_path, tmp_path) -> None:
    row = [5, "2024-01-01", "i1", 1, 0.5, 1, 0]
    path = _write(tmp_path / "imps.csv", ["impression_id", *IMPRESSIONS], [row, row])
    with pytest.raises(InputError) as info:
        ingest_file(path, db_path)
    assert str(info.value) == (
        f"{path}: row 2, column 'impression_id': impression id 5 appears twice (the file has 1 "
        "exact duplicate row(s): --dedupe drops them)"
    )
    result = ingest_file(path, db_path, dedupe=True)
    assert (result.rows, result.duplicates_dropped) == (1, 1)


def test_a_file_without_copies_reports_none(db_path, tmp_path) -> None:
    path = _write(tmp_path / "events.csv", EVENTS, DUPLICATED[:2] + DUPLICATED[-2:])
    result = ingest_file(path, db_path)
    assert (result.duplicate_rows, result.first_duplicate_row, result.warnings) == (0, None, ())


# -- implausible timestamps ----------------------------------------------------------------------


def _ts_file(tmp_path: Path, values: list[str]) -> Path:
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,event_type,ts\n" + "".join(f"u{i},view,{v}\n" for i, v in enumerate(values))
    )
    return path


def test_placeholder_years_are_stored_with_a_warning(db_path, tmp_path) -> None:
    path = _ts_file(tmp_path, ["2024-01-01", "0001-01-01", "2024-01-02", "9999-12-31 23:59:59"])
    result = ingest_file(path, db_path)
    assert (result.rows, result.implausible_ts_rows, result.first_implausible_ts_row) == (4, 2, 2)
    assert result.warnings == (
        f"{path}: 2 row(s) have an implausible timestamp (before 1990-01-01 or more than 1 day in "
        "the future); the first is row 2, column 'ts': '0001-01-01'; they are stored as they are",
    )
    assert result.ts_min == datetime(1, 1, 1)
    assert _rows(db_path, "SELECT count(*) FROM events") == [(4,)]


def test_epoch_zero_warns_and_asks_about_the_unit(db_path, tmp_path) -> None:
    path = _ts_file(tmp_path, ["1709287200", "0"])
    result = ingest_file(path, db_path)
    assert result.implausible_ts_rows == 1
    assert result.warnings[0].endswith(
        "the first is row 2, column 'ts': '0'; they are stored as they are (is --ts-unit right?)"
    )


def test_the_plausible_range_bounds(db_path, tmp_path) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # the store's naive UTC
    soon, later = now + timedelta(hours=12), now + timedelta(days=3)
    inside = [PLAUSIBLE_TS_FROM.isoformat(), soon.isoformat(timespec="seconds")]
    assert ingest_file(_ts_file(tmp_path, inside), db_path).warnings == ()
    outside = [(PLAUSIBLE_TS_FROM - timedelta(seconds=1)).isoformat(), later.isoformat()]
    result = ingest_file(_ts_file(tmp_path, outside), db_path, dataset="out")
    assert (result.implausible_ts_rows, result.first_implausible_ts_row) == (2, 1)


def test_infinity_is_not_a_timestamp(db_path, tmp_path) -> None:
    path = _ts_file(tmp_path, ["2024-01-01", "-infinity"])
    with pytest.raises(InputError, match=r"row 2, column 'ts': cannot parse '-infinity' as a"):
        ingest_file(path, db_path)
    assert not db_path.exists()


# -- the designed split in the library -----------------------------------------------------------


@pytest.mark.parametrize(
    ("split", "stored"),
    [((50, 50), [0.5, 0.5]), ((0.25, 0.75), [0.25, 0.75]), ({"B": 40, "A": 60}, [0.6, 0.4])],
)
def test_split_as_percentages_or_fractions(db_path, tmp_path, split, stored) -> None:
    path = _write(
        tmp_path / "events.csv",
        EVENTS,
        [
            ["u1", "A", "view", "2024-01-01", "i1", None],
            ["u2", "B", "view", "2024-01-01", "i1", None],
        ],
    )
    ingest_file(path, db_path, split=split)
    assert _rows(db_path, "SELECT split FROM experiments") == [(stored,)]


def test_split_that_does_not_sum_is_refused_and_writes_nothing(db_path, tmp_path) -> None:
    path = _write(
        tmp_path / "events.csv",
        EVENTS,
        [
            ["u1", "A", "view", "2024-01-01", "i1", None],
            ["u2", "B", "view", "2024-01-01", "i1", None],
        ],
    )
    ingest_file(path, db_path, dataset="before", split=(0.5, 0.5))
    before = file_digest(db_path)
    with pytest.raises(InputError) as info:
        ingest_file(path, db_path, dataset="after", split=(50, 40))
    assert str(info.value) == (
        "--split 50/40: the shares sum to 90; expected percentages that sum to 100 (e.g. 50/50) "
        "or fractions that sum to 1 (e.g. 0.5/0.5)"
    )
    assert file_digest(db_path) == before


def test_map_finds_a_parquet_column_whose_name_has_spaces(db_path, tmp_path) -> None:
    # Parquet names keep their spaces, --map values are stripped: found by the stripped name.
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({" who ": ["u1"], "event_type": ["view"], "ts": ["2024-01-01"]}), path)
    result = ingest_file(path, db_path, mapping={"user_id": "who"})
    assert dict(result.columns)["user_id"] == " who "


def test_an_empty_text_id_in_parquet_is_empty(db_path, tmp_path) -> None:
    # A CSV reads an empty cell as NULL; Parquet text can be '': both are an empty user id.
    path = tmp_path / "events.parquet"
    pq.write_table(
        pa.table({"user_id": ["u1", ""], "event_type": ["view"] * 2, "ts": ["2024-01-01"] * 2}),
        path,
    )
    with pytest.raises(InputError) as info:
        ingest_file(path, db_path)
    assert str(info.value) == f"{path}: row 2, column 'user_id': empty (expected a user id)"
