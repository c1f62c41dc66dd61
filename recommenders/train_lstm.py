"""Train the next-item LSTM with torch and export it as one ONNX file plus a JSON sidecar.

torch is an optional, deliberately unlisted dependency (an unpinned torch pulls gigabytes of
CUDA wheels): install it first with ``pip install torch==2.13.0 "abkit-lift[train]"``.

Model: ``Embedding(n_items + 1, E, padding_idx=0) -> LSTM(E, H) -> Linear(H, n_items)``; the
last hidden state after the user's last ``seq_len`` items scores every item as what comes
next. Every position of every training sequence (after the first) is one example: input the
up-to ``seq_len`` items before it; targets the item at the position and the ``horizon - 1``
items after it, with the loss the mean cross-entropy over those targets. Replay grades every
new item of the test period, not only the next one, and on the simulator a 10-item horizon
beats a 1-item one clearly (NDCG@10 0.22 against 0.17, popularity 0.16). Each epoch trains on
a random sample of ``samples_per_epoch`` examples (Adam, batches of 256) on ``threads`` CPU
threads (one by default: a model this small gains nothing from more, and threads fight over a
shared machine), so training takes seconds to a minute whatever the data size.

Export: by default (``exporter="weights"``) the trained weights are written straight into the
graph of :func:`abkit_recommenders.lstm_graph.lstm_core_graph` (torch's gate order i, f, g, o
reordered to ONNX's i, o, f, c), in milliseconds. ``exporter="dynamo"`` runs torch's dynamo
ONNX exporter instead (needs ``onnxscript``; about ten seconds even for a tiny model). Either
way :func:`abkit_recommenders.lstm_graph.add_topk_head` adds the serving head, and the result is
checked against torch's own output before it is returned.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from abkit_recommenders.lstm_graph import add_topk_head, lstm_core_graph

from abkit.errors import InputError, MissingExtraError, ModelError, param
from abkit.replay.lstm_contract import DEFAULTS, SIDECAR_FORMAT, TORCH_INSTALL, sidecar_path

if TYPE_CHECKING:
    import numpy as np

    from abkit.plugins import TrainingData

__all__ = [
    "TORCH_INSTALL",
    "TorchMissingError",
    "TrainedLSTM",
    "require_torch",
    "save_model",
    "save_trained",
    "train_lstm",
]


class TorchMissingError(MissingExtraError):
    """torch (or the exporter's onnxscript) is not installed; gives the exact install line."""

    def __init__(self, package: str, hint: str = "") -> None:
        # MissingExtraError's message names only the extra; torch must be pinned by hand
        super(MissingExtraError, self).__init__(
            f"training the lstm needs the optional package '{package}': {TORCH_INSTALL}{hint}"
        )
        self.package = package
        self.extra = "train"


@dataclass(frozen=True, kw_only=True)
class TrainedLSTM:
    """A trained, exported model: the ONNX bytes, its sidecar and the training summary."""

    onnx_bytes: bytes
    sidecar: dict[str, Any]
    examples: int
    epochs: int
    final_loss: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "epochs": self.epochs,
            "final_loss": self.final_loss,
            "seq_len": self.sidecar["seq_len"],
            "n_items": len(self.sidecar["item_ids"]),
            "fingerprint": self.sidecar["fingerprint"],
        }


def require_torch() -> Any:
    """torch, or :class:`TorchMissingError` with the exact install line."""
    try:
        import torch
    except ImportError:
        raise TorchMissingError("torch") from None
    return torch


