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
``fingerprint`` is ``null`` for a model brought from elsewhere (``abkit models import``)
whose training data abkit does not know: it replays, with a warning that leakage from the
test period cannot be ruled out. Optional keys: ``arch`` (``"next-item"``, the default, or
``"seed"``: the article's pairwise model, whose ``logits`` are log-odds, so that
``sigmoid(logits)`` is the probability that the user takes the item next), ``negatives``
(the seed model's sampled negatives per positive), ``max_rows`` (users per inference call,
for graphs whose memory grows with users x items) and ``imported`` (where an imported
model came from and how its input was adapted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abkit.errors import ModelError

__all__ = [
    "ARCHS",
    "DEFAULTS",
    "INPUTS",
    "OPSET",
    "OUTPUTS",
    "SEED_DEFAULTS",
    "SIDECAR_FORMAT",
    "TORCH_INSTALL",
    "LSTMHyperparameters",
    "SeedHyperparameters",
    "Sidecar",
    "arch_of",
    "read_sidecar",
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


@dataclass(frozen=True)
class SeedHyperparameters:
    """The article's model (``abkit train lstm --arch seed``): ``Embedding(n, 64,
    input_length=10)``, ``LSTM(128, return_sequences=True)``, ``Dropout(0.5)``, ``LSTM(128)``,
    ``Dropout(0.5)``, ``Dense(1, sigmoid)``; binary cross-entropy, Adam (lr 0.001), 10 epochs,
    batches of 64. ``negatives`` sampled items per observed next item (13: 93% of the pairs
    are negatives); each epoch draws ``samples_per_epoch`` observed next items."""

    seq_len: int = 10
    embedding: int = 64
    hidden: int = 128
    dropout: float = 0.5
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    negatives: int = 13
    samples_per_epoch: int = 5_000


SEED_DEFAULTS = SeedHyperparameters()

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


@dataclass(frozen=True)
class Sidecar:
    """A validated sidecar: the vocabulary (as strings, index order), the sequence length,
    the training fingerprint (None: unknown, an imported model), and the whole document (kept
    when the model is saved again)."""

    item_ids: tuple[str, ...]
    seq_len: int
    fingerprint: str | None
    document: dict[str, Any]

    @property
    def arch(self) -> str:
        return arch_of(self.document)


ARCHS = ("next-item", "seed")


def arch_of(document: dict[str, Any]) -> str:
    """The model's architecture as its sidecar names it (``next-item`` when absent)."""
    return str(document.get("arch", "next-item"))


def read_sidecar(path: Path) -> Sidecar:
    """Read and validate the sidecar ``path``; every problem is one :class:`ModelError` line
    naming the file and the field (``PATH: not a valid lstm sidecar (FIELD ...)``).

    Fields: ``format`` must be :data:`SIDECAR_FORMAT`; ``item_ids`` a non-empty list of
    strings or integers without duplicates (as strings: ``1`` and ``"1"`` are the same id);
    ``seq_len`` a positive integer; ``fingerprint`` a non-empty string or null (unknown);
    ``arch``, when present, one of :data:`ARCHS`; ``max_rows``, when present, a positive
    integer. Other keys (``params``,
    ``trained_examples``, ...) are kept as they are.
    """

    def bad(reason: str) -> ModelError:
        return ModelError(f"{path}: not a valid lstm sidecar ({reason})")

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise bad("not UTF-8 text") from None
    except OSError as exc:
        raise bad(f"cannot read it: {exc.strerror}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad(str(exc)) from None
    except RecursionError:
        raise bad("nested too deeply") from None
    if not isinstance(document, dict):
        raise bad(f"expected a JSON object, got {type(document).__name__}")
    if document.get("format") != SIDECAR_FORMAT:
        raise bad(f"format {document.get('format')!r:.40}, expected {SIDECAR_FORMAT!r}")
    for key in ("item_ids", "seq_len", "fingerprint"):
        if key not in document:
            raise bad(f"missing field '{key}'")
    raw_items = document["item_ids"]
    if not isinstance(raw_items, list) or not raw_items:
        raise bad(f"item_ids must be a non-empty list of item ids, got {raw_items!r:.40}")
    for position, item in enumerate(raw_items):
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise bad(f"item_ids[{position}] must be a string or an integer, got {item!r:.40}")
    item_ids = tuple(str(item) for item in raw_items)
    if len(set(item_ids)) != len(item_ids):
        seen: set[str] = set()
        for position, item in enumerate(item_ids):
            if item in seen:
                raise bad(f"item_ids[{position}] {item!r:.40} is a duplicate")
            seen.add(item)
    seq_len = document["seq_len"]
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise bad(f"seq_len must be a positive integer, got {seq_len!r:.40}")
    fingerprint = document["fingerprint"]
    if fingerprint is not None and (not isinstance(fingerprint, str) or not fingerprint):
        raise bad(f"fingerprint must be a non-empty string or null, got {fingerprint!r:.40}")
    if document.get("arch", "next-item") not in ARCHS:
        raise bad(f"arch must be one of {', '.join(ARCHS)}, got {document.get('arch')!r:.40}")
    max_rows = document.get("max_rows", 1)
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise bad(f"max_rows must be a positive integer, got {max_rows!r:.40}")
    return Sidecar(item_ids=item_ids, seq_len=seq_len, fingerprint=fingerprint, document=document)
