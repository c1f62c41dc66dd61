"""Small hand-built stores for the replay tests (no simulator needed)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from abkit.data.store import open_store
from abkit.plugins import Exposures, TrainingData

START = datetime(2024, 1, 1)


def write_store(
    path: Path,
    *,
    events: pd.DataFrame | None = None,
    impressions: pd.DataFrame | None = None,
    items: list[str] | None = None,
    dataset: str = "t",
    unit: str = "user",
) -> Path:
    """A store with one dataset holding the given rows (columns named as in the schema)."""
    with open_store(path, write=True) as store, store.transaction() as con:
        store.add_dataset(dataset, source="ingest", unit=unit)
        if events is not None and len(events):
            frame = events.assign(dataset=dataset)
            for col in ("session_id", "value"):
                if col not in frame:
                    frame[col] = None
            frame = frame[
                ["dataset", "user_id", "session_id", "item_id", "event_type", "ts", "value"]
            ]
            con.register("ev_df", frame)
            con.execute("INSERT INTO events SELECT * FROM ev_df")
            con.unregister("ev_df")
        if impressions is not None and len(impressions):
            frame = impressions.assign(dataset=dataset)
            for col in ("slate_id", "session_id", "conversion", "value", "variant"):
                if col not in frame:
                    frame[col] = None
            frame = frame[
                [
                    "dataset",
                    "impression_id",
                    "slate_id",
                    "user_id",
                    "session_id",
                    "ts",
                    "variant",
                    "item_id",
                    "position",
                    "propensity",
                    "click",
                    "conversion",
                    "value",
                ]
            ]
            con.register("imp_df", frame)
            con.execute("INSERT INTO impressions SELECT * FROM imp_df")
            con.unregister("imp_df")
        if items:
            con.executemany(
                "INSERT INTO items VALUES (?, ?, NULL, NULL)", [[dataset, i] for i in items]
            )
    return path


def events_frame(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """(user, item, day) triples -> an events frame of 'view' events on those days."""
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "event_type": "view",
            "ts": [START + timedelta(days=r[2]) for r in rows],
        }
    )


def structured_events(
    *,
    n_users: int = 400,
    n_items: int = 60,
    n_groups: int = 4,
    length: int = 16,
    days: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Traffic with structure a model can learn and a baseline cannot.

    Users belong to taste groups; each group owns a block of items; a user walks through
    their group's items in a fixed cyclic order (the next item is the successor of the last
    one 85% of the time, another item of the group otherwise, and a random catalogue item 5%
    of the time); items within a group have Zipf-like popularity. Timestamps spread the walk
    evenly over ``days``, so a temporal split cuts every user's sequence near the same place.
    """
    rng = np.random.default_rng(seed)
    per_group = n_items // n_groups
    groups = rng.integers(0, n_groups, size=n_users)
    rows_user, rows_item, rows_ts = [], [], []
    for u in range(n_users):
        base = groups[u] * per_group
        current = rng.integers(0, per_group)
        offset = rng.uniform(0, 0.5)
        for step in range(length):
            roll = rng.random()
            if step == 0:
                pass
            elif roll < 0.85:
                current = (current + 1) % per_group
            elif roll < 0.95:
                current = min(int(rng.zipf(1.6)) - 1, per_group - 1)
            item = base + current if roll < 0.95 or step == 0 else int(rng.integers(n_items))
            rows_user.append(f"u{u:04d}")
            rows_item.append(f"i{item:03d}")
            rows_ts.append(START + timedelta(days=(step + offset) * days / length))
    return pd.DataFrame(
        {"user_id": rows_user, "item_id": rows_item, "event_type": "view", "ts": rows_ts}
    )


# -- tiny data whose right answers are known by construction --------------------------------

GROUP_SIZE = 6


