"""Deleting stored runs (:func:`abkit.replay.runs.delete_runs`) and unique run names
(``replay(name=..., replace=...)``): all or nothing, the store untouched on every refusal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from abkit.data.store import open_store
from abkit.errors import InputError, StoreError
from abkit.replay.runner import replay
from abkit.replay.runs import delete_runs, list_runs
from tests.conftest import file_digest
from tests.replay.helpers import START, structured_events, write_store

RUN_TABLES = ("runs", "run_user_metrics", "run_estimates", "run_rounds")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    import pandas as pd

    db = write_store(tmp_path / "r.duckdb", events=structured_events(n_users=80, seed=1))
    impressions = pd.DataFrame(
        {
            "impression_id": range(40),
            "user_id": [f"u{i % 80:04d}" for i in range(40)],
            "ts": [START.replace(day=19)] * 40,
            "variant": "random",
            "item_id": [f"i{i % 60:03d}" for i in range(40)],
            "position": 1,
            "propensity": 1 / 60,
            "click": [i % 3 == 0 for i in range(40)],
        }
    )
    return write_store(db, impressions=impressions, dataset="logs", unit="impression")


def _counts(db: Path) -> dict[str, int]:
    with open_store(db) as s:
        return {t: s.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in RUN_TABLES}


def _ids(db: Path) -> list[str]:
    return [r.run_id for r in list_runs(db)]


def test_delete_runs_removes_every_row_of_those_runs_only(store: Path) -> None:
    a = replay(store, model="popularity", dataset="t", name="a")
    b = replay(store, model="random", dataset="t", name="b")
    off = replay(store, model="random", dataset="logs", estimators="ips", name="off")
    before = _counts(store)
    assert before["run_rounds"] > 0
    assert before["run_estimates"] > 0

    deleted = delete_runs(store, ["a", off.run_id, "a"])  # by name and id, named twice

    assert [r.run_id for r in deleted.runs] == [a.run_id, off.run_id]
    assert _ids(store) == [b.run_id]
    after = _counts(store)
    assert after["runs"] == 1
    assert after["run_estimates"] == after["run_rounds"] == 0
    assert {t: before[t] - after[t] for t in RUN_TABLES} == deleted.rows
    assert deleted.to_dict()["deleted"] is True
    assert [r["name"] for r in deleted.to_dict()["runs"]] == ["a", "off"]


def test_one_run_may_be_passed_as_a_string(store: Path) -> None:
    run = replay(store, model="popularity", dataset="t", name="a")
    assert [r.run_id for r in delete_runs(store, "a").runs] == [run.run_id]
    assert _ids(store) == []


def test_dry_run_deletes_nothing(store: Path) -> None:
    run = replay(store, model="popularity", dataset="t", name="a")
    before = file_digest(store)
    plan = delete_runs(store, ["a"], dry_run=True)
    assert [r.run_id for r in plan.runs] == [run.run_id]
    assert plan.rows["runs"] == 1
    assert plan.to_dict()["deleted"] is False
    assert file_digest(store) == before


@pytest.mark.parametrize(
    ("runs", "error", "message"),
    [
        (["a", "nope"], StoreError, "unknown run 'nope'"),
        (["a", "popularit"], StoreError, "unknown run 'popularit' (did you mean 'popularity-"),
        ([], InputError, "give at least one run (id or name) to delete; list them with `abkit runs`"),  # noqa: E501
    ],
)  # fmt: skip
def test_an_unknown_run_deletes_none(store: Path, runs, error, message) -> None:
    replay(store, model="popularity", dataset="t", name="a")
    before = file_digest(store)
    with pytest.raises(error, match=re.escape(message)):
        delete_runs(store, runs)
    assert file_digest(store) == before


def test_an_ambiguous_name_deletes_none(store: Path) -> None:
    # a store written before names were unique can hold two runs of one name
    first = replay(store, model="popularity", dataset="t", name="dup")
    second = replay(store, model="random", dataset="t", name="other")
    with open_store(store, write=True) as s:
        s.con.execute("UPDATE runs SET name = 'dup' WHERE run_id = ?", [second.run_id])
    before = file_digest(store)
    with pytest.raises(StoreError, match=r"run name 'dup' is ambiguous \(.*\); pass a run id"):
        delete_runs(store, ["dup"])
    assert file_digest(store) == before
    delete_runs(store, [first.run_id])
    assert _ids(store) == [second.run_id]


def test_missing_store_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none.duckdb"
    with pytest.raises(StoreError, match="no such database"):
        delete_runs(path, ["x"])
    assert not path.exists()


# -- unique run names -----------------------------------------------------------------------


def test_a_taken_name_is_refused_before_any_work(store: Path, monkeypatch) -> None:
    first = replay(store, model="popularity", dataset="t", name="mine")
    before = file_digest(store)

    import abkit.replay.runner as runner

    def no_work(*args, **kwargs):
        raise AssertionError("the split was read before the name was checked")

    monkeypatch.setattr("abkit.data.replay_sql.load_split", no_work)
    with pytest.raises(StoreError) as info:
        runner.replay(store, model="random", dataset="t", name="mine")
    assert str(info.value) == (
        f"{store}: a run named 'mine' already exists ({first.run_id}); pass --replace to "
        "replace it, choose another name, or delete it with `abkit runs delete`"
    )
    assert file_digest(store) == before


def test_replace_swaps_the_run_of_that_name_in_one_transaction(store: Path) -> None:
    old = replay(store, model="popularity", dataset="t", name="mine")
    keep = replay(store, model="popularity", dataset="t", name="other")
    new = replay(store, model="random", dataset="t", name="mine", replace=True)
    assert _ids(store) == [keep.run_id, new.run_id]
    with open_store(store) as s:
        rows = s.con.execute(
            "SELECT count(*) FROM run_user_metrics WHERE run_id = ?", [old.run_id]
        ).fetchone()
    assert rows == (0,)


def test_replace_keeps_the_old_run_when_the_new_one_fails(store: Path) -> None:
    old = replay(store, model="popularity", dataset="t", name="mine")
    before = file_digest(store)
    with pytest.raises(InputError):
        replay(store, model="random", dataset="t", name="mine", replace=True, split="bogus")
    assert _ids(store) == [old.run_id]
    assert file_digest(store) == before


def test_a_name_stored_while_the_run_was_computed_is_still_refused(store: Path, monkeypatch):
    """The check is repeated in the storing transaction (another process may have stored
    a run of that name meanwhile); the store keeps only the other process's run."""
    import abkit.replay.runner as runner

    real_rank = runner.rank_users
    calls = []

    def rank_while_another_process_stores(*args, **kwargs):
        out = real_rank(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:  # the other "process" replays too, through the same rank_users
            replay(store, model="popularity", dataset="t", name="race")
        return out

    monkeypatch.setattr(runner, "rank_users", rank_while_another_process_stores)
    with pytest.raises(StoreError, match="a run named 'race' already exists"):
        runner.replay(store, model="random", dataset="t", name="race")
    assert [r.model for r in list_runs(store)] == ["popularity"]


def test_a_name_equal_to_a_run_id_is_refused(store: Path) -> None:
    first = replay(store, model="popularity", dataset="t")
    for replace in (False, True):
        with pytest.raises(StoreError, match=re.escape(f"name '{first.run_id}' is the id of")):
            replay(store, model="random", dataset="t", name=first.run_id, replace=replace)


def test_unnamed_runs_and_unstored_runs_are_not_checked(store: Path) -> None:
    replay(store, model="popularity", dataset="t", name="x")
    replay(store, model="popularity", dataset="t")
    replay(store, model="popularity", dataset="t")
    replay(store, model="random", dataset="t", name="x", write=False)
    assert len(list_runs(store)) == 3
