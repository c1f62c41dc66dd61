"""Bring your own model: ``abkit models import`` turns an ONNX file into an ``lstm`` model.

:func:`import_model` reads the model's item list and the store's catalogue, checks the raw
graph (:func:`abkit_recommenders.lstm_import.check_model`), wraps it in abkit's graph
contract (:func:`abkit_recommenders.lstm_import.wrap_model`) and writes the wrapped ONNX file
with its sidecar, so that ``abkit replay --model lstm --model-path OUT`` replays it like a
model trained by ``abkit train lstm``.

Its sidecar's ``item_ids`` are the store's catalogue (the wrapped graph scores the catalogue
in its order) and its ``fingerprint`` is null unless one is given: abkit does not know what
the model was trained on, so replay warns that leakage from the test period cannot be ruled
out.

A model saved with its weights in external-data files (``onnx.save_model(...,
save_as_external_data=True)``) is read from its folder: each file a tensor names must lie
inside the model's folder (no absolute path, no ``..``, no link out of it), and the wrapped
model is written as one file holding the weights.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abkit_recommenders.lstm_import import check_model, wrap_model
from abkit_recommenders.train_lstm import save_model

from abkit.errors import InputError, ModelError, param
from abkit.replay.lstm_contract import DEFAULTS, SIDECAR_FORMAT
from abkit.replay.runner import load_training_data

__all__ = ["ImportResult", "import_model", "read_item_list"]


@dataclass(frozen=True, kw_only=True)
class ImportResult:
    """What ``abkit models import`` wrote and how it adapted the model."""

    path: str
    sidecar: str
    source: str
    dataset: str
    n_items: int
    model_items: int
    dropped_items: int
    layout: dict[str, Any]
    logits_output: str
    fingerprint: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sidecar": self.sidecar,
            "source": self.source,
            "dataset": self.dataset,
            "n_items": self.n_items,
            "model_items": self.model_items,
            "dropped_items": self.dropped_items,
            **self.layout,
            "logits_output": self.logits_output,
            "fingerprint": self.fingerprint,
        }


def read_item_list(path: str | Path) -> list[str]:
    """The model's items, one id per line, line ``j`` (from 0) being score column ``j``.

    Surrounding spaces are dropped; an empty line, a duplicate or an empty file is refused
    naming the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{param('items')} {path}: not UTF-8 text") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(f"{param('items')} {path}: no item ids (expected one per line)")
    seen: dict[str, int] = {}
    items = []
    for number, line in enumerate(lines, start=1):
        item = line.strip()
        if not item:
            raise InputError(f"{param('items')} {path}, line {number}: empty item id")
        if item in seen:
            raise InputError(
                f"{param('items')} {path}, line {number}: item {item!r:.40} repeats line "
                f"{seen[item]}"
            )
        seen[item] = number
        items.append(item)
    return items


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor of ``graph``: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Any) -> Iterator[Any]:
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def _outside(folder: Path, location: str) -> bool:
    """Whether an external-data ``location`` leaves the model's ``folder``: an absolute path,
    a ``..`` step, or a link that resolves elsewhere."""
    parts = re.split(r"[/\\]", location)
    if not location or "\x00" in location or location.startswith(("/", "\\")):
        return True
    if re.match(r"[A-Za-z]:", location):
        return True
    if ".." in parts:
        return True
    return not (folder / location).resolve().is_relative_to(folder.resolve())


def _inline_external_data(model_path: Path, raw: bytes) -> tuple[bytes, dict[str, str]]:
    """The model as one ONNX document: a model saved with its weights in external-data
    files (``onnx.save_model(..., save_as_external_data=True)``) has them read from the
    model's folder into it. Returns the bytes and the sha256 of each external file (by
    location). A location outside that folder is refused; a model without external data is
    returned as it is (an unreadable one is left to :func:`check_model` to refuse)."""
    try:
        import onnx
        from onnx.external_data_helper import (
            ExternalDataInfo,
            load_external_data_for_tensor,
            uses_external_data,
        )
    except ImportError:
        return raw, {}  # check_model names the missing extra
    try:
        model = onnx.load_from_string(raw)
    except Exception:  # not ONNX: check_model says so
        return raw, {}
    everywhere = [
        *_tensors(model.graph),
        *(t for f in model.functions for t in _node_tensors(f.node)),
    ]
    tensors = [t for t in everywhere if uses_external_data(t)]
    if not tensors:
        return raw, {}
    folder = model_path.parent
    files: dict[str, str] = {}
    for tensor in tensors:
        location = ExternalDataInfo(tensor).location
        if _outside(folder, location):
            raise ModelError(
                f"{model_path}: tensor {tensor.name!r:.60} keeps its data at {location!r:.80}, "
                f"outside the model's folder {folder}; abkit reads external data only from "
                "inside it"
            )
        if not (folder / location).is_file():
            raise ModelError(
                f"{model_path}: tensor {tensor.name!r:.60} keeps its data in {location!r:.80}, "
                f"which is not in the model's folder {folder}"
            )
        if location not in files:
            files[location] = hashlib.sha256((folder / location).read_bytes()).hexdigest()
    try:
        for tensor in tensors:
            load_external_data_for_tensor(tensor, str(folder))
    except Exception as exc:  # onnx's own checks: bounds, links
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelError(f"{model_path}: cannot read its external data ({first})") from None
    try:
        return model.SerializeToString(), files
    except Exception:  # protobuf's 2 GB limit (ValueError or EncodeError)
        raise ModelError(
            f"{model_path}: with its external data the model is over 2 GB, more than abkit "
            "imports (it writes one ONNX file)"
        ) from None


