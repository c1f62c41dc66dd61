"""The LSTM graph contract: what an ONNX sequence model must look like to be served by abkit.

Shared by the core (``abkit train lstm``, ``abkit replay``'s defaults) and the ``lstm`` plug-in
(:mod:`abkit_recommenders.lstm`, :mod:`abkit_recommenders.train_lstm`); it imports nothing
heavy, so both may import it.

The graph (any ONNX model that keeps it can be served, whatever its inside)::

    inputs   history  int64   [batch, seq_len]  the user's last items as index + 1, left-padded
                                                with 0 (most recent item in the last column)
             k        int64   [1]               how many items to return
             exclude  float32 [batch, n_items]  added to the logits: 0, or -inf for seen items
    outputs  top_scores float32 [batch, k]      TopK of logits + exclude, descending
             top_items  int64   [batch, k]      their item indices (0-based, the sidecar's order)
             logits     float32 [batch, n_items] raw next-item scores (for softmax policies)

The sidecar ``model.json`` beside ``model.onnx`` (format :data:`SIDECAR_FORMAT`) holds
``item_ids`` (the vocabulary, in index order), ``seq_len`` and the ``fingerprint`` of the
training split; a model is refused on data whose catalogue or training fingerprint differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULTS",
    "INPUTS",
    "OPSET",
    "OUTPUTS",
    "SIDECAR_FORMAT",
    "TORCH_INSTALL",
    "LSTMHyperparameters",
    "sidecar_path",
]

SIDECAR_FORMAT = "abkit-lstm/1"
OPSET = 17
# torch is never a declared dependency (an unpinned torch pulls gigabytes of CUDA wheels)
TORCH_INSTALL = 'pip install torch==2.13.0 "abkit-lift[train]"'


@dataclass(frozen=True)
class LSTMHyperparameters:
    """The LSTM's architecture and training defaults, defined once for the recommender, the
    trainer (``train_lstm``), ``abkit.replay.runner.train`` and ``abkit train lstm``."""

    seq_len: int = 20
    embedding: int = 32
    hidden: int = 64
    epochs: int = 3
    horizon: int = 10
    samples_per_epoch: int = 40_000


DEFAULTS = LSTMHyperparameters()

# input name -> (element type as onnxruntime reports it, rank)
INPUTS: dict[str, tuple[str, int]] = {
    "history": ("tensor(int64)", 2),
    "k": ("tensor(int64)", 1),
    "exclude": ("tensor(float)", 2),
}
# outputs every served graph has; "logits" is optional (needed by softmax policies)
OUTPUTS = ("top_scores", "top_items")


def sidecar_path(model_path: Path) -> Path:
    """``model.onnx`` -> ``model.json``."""
    return Path(model_path).with_suffix(".json")
