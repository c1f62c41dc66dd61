"""Property: through the CLI, a file either ingests exactly or is refused cleanly.

Arbitrary column names (unicode, quotes, commas, rich-markup look-alikes such as ``[/b]x``)
and values, in CSV or Parquet, sometimes with one malformed cell, row or header. A well-formed
file must ingest and read back equal (ids exactly, event types lower-cased, timestamps to the
microsecond, values exactly); a malformed one must be refused with exit code 2 and exactly one
line on stderr, and leave the store byte-identical (or not create it). Kept small and fast
(the conftest derandomises it under CI).
"""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from abkit.cli.main import app
from abkit.data.ingest import ingest_file
from abkit.data.schema import EVENT_TYPES
from abkit.data.store import open_store
from tests.conftest import file_digest
from tests.data.strategies import event_value

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TARGETS = ("user_id", "event_type", "ts", "item_id", "value")
# Names the events preset would also take for a column we do not map (session_id, variant):
# a file column called "session" would feed session_id as well.
RESERVED = {"session_id", "sessionid", "session", "variant", "arm"}
# No ':' or tab (taken for the '::' / tab separators when sniffing line 1), no line breaks
# (line 1 is sniffed; a quoted line break is documented as unsupported there).
TEXT = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters=":\t"
)
TRICKY = ["[/b]x", "[bold]ts", "[red]", "a,b", 'say "hi"', "it's", "ü n ï", "列名", "=x", "[/]"]


def _key(name: str) -> str:
    return name.strip().casefold()


names = st.one_of(st.sampled_from(TRICKY), st.text(TEXT, min_size=1, max_size=8)).filter(
    lambda n: bool(n.strip()) and _key(n) not in RESERVED and n.strip().lower() not in RESERVED
)
ids = st.one_of(st.sampled_from(TRICKY), st.text(TEXT, min_size=1, max_size=8)).filter(
    lambda s: s.strip() == s and s != ""  # an unquoted cell is not trimmed, but keep it simple
)


@st.composite
def rows(draw: st.DrawFn) -> dict:
    event_type = draw(st.sampled_from(EVENT_TYPES))
    value = event_value(draw, event_type)
    return {
        "user_id": draw(ids),
        "event_type": event_type,
        "written_type": draw(st.sampled_from([event_type, event_type.upper(), f" {event_type} "])),
        "ts": draw(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1))),
        "item_id": draw(st.none() | ids),
        "value": value,
    }


# What a malformed cell may hold, per column: every one of these must be refused.
BAD_CELLS = {
    "user_id": [""],
    "event_type": ["veiw", "", "purchase!", "[/b]x"],
    "ts": ["", "2024-13-45", "yesterday", "infinity", "[/b]x"],
    "value": ["12 EUR", "nan", "inf", "[/b]x", "1,5"],
}
MALFORMED = ("cell", "negative-purchase", "ragged", "not-utf8", "same-name-twice")


def _cells(row: dict) -> dict[str, str]:
    return {
        "user_id": row["user_id"],
        "event_type": row["written_type"],
        "ts": row["ts"].isoformat(),
        "item_id": "" if row["item_id"] is None else row["item_id"],
        "value": "" if row["value"] is None else repr(row["value"]),
    }


def _csv_bytes(header: list[str], table: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(table)
    return out.getvalue().encode("utf-8")


@pytest.mark.slow  # a property search over file layouts
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    columns=st.lists(names, min_size=5, max_size=5, unique_by=_key).filter(
        lambda c: len({n.strip().lower() for n in c}) == 5
    ),
    data=st.lists(rows(), min_size=1, max_size=8),
    file_format=st.sampled_from(["csv", "parquet"]),
    malformed=st.none() | st.sampled_from(MALFORMED),
    where=st.integers(min_value=0, max_value=7),
    bad=st.data(),
    existing=st.booleans(),
)
def test_ingest_exactly_or_refuse_in_one_line(
    columns, data, file_format, malformed, where, bad, existing
) -> None:
    mapping = dict(zip(TARGETS, columns, strict=True))
    table = [[_cells(r)[t] for t in TARGETS] for r in data]
    row = where % len(table)
    if file_format == "parquet" and malformed in ("ragged", "not-utf8", "same-name-twice"):
        malformed = "cell"  # structural damage is a text-file problem
    if malformed == "cell":
        target = bad.draw(st.sampled_from(sorted(BAD_CELLS)))
        table[row][TARGETS.index(target)] = bad.draw(st.sampled_from(BAD_CELLS[target]))
    elif malformed == "negative-purchase":
        table[row][1], table[row][4] = "purchase", "-1.5"

    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        db = base / "store.duckdb"
        if existing:
            ingest_file(FIXTURES / "ratings.dat", db, dataset="before")
        before = file_digest(db)
        header = [mapping[t] for t in TARGETS]
        if file_format == "parquet":
            path = base / "log.parquet"
            # Typed as text; an empty cell is a null, as in a CSV.
            cells = {name: [r[i] or None for r in table] for i, name in enumerate(header)}
            pq.write_table(
                pa.table(cells, schema=pa.schema([(n, pa.string()) for n in header])), path
            )
        else:
            path = base / "log.csv"
            content = _csv_bytes(header, table)
            if malformed == "ragged":
                lines = content.split(b"\n")
                lines[row + 1] += b",extra"
                content = b"\n".join(lines)
            elif malformed == "not-utf8":
                lines = content.split(b"\n")
                lines[row + 1] = b"\xff" + lines[row + 1]
                content = b"\n".join(lines)
            elif malformed == "same-name-twice":
                content = _csv_bytes([*header, header[0].strip()], [[*r, "x"] for r in table])
            path.write_bytes(content)

        args = ["ingest", str(path), "--db", str(db), "--dataset", "d", "--preset", "events"]
        args += ["--header"] if file_format == "csv" else []
        for target, name in mapping.items():
            args += ["--map", f"{target}={name}"]
        result = CliRunner().invoke(app, args)

        if malformed is None:
            assert result.exit_code == 0, result.output
            with open_store(db) as store:
                stored = store.con.execute(
                    "SELECT user_id, item_id, event_type, ts, value FROM events WHERE dataset = 'd'"
                ).fetchall()
            expected = [
                (r["user_id"], r["item_id"], r["event_type"], r["ts"], r["value"]) for r in data
            ]
            assert sorted(stored, key=repr) == sorted(expected, key=repr)
        else:
            assert result.exit_code == 2, (malformed, result.output)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith("error: ")
            assert "Traceback" not in result.output
            assert file_digest(db) == before
            assert not Path(f"{db}.wal").exists()
