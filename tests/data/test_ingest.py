"""Ingest: the Open Bandit Dataset sample, MovieLens, A/B exports, timestamps, transactions."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import abkit
from abkit.data.ingest import IngestResult, ingest_file
from abkit.data.store import open_store
from abkit.errors import InputError
from tests.conftest import OBD, OBD_ROWS, file_digest

DATA = Path(__file__).resolve().parents[1] / "fixtures"
OBD_FILES = [
    OBD / policy / campaign / f"{campaign}.csv.gz"
    for policy in ("random", "bts")
    for campaign in ("all", "men", "women")
]


def _rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    with open_store(db) as store:
        return store.con.execute(sql, params or []).fetchall()


def test_public_name() -> None:
    assert abkit.ingest_file is ingest_file


# -- Open Bandit Dataset -----------------------------------------------------------------------


@pytest.mark.parametrize("path", OBD_FILES, ids=lambda p: f"{p.parts[-3]}-{p.parts[-2]}")
def test_each_obd_file_ingests(db_path: Path, path: Path) -> None:
    frame = pd.read_csv(path, usecols=["click", "propensity_score", "item_id"])
    items = pd.read_csv(path.parent / "item_context.csv.gz", usecols=["item_id"])
    policy, campaign = path.parts[-3], path.parts[-2]

    result = ingest_file(path, db_path)

    assert result.dataset == f"obd-{campaign}"
    assert result.preset == "obd"
    assert result.unit == "impression"
    assert result.rows == OBD_ROWS == len(frame)
    assert result.clicks == int(frame["click"].sum())
    assert result.experiment == "obd"
    assert result.variants == (policy,)
    assert result.items_added == items["item_id"].nunique()
    stored = _rows(
        db_path,
        "SELECT count(*), sum(click), count(DISTINCT impression_id), count(DISTINCT user_id), "
        "sum(propensity), min(position), max(position), any_value(variant) FROM impressions",
    )[0]
    assert stored[:4] == (OBD_ROWS, frame["click"].sum(), OBD_ROWS, OBD_ROWS)
    assert stored[4] == pytest.approx(frame["propensity_score"].sum(), rel=1e-12)
    assert stored[5:] == (1, 3, policy)
    assert _rows(db_path, "SELECT unit FROM datasets") == [("impression",)]
    assert _rows(db_path, "SELECT count(*), count(DISTINCT user_id) FROM assignments") == [
        (OBD_ROWS, OBD_ROWS)
    ]


@pytest.mark.parametrize("order", [("random", "bts"), ("bts", "random")], ids=["rb", "br"])
def test_random_and_bts_become_two_variants_of_one_experiment(db_path: Path, order) -> None:
    results = [ingest_file(OBD / policy / "all" / "all.csv.gz", db_path) for policy in order]
    assert [r.dataset for r in results] == ["obd-all", "obd-all"]
    assert results[-1].variants == ("random", "bts")  # random is the control by name
    assert _rows(db_path, "SELECT experiment, variants, control, split FROM experiments") == [
        ("obd", ["random", "bts"], "random", None)
    ]
    per_variant = dict(
        (v, (n, c))
        for v, n, c in _rows(
            db_path, "SELECT variant, count(*), sum(click) FROM impressions GROUP BY variant"
        )
    )
    for policy, result in zip(order, results, strict=True):
        assert per_variant[policy] == (OBD_ROWS, result.clicks)
    assert _rows(
        db_path,
        "SELECT count(DISTINCT impression_id), count(DISTINCT user_id) FROM impressions",
    ) == [(2 * OBD_ROWS, 2 * OBD_ROWS)]
    assert _rows(db_path, "SELECT variant, count(*) FROM assignments GROUP BY 1 ORDER BY 1") == [
        ("bts", OBD_ROWS),
        ("random", OBD_ROWS),
    ]
    assert results[1].items_added == 0  # the same 80 items
    assert _rows(db_path, "SELECT count(*) FROM items") == [(80,)]


def test_obd_user_features_are_not_stored_and_timestamps_are_utc(db_path: Path) -> None:
    path = OBD / "random" / "men" / "men.csv.gz"
    first = pd.read_csv(path, nrows=1)
    ingest_file(path, db_path)
    ts = _rows(db_path, "SELECT ts FROM impressions ORDER BY impression_id LIMIT 1")[0][0]
    expected = pd.Timestamp(first["timestamp"][0]).tz_convert("UTC").tz_localize(None)
    assert ts == expected.to_pydatetime()


# -- MovieLens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ratings.dat", "u.data"])
def test_movielens_files_round_trip(db_path: Path, name: str) -> None:
    path = DATA / name
    separator = "::" if name.endswith(".dat") else "\t"
    expected = [line.split(separator) for line in path.read_text().splitlines()]

    result = ingest_file(path, db_path)

    assert result.preset == "movielens"
    assert result.header is False
    assert result.delimiter == separator
    assert result.ts_format == "epoch_s"
    stored = _rows(db_path, "SELECT user_id, item_id, event_type, value, ts FROM events")
    assert stored == [
        (
            u,
            i,
            "rating",
            float(r),
            datetime.fromtimestamp(int(t), timezone.utc).replace(tzinfo=None),
        )
        for u, i, r, t in expected
    ]


def test_movielens_csv_with_header(db_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n")
    result = ingest_file(path, db_path)
    assert result.preset == "movielens"
    assert dict(result.columns) == {
        "user_id": "userId",
        "item_id": "movieId",
        "value": "rating",
        "ts": "timestamp",
    }
    assert _rows(db_path, "SELECT user_id, item_id, value FROM events") == [
        ("1", "31", 2.5),
        ("1", "1029", 3.0),
    ]


# -- A/B exports -------------------------------------------------------------------------------


def test_plain_ab_export_records_assignments_and_the_experiment(db_path: Path) -> None:
    result = ingest_file(DATA / "events_ab.csv", db_path)
    assert result.table == "events"
    assert (result.rows, result.users) == (6, 4)
    assert result.variants == ("control", "treatment")
    assert result.experiment == "events_ab"
    assert _rows(db_path, "SELECT user_id, variant, assigned_at FROM assignments ORDER BY 1") == [
        ("u1", "treatment", datetime(2024, 3, 1, 10, 0)),
        ("u2", "control", datetime(2024, 3, 1, 9, 0)),
        ("u3", "control", datetime(2024, 3, 2, 8, 30)),
        ("u4", "treatment", datetime(2024, 3, 2, 9, 0)),
    ]
    assert _rows(db_path, "SELECT * FROM experiments") == [
        (
            "events_ab",
            "events_ab",
            ["control", "treatment"],
            None,
            "control",
            datetime(2024, 3, 1, 9, 0),
            datetime(2024, 3, 2, 9, 0, 0, 1),  # exclusive end: one microsecond after the last
        )
    ]
    assert _rows(db_path, "SELECT value FROM events WHERE event_type = 'purchase'") == [(12.5,)]
    assert _rows(db_path, "SELECT ts FROM events WHERE event_type = 'add_to_cart'") == [
        (datetime(2024, 3, 2, 8, 31, 0, 250000),)
    ]


@pytest.mark.parametrize(
    ("variants", "control", "expected"),
    [
        (["B", "A"], None, ("A", "B")),
        (["treatment", "baseline"], None, ("baseline", "treatment")),
        (["new", "old"], None, ("new", "old")),  # no conventional name: alphabetical
        (["new", "old"], "old", ("old", "new")),
    ],
)
def test_control_rule(db_path, tmp_path, variants, control, expected) -> None:
    path = tmp_path / "ab.csv"
    path.write_text(
        "user_id,variant,event_type,ts\n"
        + "".join(f"u{i},{v},view,2024-01-01\n" for i, v in enumerate(variants))
    )
    result = ingest_file(path, db_path, control=control)
    assert result.variants == expected
    assert result.control == expected[0]


def test_second_file_adds_a_variant_and_skips_known_users(db_path, tmp_path) -> None:
    ingest_file(DATA / "events_ab.csv", db_path, dataset="shop", split=[0.5, 0.5])
    more = tmp_path / "more.csv"
    more.write_text(
        "user_id,variant,event_type,ts\n"
        "u1,treatment,view,2024-03-03\nu9,treatment_2,view,2024-03-04\n"
    )
    result = ingest_file(more, db_path, dataset="shop")
    assert result.experiment == "shop"
    assert result.variants == ("control", "treatment", "treatment_2")
    assert (result.assignments_added, result.duplicates_skipped) == (1, 1)
    assert _rows(db_path, "SELECT split, end_ts FROM experiments") == [
        (None, datetime(2024, 3, 4, 0, 0, 0, 1))  # split no longer fits 3 variants; end exclusive
    ]


def test_user_already_in_another_variant_is_refused(db_path, tmp_path) -> None:
    ingest_file(DATA / "events_ab.csv", db_path, dataset="shop")
    before = file_digest(db_path)
    moved = tmp_path / "moved.csv"
    moved.write_text(
        "user_id,variant,event_type,ts\nu7,control,view,2024-03-03\nu2,treatment,view,2024-03-03\n"
    )
    with pytest.raises(InputError) as info:
        ingest_file(moved, db_path, dataset="shop")
    assert str(info.value) == (
        f"{moved}: row 2: user 'u2' is in variant 'treatment', but experiment 'shop' of dataset "
        "'shop' already has them in 'control'"
    )
    assert file_digest(db_path) == before


def test_constant_variant_for_a_whole_file(db_path, tmp_path) -> None:
    for arm in ("A", "B"):
        path = tmp_path / f"export_{arm}.csv"
        path.write_text(f"user_id,event_type,ts\n{arm}1,view,2024-01-01\n{arm}2,click,2024-01-02\n")
        result = ingest_file(path, db_path, dataset="ab", variant=arm)
    assert result.variants == ("A", "B")
    assert _rows(db_path, "SELECT variant, count(*) FROM assignments GROUP BY 1 ORDER BY 1") == [
        ("A", 2),
        ("B", 2),
    ]


def test_variant_option_with_a_variant_column_is_refused(db_path) -> None:
    path = DATA / "events_ab.csv"
    with pytest.raises(InputError) as info:
        ingest_file(path, db_path, variant="A")
    assert str(info.value) == (
        f"{path}: the file has a variant column ('variant'); drop --variant or map the column away"
    )


def test_dataset_of_another_unit_or_source_is_refused(db_path) -> None:
    with open_store(db_path, write=True) as store, store.transaction():
        store.add_dataset("sim", source="simulate")
    before = file_digest(db_path)
    with pytest.raises(InputError) as info:
        ingest_file(DATA / "events_ab.csv", db_path, dataset="sim")
    assert str(info.value) == (
        f"dataset 'sim' in {db_path} was written by `abkit simulate`; ingest into another --dataset"
    )
    assert file_digest(db_path) == before


# -- impressions -------------------------------------------------------------------------------


def test_impressions_without_user_id_are_their_own_units(db_path, tmp_path) -> None:
    path = tmp_path / "imps.csv"
    path.write_text(
        "ts,policy,item_id,position,propensity,click\n"
        "2024-01-01T00:00:00Z,a,i1,1,0.5,0\n2024-01-01T00:00:01Z,a,i2,2,0.25,1\n"
    )
    result = ingest_file(path, db_path, dataset="log")
    assert (result.preset, result.unit, result.clicks) == ("impressions", "impression", 1)
    assert _rows(
        db_path, "SELECT impression_id, user_id, variant, position, propensity FROM impressions"
    ) == [(0, "0", "a", 1, 0.5), (1, "1", "a", 2, 0.25)]


def test_impressions_with_user_ids_are_per_user(db_path, tmp_path) -> None:
    path = tmp_path / "imps.csv"
    path.write_text(
        "impression_id,user_id,variant,ts,item_id,position,propensity,click,conversion,value\n"
        "10,u1,A,2024-01-01,i1,1,0.5,1,1,9.5\n11,u1,A,2024-01-02,i2,1,0.5,0,0,\n"
    )
    result = ingest_file(path, db_path)
    assert (result.unit, result.users, result.assignments_added) == ("user", 1, 1)
    assert _rows(db_path, "SELECT impression_id, user_id, conversion, value FROM impressions") == [
        (10, "u1", 1, 9.5),
        (11, "u1", 0, None),
    ]


# -- timestamps, headers, delimiters, Parquet --------------------------------------------------


@pytest.mark.parametrize(
    ("values", "unit", "expected_format"),
    [
        (["1709287200", "1709287200.5"], "auto", "epoch_s"),
        (["1709287200000", "1709287200500"], "auto", "epoch_ms"),
        (["1709287200", "1709287200.5"], "s", "epoch_s"),
        (["1709287200000", "1709287200500"], "ms", "epoch_ms"),
        (["2024-03-01T10:00:00Z", "2024-03-01T12:00:00.500+02:00"], "auto", "iso"),
        (["2024-03-01 10:00:00", "2024-03-01T10:00:00.5"], "auto", "iso"),
    ],
)
def test_timestamp_formats(db_path, tmp_path, values, unit, expected_format) -> None:
    path = tmp_path / "t.csv"
    path.write_text("user_id,event_type,ts\n" + "".join(f"u,view,{v}\n" for v in values))
    result = ingest_file(path, db_path, ts_unit=unit)
    assert result.ts_format == expected_format
    assert _rows(db_path, "SELECT ts FROM events") == [
        (datetime(2024, 3, 1, 10, 0),),
        (datetime(2024, 3, 1, 10, 0, 0, 500000),),
    ]


def test_headerless_file_uses_the_layout_and_map_overrides(db_path, tmp_path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("u1,s1,i1,view,2024-01-01,\nu2,s2,i2,purchase,2024-01-02,3.5\n")
    result = ingest_file(path, db_path, dataset="a")
    assert result.header is False
    assert _rows(db_path, "SELECT user_id, session_id, event_type, value FROM events") == [
        ("u1", "s1", "view", None),
        ("u2", "s2", "purchase", 3.5),
    ]
    result = ingest_file(path, db_path, dataset="b", mapping={"user_id": "col2"}, header=False)
    assert dict(result.columns)["user_id"] == "col2"
    assert _rows(db_path, "SELECT user_id FROM events WHERE dataset = 'b'") == [("s1",), ("s2",)]
    # col2 is now the user: the session no longer takes it by its place as well
    assert "session_id" not in dict(result.columns)
    # ... and a field whose first name the user mapped elsewhere takes its next name
    aliases = tmp_path / "aliases.csv"
    aliases.write_text("user,userid,event_type,ts\ns1,u1,view,2024-03-01T10:00:00Z\n")
    result = ingest_file(aliases, db_path, dataset="c", mapping={"session_id": "user"})
    assert dict(result.columns)["user_id"] == "userid"
    assert _rows(db_path, "SELECT count(session_id) FROM events WHERE dataset = 'b'") == [(0,)]


def test_a_mapped_column_is_not_taken_by_another_field(db_path, tmp_path) -> None:
    # The arm in the second column of a headerless file: mapped to variant, it must not also
    # land in session_id (the layout's second place), nor a header's "variant" column in a
    # field the user mapped elsewhere.
    path = tmp_path / "arms.csv"
    path.write_text("u1,A,view,2024-03-01T10:00:00Z,i1,\nu2,B,purchase,2024-03-02T10:00:00Z,i2,3\n")
    mapping = {"user_id": "col1", "variant": "col2", "event_type": "col3", "ts": "col4"}
    result = ingest_file(path, db_path, dataset="a", mapping=mapping, header=False)
    columns = dict(result.columns)
    assert columns["variant"] == "col2"
    assert "session_id" not in columns
    assert "item_id" not in columns  # col3 (the event type) is the layout's item place
    assert _rows(db_path, "SELECT count(session_id), count(item_id) FROM events") == [(0, 0)]
    headed = tmp_path / "headed.csv"
    headed.write_text("customer,session_id,event_type,ts\nc1,A,view,2024-03-01\n")
    result = ingest_file(
        headed, db_path, dataset="b", mapping={"user_id": "customer", "variant": "session_id"}
    )
    assert "session_id" not in dict(result.columns)


def test_mapping_and_delimiter(db_path, tmp_path) -> None:
    path = tmp_path / "shop.tsv"
    path.write_text("customer\tkind\twhen\nc1\tVIEW\t2024-01-01\n")
    with pytest.raises(InputError, match="missing required column 'user_id'"):
        ingest_file(path, db_path)
    result = ingest_file(
        path, db_path, mapping={"user_id": "customer", "event_type": "kind", "ts": "when"}
    )
    assert result.delimiter == "\t"
    assert _rows(db_path, "SELECT user_id, event_type FROM events") == [("c1", "view")]


def test_semicolons_with_explicit_delimiter(db_path, tmp_path) -> None:
    path = tmp_path / "eu.csv"
    path.write_text("user_id;event_type;ts\nu1;view;2024-01-01\n")
    result = ingest_file(path, db_path, delimiter=";")
    assert result.rows == 1


def test_gzip_and_parquet(db_path, tmp_path) -> None:
    text = (DATA / "events_ab.csv").read_bytes()
    gz = tmp_path / "export.bin"  # gzip recognised by its bytes, not its name
    gz.write_bytes(gzip.compress(text))
    assert ingest_file(gz, db_path, dataset="gz").file_format == "csv.gz"

    table = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),
            "variant": ["A", "B"],
            "event_type": ["view", "purchase"],
            "ts": pa.array(
                [datetime(2024, 1, 1, 12), datetime(2024, 1, 2, 12)], pa.timestamp("us", tz="UTC")
            ),
            "value": [None, 4.25],
        }
    )
    parquet = tmp_path / "export.parquet"
    pq.write_table(table, parquet)
    result = ingest_file(parquet, db_path, dataset="pq")
    assert (result.file_format, result.ts_format) == ("parquet", "native")
    assert _rows(db_path, "SELECT user_id, ts, value FROM events WHERE dataset = 'pq'") == [
        ("1", datetime(2024, 1, 1, 12), None),
        ("2", datetime(2024, 1, 2, 12), 4.25),
    ]


def test_parquet_bad_value_names_the_row(db_path, tmp_path) -> None:
    parquet = tmp_path / "imps.parquet"
    pq.write_table(
        pa.table(
            {
                "ts": pa.array([0, 1_700_000_000_000], pa.int64()),
                "item_id": [1, 2],
                "position": [1, 0],
                "propensity": [0.5, 0.5],
                "click": [True, False],
            }
        ),
        parquet,
    )
    with pytest.raises(InputError) as info:
        ingest_file(parquet, db_path, ts_unit="ms")
    assert str(info.value) == (
        f"{parquet}: row 2, column 'position': position 0 is not a slot number (expected 1, 2, ...)"
    )
    assert not db_path.exists()


# -- transactions --------------------------------------------------------------------------------


def test_failure_while_writing_leaves_the_store_unchanged(db_path, tmp_path, monkeypatch) -> None:
    import abkit.data.ingest as ingest_module

    ingest_file(DATA / "ratings.dat", db_path, dataset="before")
    before = file_digest(db_path)

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    # Fails after the events and assignments rows were inserted, inside the transaction.
    monkeypatch.setattr(ingest_module, "_upsert_experiment", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest_file(DATA / "events_ab.csv", db_path)
    assert file_digest(db_path) == before
    new_db = tmp_path / "new.duckdb"
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest_file(DATA / "events_ab.csv", new_db)
    assert not new_db.exists()
    assert not Path(f"{new_db}.wal").exists()


def test_result_is_frozen_and_json_ready(db_path) -> None:
    result = ingest_file(DATA / "events_ab.csv", db_path)
    assert isinstance(result, IngestResult)
    with pytest.raises(AttributeError):
        result.rows = 0  # type: ignore[misc]
    payload = result.to_dict()
    assert json.loads(json.dumps(payload, default=str))["variants"] == ["control", "treatment"]
    assert len(payload["sha256"]) == 64


def test_obd_policy_and_campaign_from_a_relative_path(db_path, monkeypatch) -> None:
    monkeypatch.chdir(OBD / "bts" / "women")
    result = ingest_file("women.csv.gz", db_path)
    assert (result.dataset, result.variants) == ("obd-women", ("bts",))


def test_crlf_and_byte_order_mark(db_path, tmp_path) -> None:
    path = tmp_path / "windows.csv"
    path.write_bytes(
        b"\xef\xbb\xbfuser_id,event_type,ts\r\nu1,view,2024-01-01\r\nu2,click,2024-01-02\r\n"
    )
    result = ingest_file(path, db_path)
    assert result.header is True
    assert _rows(db_path, "SELECT user_id, event_type, ts FROM events") == [
        ("u1", "view", datetime(2024, 1, 1)),
        ("u2", "click", datetime(2024, 1, 2)),
    ]


def test_an_ingested_window_is_shown_through_its_last_record(db_path, tmp_path) -> None:
    # The stored end is exclusive, one microsecond after the last record; the defaults read
    # "... 10:00:00 (included)", not "... 10:00:00.000001".
    from abkit.compare.arms import compare_arms

    path = tmp_path / "ab.csv"
    path.write_text(
        "user_id,variant,event_type,ts\nu1,A,view,2024-03-01T10:00:00\n"
        "u2,B,purchase,2024-03-02T10:00:00\n"
    )
    ingest_file(path, db_path, dataset="ab")
    report = compare_arms(db_path, dataset="ab")
    assert (
        "experiment window: 2024-03-01 10:00:00 to 2024-03-02 10:00:00 (included)"
        in report.defaults
    )
