"""GPU check for abkit's recommenders, in one go: ``python -m abkit.gpu_check [--json OUT]``.

1. ALS: fit with implicit on the GPU (``implicit.gpu.HAS_CUDA``) and on the CPU with the same
   seed and data; compare NDCG@10 of both (different solvers: equal within 5% relative), and
   check that implicit's GPU top-K equals abkit's CPU GEMM top-K on the *same* factors
   (>= 99% of the lists identical; ties may differ).
2. onnxruntime: run an LSTM graph (built with onnx.helper, random weights) on the
   ``CUDAExecutionProvider`` and on the CPU; logits equal to 1e-3, top-K lists identical.
3. Times: users/s of both paths.

Without a GPU every check reports ``skipped`` with the reason and the script exits 0, so it
can run anywhere (CI runs it as a smoke test). Exit 1 when a parity check fails.
Prints a JSON summary; ``--json OUT`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from abkit_recommenders.als import ALSRecommender, has_cuda
from abkit_recommenders.lstm import LSTMRecommender
from abkit_recommenders.lstm_graph import add_topk_head, lstm_core_graph

from abkit.plugins import TrainingData
from abkit.replay.metrics import ranking_metrics


def synthetic(n_users: int, n_items: int, per_user: int, seed: int) -> tuple[Any, Any, Any]:
    """Training data with taste structure, and a held-out test item set per user."""

    rng = np.random.default_rng(seed)
    groups = 20
    group_of_user = rng.integers(0, groups, size=n_users)
    per_group = n_items // groups
    base = group_of_user[:, None] * per_group
    own = base + rng.integers(0, per_group, size=(n_users, per_user))
    other = rng.integers(0, n_items, size=(n_users, per_user))
    items = np.where(rng.random((n_users, per_user)) < 0.8, own, other)
    users = np.repeat(np.arange(n_users), per_user)
    items = items.ravel()
    test = rng.random(items.size) < 0.2
    data = TrainingData.from_arrays(
        user_idx=users[~test],
        item_idx=items[~test],
        user_ids=np.char.zfill(np.arange(n_users).astype(str), 7),
        item_ids=np.char.zfill(np.arange(n_items).astype(str), 7),
    )
    return data, users[test], items[test]


def ndcg_at_10(model: Any, data: Any, test_users: np.ndarray, test_items: np.ndarray) -> float:

    seen = data.matrix
    keys = test_users * data.n_items + test_items
    fresh = np.asarray(seen[test_users, test_items]).ravel() == 0
    keys = np.unique(keys[fresh])
    users, items = keys // data.n_items, keys % data.n_items
    eval_users, counts = np.unique(users, return_counts=True)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    total = 0.0
    for lo in range(0, eval_users.size, 2048):
        hi = min(lo + 2048, eval_users.size)
        top, _ = model.recommend(data, eval_users[lo:hi], 10)
        values = ranking_metrics(
            top,
            indptr[lo : hi + 1] - indptr[lo],
            items[indptr[lo] : indptr[hi]],
            ks=[10],
            n_items=data.n_items,
        )
        total += float(values["ndcg@10"].sum())
    return total / eval_users.size


def check_als(
    data: Any, test_users: np.ndarray, test_items: np.ndarray, *, device: str = "cuda"
) -> dict[str, Any]:
    """CPU against ``device`` (``cuda``; ``cpu`` only to exercise this code without a GPU)."""

    if device == "cuda" and not has_cuda():
        return {"status": "skipped", "reason": "implicit.gpu.HAS_CUDA is False"}
    out: dict[str, Any] = {}
    models = {}
    for label, dev in (("cpu", "cpu"), ("gpu", device)):
        model = ALSRecommender(factors=32, iterations=10, seed=0, device=dev)
        start = time.perf_counter()
        model.fit(data)
        out[f"fit_s_{label}"] = time.perf_counter() - start
        start = time.perf_counter()
        out[f"ndcg10_{label}"] = ndcg_at_10(model, data, test_users, test_items)
        out[f"rank_s_{label}"] = time.perf_counter() - start
        out[f"used_device_{label}"] = model.used_device
        models[label] = model
    gpu = models["gpu"]
    users = np.arange(min(data.n_users, 20_000))
    gpu_top, _ = gpu.recommend(data, users, 10)
    cpu_same_factors = ALSRecommender(factors=32, device="cpu")
    cpu_same_factors.user_factors = gpu.user_factors
    cpu_same_factors.item_factors = gpu.item_factors
    cpu_top, _ = cpu_same_factors.recommend(data, users, 10)
    out["same_factors_identical_lists"] = float(np.mean(np.all(gpu_top == cpu_top, axis=1)))
    relative = abs(out["ndcg10_gpu"] - out["ndcg10_cpu"]) / max(out["ndcg10_cpu"], 1e-12)
    out["ndcg_relative_difference"] = relative
    ok = (
        out["used_device_gpu"] == device
        and relative < 0.05
        and out["same_factors_identical_lists"] >= 0.99
    )
    out["status"] = "ok" if ok else "FAILED"
    return out


def check_onnx(data: Any, *, device: str = "cuda") -> dict[str, Any]:
    """CPU provider against ``device`` (``cuda``; ``cpu`` only to exercise this code)."""
    import onnxruntime as ort

    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return {
            "status": "skipped",
            "reason": f"onnxruntime providers: {ort.get_available_providers()}",
        }
    rng = np.random.default_rng(0)
    n, emb, hidden = data.n_items, 32, 64
    weights = {
        "embedding": np.vstack([np.zeros((1, emb)), rng.normal(size=(n, emb))]),
        "w": rng.normal(scale=0.3, size=(1, 4 * hidden, emb)),
        "r": rng.normal(scale=0.3, size=(1, 4 * hidden, hidden)),
        "b": rng.normal(scale=0.1, size=(1, 8 * hidden)),
        "out_w": rng.normal(size=(hidden, n)),
        "out_b": np.zeros(n),
    }
    onnx_bytes = add_topk_head(lstm_core_graph(**weights, seq_len=20)).SerializeToString()
    users = np.arange(min(data.n_users, 4096))
    out: dict[str, Any] = {}
    results = {}
    for label, dev in (("cpu", "cpu"), ("gpu", device)):
        model = LSTMRecommender(device=dev, seq_len=20)
        model._open_session(onnx_bytes, f"gpu-check ({dev})")
        out[f"used_device_{label}"] = model.used_device
        start = time.perf_counter()
        items, _ = model.recommend(data, users, 10)
        out[f"users_per_s_{label}"] = users.size / (time.perf_counter() - start)
        results[label] = (items, model.score(data, users[:256]))
    out["max_logit_difference"] = float(np.max(np.abs(results["cpu"][1] - results["gpu"][1])))
    out["identical_lists"] = float(np.mean(np.all(results["cpu"][0] == results["gpu"][0], axis=1)))
    ok = (
        out["used_device_gpu"] == device
        and out["max_logit_difference"] < 1e-3
        and out["identical_lists"] >= 0.99
    )
    out["status"] = "ok" if ok else "FAILED"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=5_000)
    args = parser.parse_args()
    data, test_users, test_items = synthetic(args.users, args.items, 30, seed=0)
    summary = {
        "data": {"users": data.n_users, "items": data.n_items, "interactions": data.n_interactions},
        "als": check_als(data, test_users, test_items),
        "onnxruntime": check_onnx(data),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    failed = [name for name in ("als", "onnxruntime") if summary[name]["status"] == "FAILED"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
