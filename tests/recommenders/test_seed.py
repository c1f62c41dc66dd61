"""The article's model (`abkit train lstm --arch seed`): its ONNX graph scores every item as
one more LSTM step, which equals running the whole sequence (history, candidate) through
torch's LSTMs item by item; trained, it replays and compares paired with the next-item LSTM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from abkit.cli.main import app
from abkit.plugins import create_recommender
from abkit.replay.runner import load_training_data

torch = pytest.importorskip("torch")
train_seed = pytest.importorskip("abkit_recommenders.train_seed")


def _torch_layers(n_items: int, emb: int, hidden: int, seed: int = 0):
    torch.manual_seed(seed)
    embedding = torch.nn.Embedding(n_items + 1, emb, padding_idx=0)
    lstm1 = torch.nn.LSTM(emb, hidden, batch_first=True)
    lstm2 = torch.nn.LSTM(hidden, hidden, batch_first=True)
    dense = torch.nn.Linear(hidden, 1)
    return embedding, lstm1, lstm2, dense


def test_one_step_for_all_items_equals_the_whole_sequence_per_item() -> None:
    """Keras semantics, item by item: the sequence [history..., candidate] through
    Embedding -> LSTM -> LSTM -> Dense (dropout is off at inference), one item at a time."""
    n_items, emb, hidden, seq_len = 9, 4, 6, 5
    embedding, lstm1, lstm2, dense = _torch_layers(n_items, emb, hidden)

    def get(t):
        return t.detach().numpy().astype(np.float32)

    weights = {
        "embedding": get(embedding.weight),
        "w1": get(lstm1.weight_ih_l0),
        "r1": get(lstm1.weight_hh_l0),
        "b1": get(lstm1.bias_ih_l0) + get(lstm1.bias_hh_l0),
        "w2": get(lstm2.weight_ih_l0),
        "r2": get(lstm2.weight_hh_l0),
        "b2": get(lstm2.bias_ih_l0) + get(lstm2.bias_hh_l0),
        "dense_w": get(dense.weight),
        "dense_b": get(dense.bias),
    }
    proto = train_seed.seed_graph(weights, seq_len=seq_len)
    history = np.array([[0, 0, 3, 1, 7], [2, 5, 9, 9, 4], [0, 0, 0, 0, 6]], dtype=np.int64)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"history": history})
    expected = np.zeros((history.shape[0], n_items))
    with torch.no_grad():
        for row in range(history.shape[0]):
            for item in range(n_items):
                seq = torch.tensor([[*history[row], item + 1]])
                y1, _ = lstm1(embedding(seq))
                y2, _ = lstm2(y1)
                expected[row, item] = float(dense(y2[0, -1]))
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_negatives_are_uniform_over_the_other_items() -> None:
    rng = np.random.default_rng(0)
    positives = np.full(40_000, 3)
    drawn = train_seed.sample_negatives(positives, 5, 2, rng)
    counts = np.bincount(drawn.ravel(), minlength=5)
    assert counts[3] == 0
    # each of the 4 other items has probability 1/4 of the 80,000 draws
    assert np.all(np.abs(counts[[0, 1, 2, 4]] / 80_000 - 0.25) < 0.01)


@pytest.mark.slow
def test_train_seed_replays_beside_the_next_item_lstm(
    runner: CliRunner, sim_db: Path, tmp_path: Path
) -> None:
    db = tmp_path / "sim.duckdb"  # the replays store runs; sim_db is shared read-only
    db.write_bytes(sim_db.read_bytes())
    tiny = ["--hidden", "8", "--embedding", "8", "--epochs", "1", "--db", str(db)]
    seed_path, lstm_path = tmp_path / "seed.onnx", tmp_path / "lstm.onnx"
    trained = runner.invoke(
        app,
        [
            "train",
            "lstm",
            "--arch",
            "seed",
            "--out",
            str(seed_path),
            "--json",
            *tiny,
            "--samples-per-epoch",
            "300",
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["arch"] == "seed"
    sidecar = json.loads(seed_path.with_suffix(".json").read_text())
    assert (sidecar["arch"], sidecar["negatives"], sidecar["seq_len"]) == ("seed", 13, 10)
    assert sidecar["params"]["dropout"] == 0.5
    trained = runner.invoke(
        app,
        ["train", "lstm", "--out", str(lstm_path), *tiny, "--samples-per-epoch", "500"],
    )
    assert trained.exit_code == 0, trained.output

    # inference in chunks of max_rows users equals one call for all users
    data, _split, _name = load_training_data(db)
    users = np.arange(0, data.n_train_users, 8)
    assert users.size > sidecar["max_rows"]
    chunked = create_recommender("lstm", {"device": "cpu"})
    chunked.load(seed_path, data)
    whole_path = tmp_path / "whole.onnx"
    whole_path.write_bytes(seed_path.read_bytes())
    whole_path.with_suffix(".json").write_text(json.dumps({**sidecar, "max_rows": 10**9}))
    whole = create_recommender("lstm", {"device": "cpu"})
    whole.load(whole_path, data)
    np.testing.assert_allclose(chunked.score(data, users), whole.score(data, users), rtol=1e-5)

    for name, path in (("seed", seed_path), ("next-item", lstm_path)):
        replayed = runner.invoke(
            app,
            [
                "replay",
                "--db",
                str(db),
                "-m",
                "lstm",
                "--model-path",
                str(path),
                "--name",
                name,
            ],
        )
        assert replayed.exit_code == 0, replayed.output
    compared = runner.invoke(
        app, ["compare", "next-item", "seed", "--db", str(db), "--metric", "ndcg@10", "--json"]
    )
    assert compared.exit_code == 0, compared.output
    (row,) = json.loads(compared.stdout)["comparisons"]
    assert (row["metric"], row["reference"], row["candidate"]) == ("ndcg@10", "next-item", "seed")
    assert row["users_unpaired"] == 0
    # the accuracy claim, on held-out pairs at the training ratio (13 negatives per positive)
    checked = runner.invoke(
        app,
        ["models", "check-accuracy", "--model-path", str(seed_path), "--db", str(db), "--json"],
    )
    assert checked.exit_code == 0, checked.output
    check = json.loads(checked.stdout)
    seed_run = json.loads(runner.invoke(app, ["runs", "--db", str(db), "--json"]).stdout)["runs"]
    users = next(r["users"] for r in seed_run if r["name"] == "seed")
    assert check["users"] == users
    assert check["negatives"] == 13
    assert check["n"] == 14 * check["positives"]
    assert check["majority_accuracy"] == pytest.approx(13 / 14)
    refused = runner.invoke(
        app, ["models", "check-accuracy", "--model-path", str(lstm_path), "--db", str(db)]
    )
    assert refused.exit_code == 2
    assert "a next-item model scores items for ranking, not probabilities" in refused.stderr
