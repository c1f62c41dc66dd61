"""Warnings for degenerate off-policy targets (issue 26, item 3): a policy that is the same in
every round, a model that knew none of the evaluated users, and a stochastic policy whose
importance weights all lie within 5% of 1 (the logging policy in disguise)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from abkit.plugins import TrainingData, top_k_from_scores
from abkit.replay.offpolicy import degenerate_policy_warnings, policy_probabilities
from tests.conftest import OBD

CONSTANT = re.compile(
    r"the policy is the same in every one of the [\d,]+ evaluated rounds \(it ignores the "
    r"context\): its estimate is that of one fixed (ranking|distribution over items), not of "
    r"personalisation"
)
COLD = re.compile(r"the model knew none of the [\d,]+ evaluated users \(all cold")
DISGUISE = re.compile(
    r"every importance weight lies within 5% of 1 \((\d\.\d{3}) to (\d\.\d{3})\): the policy "
    r"is the logging policy in disguise; its estimate cannot differ from the logging policy's"
)


# -- the detection on hand-built arrays ---------------------------------------------------


def test_a_constant_policy_is_named_with_its_rounds() -> None:
    weights = np.array([0.0, 3.0, 0.0, 3.0])  # a top-k policy: 0 or 1 / propensity
    out = degenerate_policy_warnings(weights, n_users=4, varies=False, stochastic=False)
    assert out == [
        "the policy is the same in every one of the 4 evaluated rounds (it ignores the "
        "context): its estimate is that of one fixed ranking, not of personalisation"
    ]
    two_slots = degenerate_policy_warnings(weights, n_users=2, varies=False, stochastic=False)
    assert "every one of the 4 evaluated rounds (2 users)" in two_slots[0]
    # one user cannot show that the policy ignores the user; a model constant by design: None
    assert degenerate_policy_warnings(weights, n_users=1, varies=False, stochastic=False) == []
    assert degenerate_policy_warnings(weights, n_users=4, varies=None, stochastic=False) == []


def test_a_varying_policy_gives_no_warning() -> None:
    weights = np.array([0.4, 1.8, 0.9, 1.3, 0.2])
    assert (
        degenerate_policy_warnings(weights, n_users=5, varies=True, cold_users=2, stochastic=True)
        == []
    )


def test_all_cold_users_are_named_and_some_cold_ones_are_not() -> None:
    weights = np.array([0.5, 1.5, 2.0])
    out = degenerate_policy_warnings(weights, n_users=3, varies=True, cold_users=3, stochastic=True)
    assert len(out) == 1
    assert COLD.match(out[0])
    assert (
        degenerate_policy_warnings(weights, n_users=3, varies=True, cold_users=2, stochastic=True)
        == []
    )


def test_near_uniform_weights_are_the_logging_policy_in_disguise() -> None:
    weights = np.array([0.998, 1.0, 1.011, 1.004])
    out = degenerate_policy_warnings(weights, n_users=4, varies=True, stochastic=True)
    assert out == [
        "every importance weight lies within 5% of 1 (0.998 to 1.011): the policy is the "
        "logging policy in disguise; its estimate cannot differ from the logging policy's "
        "(lower --temperature to make it choose)"
    ]
    # all equal (tied scores): no temperature sharpens that; a model's own probabilities: no hint
    for kw in ({"temperature_hint": True}, {"temperature_hint": False}):
        tied = np.ones(3) if kw["temperature_hint"] else weights
        (line,) = degenerate_policy_warnings(tied, n_users=3, varies=True, stochastic=True, **kw)
        assert DISGUISE.fullmatch(line)
    # one weight 6% off, or a top-k policy: no warning
    assert (
        degenerate_policy_warnings(
            np.array([1.0, 1.06, 0.99]), n_users=3, varies=True, stochastic=True
        )
        == []
    )
    assert degenerate_policy_warnings(np.ones(3), n_users=3, varies=True, stochastic=False) == []


class _Scores:
    """A model whose scores are given: ``table[user]`` (or one row for every user)."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    def score(self, data: TrainingData, users: np.ndarray) -> np.ndarray:
        rows = np.zeros(len(users), dtype=np.int64) if len(self.table) == 1 else users
        return self.table[rows].astype(np.float32)

    def recommend(self, data: TrainingData, users: np.ndarray, k: int, *, exclude_seen: bool):
        return top_k_from_scores(self.score(data, users), k)


