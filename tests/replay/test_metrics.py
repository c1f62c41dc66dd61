"""Ranking metrics: hand-worked cases, published fixtures, a brute-force reference."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abkit.errors import InputError
from abkit.replay.metrics import (
    CoverageCounter,
    MetricSpec,
    hit_matrix,
    parse_ks,
    parse_metric,
    ranking_metrics,
)


def csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    items = np.asarray([i for r in rows for i in sorted(r)], dtype=np.int64)
    return indptr, items


def brute_force(top: list[list[int]], relevant: list[set[int]], k: int, denom: str) -> dict:
    """Textbook definitions, one user at a time, in plain Python."""
    out: dict[str, list[float]] = {
        m: [] for m in ("hit_rate", "precision", "recall", "ndcg", "mrr", "map")
    }
    for ranked, rel in zip(top, relevant, strict=True):
        hits = [1 if item in rel else 0 for item in ranked[:k]]
        out["hit_rate"].append(1.0 if any(hits) else 0.0)
        out["precision"].append(sum(hits) / k)
        out["recall"].append(sum(hits) / len(rel))
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(rel))))
        out["ndcg"].append(dcg / idcg)
        first = next((r + 1 for r, h in enumerate(hits) if h), None)
        out["mrr"].append(1 / first if first else 0.0)
        ap, found = 0.0, 0
        for r, h in enumerate(hits, start=1):
            if h:
                found += 1
                ap += found / r
        out["map"].append(ap / (min(k, len(rel)) if denom == "min" else len(rel)))
    return out


# -- parsing -------------------------------------------------------------------------------


def test_parse_metric() -> None:
    assert parse_metric("ndcg@10") == MetricSpec(name="ndcg", k=10)
    assert str(parse_metric(" HIT_RATE @ 5 ")) == "hit_rate@5"
    assert parse_ks("20,10,10") == (10, 20)
    assert parse_ks([5]) == (5,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "ndgc@10",
            "unknown metric 'ndgc' (did you mean 'ndcg'?); expected one of: coverage, "
            "hit_rate, map, mrr, ndcg, novelty, popularity_bias, precision, recall",
        ),
        (
            "ndcg",
            "metric 'ndcg': expected NAME@K, e.g. ndcg@10 (names: hit_rate, precision, "
            "recall, ndcg, mrr, map, coverage, novelty, popularity_bias)",
        ),
        ("ndcg@0", "metric 'ndcg@0': K must be a positive integer, got 0"),
        ("ndcg@ten", "metric 'ndcg@ten': K must be a positive integer, got 'ten'"),
    ],
)
def test_parse_metric_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        parse_metric(text)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10,", "ks: expected comma-separated positive integers, got '10,'"),
        ("a", "ks: K must be a positive integer, got 'a'"),
        ("-1", "ks: K must be a positive integer, got -1"),
    ],
)
def test_parse_ks_errors(value: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        parse_ks(value)


# -- hand-worked and published values ------------------------------------------------------


def test_one_relevant_item_at_rank_two() -> None:
    indptr, items = csr([[7]])
    out = ranking_metrics(np.array([[3, 7, 9]]), indptr, items, ks=[3], n_items=10)
    assert out["ndcg@3"][0] == pytest.approx(0.6309297535714574, abs=1e-12)  # 1/log2(3)
    assert out["mrr@3"][0] == 0.5
    assert out["hit_rate@3"][0] == 1.0
    assert out["precision@3"][0] == pytest.approx(1 / 3)
    assert out["recall@3"][0] == 1.0
    assert out["map@3"][0] == 0.5


def test_microsoft_recommenders_fixture() -> None:
    """tests/unit/recommenders/evaluation/conftest.py of Microsoft Recommenders: 3 users.

    Their published values: P@10 0.26667, R@10 0.37778, NDCG@10 0.38173, MAP@10 0.23614
    (MAP divided by |R|, our map_denominator="all").
    """
    relevant = {1: [3, 1, 2], 2: [1, 4, 5, 6, 7], 3: [2, 5, 6, 8, 9, 10, 11, 12, 13, 14]}
    predicted = {  # items sorted by their predicted score, descending
        1: [3, 10, 12],
        2: [10, 3, 5, 11, 13],
        3: [4, 10, 7, 13, 1, 3, 5, 2, 11, 14],
    }
    # pad the short lists with an item no user finds relevant
    top = np.array([predicted[u] + [99] * (10 - len(predicted[u])) for u in (1, 2, 3)])
    indptr, items = csr([relevant[u] for u in (1, 2, 3)])
    out = ranking_metrics(top, indptr, items, ks=[10], n_items=100, map_denominator="all")
    assert out["precision@10"].mean() == pytest.approx(0.26667, abs=5e-6)
    assert out["recall@10"].mean() == pytest.approx(0.37778, abs=5e-6)
    assert out["ndcg@10"].mean() == pytest.approx(0.38173, abs=5e-6)
    assert out["map@10"].mean() == pytest.approx(0.23614, abs=5e-6)


def test_map_denominators_differ_only_when_relevant_exceeds_k() -> None:
    indptr, items = csr([[0, 1, 2, 3]])
    top = np.array([[0, 9, 1]])
    by_min = ranking_metrics(top, indptr, items, ks=[3], n_items=10, map_denominator="min")
    by_all = ranking_metrics(top, indptr, items, ks=[3], n_items=10, map_denominator="all")
    assert by_min["map@3"][0] == pytest.approx((1 + 2 / 3) / 3)
    assert by_all["map@3"][0] == pytest.approx((1 + 2 / 3) / 4)


def test_novelty_and_popularity_bias() -> None:
    counts = np.array([9.0, 1.0, 0.0, 4.0])
    indptr, items = csr([[2]])
    out = ranking_metrics(
        np.array([[0, 1]]),
        indptr,
        items,
        ks=[2],
        n_items=4,
        item_user_counts=counts,
        n_train_users=9,
    )
    assert out["popularity_bias@2"][0] == pytest.approx((9 / 9 + 1 / 9) / 2)
    expected = (-math.log2(10 / 10) - math.log2(2 / 10)) / 2
    assert out["novelty@2"][0] == pytest.approx(expected)


def test_coverage_counter() -> None:
    counter = CoverageCounter([1, 2], n_items=5)
    counter.update(np.array([[0, 1], [0, 2]]))
    counter.update(np.array([[3, 0]]))
    assert counter.values() == {"coverage@1": 2 / 5, "coverage@2": 4 / 5}


def test_hit_matrix_ignores_padding_and_other_rows() -> None:
    indptr, items = csr([[1], [2]])
    hits = hit_matrix(np.array([[2, 1, -1], [1, -1, 2]]), indptr, items, n_items=5)
    assert hits.tolist() == [[False, True, False], [False, False, True]]


def test_users_without_relevant_items_are_refused() -> None:
    indptr, items = csr([[1], []])
    with pytest.raises(InputError, match="every evaluated user needs at least one relevant"):
        ranking_metrics(np.array([[1], [2]]), indptr, items, ks=[1], n_items=3)


# -- brute force, property based -------------------------------------------------------------


@st.composite
def ranking_cases(draw: st.DrawFn) -> tuple[list[list[int]], list[set[int]], int, int]:
    n_items = draw(st.integers(3, 30))
    n_users = draw(st.integers(1, 12))
    k_max = draw(st.integers(1, n_items))
    top, relevant = [], []
    for _ in range(n_users):
        perm = draw(st.permutations(range(n_items)))
        top.append(list(perm[:k_max]))
        rel = draw(st.sets(st.integers(0, n_items - 1), min_size=1, max_size=n_items))
        relevant.append(rel)
    return top, relevant, n_items, k_max


@settings(max_examples=150, deadline=None)
@given(case=ranking_cases(), denom=st.sampled_from(["min", "all"]))
def test_agrees_with_brute_force(case: tuple, denom: str) -> None:
    top, relevant, n_items, k_max = case
    indptr, items = csr([sorted(r) for r in relevant])
    ks = sorted({1, k_max, max(1, k_max // 2)})
    out = ranking_metrics(
        np.array(top), indptr, items, ks=ks, n_items=n_items, map_denominator=denom
    )  # type: ignore[arg-type]
    for k in ks:
        expected = brute_force(top, relevant, k, denom)
        for name, values in expected.items():
            np.testing.assert_allclose(out[f"{name}@{k}"], values, rtol=0, atol=1e-9)
