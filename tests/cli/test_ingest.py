"""`abkit ingest`: help, JSON output, and the table of bad inputs with their exact messages.

Every bad input must give one line on stderr, exit code 2, no traceback, and leave the store
byte-identical (or, when it did not exist, not create it).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from abkit.cli.main import app
from abkit.data.ingest import ingest_file
from abkit.data.store import open_store
from abkit.errors import InputError
from tests.conftest import file_digest, holding_write_lock

DATA = Path(__file__).resolve().parents[1] / "fixtures"
TS_HINT = "expected ISO 8601 such as 2024-01-31T12:00:00Z, or epoch seconds or milliseconds"
EVENTS_HEADER = "user_id,variant,event_type,ts,item_id,value\n"


def _text(content: str, name: str = "log.csv") -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_text(content, encoding="utf-8")
        return path

    return make


def _bytes(content: bytes, name: str = "log.csv") -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
        return path

    return make


def _missing(folder: Path) -> Path:
    return folder / "nope.csv"


IMPRESSIONS_HEADER = "ts,item_id,position,propensity,click\n"
LONG = "u" * 65_536  # a 65 KB value on one line: echoed cut to 80 characters
LONG_SHOWN = f"'{'u' * 80}'... (65,536 characters)"


def _parquet(columns: dict, name: str = "log.parquet", cut: int | None = None):
    def make(folder: Path) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = folder / name
        pq.write_table(pa.table(columns), path)
        if cut is not None:  # a truncated copy: the first `cut` bytes
            path.write_bytes(path.read_bytes()[:cut])
        return path

    return make


def _bytes_named(content: bytes, name: str) -> Callable[[Path], Path]:
    """These exact bytes under this name (no compression added)."""

    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(content)
        return path

    return make


def _truncated_gzip(folder: Path) -> Path:
    import random

    rng = random.Random(0)  # incompressible ids, so that half the bytes is half the rows
    rows = "".join(f"u{rng.getrandbits(64):x},view,2024-01-01\n" for _ in range(20_000))
    data = gzip.compress(("user_id,event_type,ts\n" + rows).encode())
    path = folder / "log.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


def _zip(folder: Path) -> Path:
    import zipfile

    path = folder / "log.csv"
    with zipfile.ZipFile(folder / "log.zip", "w") as archive:
        archive.writestr("log.csv", "user_id,event_type,ts\nu1,view,2024-01-01\n")
    path.write_bytes((folder / "log.zip").read_bytes())
    return path


_NOT_UTF8 = b"user_id,event_type,ts\nu1,view,2024-01-01\nu\xff2,view,2024-01-02\n"
_NOT_UTF8_OFFSET = _NOT_UTF8.index(b"\xff")

# (id, make the file, extra CLI args, the message after "<file>: ")
BAD_INPUTS: list[tuple[str, Callable[[Path], Path], list[str], str]] = [
    ("missing-file", _missing, [], "no such file"),
    (
        "empty-file",
        _bytes(b""),
        [],
        "the file is empty (expected a header line or data rows)",
    ),
    (
        "empty-gzip",
        _bytes(b"", "log.csv.gz"),
        [],
        "the file is empty (expected a header line or data rows)",
    ),
    ("header-only", _text(EVENTS_HEADER), [], "no data rows (only a header line)"),
    (
        "iso-text-with-ts-unit",
        _text("user_id,event_type,ts\nu1,view,2024-03-01T10:00:00Z\n"),
        ["--ts-unit", "ms"],
        "row 1, column 'ts': cannot parse '2024-03-01T10:00:00Z' as epoch milliseconds "
        "(--ts-unit ms expects numbers; drop it for ISO 8601 text)",
    ),
    (
        "a-file-as-an-export-folder",
        _text("user_id,event_type,ts\nu1,view,2024-03-01\n"),
        ["--format", "abkit-parquet"],
        "is a file; expected a folder written by `abkit export` (one folder per table: "
        "abkit_meta, datasets, ingests, events, impressions, impression_features, assignments, "
        "experiments, items, truth, runs, run_user_metrics, run_estimates, run_rounds)",
    ),
    (
        "missing-column",
        _text("user_id,variant,ts\nu1,A,2024-01-01\n"),
        [],
        "missing required column 'event_type' (found: user_id, variant, ts); "
        "name it with --map event_type=COLUMN",
    ),
    (
        "missing-column-no-header",
        _text("u1,s1,i1\n", "log.csv"),
        ["--no-header", "--preset", "events"],
        "missing required column 'event_type': without a header the columns are read in the "
        "order user_id, session_id, item_id, event_type, ts, value, variant, but the file has 3",
    ),
    (
        "map-column-not-found",
        _text("customer,event_type,ts\nu1,view,2024-01-01\n"),
        ["--map", "user_id=client"],
        "column 'client' (from --map user_id=client) not found; found: customer, event_type, ts",
    ),
    (
        "unparseable-timestamp",
        _text(EVENTS_HEADER + "u1,A,view,2024-01-01,i1,\nu2,B,view,2024-13-45 10:00,i1,\n"),
        [],
        f"row 2, column 'ts': cannot parse '2024-13-45 10:00' as a timestamp ({TS_HINT})",
    ),
    (
        "empty-timestamp",
        _text(EVENTS_HEADER + "u1,A,view,2024-01-01,i1,\nu2,B,view,,i1,\n"),
        [],
        "row 2, column 'ts': empty (expected a timestamp)",
    ),
    (
        "epoch-units-mixed",
        _text("user_id,event_type,ts\nu1,view,1700000000\nu2,view,1700000000000\n"),
        [],
        "column 'ts' mixes epoch seconds and milliseconds (row 1: 1700000000, "
        "row 2: 1700000000000); pass --ts-unit s or --ts-unit ms",
    ),
    (
        "epoch-out-of-range",
        _text("user_id,event_type,ts\nu1,view,1700000000\nu2,view,1700000000000\n"),
        ["--ts-unit", "s"],
        "row 2, column 'ts': epoch value 1700000000000 is out of range "
        "(expected seconds below 1e+11)",
    ),
    (
        "propensity-above-one",
        _text(
            "ts,item_id,position,propensity,click\n2024-01-01,i1,1,0.5,0\n2024-01-01,i2,2,1.5,1\n"
        ),
        [],
        "row 2, column 'propensity': propensity 1.5 is outside (0, 1]",
    ),
    (
        "propensity-zero",
        _text("ts,item_id,position,propensity_score,click\n2024-01-01,i1,1,0,0\n"),
        ["--preset", "impressions"],
        "row 1, column 'propensity_score': propensity 0 is outside (0, 1]",
    ),
    (
        "click-not-binary",
        _text("ts,item_id,position,propensity,click\n2024-01-01,i1,1,0.5,2\n"),
        [],
        "row 1, column 'click': expected 0 or 1, found 2",
    ),
    (
        "negative-purchase",
        _text(EVENTS_HEADER + "u1,A,view,2024-01-01,i1,-5\nu1,A,purchase,2024-01-01,i1,-5\n"),
        [],
        "row 2, column 'value': purchase value -5 is negative (expected revenue >= 0)",
    ),
    (
        "value-not-a-number",
        _text(EVENTS_HEADER + "u1,A,purchase,2024-01-01,i1,12 EUR\n"),
        [],
        "row 1, column 'value': cannot parse '12 EUR' as a number",
    ),
    (
        "unknown-event-type",
        _text(EVENTS_HEADER + "u1,A,view,2024-01-01,i1,\nu1,A,veiw,2024-01-01,i1,\n"),
        [],
        "row 2, column 'event_type': unknown event type 'veiw' (did you mean 'view'?); "
        "expected one of: add_to_cart, click, purchase, rating, view",
    ),
    (
        "not-utf8",
        _bytes(_NOT_UTF8),
        [],
        f"not UTF-8 text: byte 0xff at byte offset {_NOT_UTF8_OFFSET} (row 2) cannot be "
        "decoded; re-save the file as UTF-8",
    ),
    (
        "not-utf8-gzip",
        _bytes(_NOT_UTF8, "log.csv.gz"),
        [],
        f"not UTF-8 text: byte 0xff at byte offset {_NOT_UTF8_OFFSET} (row 2) cannot be "
        "decoded; re-save the file as UTF-8",
    ),
    (
        "not-utf8-header",
        _bytes(b"user_id,\xe9vent,ts\nu1,view,2024-01-01\n"),
        [],
        "not UTF-8 text: byte 0xe9 at byte offset 8 (line 1) cannot be decoded; "
        "re-save the file as UTF-8",
    ),
    (
        "semicolons",
        _text("user_id;event_type;ts\nu1;view;2024-01-01\n"),
        [],
        "line 1 has no ',', tab or '::' separator; the delimiter looks like ';': "
        "pass --delimiter ';'",
    ),
    (
        "semicolons-with-comma-given",
        _text("user_id;event_type;ts\nu1;view;2024-01-01\n"),
        ["--delimiter", ","],
        "line 1 has no ',' separator; the delimiter looks like ';': pass --delimiter ';'",
    ),
    (
        "ragged-row",
        _text("user_id,event_type,ts\nu1,view,2024-01-01\nu2,view,2024-01-01,extra\n"),
        [],
        "row 2 has 4 fields, expected 3 like line 1",
    ),
    (
        "user-in-two-variants",
        _text(
            EVENTS_HEADER
            + "u1,A,view,2024-01-01,i1,\nu2,B,view,2024-01-01,i1,\nu1,B,view,2024-01-02,i1,\n"
        ),
        [],
        "row 3: user 'u1' is in variant 'B', but row 1 put them in 'A' "
        "(a user must stay in one variant)",
    ),
    (
        "click-fraction",
        _text(IMPRESSIONS_HEADER + "2024-01-01,i1,1,0.5,0\n2024-01-01,i2,2,0.5,0.5\n"),
        [],
        "row 2, column 'click': expected 0 or 1, found 0.5",
    ),
    (
        "conversion-fraction",
        _text("ts,item_id,position,propensity,click,conversion\n2024-01-01,i1,1,0.5,1,0.7\n"),
        [],
        "row 1, column 'conversion': expected 0 or 1, found 0.7",
    ),
    (
        "position-fraction",
        _text(IMPRESSIONS_HEADER + "2024-01-01,i1,1.5,0.5,0\n"),
        [],
        "row 1, column 'position': position 1.5 is not a slot number (expected 1, 2, ...)",
    ),
    (
        "position-fraction-exponent",
        _text(IMPRESSIONS_HEADER + "2024-01-01,i1,1,0.5,0\n2024-01-01,i1,15e-1,0.5,0\n"),
        [],
        "row 2, column 'position': position 15e-1 is not a slot number (expected 1, 2, ...)",
    ),
    (
        "impression-id-fraction",
        _text(
            "impression_id,"
            + IMPRESSIONS_HEADER
            + "1,2024-01-01,i1,1,0.5,0\n2.5,2024-01-01,i1,1,0.5,0\n"
        ),
        [],
        "row 2, column 'impression_id': expected a whole number, found 2.5",
    ),
    (
        "impression-id-empty",
        _text("impression_id," + IMPRESSIONS_HEADER + ",2024-01-01,i1,1,0.5,0\n"),
        [],
        "row 1, column 'impression_id': empty (expected an impression id)",
    ),
    (
        "impression-id-repeated-by-a-copied-row",
        _text("impression_id," + IMPRESSIONS_HEADER + ("1,2024-01-01,i1,1,0.5,0\n" * 2)),
        [],
        "row 2, column 'impression_id': impression id 1 appears twice (the file has 1 exact "
        "duplicate row(s): --dedupe drops them)",
    ),
    (
        "click-fraction-parquet",
        _parquet(
            {
                "ts": ["2024-01-01"] * 3,
                "item_id": ["a", "b", "c"],
                "position": [1, 2, 3],
                "propensity": [0.5] * 3,
                "click": [0.0, 1.0, 0.5],  # a double 0.5 once became 0 (round half to even)
            }
        ),
        [],
        "row 3, column 'click': expected 0 or 1, found 0.5",
    ),
    (
        "position-fraction-parquet",
        _parquet(
            {
                "ts": ["2024-01-01"] * 2,
                "item_id": ["a", "b"],
                "position": [1.0, 2.5],
                "propensity": [0.5] * 2,
                "click": [0, 1],
            }
        ),
        [],
        "row 2, column 'position': position 2.5 is not a slot number (expected 1, 2, ...)",
    ),
    (
        "truncated-parquet",
        _parquet({"user_id": ["u1"] * 100, "event_type": ["view"] * 100}, cut=200),
        [],
        "truncated or damaged Parquet file: it starts with the Parquet magic bytes PAR1 but "
        "does not end with them (200 bytes); copy or export it again",
    ),
    (
        "truncated-parquet-named-csv",
        _parquet({"user_id": ["u1"] * 100, "event_type": ["view"] * 100}, "log.csv", cut=200),
        [],
        "truncated or damaged Parquet file: it starts with the Parquet magic bytes PAR1 but "
        "does not end with them (200 bytes); copy or export it again",
    ),
    (
        "parquet-name-text-content",
        _text(EVENTS_HEADER + "u1,A,view,2024-01-01,i1,\n", "log.parquet"),
        [],
        "the name says Parquet but the content is text (no PAR1 magic bytes); rename the file "
        "or export it again",
    ),
    (
        "gzip-name-text-content",
        _text(EVENTS_HEADER + "u1,A,view,2024-01-01,i1,\n", "log.csv.gz"),
        [],
        "the name says gzip but the content is text (no 1f 8b magic bytes); rename the file or "
        "export it again",
    ),
    (
        "parquet-name-gzip-content",
        _bytes_named(gzip.compress(EVENTS_HEADER.encode()), "log.parquet"),
        [],
        "the name says Parquet but the content is gzip-compressed (no PAR1 magic bytes); "
        "rename the file or export it again",
    ),
    (
        "truncated-gzip",
        _truncated_gzip,
        [],
        "truncated gzip file (the compressed data ends early); copy or export it again",
    ),
    ("zip-archive", _zip, [], "the file is a zip archive; unzip it and ingest the CSV inside"),
    (
        "timestamp-infinity",
        _text("user_id,event_type,ts\nu1,view,2024-01-01\nu2,view,infinity\n"),
        [],
        f"row 2, column 'ts': cannot parse 'infinity' as a timestamp ({TS_HINT})",
    ),
    (
        "long-user-id-is-cut",
        _text(EVENTS_HEADER + f"{LONG},A,view,2024-01-01,i1,\n{LONG},B,view,2024-01-02,i1,\n"),
        [],
        f"row 2: user {LONG_SHOWN} is in variant 'B', but row 1 put them in 'A' "
        "(a user must stay in one variant)",
    ),
    (
        "long-event-type-is-cut",
        _text("user_id,event_type,ts\nu1," + LONG + ",2024-01-01\n"),
        [],
        f"row 1, column 'event_type': unknown event type {LONG_SHOWN}; "
        "expected one of: add_to_cart, click, purchase, rating, view",
    ),
    (
        "long-timestamp-is-cut",
        _text("user_id,event_type,ts\nu1,view," + LONG + "\n"),
        [],
        f"row 1, column 'ts': cannot parse {LONG_SHOWN} as a timestamp ({TS_HINT})",
    ),
    (
        "obd-policy-unknown",
        _text(",timestamp,item_id,position,click,propensity_score\n0,2019-11-24,1,1,0,0.0125\n"),
        [],
        "cannot tell the logging policy from the path (expected a folder named random or bts); "
        "pass --variant",
    ),
]

# Option errors: the message does not start with the file name.
BAD_OPTIONS: list[tuple[str, list[str], str]] = [
    (
        "unknown-map-target",
        ["--map", "usr_id=customer"],
        "--map usr_id=customer: unknown events column 'usr_id' (did you mean 'user_id'?); "
        "expected one of: event_type, item_id, session_id, ts, user_id, value, variant",
    ),
    (
        "malformed-map",
        ["--map", "user_id"],
        "--map 'user_id': expected ABKIT_COLUMN=FILE_COLUMN, e.g. user_id=customer",
    ),
    (
        "unknown-control",
        ["--control", "contrl"],
        "--control: unknown variant 'contrl' (did you mean 'control'?); "
        "expected one of: control, treatment",
    ),
    (
        "split-wrong-length",
        ["--split", "0.5,0.3,0.2"],
        "--split has 3 shares, but the experiment has 2 variants "
        "(control, treatment, in that order)",
    ),
    (
        "split-percentages-not-summing-to-100",
        ["--split", "50/40"],
        "--split '50/40': the shares sum to 90; expected percentages that sum to 100 "
        "(e.g. 50/50) or fractions that sum to 1 (e.g. 0.5/0.5)",
    ),
    (
        "split-one-to-one-is-not-halves",
        ["--split", "1/1"],
        "--split '1/1': the shares sum to 2; expected percentages that sum to 100 "
        "(e.g. 50/50) or fractions that sum to 1 (e.g. 0.5/0.5)",
    ),
    (
        "split-named-not-summing",
        ["--split", "control=50,treatment=40"],
        "--split 'control=50,treatment=40': the shares sum to 90; expected percentages that "
        "sum to 100 (e.g. 50/50) or fractions that sum to 1 (e.g. 0.5/0.5)",
    ),
    (
        "split-named-wrong-variant",
        ["--split", "control=50,treatmnt=50"],
        "--split names control, treatmnt, but the experiment's variants are control, treatment",
    ),
    (
        "split-not-summing-to-one",
        ["--split", "0.5,0.6"],
        "--split '0.5,0.6': the shares sum to 1.1; expected percentages that sum to 100 "
        "(e.g. 50/50) or fractions that sum to 1 (e.g. 0.5/0.5)",
    ),
]


def _existing_store(db: Path) -> None:
    """A store that already holds a dataset, so 'unchanged' is checked on a real file."""
    ingest_file(DATA / "ratings.dat", db, dataset="before")


def _assert_one_line_error(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: {message}"
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize("existing", [True, False], ids=["existing-db", "new-db"])
@pytest.mark.parametrize(
    ("make", "args", "message"),
    [pytest.param(m, a, msg, id=i) for i, m, a, msg in BAD_INPUTS],
)
def test_bad_input_one_line_and_store_unchanged(
    runner, tmp_path, db_path, existing, make, args, message
) -> None:
    if existing:
        _existing_store(db_path)
    before = file_digest(db_path)
    path = make(tmp_path)
    result = runner.invoke(app, ["ingest", str(path), "--db", str(db_path), *args])
    _assert_one_line_error(result, f"{path}: {message}")
    assert file_digest(db_path) == before
    assert not Path(f"{db_path}.wal").exists()


@pytest.mark.parametrize(("args", "message"), [pytest.param(a, m, id=i) for i, a, m in BAD_OPTIONS])
def test_bad_option_one_line_and_store_unchanged(runner, db_path, args, message) -> None:
    _existing_store(db_path)
    before = file_digest(db_path)
    result = runner.invoke(
        app, ["ingest", str(DATA / "events_ab.csv"), "--db", str(db_path), *args]
    )
    _assert_one_line_error(result, message)
    assert file_digest(db_path) == before


def test_library_raises_the_same_message(db_path) -> None:
    path = DATA / "events_ab.csv"
    with pytest.raises(InputError) as info:
        ingest_file(path, db_path, mapping={"usr_id": "customer"})
    assert str(info.value) == BAD_OPTIONS[0][2]
    assert not db_path.exists()


def test_not_a_duckdb_file_as_db(runner, tmp_path) -> None:
    db = tmp_path / "notes.duckdb"
    db.write_text("these are my notes, not a database\n" * 50)
    before = file_digest(db)
    result = runner.invoke(app, ["ingest", str(DATA / "events_ab.csv"), "--db", str(db)])
    _assert_one_line_error(
        result, f"{db}: not a DuckDB database (expected a store written by abkit)"
    )
    assert file_digest(db) == before
    assert not Path(f"{db}.wal").exists()


def test_locked_db_names_the_holder_and_what_to_do(runner, db_path) -> None:
    _existing_store(db_path)
    before = file_digest(db_path)
    with holding_write_lock(db_path) as pid:
        result = runner.invoke(app, ["ingest", str(DATA / "events_ab.csv"), "--db", str(db_path)])
        assert result.exit_code == 2
        line = result.stderr.strip()
        assert len(line.splitlines()) == 1
        assert line.startswith(f"error: {db_path}: the database is locked by process {pid} (")
        assert line.endswith("; pass --wait SECONDS to wait for it, or another --db")
        assert "Traceback" not in result.output
    assert file_digest(db_path) == before


def test_reingest_is_refused_with_when(runner, db_path) -> None:
    path = DATA / "events_ab.csv"
    first = runner.invoke(app, ["ingest", str(path), "--db", str(db_path)])
    assert first.exit_code == 0, first.output
    before = file_digest(db_path)
    with open_store(db_path) as store:
        (when,) = store.con.execute("SELECT ingested_at FROM ingests").fetchall()[0]
    again = runner.invoke(app, ["ingest", str(path), "--db", str(db_path)])
    _assert_one_line_error(
        again,
        f"{path}: already ingested into dataset 'events_ab' (table events) on "
        f"{when:%Y-%m-%d %H:%M:%S} UTC from {path.resolve()}; nothing was written "
        "(use another --dataset to load it twice)",
    )
    assert file_digest(db_path) == before
    # Another dataset takes it.
    other = runner.invoke(app, ["ingest", str(path), "--db", str(db_path), "-d", "copy"])
    assert other.exit_code == 0, other.output


def test_help_describes_every_option(runner) -> None:
    result = runner.invoke(app, ["ingest", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for option in (
        "--db",
        "--dataset",
        "--preset",
        "--map",
        "--header",
        "--no-header",
        "--delimiter",
        "--variant",
        "--control",
        "--split",
        "--experiment",
        "--ts-unit",
        "--dedupe",
        "--json",
    ):
        assert option in text
    assert "Load a CSV, CSV.gz or Parquet log into the store, whole or not at all." in text
    assert "milliseconds when every value is >= 1e11" in text
    assert "movielens" in text
    assert "Exact duplicate rows are kept with a warning (--dedupe drops them)" in text


def test_json_output(runner, db_path) -> None:
    path = DATA / "events_ab.csv"
    result = runner.invoke(
        app, ["ingest", str(path), "--db", str(db_path), "--split", "0.5,0.5", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["dataset"] == "events_ab"
    assert payload["table"] == "events"
    assert payload["rows"] == 6
    assert payload["users"] == 4
    assert payload["experiment"] == "events_ab"
    assert payload["variants"] == ["control", "treatment"]
    assert payload["control"] == "control"
    assert payload["assignments_added"] == 4
    assert payload["ts_min"] == "2024-03-01T09:00:00"  # 11:00+02:00
    assert payload["ts_format"] == "iso"
    assert payload["columns"]["user_id"] == "user_id"
    with open_store(db_path) as store:
        (split,) = store.con.execute("SELECT split FROM experiments").fetchall()[0]
    assert split == [0.5, 0.5]


def test_summary_report(runner, db_path) -> None:
    result = runner.invoke(
        app, ["ingest", str(DATA / "ratings.dat"), "--db", str(db_path), "-d", "ml"]
    )
    assert result.exit_code == 0, result.output
    assert "Ingested" in result.stdout
    assert "ml" in result.stdout
    assert "rating" not in result.stderr


def test_command_only_translates_options(runner, db_path, monkeypatch) -> None:
    """The command parses options and calls ingest_file once with exactly these arguments."""
    import abkit.cli.ingest as ingest_module

    calls: list[tuple[tuple, dict]] = []

    def fake(*args, **kwargs):
        calls.append((args, kwargs))
        raise InputError("stop here")

    monkeypatch.setattr(ingest_module, "ingest_file", fake)
    result = runner.invoke(
        app,
        [
            "ingest",
            "x.csv",
            "--db",
            str(db_path),
            "-d",
            "shop",
            "--preset",
            "events",
            "--map",
            "user_id=customer",
            "--map",
            "ts=created",
            "--no-header",
            "--delimiter",
            "tab",
            "--variant",
            "B",
            "--control",
            "A",
            "--split",
            "A=0.5,B=0.5",
            "--experiment",
            "exp1",
            "--ts-unit",
            "ms",
            "--wait",
            "3",
            "--dedupe",
        ],
    )
    assert result.stderr.strip() == "error: stop here"
    ((args, kwargs),) = calls
    assert args == (Path("x.csv"), db_path)
    kwargs.pop("on_step")
    assert kwargs == {
        "dataset": "shop",
        "preset": "events",
        "mapping": {"user_id": "customer", "ts": "created"},
        "header": False,
        "delimiter": "tab",
        "variant": "B",
        "control": "A",
        "split": {"A": 0.5, "B": 0.5},
        "experiment": "exp1",
        "ts_unit": "ms",
        "wait": 3.0,
        "dedupe": True,
    }
