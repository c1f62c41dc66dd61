"""The ONNX inference path of the lstm model, without torch: graphs built with onnx.helper."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from abkit_recommenders.lstm_graph import add_topk_head, lstm_core_graph
from onnx import TensorProto, helper

from abkit.errors import ModelError
from abkit.plugins import TrainingData, create_recommender
from tests.replay.helpers import known_answer_data, write_onnx_model


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def numpy_lstm_logits(weights: dict[str, np.ndarray], history: np.ndarray) -> np.ndarray:
    """ONNX LSTM semantics (gates i, o, f, c; sigmoid / tanh / tanh), written out by hand."""
    emb = weights["embedding"][history]  # [B, T, E]
    w, r, b = weights["w"][0], weights["r"][0], weights["b"][0]
    hidden = r.shape[1]
    bias = b[: 4 * hidden] + b[4 * hidden :]
    h = np.zeros((history.shape[0], hidden))
    c = np.zeros_like(h)
    for t in range(history.shape[1]):
        gates = emb[:, t] @ w.T + h @ r.T + bias
        i, o, f, g = np.split(gates, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
    return h @ weights["out_w"] + weights["out_b"]


def random_weights(n_items: int, emb: int = 5, hidden: int = 7, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    embedding = rng.normal(size=(n_items + 1, emb))
    embedding[0] = 0
    return {
        "embedding": embedding,
        "w": rng.normal(scale=0.5, size=(1, 4 * hidden, emb)),
        "r": rng.normal(scale=0.5, size=(1, 4 * hidden, hidden)),
        "b": rng.normal(scale=0.3, size=(1, 8 * hidden)),
        "out_w": rng.normal(size=(hidden, n_items)),
        "out_b": rng.normal(scale=0.1, size=n_items),
    }


@pytest.fixture
def data() -> TrainingData:
    return known_answer_data()


def test_matches_numpy_reference_and_topk_is_in_the_graph(
    data: TrainingData, tmp_path: Path
) -> None:
    weights = random_weights(data.n_items)
    path = write_onnx_model(tmp_path / "m.onnx", data, weights, seq_len=4)
    assert "TopK" in {node.op_type for node in onnx.load(str(path)).graph.node}
    model = create_recommender("lstm", {"device": "cpu"})
    model.load(path, data)
    users = np.arange(data.n_users)
    expected = numpy_lstm_logits(weights, data.histories(users, 4))
    np.testing.assert_allclose(model.score(data, users), expected, rtol=1e-4, atol=1e-4)
    items, scores = model.recommend(data, users, 3, exclude_seen=False)
    np.testing.assert_array_equal(items, np.argsort(-expected, axis=1, kind="stable")[:, :3])
    np.testing.assert_allclose(scores, -np.sort(-expected, axis=1)[:, :3], rtol=1e-4, atol=1e-4)
    # seen items are masked inside the graph
    masked, _ = model.recommend(data, users, 3, exclude_seen=True)
    for u in users:
        assert not set(masked[u]) & set(data.seen_rows(np.array([u])).indices)


def test_histories_are_left_padded_most_recent_last() -> None:
    d = TrainingData.from_arrays(
        user_idx=np.array([0, 0, 0, 1]),
        item_idx=np.array([4, 2, 3, 1]),
        user_ids=["a", "b", "c"],
        item_ids=[str(i) for i in range(5)],
    )
    assert d.histories(np.array([0, 1, 2]), 2).tolist() == [[3, 4], [0, 2], [0, 0]]


def _write(path: Path, proto: onnx.ModelProto, data: TrainingData) -> Path:
    path.write_bytes(proto.SerializeToString())
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "format": "abkit-lstm/1",
                "item_ids": data.item_ids.tolist(),
                "seq_len": 4,
                "fingerprint": data.fingerprint,
            }
        )
    )
    return path


def test_wrong_input_signature_is_one_line_error(data: TrainingData, tmp_path: Path) -> None:
    node = helper.make_node("Identity", ["items"], ["top_scores"])
    graph = helper.make_graph(
        [node],
        "bad",
        [helper.make_tensor_value_info("items", TensorProto.FLOAT, ["b", 4])],
        [helper.make_tensor_value_info("top_scores", TensorProto.FLOAT, ["b", 4])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = _write(tmp_path / "bad.onnx", proto, data)
    message = (
        f"{path}: wrong input signature; expected inputs history int64[2d], k int64[1d], "
        "exclude float[2d], found items tensor(float)['b', 4]"
    )
    with pytest.raises(ModelError, match=re.escape(message)):
        create_recommender("lstm").load(path, data)


def test_missing_outputs_are_refused(data: TrainingData, tmp_path: Path) -> None:
    proto = lstm_core_graph(**random_weights(data.n_items), seq_len=4)  # no serving head
    proto.graph.input.append(helper.make_tensor_value_info("k", TensorProto.INT64, [1]))
    proto.graph.input.append(
        helper.make_tensor_value_info("exclude", TensorProto.FLOAT, ["b", "n"])
    )
    path = _write(tmp_path / "nohead.onnx", proto, data)
    with pytest.raises(
        ModelError,
        match=re.escape(f"{path}: wrong output signature; missing outputs top_scores, top_items"),
    ):
        create_recommender("lstm").load(path, data)


def test_corrupt_onnx_is_one_line_error(data: TrainingData, tmp_path: Path) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x07garbage that is not a protobuf" * 10)
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "format": "abkit-lstm/1",
                "item_ids": data.item_ids.tolist(),
                "seq_len": 4,
                "fingerprint": data.fingerprint,
            }
        )
    )
    with pytest.raises(ModelError, match=re.escape(f"{path}: not a valid ONNX model (")) as err:
        create_recommender("lstm").load(path, data)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        (
            None,
            "missing its sidecar m.json (item vocabulary, sequence length, fingerprint); "
            "export models with `abkit train lstm`",
        ),
        (
            "{not json",
            "not a valid lstm sidecar (Expecting property name enclosed in double "
            "quotes: line 1 column 2 (char 1))",
        ),
        (
            '{"format": "other"}',
            "not a valid lstm sidecar (format 'other', expected 'abkit-lstm/1')",
        ),
    ],
)
def test_bad_sidecar(data: TrainingData, tmp_path: Path, sidecar: str | None, message: str) -> None:
    path = write_onnx_model(tmp_path / "m.onnx", data, random_weights(data.n_items))
    if sidecar is None:
        path.with_suffix(".json").unlink()
    else:
        path.with_suffix(".json").write_text(sidecar)
    with pytest.raises(ModelError, match=re.escape(message)):
        create_recommender("lstm").load(path, data)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("seq_len", -3, "seq_len must be a positive integer, got -3"),
        ("seq_len", 0, "seq_len must be a positive integer, got 0"),
        ("seq_len", "6", "seq_len must be a positive integer, got '6'"),
        ("seq_len", 2.5, "seq_len must be a positive integer, got 2.5"),
        ("seq_len", True, "seq_len must be a positive integer, got True"),
        ("seq_len", None, "seq_len must be a positive integer, got None"),
        ("item_ids", "abc", "item_ids must be a non-empty list of item ids, got 'abc'"),
        ("item_ids", [], "item_ids must be a non-empty list of item ids, got []"),
        ("item_ids", ["a", {"b": 1}], "item_ids[1] must be a string or an integer, got {'b': 1}"),
        ("item_ids", ["a", 1.5], "item_ids[1] must be a string or an integer, got 1.5"),
        ("item_ids", ["a", "b", "a"], "item_ids[2] 'a' is a duplicate"),
        ("item_ids", [1, "1"], "item_ids[1] '1' is a duplicate"),
        ("fingerprint", 123, "fingerprint must be a non-empty string or null, got 123"),
        ("fingerprint", "", "fingerprint must be a non-empty string or null, got ''"),
        ("arch", "keras", "arch must be one of next-item, seed, got 'keras'"),
        ("max_rows", 0, "max_rows must be a positive integer, got 0"),
        ("format", ["abkit-lstm/1"], "format ['abkit-lstm/1'], expected 'abkit-lstm/1'"),
        ("seq_len", ..., "missing field 'seq_len'"),
        ("item_ids", ..., "missing field 'item_ids'"),
        ("fingerprint", ..., "missing field 'fingerprint'"),
    ],
)
def test_every_sidecar_field_is_validated(
    data: TrainingData, tmp_path: Path, field: str, value: object, reason: str
) -> None:
    """A bad field is one ModelError line naming the sidecar and the field, never a
    ValueError / TypeError traceback from deeper down (seq_len -3 used to reach numpy)."""
    path = write_onnx_model(tmp_path / "m.onnx", data, random_weights(data.n_items))
    side = path.with_suffix(".json")
    document = json.loads(side.read_text())
    if value is ...:
        del document[field]
    else:
        document[field] = value
    side.write_text(json.dumps(document))
    with pytest.raises(ModelError) as err:
        create_recommender("lstm").load(path, data)
    assert str(err.value) == f"{side}: not a valid lstm sidecar ({reason})"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfe\x00binary", "not UTF-8 text"),
        (b"[1, 2]", "expected a JSON object, got list"),
    ],
)
def test_sidecar_that_is_not_a_json_object(
    data: TrainingData, tmp_path: Path, content: bytes, reason: str
) -> None:
    path = write_onnx_model(tmp_path / "m.onnx", data, random_weights(data.n_items))
    path.with_suffix(".json").write_bytes(content)
    with pytest.raises(ModelError) as err:
        create_recommender("lstm").load(path, data)
    assert str(err.value) == f"{path.with_suffix('.json')}: not a valid lstm sidecar ({reason})"


def test_vocabulary_and_fingerprint_mismatch(data: TrainingData, tmp_path: Path) -> None:
    path = write_onnx_model(tmp_path / "m.onnx", data, random_weights(data.n_items))
    other_items = TrainingData.from_arrays(
        user_idx=np.array([0]),
        item_idx=np.array([0]),
        user_ids=["a"],
        item_ids=[f"x{i}" for i in range(data.n_items + 1)],
    )
    with pytest.raises(
        ModelError,
        match=re.escape(
            f"{path}: item vocabulary does not match the data (12 model items, 13 catalogue "
            "items; 13 catalogue items unknown to the model, 12 model items not in the "
            "catalogue); retrain it on this data"
        ),
    ):
        create_recommender("lstm").load(path, other_items)
    side = json.loads(path.with_suffix(".json").read_text())
    side["fingerprint"] = "0" * 32
    path.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(
        ModelError,
        match=re.escape(
            f"{path}: trained on data with fingerprint 000000000000, but this training split "
            f"has fingerprint {data.fingerprint[:12]}; retrain it on this split"
        ),
    ):
        create_recommender("lstm").load(path, data)


def test_cuda_request_falls_back_with_a_warning(data: TrainingData, tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here: no fallback to observe")
    path = write_onnx_model(tmp_path / "m.onnx", data, random_weights(data.n_items))
    model = create_recommender("lstm", {"device": "cuda"})
    with pytest.warns(
        RuntimeWarning,
        match=re.escape("lstm: CUDA was requested but is not available; running on the CPU"),
    ):
        model.load(path, data)
    assert model.used_device == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_recommender("lstm", {"device": "auto"}).load(path, data)  # no warning


def test_topk_head_requires_logits() -> None:
    proto = lstm_core_graph(**random_weights(3), seq_len=2)
    proto.graph.output[0].name = "scores"
    with pytest.raises(ModelError, match="the graph has no output named 'logits'"):
        add_topk_head(proto)
