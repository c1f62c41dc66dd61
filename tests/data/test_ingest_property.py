"""Property: events written by ingest read back unchanged, for CSV and Parquet, header or not.

Ids, event types, timestamps (to the microsecond, whatever way the file writes them) and values
come back exactly as generated.
"""

from __future__ import annotations

import csv
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abkit.data.ingest import ingest_file
from abkit.data.schema import EVENT_TYPES
from abkit.data.store import open_store
from tests.data.strategies import event_value

# Ids may hold quotes, commas, spaces and non-ASCII text; not newlines (line 1 is sniffed for
# the delimiter and header) and not ':' or tabs (they would be taken for '::' / tab separators).
ID_ALPHABET = st.characters(
    codec="utf-8",
    exclude_categories=("Cc", "Cs", "Zl", "Zp"),
    exclude_characters=":\t",
)
ids = st.text(ID_ALPHABET, min_size=1, max_size=8)
EPOCH = datetime(1970, 1, 1)


@st.composite
def events(draw: st.DrawFn) -> dict:
    event_type = draw(st.sampled_from(EVENT_TYPES))
    value = event_value(draw, event_type)
    return {
        "user_id": draw(ids),
        "session_id": draw(st.none() | ids),
        "item_id": draw(st.none() | ids),
        "event_type": event_type,
        # From 1974 so that epoch milliseconds are all >= 1e11 (the documented unit rule).
        "ts": draw(st.datetimes(min_value=datetime(1974, 1, 1), max_value=datetime(2100, 1, 1))),
        "value": value,
    }


def _micros(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(microseconds=1)


def _ts_text(ts: datetime, style: str, offset_minutes: int) -> str:
    if style == "iso-z":
        return ts.isoformat() + "Z"
    if style == "iso-naive":
        return ts.isoformat(sep=" ")
    if style == "iso-naive-t":
        return ts.isoformat()
    if style == "iso-offset":
        zone = timezone(timedelta(minutes=offset_minutes))
        return ts.replace(tzinfo=timezone.utc).astimezone(zone).isoformat()
    micros = _micros(ts)
    if style == "epoch-s":
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
    return f"{micros // 1_000}.{micros % 1_000:03d}"  # epoch-ms


COLUMNS = ["user_id", "session_id", "item_id", "event_type", "ts", "value"]


def _write_csv(path: Path, rows: list[dict], header: bool, order: list[str], style: str, off: int):
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        if header:
            writer.writerow(order)
        for row in rows:
            cells = {
                **row,
                "ts": _ts_text(row["ts"], style, off),
                "value": "" if row["value"] is None else repr(row["value"]),
            }
            writer.writerow(["" if cells[c] is None else cells[c] for c in order])


def _write_parquet(path: Path, rows: list[dict], style: str, off: int) -> None:
    columns = {c: [r[c] for r in rows] for c in COLUMNS}
    table = {c: pa.array(columns[c], pa.string()) for c in ("user_id", "session_id", "item_id")}
    table["event_type"] = pa.array(columns["event_type"], pa.string())
    if style == "timestamp":
        table["ts"] = pa.array(columns["ts"], pa.timestamp("us"))
    elif style == "timestamptz":
        table["ts"] = pa.array(
            [t.replace(tzinfo=timezone.utc) for t in columns["ts"]], pa.timestamp("us", tz="UTC")
        )
    elif style == "epoch-us-as-ms":
        # Integer milliseconds lose the microseconds: compare at millisecond precision below.
        table["ts"] = pa.array([_micros(t) // 1000 for t in columns["ts"]], pa.int64())
    else:
        table["ts"] = pa.array([_ts_text(t, style, off) for t in columns["ts"]], pa.string())
    table["value"] = pa.array(columns["value"], pa.float64())
    pq.write_table(pa.table(table), path)


@pytest.mark.slow  # a property search: ingest, read back, compare
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(events(), min_size=1, max_size=15),
    file_format=st.sampled_from(["csv", "csv-no-header", "csv.gz", "parquet"]),
    csv_style=st.sampled_from(
        ["iso-z", "iso-naive", "iso-naive-t", "iso-offset", "epoch-s", "epoch-ms"]
    ),
    parquet_style=st.sampled_from(["timestamp", "timestamptz", "iso-offset", "epoch-us-as-ms"]),
    offset_minutes=st.integers(min_value=-12 * 60, max_value=14 * 60),
    order=st.permutations(COLUMNS),
)
def test_events_round_trip(
    rows, file_format, csv_style, parquet_style, offset_minutes, order
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        db = base / "store.duckdb"
        expected_ts = [r["ts"] for r in rows]
        if file_format == "parquet":
            path = base / "events.parquet"
            _write_parquet(path, rows, parquet_style, offset_minutes)
            if parquet_style == "epoch-us-as-ms":
                expected_ts = [
                    t.replace(microsecond=t.microsecond // 1000 * 1000) for t in expected_ts
                ]
        else:
            header = file_format != "csv-no-header"
            path = base / ("events.csv.gz" if file_format == "csv.gz" else "events.csv")
            plain = base / "plain.csv"
            _write_csv(plain, rows, header, order if header else COLUMNS, csv_style, offset_minutes)
            if file_format == "csv.gz":
                import gzip

                path.write_bytes(gzip.compress(plain.read_bytes()))
            else:
                plain.rename(path)

        result = ingest_file(path, db, dataset="prop", preset="events")

        assert result.rows == len(rows)
        with open_store(db) as store:
            stored = store.con.execute(
                "SELECT user_id, session_id, item_id, event_type, ts, value FROM events"
            ).fetchall()
        expected = [
            (r["user_id"], r["session_id"], r["item_id"], r["event_type"], ts, r["value"])
            for r, ts in zip(rows, expected_ts, strict=True)
        ]
        assert stored == expected