def training_examples(
    data: TrainingData, seq_len: int, horizon: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs [n, seq_len], targets [n, horizon]) for every position after the first of
    every user's training sequence.

    Inputs are the up-to ``seq_len`` items before the position, as item index + 1,
    left-padded with 0; targets are the item at the position and the ``horizon - 1`` items
    after it, -1 past the end of the user's sequence.
    """
    import numpy as np

    indptr, items = data.seq_indptr, data.seq_items.astype(np.int64)
    lengths = np.diff(indptr)
    pos = np.arange(items.size)
    user_start = np.repeat(indptr[:-1], lengths)
    user_end = np.repeat(indptr[1:], lengths)
    keep = pos > user_start  # a target needs at least one item before it
    targets_pos = pos[keep]
    starts, ends = user_start[keep], user_end[keep]
    columns = targets_pos[:, None] - seq_len + np.arange(seq_len)[None, :]
    valid = columns >= starts[:, None]
    inputs = np.zeros(columns.shape, dtype=np.int64)
    inputs[valid] = items[columns[valid]] + 1
    future = targets_pos[:, None] + np.arange(horizon)[None, :]
    inside = future < ends[:, None]
    targets = np.full(future.shape, -1, dtype=np.int64)
    targets[inside] = items[future[inside]]
    return inputs, targets


def train_lstm(
    data: TrainingData,
    *,
    seq_len: int = DEFAULTS.seq_len,
    embedding: int = DEFAULTS.embedding,
    hidden: int = DEFAULTS.hidden,
    epochs: int = DEFAULTS.epochs,
    horizon: int = DEFAULTS.horizon,
    samples_per_epoch: int = DEFAULTS.samples_per_epoch,
    batch_size: int = 256,
    learning_rate: float = 5e-3,
    seed: int = 0,
    threads: int = 1,
    exporter: Literal["weights", "dynamo"] = "weights",
    progress: Callable[[int], None] | None = None,
) -> TrainedLSTM:
    """Train on ``data`` (CPU, a few epochs) and export; see the module docstring."""
    import numpy as np

    torch = require_torch()
    sizes = {
        "seq_len": seq_len,
        "embedding": embedding,
        "hidden": hidden,
        "epochs": epochs,
        "horizon": horizon,
        "samples_per_epoch": samples_per_epoch,
        "batch_size": batch_size,
        "threads": threads,
    }
    for name, value in sizes.items():
        if value < 1:
            raise InputError(f"{param(name)} must be at least 1, got {value}")
    if exporter not in ("weights", "dynamo"):
        raise InputError(f"exporter must be 'weights' or 'dynamo', got {exporter!r}")
    inputs, targets = training_examples(data, seq_len, horizon)
    if targets.shape[0] == 0:
        raise InputError(
            "the training split has no user with two or more interactions; "
            "the lstm has nothing to learn"
        )
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    n_items = data.n_items

    class NextItem(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(n_items + 1, embedding, padding_idx=0)
            self.lstm = torch.nn.LSTM(embedding, hidden, batch_first=True)
            self.out = torch.nn.Linear(hidden, n_items)

        def forward(self, history: Any) -> Any:
            _, (h, _) = self.lstm(self.embedding(history))
            return self.out(h[-1])

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model, loss_value = _fit(
            torch,
            NextItem(),
            inputs,
            targets,
            epochs=epochs,
            batch_size=batch_size,
            samples_per_epoch=samples_per_epoch,
            learning_rate=learning_rate,
            generator=generator,
            progress=progress,
        )
        sample = np.ascontiguousarray(inputs[: min(8, len(inputs))])
        if exporter == "dynamo":
            onnx_bytes = _export_dynamo(torch, model, sample)
        else:
            onnx_bytes = _export_weights(model, seq_len)
        with torch.no_grad():
            expected = model(torch.from_numpy(sample)).numpy()
        _check_parity(onnx_bytes, sample, expected)
    finally:
        torch.set_num_threads(previous_threads)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "item_ids": data.item_ids.tolist(),
        "seq_len": seq_len,
        "fingerprint": data.fingerprint,
        "params": {
            "embedding": embedding,
            "hidden": hidden,
            "epochs": epochs,
            "seed": seed,
            "exporter": exporter,
        },
        "trained_examples": int(targets.size),
        "final_loss": loss_value,
    }
    return TrainedLSTM(
        onnx_bytes=onnx_bytes,
        sidecar=sidecar,
        examples=int(targets.shape[0]),
        epochs=epochs,
        final_loss=loss_value,
    )


def _fit(
    torch: Any,
    model: Any,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    samples_per_epoch: int,
    learning_rate: float,
    generator: Any,
    progress: Callable[[int], None] | None,
) -> tuple[Any, float]:
    """Adam on the mean cross-entropy of the valid targets of each example."""
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    x_all = torch.from_numpy(inputs)
    y_all = torch.from_numpy(targets)
    loss_value = float("nan")
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x_all.shape[0], generator=generator)[:samples_per_epoch]
        total, count = 0.0, 0
        for start in range(0, order.numel(), batch_size):
            batch = order[start : start + batch_size]
            y = y_all[batch]
            valid = y >= 0
            log_probs = torch.log_softmax(model(x_all[batch]), dim=-1)
            picked = torch.gather(log_probs, 1, y.clamp(min=0))
            n_valid = valid.sum()
            loss = -(picked * valid).sum() / n_valid
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * int(n_valid)
            count += int(n_valid)
        loss_value = total / max(count, 1)
        if progress is not None:
            progress(1)
    model.eval()
    return model, loss_value


def _export_weights(model: Any, seq_len: int) -> bytes:
    """Copy the trained weights into :func:`lstm_core_graph` and add the serving head."""
    import numpy as np

    def gates(t: Any) -> np.ndarray:
        # torch stacks the LSTM gates as (i, f, g, o); ONNX expects (i, o, f, c)
        i, f, g, o = np.split(t.detach().numpy(), 4, axis=0)
        return np.concatenate([i, o, f, g], axis=0)

    lstm = model.lstm
    proto = lstm_core_graph(
        embedding=model.embedding.weight.detach().numpy(),
        w=gates(lstm.weight_ih_l0)[None],
        r=gates(lstm.weight_hh_l0)[None],
        b=np.concatenate([gates(lstm.bias_ih_l0), gates(lstm.bias_hh_l0)])[None],
        out_w=model.out.weight.detach().numpy().T,
        out_b=model.out.bias.detach().numpy(),
        seq_len=seq_len,
    )
    return add_topk_head(proto).SerializeToString()


def _export_dynamo(torch: Any, model: Any, sample: np.ndarray) -> bytes:
    """torch's dynamo exporter (one file, dynamic batch) plus the serving head."""
    import logging
    import warnings

    try:
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError as exc:
        raise TorchMissingError(exc.name or "onnxscript") from None
    example = torch.from_numpy(sample)
    batch = torch.export.Dim("batch", min=1)
    buffer = io.BytesIO()
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        # the exporter's deprecation chatter is about torch internals, not about the model
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=["history"],
                output_names=["logits"],
                dynamic_shapes={"history": {0: batch}},
                external_data=False,
                optimize=True,
                verbose=False,
            )
            program.save(buffer, external_data=False)
    finally:
        logger.setLevel(level)
    proto = onnx.load_from_string(buffer.getvalue())
    return add_topk_head(proto).SerializeToString()


