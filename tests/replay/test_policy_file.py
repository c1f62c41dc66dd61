"""``replay(policy_file=...)`` / ``abkit replay --policy-file``: an outside policy's action
probabilities (OBP's ``action_dist`` .npz, or the long CSV/Parquet layout) evaluated on the
OBD logs; IPS checked against the Open Bandit Pipeline's formula computed with pandas."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from abkit.cli.main import app
from abkit.data.ingest import ingest_file
from abkit.errors import InputError
from abkit.replay.runner import replay
from tests.conftest import OBD, file_digest

SOURCE = OBD / "random" / "men"
ROWS = 400  # a cut of the log keeps the dense files small


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first ROWS rows of the Men's random log, laid out as OBD (random/men/...)."""
    folder = tmp_path_factory.mktemp("obd-cut") / "random" / "men"
    folder.mkdir(parents=True)
    frame = pd.read_csv(SOURCE / "men.csv.gz", index_col=0).head(ROWS)
    frame.to_csv(folder / "men.csv.gz", compression="gzip")
    shutil.copy(SOURCE / "item_context.csv.gz", folder / "item_context.csv.gz")
    return folder / "men.csv.gz"


@pytest.fixture(scope="module")
def men(cut: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("obd-pf") / "obd.duckdb"
    ingest_file(cut, db, preset="obd")
    return db


@pytest.fixture(scope="module")
def logs(cut: Path) -> pd.DataFrame:
    return pd.read_csv(cut, index_col=0)


def _n_items(logs: pd.DataFrame) -> int:
    return int(logs["item_id"].max()) + 1


def test_uniform_file_reproduces_the_uniform_policy(
    men: Path, logs: pd.DataFrame, tmp_path: Path
) -> None:
    n, n_items = len(logs), _n_items(logs)
    dense = tmp_path / "uniform.npz"
    np.savez(dense, action_dist=np.full((n, n_items, 3), 1.0 / n_items))
    long = tmp_path / "uniform.csv"
    pd.DataFrame(
        [(i, p, 1.0 / n_items) for i in range(n_items) for p in (1, 2, 3)],
        columns=["item", "position", "probability"],
    ).to_csv(long, index=False)
    names = "replay,ips,snips,dr"
    uniform = replay(men, model="random", policy="stochastic", estimators=names, write=False)
    for path in (dense, long):
        result = replay(men, policy_file=path, write=False)
        assert result.model == "policy-file"
        for ours, theirs in zip(result.estimates, uniform.estimates, strict=True):
            assert ours.estimator == theirs.estimator
            if ours.estimator == "dr":  # the reward model's expectation, summed in another order
                assert ours.value == pytest.approx(theirs.value, rel=1e-12)
                continue
            assert (ours.value, ours.ci_low, ours.ci_high) == (
                theirs.value,
                theirs.ci_low,
                theirs.ci_high,
            )


def test_per_round_distribution_ips_equals_obp_formula(
    men: Path, logs: pd.DataFrame, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    n, n_items = len(logs), _n_items(logs)
    dist = rng.dirichlet(np.full(n_items, 0.3), size=(n, 3)).transpose(0, 2, 1)  # n x items x 3
    np.savez(tmp_path / "pi.npz", action_dist=dist)
    result = replay(men, policy_file=tmp_path / "pi.npz", estimators="ips,snips", write=False)
    # OBP: IPW = mean(reward * action_dist[round, action, position] / pscore), 0-based slots
    pi = dist[np.arange(n), logs["item_id"].to_numpy(), logs["position"].to_numpy() - 1]
    w = pi / logs["propensity_score"].to_numpy()
    r = logs["click"].to_numpy()
    assert result.estimate("ips").value == pytest.approx(float(np.mean(w * r)), rel=1e-12)
    assert result.estimate("snips").value == pytest.approx(
        float(np.sum(w * r) / np.sum(w)), rel=1e-12
    )
    # the same distribution in the long layout gives the same estimates
    rounds, items, slots = np.nonzero(dist)
    pd.DataFrame(
        {
            "round": rounds,
            "item": items,
            "position": slots + 1,
            "probability": dist[rounds, items, slots],
        }
    ).to_parquet(tmp_path / "pi.parquet")
    again = replay(men, policy_file=tmp_path / "pi.parquet", estimators="ips,snips", write=False)
    assert again.estimate("ips").value == pytest.approx(result.estimate("ips").value, rel=1e-12)


def _long(tmp_path: Path, rows: list[tuple[int, int, int, float]]) -> Path:
    path = tmp_path / "bad.csv"
    pd.DataFrame(rows, columns=["round", "item", "position", "probability"]).to_csv(
        path, index=False
    )
    return path


def _uniform_rows(n: int, n_items: int) -> list[tuple[int, int, int, float]]:
    return [(r, i, p, 1.0 / n_items) for r in range(n) for i in range(n_items) for p in (1, 2, 3)]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("sum", "round 0, position 1 sum to"),
        ("unknown-item", "item '999' is not in the dataset's catalogue"),
        ("unknown-round", "is not an evaluated round"),
        ("missing-round", "has no probabilities"),
        ("duplicate", "repeats a (round, item, position)"),
        ("rounds", "rounds are evaluated"),
        ("shape", "expected rounds x items x positions"),
        ("range", "must lie in [0, 1]"),
        ("columns", "expected columns round, item, position, probability"),
        ("pickle", "Python objects"),
    ],
)
def test_bad_policy_files_are_refused(
    men: Path, logs: pd.DataFrame, tmp_path: Path, case: str, message: str
) -> None:
    n, n_items = len(logs), _n_items(logs)
    if case in ("sum", "unknown-item", "unknown-round", "missing-round", "duplicate"):
        rows = _uniform_rows(n, n_items)
        if case == "sum":
            rows[0] = (0, 0, 1, 0.5)
        elif case == "unknown-item":
            rows.append((0, 999, 1, 0.0))
        elif case == "unknown-round":
            rows.append((n, 0, 1, 0.0))
        elif case == "missing-round":
            rows = [row for row in rows if row[0] != 5]
        else:
            rows.append(rows[0])
        path = _long(tmp_path, rows)
    elif case == "columns":
        path = tmp_path / "bad.csv"
        path.write_text("item,slot,p\n0,1,1.0\n")
    elif case == "pickle":
        path = tmp_path / "bad.npz"
        np.savez(path, action_dist=np.array([{"a": 1}], dtype=object))
    else:
        shape = {"rounds": (n - 1, n_items, 3), "shape": (n, n_items), "range": (n, n_items, 3)}
        dist = np.full(shape[case], 1.0 / n_items)
        if case == "range":
            dist[0, 0, 0], dist[0, 1, 0] = 1.5, -0.5 - 1.0 / n_items + 2.0 / n_items
        path = tmp_path / "bad.npz"
        np.savez(path, action_dist=dist)
    before = file_digest(men)
    with pytest.raises(InputError) as excinfo:
        replay(men, policy_file=path)
    assert message in str(excinfo.value)
    assert file_digest(men) == before


def test_cli_policy_file(men: Path, logs: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "ten.csv"  # every slot: one of items 0-9, uniformly
    pd.DataFrame(
        [(i, p, 0.1) for i in range(10) for p in (1, 2, 3)],
        columns=["item", "position", "probability"],
    ).to_csv(path, index=False)
    runner = CliRunner()
    out = runner.invoke(
        app,
        ["replay", "--db", str(men), "--policy-file", str(path), "--estimator", "ips", "--json"],
    )
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    assert payload["model"] == "policy-file"
    assert payload["params"]["layout"] == "long"
    pi = 0.1 * (logs["item_id"] < 10)
    expected = float((pi / logs["propensity_score"] * logs["click"]).mean())
    assert payload["estimates"]["ips"]["value"] == pytest.approx(expected, rel=1e-12)
    bad = runner.invoke(
        app, ["replay", "--db", str(men), "--policy-file", str(path), "--model", "random"]
    )
    assert bad.exit_code == 2
    assert "either --model or --policy-file" in bad.output
