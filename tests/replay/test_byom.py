"""Bring your own model: torch-exported graphs with signatures unlike abkit's are imported,
wrapped and replayed, and their top-K lists equal onnxruntime + numpy on the raw model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from abkit.cli.common import flag
from abkit.errors import AbkitError, InputError, ModelError
from abkit.plugins import TrainingData, create_recommender
from abkit.replay.byom import import_model, read_item_list
from abkit.replay.runner import load_training_data
from tests._byom_models import SEQ_LEN, export_models, items_file

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def sim_data(sim_db: Path) -> TrainingData:
    data, _split, _name = load_training_data(sim_db)
    return data


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, sim_data: TrainingData) -> dict:
    return export_models(tmp_path_factory.mktemp("byom"), sim_data)


def _right_padded_tokens(data: TrainingData, users: np.ndarray, items: list[str]) -> np.ndarray:
    """Written independently of abkit's adapter: each user's last SEQ_LEN training items,
    oldest first, as the model's token (its line in the items file + 1), then zeros."""
    token = {item: j + 1 for j, item in enumerate(items)}
    out = np.zeros((users.size, SEQ_LEN), dtype=np.int32)
    for row, user in enumerate(users):
        seq = data.seq_items[data.seq_indptr[user] : data.seq_indptr[user + 1]][-SEQ_LEN:]
        for col, item in enumerate(seq):
            out[row, col] = token[data.item_ids[item]]
    return out


def test_right_padded_int32_logits_only_model_replays_like_the_raw_model(
    sim_db: Path, sim_data: TrainingData, exported: dict, tmp_path: Path
) -> None:
    model = exported["right"]
    out = tmp_path / "wrapped.onnx"
    result = import_model(
        sim_db,
        model=model.path,
        items=items_file(tmp_path, model.items),
        out=out,
        history_dtype="int32",
        padding="right",
        index_offset=1,
        logits_output="scores",
    )
    assert (result.layout["history_input"], result.layout["seq_len"]) == ("seq", SEQ_LEN)
    assert result.dropped_items == 3
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["fingerprint"] is None
    assert sidecar["item_ids"] == sim_data.item_ids.tolist()

    recommender = create_recommender("lstm", {"device": "cpu"})
    with pytest.warns(UserWarning, match="cannot rule out"):
        recommender.load(out, sim_data)
    users = np.arange(0, sim_data.n_train_users, 7)
    got, _ = recommender.recommend(sim_data, users, 10, exclude_seen=True)

    # the reference: onnxruntime on the raw model, numpy for the rest
    raw = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    (scores,) = raw.run(["scores"], {"seq": _right_padded_tokens(sim_data, users, model.items)})
    column = {item: j for j, item in enumerate(model.items)}
    scores = scores[:, [column[i] for i in sim_data.item_ids]].astype(np.float64)
    for row, user in enumerate(users):
        scores[row, sim_data.seen_rows(np.array([user])).indices] = -np.inf
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(got, expected)


def test_keras_like_float_input_with_probabilities_imports(
    sim_db: Path, sim_data: TrainingData, exported: dict, tmp_path: Path
) -> None:
    model = exported["keras"]
    out = tmp_path / "keras_wrapped.onnx"
    result = import_model(
        sim_db, model=model.path, items=items_file(tmp_path, model.items), out=out
    )
    assert result.layout["history_dtype"] == "float32"
    assert result.layout["history_input"] == "embedding_input"
    recommender = create_recommender("lstm", {"device": "cpu"})
    with pytest.warns(UserWarning, match="cannot rule out"):
        recommender.load(out, sim_data)
    users = np.arange(0, sim_data.n_train_users, 11)
    raw = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    token = {item: j + 1 for j, item in enumerate(model.items)}
    table = np.array([0] + [token[i] for i in sim_data.item_ids], dtype=np.float32)
    (probabilities,) = raw.run(
        ["dense"], {"embedding_input": table[sim_data.histories(users, SEQ_LEN)]}
    )
    column = [token[i] - 1 for i in sim_data.item_ids]
    np.testing.assert_allclose(
        recommender.score(sim_data, users), probabilities[:, column], rtol=1e-6
    )


def test_refusals_name_the_mismatch(
    sim_db: Path, sim_data: TrainingData, exported: dict, tmp_path: Path
) -> None:
    model = exported["right"]
    items = items_file(tmp_path, model.items)

    def refused(**options) -> str:
        with pytest.raises(AbkitError) as caught:
            import_model(
                sim_db,
                **{"model": model.path, "items": items, "out": tmp_path / "w.onnx", **options},
            )
        assert not (tmp_path / "w.onnx").exists()
        return caught.value.render(flag)

    assert "--history-dtype int64, but the graph's history input is seq int32[batch, 6]" in (
        refused(history_dtype="int64")
    )
    assert "--seq-len 8, but the graph's history input is seq int32[batch, 6]" in refused(seq_len=8)
    assert "no input named 'history' (--history-input); the graph's inputs: seq" in refused(
        history_input="history"
    )
    assert "no output named 'logits' (--logits-output)" in refused(logits_output="logits")
    short = items_file(tmp_path, model.items[5:], "short.txt")
    assert "does not cover the data: 5 of the 200 catalogue items" in refused(items=short)
    longer = items_file(tmp_path, [*model.items, "y-1"], "longer.txt")
    assert f"has {len(model.items)} columns, but --items lists {len(model.items) + 1}" in (
        refused(items=longer)
    )
    assert "also the token of an item" in refused(index_offset=0)
    assert "--fingerprint 'abc': expected the 32 hex digits" in refused(fingerprint="abc")
    # the embedding has n + 1 rows: offset 2 puts the last item's token past its end
    assert "the model fails on item token 204 (items are 2..204 with --index-offset 2" in (
        refused(index_offset=2)
    )
    pair = exported["pair"]
    with pytest.raises(ModelError, match="scores one \\(history, item\\) sequence at a time"):
        import_model(
            sim_db, model=pair.path, items=items_file(tmp_path, pair.items), out=tmp_path / "w.onnx"
        )
    two = exported["two"]
    with pytest.raises(ModelError, match=r"also has the inputs extra float\[batch, 203\]"):
        import_model(
            sim_db,
            model=two.path,
            items=items_file(tmp_path, two.items),
            out=tmp_path / "w.onnx",
            history_input="seq",
        )


def test_item_list_refuses_repeats_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "items.txt"
    path.write_text("a\nb\na\n")
    with pytest.raises(InputError, match=r"line 3: item 'a' repeats line 1"):
        read_item_list(path)
    path.write_text("a\n\nb\n")
    with pytest.raises(InputError, match="line 2: empty item id"):
        read_item_list(path)
    path.write_text("a\n b \n\n")
    assert read_item_list(path) == ["a", "b"]


def test_a_recorded_fingerprint_replays_without_the_warning_and_pins_the_split(
    sim_db: Path, sim_data: TrainingData, exported: dict, tmp_path: Path
) -> None:
    import warnings

    model = exported["keras"]
    out = tmp_path / "pinned.onnx"
    import_model(
        sim_db,
        model=model.path,
        items=items_file(tmp_path, model.items),
        out=out,
        fingerprint=sim_data.fingerprint,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_recommender("lstm", {"device": "cpu"}).load(out, sim_data)
    other, _split, _name = load_training_data(sim_db, split="temporal:0.5")
    with pytest.raises(ModelError, match="trained on data with fingerprint"):
        create_recommender("lstm", {"device": "cpu"}).load(out, other)