def _check_parity(onnx_bytes: bytes, sample: np.ndarray, expected: np.ndarray) -> None:
    import numpy as np

    try:
        import onnxruntime as ort
    except ImportError:
        return  # nothing to check with; the file is still a valid export
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    n_items = expected.shape[1]
    (logits,) = session.run(
        ["logits"],
        {
            "history": sample,
            "k": np.asarray([1], np.int64),
            "exclude": np.zeros((sample.shape[0], n_items), np.float32),
        },
    )
    if not np.allclose(logits, expected, rtol=1e-4, atol=1e-4):
        raise ModelError("lstm export: the ONNX graph disagrees with the torch model")


def save_trained(trained: TrainedLSTM, path: Path) -> tuple[Path, Path]:
    """Write ``path`` (ONNX) and its sidecar; returns both paths."""
    return save_model(trained.onnx_bytes, trained.sidecar, path)


def save_model(onnx_bytes: bytes, sidecar: dict[str, Any], path: Path) -> tuple[Path, Path]:
    """Write ``path`` (ONNX bytes) and its sidecar ``sidecar`` beside it; returns both paths."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise InputError(f"{path}: the model file must end in .onnx")
    if not path.parent.exists():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    side = sidecar_path(path)
    try:
        path.write_bytes(onnx_bytes)
        side.write_text(json.dumps(sidecar, indent=1), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot write the model ({exc.strerror})") from None
    return path, side
