"""The article's model, faithfully: ``abkit train lstm --arch seed``.

The seed builds, in Keras, ``Embedding(10000, 64, input_length=10)``, ``LSTM(128,
return_sequences=True)``, ``Dropout(0.5)``, ``LSTM(128)``, ``Dropout(0.5)``, ``Dense(1,
sigmoid)``, trained with binary cross-entropy (Adam, lr 0.001, 10 epochs, batches of 64).
Here the same layers (sizes in :data:`abkit.replay.lstm_contract.SEED_DEFAULTS`; the
vocabulary is the catalogue) model "will the user take this item next": the user's last
``seq_len`` training items run through both LSTMs, the candidate item is fed as one more
step from that state, and the dense sigmoid head reads the second LSTM's output.

Training pairs: every position after the first of every training sequence gives one
positive (history before it, the item at it) and ``negatives`` negatives (the same history,
items drawn uniformly from the rest of the catalogue), labels 1 / 0, binary cross-entropy.
Each epoch draws ``samples_per_epoch`` positives, with fresh negatives, on one CPU thread.

Export (ONNX, built with ``onnx.helper``, weights copied from torch): the history runs
through two ONNX ``LSTM`` nodes once; the candidate step is written out for all catalogue
items at once (the first layer's input projection of every item is a constant table
``[n_items, 4H]``, added to each user's recurrent projection; the second layer's input
projection is one ``MatMul`` over ``[batch, n_items, H]``), so scoring the whole catalogue
costs one more LSTM step for all candidates, not one pass per item. ``logits`` are the
head's log-odds (``sigmoid(logits)`` is the probability); the sidecar says ``arch: seed``
and ``max_rows`` (users per call, so that ``[users, items, 4H]`` stays near 128 MB). The
export is checked against the torch model before it is returned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from abkit_recommenders.lstm_graph import add_topk_head
from abkit_recommenders.train_lstm import TrainedLSTM, require_torch, training_examples

from abkit.errors import InputError, MissingExtraError, ModelError
from abkit.replay.lstm_contract import OPSET, SEED_DEFAULTS, SIDECAR_FORMAT

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from abkit.plugins import TrainingData

__all__ = ["PAIR_BUDGET", "sample_negatives", "seed_graph", "train_seed"]

# (user, item) pairs per inference call: [pairs, 4 x 128] float32 gates are 128 MB
PAIR_BUDGET = 1 << 16


def sample_negatives(
    positives: np.ndarray, n_items: int, negatives: int, rng: np.random.Generator
) -> np.ndarray:
    """``[n, negatives]`` items drawn uniformly from the catalogue without the positive
    (``positives[r]`` itself is never drawn; draws may repeat within a row)."""
    import numpy as np

    positives = np.asarray(positives, dtype=np.int64)
    offsets = rng.integers(1, n_items, size=(positives.size, negatives))
    return (positives[:, None] + offsets) % n_items


def train_seed(
    data: TrainingData,
    *,
    seq_len: int = SEED_DEFAULTS.seq_len,
    embedding: int = SEED_DEFAULTS.embedding,
    hidden: int = SEED_DEFAULTS.hidden,
    dropout: float = SEED_DEFAULTS.dropout,
    epochs: int = SEED_DEFAULTS.epochs,
    batch_size: int = SEED_DEFAULTS.batch_size,
    learning_rate: float = SEED_DEFAULTS.learning_rate,
    negatives: int = SEED_DEFAULTS.negatives,
    samples_per_epoch: int = SEED_DEFAULTS.samples_per_epoch,
    seed: int = 0,
    threads: int = 1,
    progress: Callable[[int], None] | None = None,
) -> TrainedLSTM:
    """Train the article's model on ``data`` and export it; see the module docstring."""
    import numpy as np

    torch = require_torch()
    if min(seq_len, embedding, hidden, epochs, batch_size, negatives, samples_per_epoch) < 1:
        raise InputError(
            "seq_len, embedding, hidden, epochs, batch_size, negatives and samples_per_epoch "
            "must be at least 1"
        )
    if not 0 <= dropout < 1:
        raise InputError(f"dropout must be in [0, 1), got {dropout}")
    n_items = data.n_items
    if n_items < 2:
        raise InputError("the catalogue has one item; there is nothing to sample negatives from")
    inputs, targets = training_examples(data, seq_len, 1)
    if targets.shape[0] == 0:
        raise InputError(
            "the training split has no user with two or more interactions; "
            "the lstm has nothing to learn"
        )
    positives = targets[:, 0]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    class SeedModel(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(n_items + 1, embedding, padding_idx=0)
            self.lstm1 = torch.nn.LSTM(embedding, hidden, batch_first=True)
            self.lstm2 = torch.nn.LSTM(hidden, hidden, batch_first=True)
            self.drop = torch.nn.Dropout(dropout)
            self.dense = torch.nn.Linear(hidden, 1)

        def forward(self, history: Any, candidates: Any) -> Any:
            """Log-odds ``[batch, C]`` of each candidate (catalogue index) being next."""
            y1, (h1, c1) = self.lstm1(self.embedding(history))
            _, (h2, c2) = self.lstm2(self.drop(y1))
            batch, n_cand = candidates.shape
            step = self.embedding(candidates + 1).reshape(batch * n_cand, 1, embedding)

            def repeat(state: Any) -> Any:
                return state.repeat_interleave(n_cand, dim=1)

            s1, _ = self.lstm1(step, (repeat(h1), repeat(c1)))
            s2, _ = self.lstm2(self.drop(s1), (repeat(h2), repeat(c2)))
            return self.dense(self.drop(s2[:, 0])).reshape(batch, n_cand)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = SeedModel()
        optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
        x_all = torch.from_numpy(inputs)
        labels = torch.zeros((1, 1 + negatives))
        labels[0, 0] = 1.0
        loss_fn = torch.nn.BCEWithLogitsLoss()
        loss_value = float("nan")
        model.train()
        for _ in range(epochs):
            order = rng.permutation(positives.size)[:samples_per_epoch]
            drawn = sample_negatives(positives[order], n_items, negatives, rng)
            candidates = torch.from_numpy(np.concatenate([positives[order, None], drawn], 1))
            total = 0.0
            for start in range(0, order.size, batch_size):
                rows = slice(start, start + batch_size)
                batch = torch.from_numpy(order[rows])
                logits = model(x_all[batch], candidates[rows])
                loss = loss_fn(logits, labels.expand_as(logits))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * logits.shape[0]
            loss_value = total / max(order.size, 1)
            if progress is not None:
                progress(1)
        model.eval()
        proto = seed_graph(_weights(model), seq_len=seq_len)
        onnx_bytes = add_topk_head(proto).SerializeToString()
        sample = np.ascontiguousarray(inputs[: min(8, len(inputs))])
        with torch.no_grad():
            everything = torch.arange(n_items).expand(sample.shape[0], n_items)
            expected = model(torch.from_numpy(sample), everything).numpy()
        _check_parity(onnx_bytes, sample, expected)
    finally:
        torch.set_num_threads(previous_threads)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "arch": "seed",
        "item_ids": data.item_ids.tolist(),
        "seq_len": seq_len,
        "fingerprint": data.fingerprint,
        "negatives": negatives,
        "max_rows": max(1, PAIR_BUDGET // n_items),
        "params": {
            "embedding": embedding,
            "hidden": hidden,
            "dropout": dropout,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "samples_per_epoch": samples_per_epoch,
            "seed": seed,
        },
        "trained_examples": int(min(samples_per_epoch, positives.size) * epochs),
        "final_loss": loss_value,
    }
    return TrainedLSTM(
        onnx_bytes=onnx_bytes,
        sidecar=sidecar,
        examples=int(positives.size),
        epochs=epochs,
        final_loss=loss_value,
    )


def _weights(model: Any) -> dict[str, np.ndarray]:
    """torch's weights as numpy (gate order i, f, g, o, torch's)."""

    def get(t: Any) -> np.ndarray:
        return t.detach().numpy().astype("float32")

    out = {"embedding": get(model.embedding.weight)}
    for n, lstm in (("1", model.lstm1), ("2", model.lstm2)):
        out[f"w{n}"] = get(lstm.weight_ih_l0)  # [4H, in]
        out[f"r{n}"] = get(lstm.weight_hh_l0)  # [4H, H]
        out[f"b{n}"] = get(lstm.bias_ih_l0) + get(lstm.bias_hh_l0)  # [4H]
    out["dense_w"] = get(model.dense.weight)  # [1, H]
    out["dense_b"] = get(model.dense.bias)  # [1]
    return out


def _onnx_gates(t: np.ndarray) -> np.ndarray:
    """torch's gate blocks (i, f, g, o) in ONNX's order (i, o, f, c), along axis 0."""
    import numpy as np

    i, f, g, o = np.split(t, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def seed_graph(weights: dict[str, np.ndarray], *, seq_len: int) -> onnx.ModelProto:
    """``history -> logits [batch, n_items]`` for the seed model (see the module docstring).

    ``weights`` in torch's layout (gate order i, f, g, o): ``embedding`` [n + 1, E] (row 0
    padding), ``w1`` [4H, E], ``r1`` [4H, H], ``b1`` [4H] (both biases summed), ``w2`` [4H,
    H], ``r2``, ``b2``, ``dense_w`` [1, H], ``dense_b`` [1].
    """
    try:
        import numpy as np
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise MissingExtraError("onnx", "onnx", "building an ONNX graph") from None

    emb = weights["embedding"]
    hidden = weights["r1"].shape[1]

    def lstm_inputs(n: str) -> list[Any]:
        zeros = np.zeros(4 * hidden, np.float32)
        return [
            numpy_helper.from_array(_onnx_gates(weights[f"w{n}"])[None], f"lstm{n}_w"),
            numpy_helper.from_array(_onnx_gates(weights[f"r{n}"])[None], f"lstm{n}_r"),
            numpy_helper.from_array(
                np.concatenate([_onnx_gates(weights[f"b{n}"]), zeros])[None], f"lstm{n}_b"
            ),
        ]

    # the candidate step, in torch's gate order: the first layer's input projection of
    # every item (with both layers' biases where they are per user) is a constant table
    item_gates = emb[1:] @ weights["w1"].T + weights["b1"]  # [N, 4H]
    inits = [
        numpy_helper.from_array(emb, "embedding"),
        *lstm_inputs("1"),
        *lstm_inputs("2"),
        numpy_helper.from_array(item_gates.astype(np.float32), "item_gates1"),
        numpy_helper.from_array(weights["r1"].T.copy(), "r1_t"),  # [H, 4H]
        numpy_helper.from_array(weights["w2"].T.copy(), "w2_t"),
        numpy_helper.from_array(weights["r2"].T.copy(), "r2_t"),
        numpy_helper.from_array(weights["b2"], "b2"),
        numpy_helper.from_array(weights["dense_w"].T.copy(), "dense_w"),  # [H, 1]
        numpy_helper.from_array(weights["dense_b"], "dense_b"),
        numpy_helper.from_array(np.asarray([0], np.int64), "axis0"),
        numpy_helper.from_array(np.asarray([1], np.int64), "axis1"),
        numpy_helper.from_array(np.asarray([2], np.int64), "axis2"),
        numpy_helper.from_array(np.full(4, hidden, np.int64), "gate_sizes"),
    ]
    nodes = [
        helper.make_node("Gather", ["embedding", "history"], ["emb"], axis=0),  # [B, T, E]
        helper.make_node("Transpose", ["emb"], ["emb_t"], perm=[1, 0, 2]),  # [T, B, E]
        helper.make_node(
            "LSTM",
            ["emb_t", "lstm1_w", "lstm1_r", "lstm1_b"],
            ["y1", "h1_last", "c1_last"],
            hidden_size=hidden,
        ),  # y1 [T, 1, B, H]
        helper.make_node("Squeeze", ["y1", "axis1"], ["y1_seq"]),  # [T, B, H]
        helper.make_node(
            "LSTM",
            ["y1_seq", "lstm2_w", "lstm2_r", "lstm2_b"],
            ["", "h2_last", "c2_last"],
            hidden_size=hidden,
        ),
    ]
    for name in ("h1", "c1", "h2", "c2"):
        nodes += [
            helper.make_node("Squeeze", [f"{name}_last", "axis0"], [f"{name}_flat"]),  # [B, H]
            helper.make_node("Unsqueeze", [f"{name}_flat", "axis1"], [name]),  # [B, 1, H]
        ]

    def cell(prefix: str, gates: str, c_prev: str) -> list[Any]:
        """One LSTM cell update from ``gates`` [B, N, 4H] (torch order) and ``c_prev``."""
        i, f, g, o = (f"{prefix}_{x}" for x in "ifgo")
        return [
            helper.make_node("Split", [gates, "gate_sizes"], [i, f, g, o], axis=2),
            helper.make_node("Sigmoid", [i], [f"{i}_s"]),
            helper.make_node("Sigmoid", [f], [f"{f}_s"]),
            helper.make_node("Tanh", [g], [f"{g}_t"]),
            helper.make_node("Sigmoid", [o], [f"{o}_s"]),
            helper.make_node("Mul", [f"{f}_s", c_prev], [f"{prefix}_keep"]),
            helper.make_node("Mul", [f"{i}_s", f"{g}_t"], [f"{prefix}_write"]),
            helper.make_node("Add", [f"{prefix}_keep", f"{prefix}_write"], [f"{prefix}_c"]),
            helper.make_node("Tanh", [f"{prefix}_c"], [f"{prefix}_c_t"]),
            helper.make_node("Mul", [f"{o}_s", f"{prefix}_c_t"], [f"{prefix}_h"]),
        ]

    nodes += [
        # layer 1: the user's recurrent projection [B, 1, 4H] + every item's input one [N, 4H]
        helper.make_node("MatMul", ["h1", "r1_t"], ["user_gates1"]),
        helper.make_node("Add", ["user_gates1", "item_gates1"], ["gates1"]),  # [B, N, 4H]
        *cell("step1", "gates1", "c1"),
        # layer 2: input projection of every (user, item) step output + the user's recurrence
        helper.make_node("MatMul", ["step1_h", "w2_t"], ["input_gates2"]),  # [B, N, 4H]
        helper.make_node("MatMul", ["h2", "r2_t"], ["user_gates2_nb"]),
        helper.make_node("Add", ["user_gates2_nb", "b2"], ["user_gates2"]),  # [B, 1, 4H]
        helper.make_node("Add", ["input_gates2", "user_gates2"], ["gates2"]),
        *cell("step2", "gates2", "c2"),
        helper.make_node("MatMul", ["step2_h", "dense_w"], ["dense"]),  # [B, N, 1]
        helper.make_node("Squeeze", ["dense", "axis2"], ["dense_flat"]),
        helper.make_node("Add", ["dense_flat", "dense_b"], ["logits"]),  # [B, N]
    ]
    graph = helper.make_graph(
        nodes,
        "abkit_seed",
        [helper.make_tensor_value_info("history", TensorProto.INT64, ["batch", seq_len])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "n_items"])],
        initializer=inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="abkit"
    )


def _check_parity(onnx_bytes: bytes, sample: np.ndarray, expected: np.ndarray) -> None:
    import numpy as np

    try:
        import onnxruntime as ort
    except ImportError:
        return
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (logits,) = session.run(
        ["logits"],
        {
            "history": sample,
            "k": np.asarray([1], np.int64),
            "exclude": np.zeros(expected.shape, np.float32),
        },
    )
    if not np.allclose(logits, expected, rtol=1e-4, atol=1e-4):
        raise ModelError("seed export: the ONNX graph disagrees with the torch model")