def import_model(
    db: str | Path | None = None,
    *,
    model: str | Path,
    items: str | Path,
    out: str | Path,
    dataset: str | None = None,
    history_input: str | None = None,
    history_dtype: str | None = None,
    seq_len: int | None = None,
    padding: str = "left",
    index_offset: int = 1,
    pad_token: int = 0,
    logits_output: str | None = None,
    fingerprint: str | None = None,
) -> ImportResult:
    """Check, wrap and write the ONNX ``model`` (scores over the ids listed in ``items``)
    for the catalogue of ``dataset``; see the module docstring and
    :mod:`abkit_recommenders.lstm_import` for the options. A history length the graph leaves
    dynamic defaults to ``seq_len`` 20. The store is only read."""
    import numpy as np

    model_path, out_path = Path(model), Path(out)
    if not model_path.is_file():
        raise InputError(f"{model_path}: no such model file")
    if out_path.suffix != ".onnx":
        raise InputError(f"{param('out')} {out_path}: the model file must end in .onnx")
    if not out_path.parent.exists():
        raise InputError(f"{param('out')} {out_path}: folder {out_path.parent} does not exist")
    if out_path.resolve() == model_path.resolve():
        raise InputError(f"{param('out')} {out_path}: would overwrite the model being imported")
    if fingerprint is not None and not re.fullmatch(r"[0-9a-f]{32}", fingerprint):
        raise InputError(
            f"{param('fingerprint')} {fingerprint!r:.40}: expected the 32 hex digits of a "
            "training split's fingerprint (`abkit train lstm --json` prints it)"
        )
    model_items = read_item_list(items)
    data, _split, name = load_training_data(db, dataset=dataset)
    column_of = {item: j for j, item in enumerate(model_items)}
    missing = [item for item in data.item_ids.tolist() if item not in column_of]
    if missing:
        examples = ", ".join(repr(m) for m in missing[:3])
        raise ModelError(
            f"{model_path}: the model's vocabulary ({param('items')}, {len(model_items)} items) "
            f"does not cover the data: {len(missing)} of the {data.n_items} catalogue items "
            f"of dataset '{name}' are not in it (e.g. {examples})"
        )
    columns = np.asarray([column_of[item] for item in data.item_ids.tolist()], dtype=np.int64)
    source = model_path.read_bytes()
    raw, external = _inline_external_data(model_path, source)
    layout, logits = check_model(
        raw,
        source=str(model_path),
        n_model_items=len(model_items),
        history_input=history_input,
        history_dtype=history_dtype,
        seq_len=seq_len,
        default_seq_len=DEFAULTS.seq_len,
        padding=padding,
        index_offset=index_offset,
        pad_token=pad_token,
        logits_output=logits_output,
    )
    tokens = columns + index_offset
    users = np.arange(min(data.n_train_users, 64), dtype=np.int64)
    probe = data.histories(users, layout.seq_len)
    wrapped = wrap_model(
        raw,
        source=str(model_path),
        layout=layout,
        logits_output=logits,
        token_of_item=tokens,
        column_of_item=columns,
        probe=probe,
    )
    sidecar = {
        "format": SIDECAR_FORMAT,
        "item_ids": data.item_ids.tolist(),
        "seq_len": layout.seq_len,
        "fingerprint": fingerprint,
        "imported": {
            "source": str(model_path),
            "sha256": hashlib.sha256(source).hexdigest(),
            **({"external_data": external} if external else {}),
            "model_items": len(model_items),
            "logits_output": logits,
            **layout.to_dict(),
        },
    }
    path, side = save_model(wrapped, sidecar, out_path)
    return ImportResult(
        path=str(path),
        sidecar=str(side),
        source=str(model_path),
        dataset=name,
        n_items=data.n_items,
        model_items=len(model_items),
        dropped_items=len(model_items) - data.n_items,
        layout=layout.to_dict(),
        logits_output=logits,
        fingerprint=fingerprint,
    )
