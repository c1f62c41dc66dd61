"""ONNX graph building for the ``lstm`` plug-in: the core LSTM graph and abkit's serving head.

Used by the trainer (:mod:`abkit_recommenders.train_lstm`), the benchmark and the tests; the
contract the result keeps is :mod:`abkit.replay.lstm_contract`. Needs the ``onnx`` package
(``pip install "abkit-lift[onnx]"``), imported only when a graph is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from abkit.errors import MissingExtraError, ModelError
from abkit.replay.lstm_contract import OPSET

if TYPE_CHECKING:
    import numpy as np
    import onnx

__all__ = ["add_topk_head", "lstm_core_graph"]


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingExtraError("onnx", "onnx", "building an ONNX graph") from None
    return onnx


def add_topk_head(model: onnx.ModelProto, *, logits: str = "logits") -> onnx.ModelProto:
    """Append the serving head to a graph that outputs ``logits`` [batch, n_items].

    Adds the inputs ``k`` and ``exclude``, an ``Add`` (logits + exclude) and a ``TopK`` whose
    outputs are ``top_scores`` / ``top_items``; keeps ``logits`` as an output. Works on graphs
    built by :func:`lstm_core_graph` or exported by torch.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper

    graph = model.graph
    if logits not in {o.name for o in graph.output}:
        raise ModelError(f"the graph has no output named '{logits}'")
    graph.input.append(helper.make_tensor_value_info("k", TensorProto.INT64, [1]))
    graph.input.append(
        helper.make_tensor_value_info("exclude", TensorProto.FLOAT, ["batch", "n_items"])
    )
    graph.node.append(helper.make_node("Add", [logits, "exclude"], ["abkit_masked_logits"]))
    graph.node.append(
        helper.make_node(
            "TopK",
            ["abkit_masked_logits", "k"],
            ["top_scores", "top_items"],
            axis=-1,
            largest=1,
            sorted=1,
        )
    )
    kept = [o for o in graph.output if o.name == logits]
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("top_scores", TensorProto.FLOAT, ["batch", "k"]),
            helper.make_tensor_value_info("top_items", TensorProto.INT64, ["batch", "k"]),
            *kept,
        ]
    )
    onnx.checker.check_model(model)
    return model


def lstm_core_graph(
    *,
    embedding: np.ndarray,
    w: np.ndarray,
    r: np.ndarray,
    b: np.ndarray,
    out_w: np.ndarray,
    out_b: np.ndarray,
    seq_len: int,
) -> onnx.ModelProto:
    """An ONNX graph ``history -> logits`` for a one-layer LSTM, built with ``onnx.helper``.

    ``embedding`` [n_items + 1, E] (row 0 is padding); ``w`` [1, 4H, E], ``r`` [1, 4H, H],
    ``b`` [1, 8H] in ONNX's LSTM layout (gate order i, o, f, c; input then recurrence bias);
    ``out_w`` [H, n_items], ``out_b`` [n_items]. The logits are
    ``h_T @ out_w + out_b`` where ``h_T`` is the hidden state after the last column. Used by
    the tests (checked against a numpy LSTM) and usable for any externally trained weights.
    """
    _onnx()
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    hidden = r.shape[-1]
    inits = [
        numpy_helper.from_array(np.asarray(embedding, np.float32), "embedding"),
        numpy_helper.from_array(np.asarray(w, np.float32), "lstm_w"),
        numpy_helper.from_array(np.asarray(r, np.float32), "lstm_r"),
        numpy_helper.from_array(np.asarray(b, np.float32), "lstm_b"),
        numpy_helper.from_array(np.asarray(out_w, np.float32), "out_w"),
        numpy_helper.from_array(np.asarray(out_b, np.float32), "out_b"),
        numpy_helper.from_array(np.asarray([0], np.int64), "axis0"),
    ]
    nodes = [
        helper.make_node("Gather", ["embedding", "history"], ["emb"], axis=0),  # [B, T, E]
        helper.make_node("Transpose", ["emb"], ["emb_t"], perm=[1, 0, 2]),  # [T, B, E]
        helper.make_node(
            "LSTM", ["emb_t", "lstm_w", "lstm_r", "lstm_b"], ["", "h_last"], hidden_size=hidden
        ),  # h_last [1, B, H]
        helper.make_node("Squeeze", ["h_last", "axis0"], ["h"]),
        helper.make_node("MatMul", ["h", "out_w"], ["proj"]),
        helper.make_node("Add", ["proj", "out_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "abkit_lstm",
        [helper.make_tensor_value_info("history", TensorProto.INT64, ["batch", seq_len])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "n_items"])],
        initializer=inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="abkit"
    )
