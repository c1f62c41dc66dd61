"""Ingest's ISO timestamp parse: the fast paths give what the plain rules say, on every input.

``_Plan._add_ts`` sends zone-less text through a cast to TIMESTAMP, everything else through a
cast to TIMESTAMPTZ, and keeps ``try_strptime`` as the fallback (for speed: a failed
``try_strptime`` is slow in DuckDB). These tests pin that (1) offsets and zone names are never
dropped, with expected values from Python's ``zoneinfo``, and (2) on generated text the
expression equals the simple rule it replaced: ``coalesce(try_strptime(text, formats),
CAST(TRY_CAST(text AS TIMESTAMPTZ) AS TIMESTAMP))``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abkit.data.ingest import _NAIVE_FORMATS, _TS_HINT, _Plan, _Source, ingest_file
from abkit.data.presets import PRESETS
from abkit.data.store import open_store
from abkit.errors import InputError


def _utc(text: str, zone: str) -> datetime:
    local = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))
    return local.astimezone(timezone.utc).replace(tzinfo=None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01 12:00:00", datetime(2024, 3, 1, 12)),
        ("2024-03-01T12:00:00.25", datetime(2024, 3, 1, 12, 0, 0, 250000)),
        ("2024-03-01", datetime(2024, 3, 1)),
        ("2024-03-01 12:00", datetime(2024, 3, 1, 12)),
        ("2024-3-1", datetime(2024, 3, 1)),
        ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12)),
        ("2024-03-01T12:00:00.5+02:00", datetime(2024, 3, 1, 10, 0, 0, 500000)),
        ("2024-03-01 12:00:00-0530", datetime(2024, 3, 1, 17, 30)),
        ("2024-03-01 12:00:00+02", datetime(2024, 3, 1, 10)),
        ("2024-03-01 12:00:00 Europe/Paris", _utc("2024-03-01 12:00:00", "Europe/Paris")),
        ("2024-07-01 12:00:00 America/New_York", _utc("2024-07-01 12:00:00", "America/New_York")),
        ("2024-03-01 12:00:00 UTC", datetime(2024, 3, 1, 12)),
    ],
)
def test_offsets_and_zone_names_are_applied(db_path: Path, tmp_path: Path, text, expected) -> None:
    path = tmp_path / "t.csv"
    path.write_text(f"user_id,event_type,ts\nu,view,{text}\n")
    ingest_file(path, db_path)
    with open_store(db_path) as store:
        assert store.con.execute("SELECT ts FROM events").fetchall() == [(expected,)]


@pytest.mark.parametrize("text", ["2024-03-01 12:00:00 +02:00", "2024-03-01 12:00:00 Mars/Olympus"])
def test_unknown_zone_text_is_refused_not_dropped(db_path: Path, tmp_path: Path, text) -> None:
    path = tmp_path / "t.csv"
    path.write_text(f"user_id,event_type,ts\nu,view,2024-03-01\nu,view,{text}\n")
    message = f"{path}: row 2, column 'ts': cannot parse '{text}' as a timestamp ({_TS_HINT})"
    with pytest.raises(InputError, match=re.escape(message)):
        ingest_file(path, db_path)
    assert not db_path.exists()


def _ts_expression() -> str:
    source = _Source(
        path=Path("t.csv"),
        file_format="csv",
        header=True,
        delimiter=",",
        columns=("user_id", "event_type", "s"),
        types={"user_id": "VARCHAR", "event_type": "VARCHAR", "s": "VARCHAR"},
    )
    resolved = {"user_id": "user_id", "event_type": "event_type", "ts": "s"}
    plan = _Plan(source, resolved, PRESETS["events"].columns, {}, "iso", "auto", lambda c, r: "")
    return next(s for s in plan.select if s.endswith(" AS ts"))[: -len(" AS ts")]


_FORMATS = ", ".join(f"'{f}'" for f in _NAIVE_FORMATS)
_SIMPLE_RULE = (
    f"coalesce(try_strptime(s, [{_FORMATS}]), CAST(TRY_CAST(s AS TIMESTAMPTZ) AS TIMESTAMP))"
)


def _two(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(lambda v: f"{v:02d}")


# Offsets, zone names, eras and junk a TIMESTAMP cast would drop or misread.
_ZONE_SUFFIXES = [
    "",
    "Z",
    "z",
    "+02",
    "+02:00",
    "-0530",
    "+02:00:30",
    " +02:00",
    " UTC",
    "UTC",
    " Europe/Paris",
    "GMT0",
    " BC",
    " AD",
    " EST",
    "x",
    " 1",
    "+99",
    " Etc/GMT+5",
]

_timestamp_text = st.builds(
    lambda y, mo, d, sep, h, mi, sec, frac, zone, pad: (
        f"{pad}{y}-{mo}-{d}" + (f"{sep}{h}:{mi}{sec}{frac}" if sep is not None else "") + zone
    ),
    st.sampled_from(["2024", "1999", "0001", "10000", "24"]),
    _two(0, 13) | st.just("7"),
    _two(0, 32) | st.just("3"),
    st.none() | st.sampled_from([" ", "T", "t", "  "]),
    _two(0, 25),
    _two(0, 60),
    st.just("") | _two(0, 61).map(lambda v: f":{v}"),
    st.just("") | st.text("0123456789", max_size=10).map(lambda v: f".{v}"),
    st.sampled_from(_ZONE_SUFFIXES),
    st.sampled_from(["", " "]),
)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(_timestamp_text | st.text(max_size=12), min_size=1, max_size=40))
def test_fast_paths_equal_the_simple_rule(texts: list[str]) -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE v (i INTEGER, s VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?, ?)", list(enumerate(texts)))
    rows = con.execute(f"SELECT s, {_SIMPLE_RULE}, {_ts_expression()} FROM v ORDER BY i").fetchall()
    con.close()
    assert [(s, fast) for s, _, fast in rows] == [(s, simple) for s, simple, _ in rows]
