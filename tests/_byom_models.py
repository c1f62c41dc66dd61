"""Tiny torch models with signatures unlike abkit's, exported to ONNX for the import tests
(``abkit models import``): built once per session by the fixtures that use them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from abkit.plugins import TrainingData

torch = pytest.importorskip("torch")

SEQ_LEN = 6


@dataclass(frozen=True)
class Exported:
    path: Path
    items: list[str]  # the model's vocabulary, in its column order


def _export(module, example, path: Path, *, input_names, output_names, dynamic) -> None:
    """torch's TorchScript exporter: tiny graphs in well under a second."""
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )


class RightPaddedLSTM(torch.nn.Module):
    """int32 [batch, 6] right-padded (items first, then 0), tokens = index + 1; its LSTM
    state is read at the last real item; outputs raw logits only."""

    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(n_items + 1, 4, padding_idx=0)
        self.lstm = torch.nn.LSTM(4, 5, batch_first=True)
        self.out = torch.nn.Linear(5, n_items)

    def forward(self, seq):
        x = seq.long()
        states, _ = self.lstm(self.embedding(x))
        last = ((x > 0).sum(dim=1) - 1).clamp(min=0)
        picked = states[torch.arange(x.shape[0]), last]
        return self.out(picked)


class TwoInputs(torch.nn.Module):
    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(n_items + 1, 3)
        self.out = torch.nn.Linear(3, n_items)

    def forward(self, seq, extra):
        return self.out(self.embedding(seq).mean(dim=1)) + extra


class KerasLike(torch.nn.Module):
    """As tf2onnx converts a Keras model: float32 token ids [batch, 6], left-padded with 0,
    items from 1, a sigmoid output per item (probabilities) named ``dense``."""

    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(n_items + 1, 4, padding_idx=0)
        self.lstm = torch.nn.LSTM(4, 5, batch_first=True)
        self.dense = torch.nn.Linear(5, n_items)

    def forward(self, embedding_input):
        _, (h, _) = self.lstm(self.embedding(embedding_input.long()))
        return torch.sigmoid(self.dense(h[-1]))


class OnePair(torch.nn.Module):
    """The article's shape: one probability per (history, candidate) sequence."""

    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(n_items + 1, 3)
        self.dense = torch.nn.Linear(3, 1)

    def forward(self, seq):
        return torch.sigmoid(self.dense(self.embedding(seq).mean(dim=1)))


def export_models(folder: Path, sim_data: TrainingData) -> dict[str, Exported]:
    """The models: columns in a shuffled order of the catalogue plus three items the store
    does not have."""
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    items = [*rng.permutation(sim_data.item_ids).tolist(), "x-1", "x-2", "x-3"]
    n = len(items)
    out = {}
    right = RightPaddedLSTM(n).eval()
    example = torch.zeros((2, SEQ_LEN), dtype=torch.int32)
    example[:, 0] = 1
    _export(
        right,
        (example,),
        folder / "right.onnx",
        input_names=["seq"],
        output_names=["scores"],
        dynamic={"seq": {0: "batch"}, "scores": {0: "batch"}},
    )
    out["right"] = Exported(folder / "right.onnx", items)
    two = TwoInputs(n).eval()
    _export(
        two,
        (torch.zeros((2, SEQ_LEN), dtype=torch.int64), torch.zeros((2, n))),
        folder / "two.onnx",
        input_names=["seq", "extra"],
        output_names=["scores"],
        dynamic={"seq": {0: "batch"}, "extra": {0: "batch"}, "scores": {0: "batch"}},
    )
    out["two"] = Exported(folder / "two.onnx", items)
    _export(
        KerasLike(n).eval(),
        (torch.ones((2, SEQ_LEN), dtype=torch.float32),),
        folder / "keras.onnx",
        input_names=["embedding_input"],
        output_names=["dense"],
        dynamic={"embedding_input": {0: "batch"}, "dense": {0: "batch"}},
    )
    out["keras"] = Exported(folder / "keras.onnx", items)
    _export(
        OnePair(n).eval(),
        (torch.ones((2, SEQ_LEN), dtype=torch.int64),),
        folder / "pair.onnx",
        input_names=["seq"],
        output_names=["p"],
        dynamic={"seq": {0: "batch"}, "p": {0: "batch"}},
    )
    out["pair"] = Exported(folder / "pair.onnx", items)
    return out


def items_file(folder: Path, items: list[str], name: str = "items.txt") -> Path:
    path = folder / name
    path.write_text("\n".join(items) + "\n", encoding="utf-8")
    return path