def known_answer_data(
    users_per_group: tuple[int, int] = (12, 8), *, exposures: bool = False
) -> TrainingData:
    """Two taste groups of 6 items each (items 0-5 and 6-11).

    Each user walks 5 steps through their group's items in cyclic order from an offset, so
    exactly one group item is unseen, and it is the cyclic successor of the user's last item.
    Group 0 has more users, so its items are the most popular. Right answers:

    * als, lstm, logistic: the unseen item of the user's own group comes first;
    * popularity, ctr: the most popular unseen item (ties broken by item index).

    ``exposures``: also as impression logs (for the impression-trained models): every user
    was shown every item once, in slot 1, and clicked the items of their history; the context
    is the user's group, one-hot (``user_feature_0=g0`` / ``=g1``).
    """
    user_idx, item_idx = [], []
    u = 0
    for group, count in enumerate(users_per_group):
        base = group * GROUP_SIZE
        for j in range(count):
            for step in range(GROUP_SIZE - 1):
                user_idx.append(u)
                item_idx.append(base + (j + step) % GROUP_SIZE)
            u += 1
    extra: dict[str, object] = {}
    if exposures:
        import scipy.sparse as sp

        n_items = 2 * GROUP_SIZE
        shown_user = np.repeat(np.arange(u), n_items)
        shown_item = np.tile(np.arange(n_items), u)
        clicked = set(zip(user_idx, item_idx, strict=True))
        reward = np.array(
            [float((a, b) in clicked) for a, b in zip(shown_user, shown_item, strict=True)]
        )
        group = np.repeat(np.arange(2), users_per_group)
        extra = {
            "exposures": Exposures(
                user_idx=shown_user,
                item_idx=shown_item,
                position=np.ones(shown_user.size, dtype=np.int64),
                reward=reward,
                propensity=np.full(shown_user.size, 1.0 / n_items),
            ),
            "context": sp.csr_matrix(
                (np.ones(u), (np.arange(u), group)), shape=(u, 2), dtype=np.float64
            ),
            "context_names": np.array(["user_feature_0=g0", "user_feature_0=g1"]),
        }
    return TrainingData.from_arrays(
        user_idx=np.asarray(user_idx),
        item_idx=np.asarray(item_idx),
        user_ids=[f"u{i:02d}" for i in range(u)],
        item_ids=[f"i{i:02d}" for i in range(2 * GROUP_SIZE)],
        **extra,  # type: ignore[arg-type]
    )


def missing_group_item(data: TrainingData, user: int) -> int:
    """The one item of the user's group that the user has not seen."""
    seen = set(data.seq_items[data.seq_indptr[user] : data.seq_indptr[user + 1]].tolist())
    base = (min(seen) // GROUP_SIZE) * GROUP_SIZE
    (missing,) = set(range(base, base + GROUP_SIZE)) - seen
    return missing


def successor_weights(n_items: int, group_size: int = GROUP_SIZE) -> dict[str, np.ndarray]:
    """LSTM weights (ONNX layout) whose top item is the cyclic group successor of the last item.

    One-hot embeddings; input and output gates saturated open (bias +10), the forget gate
    saturated shut (bias -10), cell input 3 x one-hot: so h_T = tanh(tanh(3)) at the last item
    and ~0 elsewhere; the output layer maps item i to its successor with weight 10.
    """
    h = n_items
    embedding = np.vstack([np.zeros((1, n_items)), np.eye(n_items)])
    w = np.zeros((1, 4 * h, n_items))
    w[0, 3 * h :, :] = 3 * np.eye(n_items)  # gate order i, o, f, c
    b = np.zeros((1, 8 * h))
    b[0, :h] = 10.0
    b[0, h : 2 * h] = 10.0
    b[0, 2 * h : 3 * h] = -10.0
    out_w = np.zeros((h, n_items))
    for i in range(n_items):
        base = (i // group_size) * group_size
        out_w[i, base + (i - base + 1) % group_size] = 10.0
    return {
        "embedding": embedding,
        "w": w,
        "r": np.zeros((1, 4 * h, h)),
        "b": b,
        "out_w": out_w,
        "out_b": np.zeros(n_items),
    }


def write_onnx_model(
    path: Path, data: TrainingData, weights: dict[str, np.ndarray], *, seq_len: int = 6
) -> Path:
    """An ONNX model + sidecar for ``data`` built with onnx.helper (no torch)."""
    import json

    from abkit_recommenders.lstm_graph import add_topk_head, lstm_core_graph

    from abkit.replay.lstm_contract import SIDECAR_FORMAT

    proto = add_topk_head(lstm_core_graph(**weights, seq_len=seq_len))
    path.write_bytes(proto.SerializeToString())
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "format": SIDECAR_FORMAT,
                "item_ids": data.item_ids.tolist(),
                "seq_len": seq_len,
                "fingerprint": data.fingerprint,
            }
        )
    )
    return path
