"""Offline ranking metrics at a cut-off K, per user, vectorised over a batch of users.

Definitions (binary relevance; rank r is 1-based; ``R(u)`` the user's relevant items, here the
items of the test period, minus the training items when seen items are filtered; ``hit_r`` is
1 when the item at rank r is relevant) follow trec_eval / ranx / RecBole:

* ``hit_rate@K`` = 1[any hit_r, r <= K]  (trec_eval ``success_K``)
* ``precision@K`` = sum_{r<=K} hit_r / K  (``P_K``; the denominator is K even when fewer
  items are relevant, as in trec_eval and Microsoft Recommenders)
* ``recall@K`` = sum_{r<=K} hit_r / |R(u)|
* ``mrr@K`` = 1 / (rank of the first hit) when it is <= K, else 0  (``recip_rank`` cut at K)
* ``ndcg@K`` = DCG / IDCG with DCG = sum_{r<=K} hit_r / log2(r + 1) and IDCG the DCG of
  min(K, |R(u)|) hits at the top (Järvelin & Kekäläinen 2002; ``ndcg_cut_K`` with binary
  gains). One relevant item at rank 2 gives 1/log2(3) = 0.6309.
* ``map@K`` = sum_{r<=K} hit_r * precision@r / min(K, |R(u)|)  (RecBole's normalisation, the
  default ``map_denominator="min"``); ``map_denominator="all"`` divides by |R(u)| instead,
  which is trec_eval's ``map_cut_K`` and Microsoft Recommenders' ``map_at_k``.

Beyond accuracy, over the recommended lists:

* ``coverage@K`` = |union of all users' top-K| / n_items: catalogue coverage, one value per
  run (not per user).
* ``novelty@K`` = mean over the K items of -log2 p(i), with p(i) = (u(i) + 1) / (U + 1) the
  Laplace-smoothed share of the U training users who interacted with item i (self-information,
  Zhou et al. 2010, PNAS 107:4511); higher means less popular items.
* ``popularity_bias@K`` = mean over the K items of u(i) / U: the average recommendation
  popularity (ARP, Abdollahpouri, Burke & Mobasher 2019).

Where libraries differ (REFERENCE.md): implicit's "precision" divides by min(K, |R|);
LensKit's default discount weighs ranks 1 and 2 equally; RecTools divides NDCG by the ideal
DCG over all K slots. abkit uses the definitions above.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from abkit._util import unknown_choice
from abkit.errors import InputError, param

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "METRICS",
    "PER_USER_METRICS",
    "CoverageCounter",
    "MetricSpec",
    "hit_matrix",
    "parse_ks",
    "parse_metric",
    "ranking_metrics",
]

METRICS: dict[str, str] = {
    "hit_rate": "1 when any relevant item is in the top K",
    "precision": "relevant items in the top K, divided by K",
    "recall": "relevant items in the top K, divided by the number of relevant items",
    "ndcg": "normalised discounted cumulative gain (binary gains, log2 discount)",
    "mrr": "reciprocal rank of the first relevant item within K",
    "map": "average precision at K (divided by min(K, relevant items))",
    "coverage": "share of the catalogue recommended to anyone (one value per run)",
    "novelty": "mean self-information -log2 p(item) of the recommended items",
    "popularity_bias": "mean share of training users who interacted with the recommended items",
}
PER_USER_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m != "coverage")

_METRIC_RE = re.compile(r"^\s*([A-Za-z_]+)\s*@\s*(\S+)\s*$")


@dataclass(frozen=True, kw_only=True, order=True)
class MetricSpec:
    """A metric at a cut-off, written ``name@k`` (``ndcg@10``)."""

    name: str
    k: int

    def __str__(self) -> str:
        return f"{self.name}@{self.k}"


def _parse_k(text: str, *, what: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise InputError(f"{what}: K must be a positive integer, got {text!r}") from None
    if k < 1:
        raise InputError(f"{what}: K must be a positive integer, got {k}")
    return k


def parse_metric(text: str) -> MetricSpec:
    """Parse ``"ndcg@10"``; a one-line error with the closest name for an unknown metric."""
    match = _METRIC_RE.match(text)
    if not match:
        raise InputError(
            f"metric {text!r}: expected NAME@K, e.g. ndcg@10 (names: {', '.join(METRICS)})"
        )
    name = match.group(1).lower()
    if name not in METRICS:
        raise InputError(unknown_choice("metric", name, METRICS))
    return MetricSpec(name=name, k=_parse_k(match.group(2), what=f"metric {text!r}"))


def parse_ks(value: str | Iterable[int]) -> tuple[int, ...]:
    """``"10,20"`` or ``[10, 20]`` -> ``(10, 20)``, sorted and de-duplicated."""
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    if not parts or any(p == "" for p in parts):
        raise InputError(
            f"{param('ks')}: expected comma-separated positive integers, got {value!r}"
        )
    ks = sorted({_parse_k(str(p), what=param("ks")) for p in parts})
    return tuple(ks)


def hit_matrix(
    top_items: np.ndarray, rel_indptr: np.ndarray, rel_items: np.ndarray, n_items: int
) -> np.ndarray:
    """``hits[u, r]`` = top_items[u, r] is relevant for row u (boolean [n, K]).

    Relevance is a CSR structure aligned with the rows of ``top_items``. Each (row, item) pair
    becomes the key ``row * n_items + item``; the relevant keys are sorted once and every
    recommended key is looked up by binary search: O((n K + m) log m), no dense n x n_items
    array.
    """
    import numpy as np

    n = top_items.shape[0]
    counts = np.diff(rel_indptr)
    rel_keys = np.repeat(np.arange(n, dtype=np.int64), counts) * n_items + rel_items.astype(
        np.int64
    )
    rel_keys.sort()
    keys = np.arange(n, dtype=np.int64)[:, None] * n_items + top_items.astype(np.int64)
    if rel_keys.size == 0:
        return np.zeros(top_items.shape, dtype=bool)
    pos = np.searchsorted(rel_keys, keys)
    pos[pos == rel_keys.size] = 0
    return (rel_keys[pos] == keys) & (top_items >= 0)


def ranking_metrics(
    top_items: np.ndarray,
    rel_indptr: np.ndarray,
    rel_items: np.ndarray,
    *,
    ks: Sequence[int],
    n_items: int,
    item_user_counts: np.ndarray | None = None,
    n_train_users: int | None = None,
    map_denominator: Literal["min", "all"] = "min",
) -> dict[str, np.ndarray]:
    """Per-user metric values (float64 arrays keyed ``"ndcg@10"`` ...) for every K in ``ks``.

    ``top_items`` [n, max(ks)] holds each user's ranked list; relevance is CSR
    (``rel_indptr`` [n + 1], ``rel_items``). Every row needs at least one relevant item.
    ``item_user_counts`` (training users per item) and ``n_train_users`` enable novelty and
    popularity bias. See the module docstring for the definitions.
    """
    import numpy as np

    if map_denominator not in ("min", "all"):
        raise InputError(unknown_choice("map denominator", str(map_denominator), ("min", "all")))
    k_max = max(ks)
    if top_items.shape[1] < k_max:
        raise InputError(f"ranked lists have {top_items.shape[1]} items, fewer than K={k_max}")
    n_rel = np.diff(rel_indptr).astype(np.float64)
    if np.any(n_rel < 1):
        raise InputError("every evaluated user needs at least one relevant item")
    top = top_items[:, :k_max]
    hits = hit_matrix(top, rel_indptr, rel_items, n_items).astype(np.float64)
    ranks = np.arange(1, k_max + 1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    cum_hits = np.cumsum(hits, axis=1)
    cum_dcg = np.cumsum(hits * discount, axis=1)
    ideal = np.cumsum(discount)
    cum_ap = np.cumsum(hits * cum_hits / ranks, axis=1)
    any_hit = cum_hits > 0
    first_hit = np.where(any_hit[:, -1], np.argmax(hits > 0, axis=1) + 1, 0)
    popular = None
    if item_user_counts is not None and n_train_users:
        share = np.asarray(item_user_counts, dtype=np.float64) / n_train_users
        info = -np.log2((np.asarray(item_user_counts, dtype=np.float64) + 1) / (n_train_users + 1))
        safe = np.clip(top, 0, n_items - 1)
        popular = (np.cumsum(share[safe], axis=1), np.cumsum(info[safe], axis=1))
    out: dict[str, np.ndarray] = {}
    for k in ks:
        col = k - 1
        found = cum_hits[:, col]
        out[f"hit_rate@{k}"] = (found > 0).astype(np.float64)
        out[f"precision@{k}"] = found / k
        out[f"recall@{k}"] = found / n_rel
        cutoff = np.minimum(n_rel, k).astype(np.int64)
        out[f"ndcg@{k}"] = cum_dcg[:, col] / ideal[cutoff - 1]
        out[f"mrr@{k}"] = np.where(
            (first_hit > 0) & (first_hit <= k), 1.0 / np.maximum(first_hit, 1), 0.0
        )
        denominator = np.minimum(n_rel, k) if map_denominator == "min" else n_rel
        out[f"map@{k}"] = cum_ap[:, col] / denominator
        if popular is not None:
            out[f"popularity_bias@{k}"] = popular[0][:, col] / k
            out[f"novelty@{k}"] = popular[1][:, col] / k
    return out


class CoverageCounter:
    """Accumulates which items were recommended at each K across batches of users."""

    def __init__(self, ks: Sequence[int], n_items: int) -> None:
        import numpy as np

        self.n_items = n_items
        self._seen = {k: np.zeros(n_items, dtype=bool) for k in ks}

    def update(self, top_items: np.ndarray) -> None:
        for k, mask in self._seen.items():
            items = top_items[:, :k].ravel()
            mask[items[items >= 0]] = True

    def values(self) -> Mapping[str, float]:
        return {f"coverage@{k}": float(mask.sum()) / self.n_items for k, mask in self._seen.items()}
