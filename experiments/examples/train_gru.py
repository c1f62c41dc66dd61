"""Train a small GRU next-item model OUTSIDE abkit and export it to ONNX, as a team would
before ``abkit models import`` (the README's "Bring your own model").

The model deliberately does not follow abkit's graph contract: its input ``seq`` is int32
``[batch, 8]``, RIGHT-padded with 0, the item on line j of ``items.txt`` being token j + 1; its
one output ``scores`` ``[batch, items]`` holds logits. It learns from the store's pre-experiment
events only (before the experiment's start, so before any replay split's cut-off: no leakage),
one pass over the next-item pairs. Needs torch (``pip install torch==2.13.0``)::

    python experiments/examples/train_gru.py --db abkit.duckdb --out own.onnx --items items.txt
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import duckdb
import numpy as np
import torch

SEQ_LEN = 8


class GRURecommender(torch.nn.Module):
    def __init__(self, n_items: int, dim: int = 32) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.gru = torch.nn.GRU(dim, dim, batch_first=True)
        self.out = torch.nn.Linear(dim, n_items)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        x = seq.long()
        states, _ = self.gru(self.embedding(x))
        last = ((x > 0).sum(dim=1) - 1).clamp(min=0)  # right padding: the last real item
        return self.out(states[torch.arange(x.shape[0]), last])


def _histories(db: Path, dataset: str | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    with duckdb.connect(str(db), read_only=True) as con:
        if dataset is None:
            (dataset,) = con.execute("SELECT min(dataset) FROM events").fetchone()
        items = [
            r[0]
            for r in con.execute(
                "SELECT item_id FROM items WHERE dataset = ? UNION SELECT item_id FROM events "
                "WHERE dataset = ? AND item_id IS NOT NULL ORDER BY item_id",
                [dataset, dataset],
            ).fetchall()
        ]
        rows = con.execute(
            "SELECT e.user_id, e.item_id FROM events e "
            "WHERE e.dataset = ? AND e.item_id IS NOT NULL AND e.ts < (SELECT min(start_ts) "
            "FROM experiments x WHERE x.dataset = e.dataset) ORDER BY e.user_id, e.ts",
            [dataset],
        ).fetchall()
    token = {item: j + 1 for j, item in enumerate(items)}
    seqs, targets = [], []
    history: list[int] = []
    previous = None
    for user, item in rows:
        if user != previous:
            history, previous = [], user
        if history:
            window = history[-SEQ_LEN:]
            seqs.append(window + [0] * (SEQ_LEN - len(window)))  # right-padded
            targets.append(token[item] - 1)
        history.append(token[item])
    return items, np.array(seqs, dtype=np.int32), np.array(targets, dtype=np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path("abkit.duckdb"))
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--out", type=Path, default=Path("own.onnx"))
    parser.add_argument("--items", type=Path, default=Path("items.txt"))
    args = parser.parse_args()
    torch.manual_seed(0)
    items, seqs, targets = _histories(args.db, args.dataset)
    model = GRURecommender(len(items))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.005)
    order = np.random.default_rng(0).permutation(len(seqs))
    for start in range(0, len(order), 256):
        batch = order[start : start + 256]
        loss = torch.nn.functional.cross_entropy(
            model(torch.from_numpy(seqs[batch])), torch.from_numpy(targets[batch])
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.ones((2, SEQ_LEN), dtype=torch.int32),),
            str(args.out),
            input_names=["seq"],
            output_names=["scores"],
            dynamic_axes={"seq": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    args.items.write_text("".join(f"{item}\n" for item in items), encoding="utf-8")
    print(f"{args.out}: a GRU over {len(items):,} items, {len(seqs):,} next-item examples")


if __name__ == "__main__":
    main()
