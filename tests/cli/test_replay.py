"""`abkit replay`, `abkit runs`, `abkit models`, `abkit train lstm` on the command line.

Every bad input gives one line on stderr, exit code 2, and leaves the store byte-identical.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from abkit.cli.main import app
from abkit.cli.replay import _short_split
from abkit.replay.runner import load_training_data
from tests.conftest import file_digest
from tests.replay.helpers import START, structured_events, write_store

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_store(tmp_path / "r.duckdb", events=structured_events(n_users=120, seed=3))


def replay(runner: CliRunner, db: Path, *args: str) -> Result:
    """``abkit replay --db DB ARGS...``."""
    return runner.invoke(app, ["replay", "--db", str(db), *args])


def runs_json(runner: CliRunner, db: Path) -> list[dict]:
    """The runs ``abkit runs --json`` lists."""
    listed = runner.invoke(app, ["runs", "--db", str(db), "--json"])
    assert listed.exit_code == 0, listed.stderr
    return json.loads(listed.stdout)["runs"]


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing torch for training fails as it does where torch is not installed."""
    import abkit_recommenders.train_lstm as train_lstm

    def missing() -> None:
        raise train_lstm.TorchMissingError("torch")

    monkeypatch.setattr(train_lstm, "require_torch", missing)


def test_replay_json_and_runs(runner: CliRunner, store: Path) -> None:
    result = replay(
        runner, store, "--model", "popularity", "--k", "10,20", "--name", "baseline", "--json"
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model"] == "popularity"
    assert payload["k"] == [10, 20]
    assert payload["split"].startswith("temporal:2024-01-")
    assert payload["users"] > 50
    for name in (
        "ndcg@10",
        "hit_rate@10",
        "mrr@10",
        "recall@10",
        "precision@10",
        "coverage@10",
        "ndcg@20",
        "map@20",
        "novelty@10",
        "popularity_bias@10",
    ):
        assert 0 <= payload["metrics"][name] <= (20 if name.startswith("novelty") else 1)
    assert payload["estimates"] == {}
    runs = runs_json(runner, store)
    assert [r["run_id"] for r in runs] == [payload["run_id"]]
    assert runs[0]["name"] == "baseline"
    assert runs[0]["metrics"]["ndcg@10"] == payload["metrics"]["ndcg@10"]
    table = runner.invoke(app, ["runs", "--db", str(store)], env={"COLUMNS": "200"})
    assert payload["run_id"] in table.stdout
    # one split for every run: named once in the title, so that a row fits 80 columns
    day = payload["split"][: len("temporal:2024-01-17")]
    assert f"replay runs (oldest first, all on split {day};" in table.stdout
    assert " split " not in table.stdout.splitlines()[1]


def test_replay_report_and_params(runner: CliRunner, store: Path) -> None:
    result = replay(
        runner, store, "--model", "als", "-p", "factors=4", "--param", "iterations=3",
        "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "ranking metrics" in result.stdout
    assert "ndcg" in result.stdout
    runs = runs_json(runner, store)
    assert runs[0]["params"]["factors"] == 4
    assert runs[0]["params"]["iterations"] == 3


def test_offpolicy_json(runner: CliRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 3000
    logs = pd.DataFrame(
        {
            "impression_id": np.arange(n),
            "user_id": [f"v{i}" for i in range(n)],
            "ts": [START] * n,
            "variant": "random",
            "item_id": [f"i{j}" for j in rng.integers(0, 5, size=n)],
            "position": 1,
            "propensity": 0.2,
            "click": (rng.random(n) < 0.1).astype(int),
        }
    )
    db = write_store(tmp_path / "o.duckdb", impressions=logs, items=[f"i{j}" for j in range(5)])
    stochastic = ("--model", "random", "--k", "3", "--policy", "stochastic")
    result = replay(
        runner, db, *stochastic, "--estimator", "ips,snips", "--estimator", "replay", "--json"
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["kind"] == "offpolicy"
    assert set(payload["estimates"]) == {"ips", "snips", "replay"}
    ips = payload["estimates"]["ips"]
    assert ips["value"] == pytest.approx(logs["click"].mean())
    assert ips["ci"][0] < ips["value"] < ips["ci"][1]
    assert ips["ess"] == pytest.approx(n)
    report = replay(runner, db, *stochastic, "--estimator", "dr")
    assert report.exit_code == 0, report.stderr
    assert "off-policy estimates" in report.stdout


def test_models(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    models = {m["name"]: m for m in json.loads(result.stdout)["models"]}
    assert set(models) >= {"random", "popularity", "als", "lstm"}
    assert models["als"]["extra"] == "als"
    assert models["lstm"]["status"] == "ok"
    table = runner.invoke(app, ["models"])
    assert "popularity" in table.stdout


def _corrupt(folder: Path) -> Path:
    path = folder / "bad.onnx"
    path.write_bytes(b"\x00\x01 this is not a model")
    path.with_suffix(".json").write_text("{}")
    return path


def _wrong_signature(folder: Path) -> Path:
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = folder / "sig.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    return path


def test_model_names_match_ignoring_case(runner: CliRunner, store: Path) -> None:
    """`--model ALS` is the plug-in als: the run is stored and named as als."""
    result = replay(
        runner, store, "--model", "ALS", "-p", "factors=2", "-p", "iterations=1",
        "--device", "cpu", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model"] == "als"
    assert payload["run_id"].startswith("als-")
    assert [run["model"] for run in runs_json(runner, store)] == ["als"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "ALSS"],
            "error: unknown model 'ALSS' (did you mean 'als'?); expected one "
            "of: als, ctr, logistic, lstm, popularity, random",
        ),
        (
            ["--model", "alss"],
            "error: unknown model 'alss' (did you mean 'als'?); expected one "
            "of: als, ctr, logistic, lstm, popularity, random",
        ),
        (
            ["--model", "random", "--k", "61"],
            "error: --k 61 is larger than the catalogue (60 items)",
        ),
        (
            ["--model", "popularity", "--split", "temporal:2023-01-01"],
            "error: the training split of dataset 't' (temporal:2023-01-01T00:00:00) is empty: "
            "no interaction to fit the model on",
        ),
        (
            ["--model", "popularity", "--k", "ten"],
            "error: --k: K must be a positive integer, got 'ten'",
        ),
        (
            ["--model", "popularity", "--ci", "foo"],  # refused even without --estimator
            "error: --ci: unknown interval method 'foo'; expected one of: bootstrap, normal",
        ),
        (
            ["--model", "popularity", "--param", "smoothing"],
            "error: --param 'smoothing': expected KEY=VALUE, e.g. factors=32",
        ),
        (
            ["--model", "lstm", "--model-path", "{folder}/bad.onnx"],
            "error: {folder}/bad.json: not a valid lstm sidecar (format None, expected "
            "'abkit-lstm/1')",
        ),
    ],
)
def test_bad_input(runner: CliRunner, store: Path, args: list[str], message: str) -> None:
    folder = store.parent
    _corrupt(folder)
    before = file_digest(store)
    args = [a.format(folder=folder) for a in args]
    result = replay(runner, store, *args)
    assert result.exit_code == 2
    assert result.stderr.strip() == message.format(folder=folder)
    assert "Traceback" not in result.output
    assert file_digest(store) == before


def test_corrupt_onnx_and_wrong_signature(runner: CliRunner, store: Path, tmp_path: Path) -> None:
    from abkit.replay.runner import load_training_data

    data, _, _ = load_training_data(store)
    sidecar = {
        "format": "abkit-lstm/1",
        "item_ids": data.item_ids.tolist(),
        "seq_len": 4,
        "fingerprint": data.fingerprint,
    }
    corrupt = _corrupt(tmp_path)
    corrupt.with_suffix(".json").write_text(json.dumps(sidecar))
    wrong = _wrong_signature(tmp_path)
    wrong.with_suffix(".json").write_text(json.dumps(sidecar))
    before = file_digest(store)
    result = replay(runner, store, "--model", "lstm", "--model-path", str(corrupt))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {corrupt}: not a valid ONNX model (")
    assert result.stderr.count("\n") == 1
    result = replay(runner, store, "--model", "lstm", "--model-path", str(wrong))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {wrong}: wrong input signature; expected inputs history int64[2d], "
        "k int64[1d], exclude float[2d], found x tensor(float)[1]"
    )
    assert file_digest(store) == before


def test_sidecar_with_a_negative_seq_len(runner: CliRunner, store: Path, tmp_path: Path) -> None:
    """seq_len -3 used to reach numpy and end in a ValueError traceback."""
    from abkit.replay.runner import load_training_data

    data, _, _ = load_training_data(store)
    model = _wrong_signature(tmp_path)
    side = model.with_suffix(".json")
    side.write_text(
        json.dumps(
            {
                "format": "abkit-lstm/1",
                "item_ids": data.item_ids.tolist(),
                "seq_len": -3,
                "fingerprint": data.fingerprint,
            }
        )
    )
    before = file_digest(store)
    result = replay(runner, store, "--model", "lstm", "--model-path", str(model))
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {side}: not a valid lstm sidecar (seq_len must be a positive integer, got -3)\n"
    )
    assert file_digest(store) == before


@pytest.mark.usefixtures("no_torch")
def test_train_without_torch_names_the_install_line(
    runner: CliRunner, store: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["train", "lstm", "--db", str(store), "--out", str(tmp_path / "m.onnx")]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: training the lstm needs the optional package 'torch': "
        'pip install torch==2.13.0 "abkit-lift[train]"'
    )
    assert not (tmp_path / "m.onnx").exists()


def test_train_rejects_a_bad_out_path(runner: CliRunner, store: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", "lstm", "--db", str(store), "--out", str(tmp_path / "m.pt")]
    )
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == f"error: --out {tmp_path / 'm.pt'}: the model file must "
        "end in .onnx"
    )


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install torch==2.13.0)")
def test_train_names_the_flag_of_a_bad_size(runner: CliRunner, store: Path, tmp_path: Path) -> None:
    args = ["train", "lstm", "--db", str(store), "--out", str(tmp_path / "m.onnx")]
    result = runner.invoke(app, [*args, "--epochs", "0"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --epochs must be at least 1, got 0"


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install torch==2.13.0)")
def test_train_then_replay_without_torch(runner: CliRunner, store: Path, tmp_path: Path) -> None:
    out = tmp_path / "lstm.onnx"
    trained = runner.invoke(
        app,
        [
            "train",
            "lstm",
            "--db",
            str(store),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--seq-len",
            "6",
            "--hidden",
            "16",
            "--json",
        ],
    )
    assert trained.exit_code == 0, trained.stderr
    info = json.loads(trained.stdout)
    assert out.exists()
    assert out.with_suffix(".json").exists()
    # replay in a fresh interpreter where importing torch fails: inference needs no torch
    code = (
        "import sys, json; sys.modules['torch'] = None\n"
        "from typer.testing import CliRunner\n"
        "from abkit.cli.main import app\n"
        f"r = CliRunner().invoke(app, ['replay', '--db', {str(store)!r}, '--model', 'lstm', "
        f"'--model-path', {str(out)!r}, '--json'])\n"
        "assert r.exit_code == 0, r.stderr\n"
        "print(r.stdout)\n"
    )
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["model"] == "lstm"
    assert payload["params"]["model_path"] == str(out)
    # the sidecar carries the fingerprint of the store's training split (what replay checks
    # the model against) and the trained sequence length
    sidecar = json.loads(out.with_suffix(".json").read_text())
    training, _, _ = load_training_data(store)
    assert sidecar["fingerprint"] == info["fingerprint"] == training.fingerprint
    assert sidecar["seq_len"] == 6
    assert payload["metrics"]["ndcg@10"] > 0


@pytest.mark.usefixtures("no_torch")
def test_replay_lstm_without_torch_or_model_file(runner: CliRunner, store: Path) -> None:
    before = file_digest(store)
    result = replay(runner, store, "--model", "lstm")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: training the lstm needs the optional package 'torch': "
        'pip install torch==2.13.0 "abkit-lift[train]"; or replay a trained model with '
        "--model-path FILE.onnx"
    )
    assert file_digest(store) == before


