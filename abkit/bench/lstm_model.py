"""One next-item LSTM, built twice from the same weights: abkit's ONNX graph and a torch module.

The bench compares abkit's ``lstm`` recommender (onnxruntime) with torch eager (what the model
is trained in) on *the same model*, so both are built here from one ``.npz`` of weights in
torch's layout:

``embedding (V + 1, E)`` item embeddings, row 0 the left padding (histories hold item index
+ 1); ``w_ih (4H, E)``, ``w_hh (4H, H)``, ``b_ih (4H)``, ``b_hh (4H)`` the LSTM with torch's
gate order (input, forget, cell, output); ``out (V, H)`` and ``out_bias (V)`` the output layer.
For histories ``(B, T)``: ``h_T = LSTM(embedding[history])``, ``logits = h_T out^T + out_bias``,
then the top ``K`` items other than the user's seen ones.

The ONNX side is :func:`abkit_recommenders.lstm_graph.lstm_core_graph` plus its
:func:`~abkit_recommenders.lstm_graph.add_topk_head`, exactly what ``abkit replay --model lstm``
serves; ONNX's ``LSTM`` operator orders the gates (input, output, forget, cell), so the weight
blocks are permuted here. ``tests/bench/test_bench.py`` checks both give the same top items.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from abkit_recommenders.lstm_graph import add_topk_head, lstm_core_graph


def random_weights(*, items: int, embedding: int, hidden: int, seed: int) -> dict[str, np.ndarray]:
    """Weights of a realistic size, drawn at the scale torch initialises them."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(hidden)

    def uniform(*shape: int) -> np.ndarray:
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    emb = rng.standard_normal((items + 1, embedding)).astype(np.float32)
    emb[0] = 0.0
    return {
        "embedding": emb,
        "w_ih": uniform(4 * hidden, embedding),
        "w_hh": uniform(4 * hidden, hidden),
        "b_ih": uniform(4 * hidden),
        "b_hh": uniform(4 * hidden),
        "out": uniform(items, hidden),
        "out_bias": uniform(items),
    }


def _onnx_gate_order(w: np.ndarray, hidden: int) -> np.ndarray:
    """torch (i, f, g, o) blocks -> ONNX (i, o, f, c) blocks along the first axis."""
    i, f, g, o = (w[k * hidden : (k + 1) * hidden] for k in range(4))
    return np.concatenate([i, o, f, g], axis=0)


def onnx_model_bytes(weights: Mapping[str, np.ndarray], *, seq_len: int) -> bytes:
    """abkit's serving graph (history, k, exclude -> top_scores, top_items, logits)."""

    hidden = int(weights["w_hh"].shape[1])
    bias = np.concatenate(
        [_onnx_gate_order(weights["b_ih"], hidden), _onnx_gate_order(weights["b_hh"], hidden)]
    )
    core = lstm_core_graph(
        embedding=weights["embedding"],
        w=_onnx_gate_order(weights["w_ih"], hidden)[None],
        r=_onnx_gate_order(weights["w_hh"], hidden)[None],
        b=bias[None],
        out_w=np.ascontiguousarray(weights["out"].T),
        out_b=weights["out_bias"],
        seq_len=seq_len,
    )
    return bytes(add_topk_head(core).SerializeToString())


def torch_next_item(weights: Mapping[str, np.ndarray]) -> Any:
    """The same model as a torch module: ``module(history, seen_rows, seen_items, k) -> top
    item indices``. Seen items are excluded the way torch code does it, by writing ``-inf``
    at their (row, item) positions of the logits (``index_put_``), not with a dense mask."""
    import torch

    class TorchNextItem(torch.nn.Module):
        def __init__(self, items: int, embedding: int, hidden: int) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(items + 1, embedding)
            self.lstm = torch.nn.LSTM(embedding, hidden, batch_first=True)
            self.out = torch.nn.Linear(hidden, items)

        def forward(
            self, history: torch.Tensor, seen_rows: torch.Tensor, seen_items: torch.Tensor, k: int
        ) -> torch.Tensor:
            _, (h, _) = self.lstm(self.embedding(history))
            logits = self.out(h[0])
            logits.index_put_((seen_rows, seen_items), torch.tensor(float("-inf")))
            return torch.topk(logits, k, dim=1).indices

    items, hidden = weights["out"].shape
    module = TorchNextItem(int(items), int(weights["embedding"].shape[1]), int(hidden))
    state = {
        "embedding.weight": weights["embedding"],
        "lstm.weight_ih_l0": weights["w_ih"],
        "lstm.weight_hh_l0": weights["w_hh"],
        "lstm.bias_ih_l0": weights["b_ih"],
        "lstm.bias_hh_l0": weights["b_hh"],
        "out.weight": weights["out"],
        "out.bias": weights["out_bias"],
    }
    module.load_state_dict({key: torch.from_numpy(np.array(v)) for key, v in state.items()})
    return module.eval()
