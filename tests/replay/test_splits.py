"""Splits that leave few users to evaluate: the run still happens but carries a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from abkit.replay.runner import replay
from abkit.replay.splits import MIN_EVAL_USERS, few_users_warning, parse_split
from tests.replay.helpers import events_frame, structured_events, write_store

# Two users with training and new test events under the default temporal split, one cold
ROWS = [("u1", "a", 0), ("u1", "b", 1), ("u1", "c", 9), ("u2", "a", 1), ("u2", "c", 10),
        ("u3", "a", 9)]  # fmt: skip


def test_the_warning_text() -> None:
    assert few_users_warning(MIN_EVAL_USERS, "temporal") is None
    assert few_users_warning(3, parse_split("leave-last-out")) == (
        "split leave-last-out leaves only 3 user(s) to evaluate (fewer than 20): the metrics "
        "are too noisy to compare models; try another --split (an earlier temporal cut-off such "
        "as temporal:0.5, or leave-last-out) or more data"
    )


@pytest.mark.parametrize("split", ["temporal", "leave-last-out"])
def test_a_tiny_split_warns(db_path: Path, split: str) -> None:
    db = write_store(db_path, events=events_frame(ROWS), items=["a", "b", "c"])
    result = replay(db, model="popularity", split=split, ks=[1], write=False)
    assert 0 < result.users < MIN_EVAL_USERS
    assert result.warnings == (few_users_warning(result.users, result.split),)
    assert result.to_dict()["warnings"] == list(result.warnings)


def test_enough_users_no_warning(db_path: Path) -> None:
    db = write_store(db_path, events=structured_events(n_users=80, seed=3))
    result = replay(db, model="popularity", ks=[5], write=False)
    assert result.users >= MIN_EVAL_USERS
    assert result.warnings == ()