def test_offpolicy_table_rows_stay_one_line_with_the_reason_once(
    runner: CliRunner, tmp_path: Path
) -> None:
    # a deterministic top-1 policy (random scores, top-k) on uniform logs over 200 items: every
    # weight is 200 on the
    # few matched rounds, so each estimator is refused for the same low ESS; the table says
    # "refused [1]" per row and the reason once under it (80 columns)
    rng = np.random.default_rng(1)
    n, items = 400, 200
    logs = pd.DataFrame(
        {
            "impression_id": np.arange(n),
            "user_id": [f"v{i}" for i in range(n)],
            "ts": [START] * n,
            "variant": "random",
            "item_id": [f"i{j}" for j in rng.integers(0, items, size=n)],
            "position": 1,
            "propensity": 1 / items,
            "click": (rng.random(n) < 0.1).astype(int),
        }
    )
    db = write_store(tmp_path / "o.duckdb", impressions=logs, items=[f"i{j}" for j in range(items)])
    result = replay(runner, db, "--model", "random", "--k", "1", "--estimator", "ips,snips")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = [line for line in lines if line.split("│")[0].strip() in ("ips", "snips")]
    assert len(rows) == 2
    assert all(row.rstrip().endswith("refused [1]") for row in rows), rows
    notes = [line for line in lines if line.startswith("[1] ")]
    assert len(notes) == 1
    assert "effective sample size" in notes[0]
    assert not any(line.startswith("[2] ") for line in lines)


def test_runs_table_shows_a_temporal_cut_to_the_day() -> None:
    assert _short_split("temporal:2024-01-17T17:42:01") == "temporal:2024-01-17"
    assert _short_split("temporal:2024-01-17 17:42:01") == "temporal:2024-01-17"
    assert _short_split("temporal:0.5") == "temporal:0.5"
    assert _short_split("leave-last-out") == "leave-last-out"
