"""Splits: few users to evaluate (a warning); leave-last-out ties drawn with a seed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abkit.data.replay_sql import load_split
from abkit.data.store import open_store
from abkit.errors import InputError
from abkit.replay.runner import replay
from abkit.replay.splits import (
    MIN_EVAL_USERS,
    SplitSpec,
    few_users_warning,
    parse_split,
    resolve_seed,
)
from tests.replay.helpers import START, events_frame, structured_events, write_store

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


# -- leave-last-out: ties in the last timestamp ----------------------------------------------

TIED = 3  # items each user has in their last second


def _tied_store(db_path: Path, users: int = 1500) -> Path:
    """Every user: one early event, then ``TIED`` distinct items in the same last second,
    plus one user whose last event is alone (no tie). Item ids are drawn per user, so id
    order says nothing about which tied item comes first in the file."""
    rng = np.random.default_rng(42)
    rows = []
    for u in range(users):
        items = rng.choice(20, size=TIED + 1, replace=False)
        rows.append((f"u{u:05d}", f"i{items[0]:02d}", START))
        rows += [(f"u{u:05d}", f"i{i:02d}", START + timedelta(days=1)) for i in items[1:]]
    rows += [("zz", "i00", START), ("zz", "i19", START + timedelta(hours=1)),
             ("zz", "i05", START + timedelta(hours=2))]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"]).assign(event_type="view")
    return write_store(db_path, events=frame)


def _held_out(db: Path, seed: int | None) -> dict[str, str]:
    with open_store(db) as store:
        arrays = load_split(store.con, "t", kind="leave-last-out", cutoff=None, seed=seed)
    users = arrays.user_ids[arrays.test_user_idx]
    return dict(zip(users.tolist(), arrays.item_ids[arrays.test_item_idx].tolist(), strict=True))


def test_ties_in_the_last_second_are_drawn_uniformly_and_reproducibly(db_path: Path) -> None:
    """Which of the tied items is held out: its rank by id among the user's tied items is
    uniform (chi-square against scipy), not always the largest id as before; the same seed
    gives the same split, another seed another one; a user without a tie keeps the last."""
    from scipy import stats

    db = _tied_store(db_path)
    with open_store(db) as store:
        frame = store.con.execute(
            "SELECT user_id, item_id FROM events WHERE ts = (SELECT max(ts) FROM events e "
            "WHERE e.user_id = events.user_id) ORDER BY user_id, item_id"
        ).df()
    tied = frame.groupby("user_id")["item_id"].apply(list).to_dict()
    held = _held_out(db, seed=7)
    assert held["zz"] == "i05"  # no tie: the last event, as before
    ranks = np.bincount(
        [tied[u].index(item) for u, item in held.items() if u != "zz"], minlength=TIED
    )
    assert ranks.sum() == 1500
    assert stats.chisquare(ranks).pvalue > 0.01, ranks  # each rank ~ 500
    assert ranks.max() < 600  # the old rule put all 1,500 at the largest id
    assert _held_out(db, seed=7) == held
    other = _held_out(db, seed=8)
    changed = sum(other[u] != held[u] for u in held)
    assert 0.55 * 1500 < changed < 0.78 * 1500  # 2/3 expected when draws are independent


def test_leave_last_out_split_text_records_the_seed(db_path: Path) -> None:
    db = _tied_store(db_path, users=30)
    assert parse_split("leave-last-out:seed=7") == SplitSpec(kind="leave-last-out", seed=7)
    assert resolve_seed(parse_split("leave-last-out"), 3) == SplitSpec(
        kind="leave-last-out", seed=3
    )
    assert resolve_seed(parse_split("leave-last-out:seed=7"), 3).seed == 7
    by_seed = replay(db, model="popularity", split="leave-last-out", ks=[1], seed=7, write=False)
    named = replay(db, model="popularity", split="leave-last-out:seed=7", ks=[1], write=False)
    assert by_seed.split == named.split == "leave-last-out:seed=7"
    assert by_seed.fingerprint == named.fingerprint
    for bad in ("leave-last-out:7x", "leave-last-out:seed=-1", "leave-last-out:x=1"):
        with pytest.raises(InputError, match="leave-last-out takes no argument or seed=N"):
            parse_split(bad)