@pytest.mark.parametrize("policy", ["topk", "stochastic"])
@pytest.mark.parametrize("chunk_users", [1, 2, 16])
def test_policy_probabilities_tells_whether_the_policy_varies(
    policy: str, chunk_users: int
) -> None:
    n_users, n_items = 5, 4
    data = TrainingData.from_arrays(
        user_idx=np.array([0], dtype=np.int64),
        item_idx=np.array([0], dtype=np.int64),
        user_ids=[f"u{u}" for u in range(n_users)],
        item_ids=[f"i{i}" for i in range(n_items)],
    )
    rounds = {
        "user_idx": np.arange(n_users, dtype=np.int64),
        "item_idx": np.array([0, 1, 2, 3, 0], dtype=np.int64),
        "position": np.ones(n_users, dtype=np.int64),
        "reward": np.array([1.0, 0.0, 0.0, 1.0, 0.0]),
        "fold": np.array([0, 1, 0, 1, 0], dtype=np.int64),
    }
    one_ranking = np.array([[0.3, 0.1, 0.4, 0.2]])
    personal = np.tile(one_ranking, (n_users, 1))
    personal[4] = [0.1, 0.4, 0.2, 0.3]  # the last user (the last chunk) differs
    for table, varies in ((one_ranking, False), (personal, True)):
        got = policy_probabilities(
            _Scores(table),  # type: ignore[arg-type]
            data,
            **rounds,
            policy=policy,  # type: ignore[arg-type]
            chunk_users=chunk_users,
        )
        assert got.varies is varies
    _Scores.personalised = False  # type: ignore[attr-defined]  # like popularity: unchecked
    try:
        got = policy_probabilities(_Scores(one_ranking), data, **rounds, policy=policy)  # type: ignore[arg-type]
        assert got.varies is None
    finally:
        del _Scores.personalised  # type: ignore[attr-defined]
    if policy == "stochastic":  # the check is on the distribution, not only its top item
        close = np.tile(one_ranking, (n_users, 1))
        close[2, 1] -= 0.05
        got = policy_probabilities(
            _Scores(close),
            data,
            **rounds,
            policy="stochastic",
            chunk_users=chunk_users,  # type: ignore[arg-type]
        )
        assert got.varies is True  # the same top item for every user, not the same policy


# -- end to end on the Open Bandit logs --------------------------------------------------------


@pytest.fixture(scope="module")
def obd_random(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from abkit.data.ingest import ingest_file

    db = tmp_path_factory.mktemp("obd-degenerate") / "obd.duckdb"
    ingest_file(OBD / "random" / "women" / "women.csv.gz", db, preset="obd")
    return db


def _replay(runner: CliRunner, db: Path, *args: str) -> tuple[list[str], list[str]]:
    """(the warning lines of the text output, the --json warnings) of one replay."""
    from abkit.cli.main import app

    common = ["replay", "--db", str(db), "--dataset", "obd-women", "--variant", "random"]
    text = runner.invoke(app, [*common, *args])
    assert text.exit_code == 0, text.output
    shown = [
        line.removeprefix("warning: ")
        for line in text.stderr.splitlines()
        if line.startswith("warning: ")
    ]
    js = runner.invoke(app, [*common, *args, "--json"])
    assert js.exit_code == 0, js.output
    return shown, json.loads(js.stdout)["warnings"]


def test_als_on_obd_is_constant_and_cold(runner: CliRunner, obd_random: Path) -> None:
    """Every OBD round is its own user, unknown to ALS: one fixed (uniform) distribution."""
    args = ("--model", "als", "--policy", "stochastic", "--estimator", "ips")
    shown, listed = _replay(runner, obd_random, *args)
    assert shown == listed
    assert len(listed) == 3
    assert CONSTANT.fullmatch(listed[0])
    assert "distribution over items" in listed[0]
    assert COLD.match(listed[1])
    assert DISGUISE.match(listed[2])
    assert listed[2].endswith("policy's")  # tied scores: no --temperature hint


def test_ctr_stochastic_on_obd_is_the_logging_policy_in_disguise(
    runner: CliRunner, obd_random: Path
) -> None:
    args = ("--model", "ctr", "--policy", "stochastic", "--estimator", "ips")
    shown, listed = _replay(runner, obd_random, *args, "--split", "temporal:0.5")
    assert shown == listed
    assert len(listed) == 1  # ctr is one ranking for every user by design: no constant warning
    match = DISGUISE.match(listed[0])
    assert match is not None
    low, high = float(match[1]), float(match[2])
    assert 0.95 <= low < 1.0 < high <= 1.05
    assert listed[0].endswith("(lower --temperature to make it choose)")
    # a low temperature makes it choose: no warning
    shown, listed = _replay(
        runner, obd_random, *args, "--split", "temporal:0.5", "--temperature", "0.0005"
    )
    assert listed == shown == []
