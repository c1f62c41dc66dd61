"""``lstm``: a next-item sequence model served from an ONNX file by onnxruntime.

The model file is a single ONNX graph plus a JSON sidecar beside it (``model.onnx`` ->
``model.json``); the graph contract and the sidecar format are
:mod:`abkit.replay.lstm_contract`. Inference needs onnxruntime only; torch is needed to *train*
one (``abkit train lstm``, :mod:`abkit_recommenders.train_lstm`), not to use it. Top-K is a
``TopK`` node inside the graph (:func:`abkit_recommenders.lstm_graph.add_topk_head`), so only
``k`` items per user leave the runtime.

Providers: ``device="auto"`` uses ``CUDAExecutionProvider`` when onnxruntime offers it, else
the CPU; ``device="cuda"`` without CUDA runs on the CPU with a warning.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from abkit_recommenders import train_lstm as trainer
from abkit_recommenders.lstm_graph import add_topk_head, lstm_core_graph

from abkit.errors import AbkitWarning, MissingExtraError, ModelError
from abkit.plugins import resolve_device
from abkit.replay.lstm_contract import (
    DEFAULTS,
    INPUTS,
    OUTPUTS,
    SIDECAR_FORMAT,
    TORCH_INSTALL,
    LSTMHyperparameters,
    read_sidecar,
    sidecar_path,
)

if TYPE_CHECKING:
    import numpy as np

    from abkit.plugins import TrainingData

__all__ = [
    "DEFAULTS",
    "SIDECAR_FORMAT",
    "LSTMHyperparameters",
    "LSTMRecommender",
    "add_topk_head",
    "lstm_core_graph",
    "sidecar_path",
    "unknown_training_warning",
]


def unknown_training_warning(source: str) -> str:
    """The warning of a model whose training data abkit does not know (an imported one)."""
    return (
        f"{source}: imported without a training fingerprint; abkit cannot rule out that it "
        "was trained on events of the test period (leakage would inflate every metric)"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


class LSTMRecommender:
    """Next-item LSTM served by onnxruntime from an ONNX file (top-K inside the graph)."""

    name: ClassVar[str] = "lstm"
    extra: ClassVar[str | None] = "onnx"
    requires: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    # inference needs onnxruntime only; fitting (and `abkit train lstm`) needs torch
    train_requires: ClassVar[tuple[str, ...]] = ("torch",)
    train_install: ClassVar[str | None] = TORCH_INSTALL
    needs_training: ClassVar[bool] = True

    def __init__(
        self,
        *,
        device: str = "auto",
        seq_len: int = DEFAULTS.seq_len,
        embedding: int = DEFAULTS.embedding,
        hidden: int = DEFAULTS.hidden,
        epochs: int = DEFAULTS.epochs,
        horizon: int = DEFAULTS.horizon,
        samples_per_epoch: int = DEFAULTS.samples_per_epoch,
        seed: int = 0,
    ) -> None:
        self.device = device
        self.seq_len = int(seq_len)
        self.embedding = int(embedding)
        self.hidden = int(hidden)
        self.epochs = int(epochs)
        self.horizon = int(horizon)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self._session: Any = None
        self._onnx_bytes: bytes | None = None
        self._sidecar: dict[str, Any] = {}
        self._has_logits = False
        self._max_rows: int | None = None
        self.used_device = "cpu"
        self.source = "<unfitted>"
        self._zeros: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "seq_len": self.seq_len,
            "embedding": self.embedding,
            "hidden": self.hidden,
            "epochs": self.epochs,
            "horizon": self.horizon,
            "samples_per_epoch": self.samples_per_epoch,
            "seed": self.seed,
        }

    # -- building the session -------------------------------------------------------------

    def _open_session(self, model: bytes | Path, source: str) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingExtraError("onnxruntime", "onnx", "the 'lstm' model") from None

        available = ort.get_available_providers()
        device, note = resolve_device(
            self.device, cuda_available="CUDAExecutionProvider" in available, what="lstm"
        )
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if device == "cuda"
            else ["CPUExecutionProvider"]
        )
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: abkit reports problems itself
        try:
            session = ort.InferenceSession(
                model if isinstance(model, bytes) else str(model), options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{source}: not a valid ONNX model ({_first_line(exc)})") from None
        if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
            device, note = "cpu", "lstm: the CUDA provider failed to start; running on the CPU"
        if note:
            warnings.warn(note, RuntimeWarning, stacklevel=3)
        self._check_signature(session, source)
        self._session = session
        self.used_device = device
        self.source = source

    def _check_signature(self, session: Any, source: str) -> None:
        inputs = {i.name: i for i in session.get_inputs()}
        expected = ", ".join(
            f"{n} {t.removeprefix('tensor(')[:-1]}[{r}d]" for n, (t, r) in INPUTS.items()
        )
        for name, (etype, rank) in INPUTS.items():
            got = inputs.get(name)
            if got is None or got.type != etype or len(got.shape) != rank:
                found = ", ".join(f"{i.name} {i.type}{list(i.shape)}" for i in inputs.values())
                raise ModelError(
                    f"{source}: wrong input signature; expected inputs {expected}, found {found}"
                )
        if set(inputs) - set(INPUTS):
            raise ModelError(
                f"{source}: wrong input signature; unexpected inputs "
                f"{', '.join(sorted(set(inputs) - set(INPUTS)))} (expected {expected})"
            )
        outputs = {o.name for o in session.get_outputs()}
        missing = [o for o in OUTPUTS if o not in outputs]
        if missing:
            raise ModelError(
                f"{source}: wrong output signature; missing outputs {', '.join(missing)} "
                "(expected top_scores, top_items and optionally logits)"
            )
        self._has_logits = "logits" in outputs

    def _require(self) -> Any:
        if self._session is None:
            raise ModelError("the lstm model is not loaded; give --model-path or fit it first")
        return self._session

    # -- the protocol -------------------------------------------------------------------------

    def fit(self, data: TrainingData) -> None:
        """Train with torch (``abkit train lstm`` does the same and saves the file)."""
        try:
            trainer.require_torch()
        except trainer.TorchMissingError as exc:
            raise trainer.TorchMissingError(
                exc.package, "; or replay a trained model with --model-path FILE.onnx"
            ) from None
        trained = trainer.train_lstm(
            data,
            seq_len=self.seq_len,
            embedding=self.embedding,
            hidden=self.hidden,
            epochs=self.epochs,
            horizon=self.horizon,
            samples_per_epoch=self.samples_per_epoch,
            seed=self.seed,
        )
        self._onnx_bytes = trained.onnx_bytes
        self._sidecar = trained.sidecar
        self._max_rows = trained.sidecar.get("max_rows")
        self._open_session(trained.onnx_bytes, "lstm (trained in memory)")

    def load(self, path: Path, data: TrainingData) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        side = sidecar_path(path)
        if not side.is_file():
            raise ModelError(
                f"{path}: missing its sidecar {side.name} (item vocabulary, sequence length, "
                "fingerprint); export models with `abkit train lstm`"
            )
        sidecar = read_sidecar(side)
        data.check_vocabulary(sidecar.item_ids, sidecar.fingerprint, source=str(path))
        self._open_session(path, str(path))
        if sidecar.fingerprint is None:
            warnings.warn(unknown_training_warning(str(path)), AbkitWarning, stacklevel=2)
        self._onnx_bytes = path.read_bytes()
        self._sidecar = sidecar.document
        self.seq_len = sidecar.seq_len
        self._max_rows = sidecar.document.get("max_rows")

    @property
    def sidecar(self) -> dict[str, Any]:
        """The loaded (or trained) model's sidecar document."""
        return dict(self._sidecar)

    def save(self, path: Path) -> None:
        if self._onnx_bytes is None:
            raise ModelError("the lstm model is not fitted; nothing to save")
        path = Path(path)
        path.write_bytes(self._onnx_bytes)
        sidecar_path(path).write_text(json.dumps(self._sidecar, indent=1), encoding="utf-8")

    def _run(
        self, outputs: list[str], data: TrainingData, users: np.ndarray, k: int, exclude: Any
    ) -> list[np.ndarray]:
        import numpy as np

        session = self._require()
        users = np.asarray(users, dtype=np.int64)
        history = data.histories(users, self.seq_len)
        k_input = np.asarray([k], dtype=np.int64)
        # a graph whose memory grows with users x items (the seed model: one LSTM step per
        # user and item) says in its sidecar how many users one call may hold
        step = self._max_rows or max(users.size, 1)
        parts: list[list[np.ndarray]] = []
        try:
            for start in range(0, max(users.size, 1), step):
                rows = slice(start, start + step)
                feed = {"history": history[rows], "k": k_input, "exclude": exclude[rows]}
                parts.append(list(session.run(outputs, feed)))
        except Exception as exc:
            raise ModelError(f"{self.source}: inference failed ({_first_line(exc)})") from None
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(outputs))]

    def _zero_mask(self, rows: int, n_items: int) -> np.ndarray:
        """A ``[rows, n_items]`` float32 view of zeros, kept by the model between calls.

        Whoever writes into it puts the zeros back before returning (``recommend`` scatters
        ``-inf`` on the seen items, then resets exactly those): a fresh ``np.zeros`` per chunk
        costs its page faults (33 MB at 838 x 10,000) each time the graph reads it. Not safe
        for concurrent calls on one model object.
        """
        import numpy as np

        zeros = self._zeros
        if zeros is None or zeros.shape[0] < rows or zeros.shape[1] != n_items:
            zeros = self._zeros = np.zeros((rows, n_items), dtype=np.float32)
        return zeros[:rows]

    def recommend(
        self, data: TrainingData, users: np.ndarray, k: int, *, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        users = np.asarray(users, dtype=np.int64)
        exclude = self._zero_mask(users.size, data.n_items)
        rows = cols = None
        if exclude_seen:
            seen = data.seen_rows(users)
            rows = np.repeat(np.arange(users.size), np.diff(seen.indptr))
            cols = seen.indices
            exclude[rows, cols] = -np.inf
        try:
            scores, items = self._run(["top_scores", "top_items"], data, users, k, exclude)
        finally:
            if rows is not None:
                exclude[rows, cols] = 0.0
        if items.shape != (users.size, k):
            raise ModelError(
                f"{self.source}: top_items has shape {list(items.shape)}, "
                f"expected [{users.size}, {k}]"
            )
        if items.size and (items.min() < 0 or items.max() >= data.n_items):
            raise ModelError(f"{self.source}: returned item indices outside the vocabulary")
        return items.astype(np.int64), scores.astype(np.float32)

    def score(self, data: TrainingData, users: np.ndarray) -> np.ndarray:
        import numpy as np

        self._require()
        if not self._has_logits:
            raise ModelError(f"{self.source}: the graph has no 'logits' output to score with")
        (logits,) = self._run(["logits"], data, users, 1, self._zero_mask(len(users), data.n_items))
        if logits.shape != (len(users), data.n_items):
            raise ModelError(
                f"{self.source}: logits have shape {list(logits.shape)}, "
                f"expected [{len(users)}, {data.n_items}]"
            )
        return logits.astype(np.float32)
