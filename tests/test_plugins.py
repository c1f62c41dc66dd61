"""``top_k_from_scores``: exact top-K (score descending, ties by item index) with block pruning.

The reference is a full ``lexsort`` of every row by (-score, item index), cut at ``k``: the
block-max pruning must return exactly its items and scores, whatever the ties (also at the
cut, also across blocks), the excluded items, the partial last block and the dtype.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from abkit.errors import InputError
from abkit.plugins import create_recommender, resolve_recommender_name, top_k_from_scores


def _reference(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    order = np.lexsort((index, -scores), axis=1)[:, : min(k, scores.shape[1])]
    return order.astype(np.int64), np.take_along_axis(scores, order, axis=1).astype(np.float32)


def _check(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> None:
    expected_scores = scores.copy()
    if exclude is not None:
        expected_scores[exclude.toarray() != 0] = -np.inf
    items, values = top_k_from_scores(scores.copy(), k, exclude=exclude)
    want_items, want_values = _reference(expected_scores, k)
    assert items.dtype == np.int64
    assert values.dtype == np.float32
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_array_equal(values, want_values)


@settings(max_examples=80, deadline=None)
@given(
    n_rows=st.integers(1, 6),
    n_items=st.integers(1, 1500),
    k=st.integers(1, 12),
    levels=st.sampled_from([2, 5, 1000]),
    inf_share=st.sampled_from([0.0, 0.5, 0.99]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
    excluded=st.booleans(),
)
def test_equals_a_full_sort(n_rows, n_items, k, levels, inf_share, dtype, seed, excluded) -> None:
    rng = np.random.default_rng(seed)
    # few levels: ties everywhere, also across blocks and at the cut
    scores = rng.integers(0, levels, size=(n_rows, n_items)).astype(dtype)
    scores[rng.random((n_rows, n_items)) < inf_share] = -np.inf
    exclude = None
    if excluded:
        exclude = sp.random(n_rows, n_items, density=0.1, format="csr", random_state=seed)
    _check(scores, k, exclude)


def test_ties_at_the_cut_take_the_lowest_items() -> None:
    # 3,000 items, all tied except two: the cut falls inside a tie spread over every block
    scores = np.zeros((2, 3000), dtype=np.float32)
    scores[0, 2999] = 1.0
    scores[1, 1500] = -1.0
    items, values = top_k_from_scores(scores, 4)
    assert items.tolist() == [[2999, 0, 1, 2], [0, 1, 2, 3]]
    assert values.tolist() == [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]


def test_best_items_in_the_partial_last_block_and_in_one_block() -> None:
    scores = np.zeros((1, 64 * 40 + 7), dtype=np.float32)
    scores[0, -3:] = [5.0, 7.0, 6.0]  # the partial last block
    scores[0, 128:131] = [4.0, 9.0, 8.0]  # three winners in one block
    items, _ = top_k_from_scores(scores, 5)
    assert items.tolist() == [[129, 130, 2565, 2566, 2564]]


def test_fewer_allowed_items_than_k_fill_with_excluded_ones_by_index() -> None:
    scores = np.arange(2000, dtype=np.float32)[None, :].repeat(2, axis=0)
    seen = np.ones((2, 2000))
    seen[1, 7] = 0
    exclude = sp.csr_matrix(seen)
    items, values = top_k_from_scores(scores, 3, exclude=exclude)
    assert items.tolist() == [[0, 1, 2], [7, 0, 1]]
    assert values[1, 0] == 7.0
    assert np.isneginf(values[0]).all()


@pytest.mark.parametrize("k", [1, 10, 3000])
def test_nan_scores_rank_last(k: int) -> None:
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((3, 2500)).astype(np.float32)
    scores[:, ::3] = np.nan
    items, values = top_k_from_scores(scores.copy(), k)
    finite = np.where(np.isnan(scores), -np.inf, scores)
    want_items, want_values = _reference(finite, min(k, 2500 - 834))
    n = want_items.shape[1]
    np.testing.assert_array_equal(items[:, :n], want_items)
    np.testing.assert_array_equal(values[:, :n], want_values)
    assert items.shape == (3, min(k, 2500))


def test_empty_rows_and_k_beyond_the_catalogue() -> None:
    items, values = top_k_from_scores(np.zeros((0, 100), dtype=np.float32), 5)
    assert items.shape == values.shape == (0, 5)
    scores = np.array([[0.5, 2.0, 2.0]], dtype=np.float32)
    items, values = top_k_from_scores(scores, 10)
    assert items.tolist() == [[1, 2, 0]]
    assert values.tolist() == [[2.0, 2.0, 0.5]]


# -- the strided blocks: block b holds items b, b + nb, b + 2 nb, ... (nb = n_items // 64) --


@pytest.mark.parametrize("n_items", [64 * 37, 64 * 37 + 29, 64 * 200 + 63, 10_000])
@pytest.mark.parametrize("k", [1, 5, 18])
def test_strided_blocks_equal_a_full_sort(n_items: int, k: int) -> None:
    rng = np.random.default_rng(n_items + k)
    _check(rng.normal(size=(9, n_items)).astype(np.float32), k)  # continuous scores
    _check(rng.integers(0, 40, size=(9, n_items)).astype(np.float64), k)  # ties everywhere


def test_ties_across_strided_blocks_take_the_lowest_items() -> None:
    """Block order is not item order: block 5 holds item 5 + 10 nb, below item 3 + 20 nb of
    block 3; equal maxima must still rank by item index, at the cut too."""
    n_items = 64 * 40 + 7  # nb = 40, a tail of 7
    nb = n_items // 64
    scores = np.zeros((4, n_items))
    scores[0, [3 + 20 * nb, 5 + 10 * nb]] = 9.0  # two tied blocks, both kept
    scores[1, [3 + 20 * nb, 5 + 10 * nb, 1 + 30 * nb]] = 9.0  # three tie for two places
    scores[2, [n_items - 1, 2 + 63 * nb, 39]] = 9.0  # tail and the last lane
    # blocks 3 (max 9) and 5 (max 8) are chosen; the 8 of block 5 is the lower item
    scores[3, [3 + nb, 3 + 20 * nb, 5 + 10 * nb]] = [9.0, 8.0, 8.0]
    for k in (1, 2, 3):
        _check(scores, k)
    items, _ = top_k_from_scores(scores.copy(), 2)
    assert items[0].tolist() == [5 + 10 * nb, 3 + 20 * nb]
    assert items[1].tolist() == [5 + 10 * nb, 3 + 20 * nb]
    assert items[2].tolist() == [39, 2 + 63 * nb]
    assert items[3].tolist() == [3 + nb, 5 + 10 * nb]


def test_a_tie_straddling_the_kth_block_uses_contiguous_blocks() -> None:
    """Rows whose k-th block maximum ties with a block left out are exact too (every block of
    row 0 has maximum 1: the strided choice would be blocks 0..k-1, items 0..k-1 of each)."""
    n_items = 64 * 50 + 3
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(4, n_items))
    scores[0] = 0.0
    scores[0, 64 * np.arange(50) + 61] = 1.0  # every strided block holds one maximum
    scores[1, ::7] = 5.0
    for k in (1, 4, 9):
        _check(scores, k)


# -- InnerProductTopK: the norm-bound pruning over factors ------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(1, 40),
    n_items=st.integers(1, 3000),
    dim=st.integers(1, 6),
    k=st.integers(1, 12),
    spread=st.sampled_from([1, 3, 50]),
    seed=st.integers(0, 2**32 - 1),
    excluded=st.booleans(),
)
def test_inner_product_top_k_equals_the_full_scores(
    n_rows, n_items, dim, k, spread, seed, excluded
) -> None:
    """Integer-valued factors, so every dot product is exact in float32 and ties are common
    (spread 1: many equal vectors); item norms vary like popularity (a few long vectors)."""
    from abkit.plugins import InnerProductTopK

    rng = np.random.default_rng(seed)
    items = rng.integers(-spread, spread + 1, size=(n_items, dim)).astype(np.float32)
    items *= (rng.pareto(1.5, size=n_items)[:, None] > 1.0) + 1  # longer popular vectors
    queries = rng.integers(-spread, spread + 1, size=(n_rows, dim)).astype(np.float32)
    queries[rng.random(n_rows) < 0.1] = 0.0  # zero vectors: every score ties at 0
    exclude = None
    if excluded:
        exclude = sp.random(n_rows, n_items, density=0.2, format="csr", random_state=seed)
    items_out, values_out = InnerProductTopK(items).top_k(queries, k, exclude=exclude)
    want = top_k_from_scores(queries @ items.T, k, exclude=exclude)
    np.testing.assert_array_equal(items_out, want[0])
    np.testing.assert_array_equal(values_out, want[1])


def test_inner_product_top_k_settles_most_rows_from_the_head() -> None:
    """On factors whose norms follow popularity, the first heads (1/32, then 1/8 of the
    items) settle the rows: the result equals the full scores' without scoring them all."""
    from abkit.plugins import InnerProductTopK

    rng = np.random.default_rng(0)
    n_items = 12_000
    items = rng.normal(size=(n_items, 8)).astype(np.float32)
    items *= (1.0 / np.arange(1, n_items + 1) ** 0.5)[rng.permutation(n_items), None] * 10
    queries = rng.normal(size=(200, 8)).astype(np.float32)
    index = InnerProductTopK(items)
    got = index.top_k(queries, 10)
    want = top_k_from_scores(queries @ items.T, 10)
    np.testing.assert_array_equal(got[0], want[0])
    assert min(index._heads) == n_items // 32
    assert max(index._heads) < n_items  # no row needed the whole catalogue


@pytest.mark.parametrize("subset", [None, [4, 0, 7], [], [2, 2, 9]])
def test_excluded_pairs_of_a_row_subset_match_scipy(subset: list[int] | None) -> None:
    from abkit.plugins import _pairs

    rows = sp.random(10, 30, density=0.25, format="csr", random_state=1)
    picked = None if subset is None else np.asarray(subset, dtype=np.int64)
    got_row, got_col = _pairs(rows, picked)
    want = (rows if picked is None else rows[picked]).tocoo()
    assert sorted(zip(got_row.tolist(), got_col.tolist(), strict=True)) == sorted(
        zip(want.row.tolist(), want.col.tolist(), strict=True)
    )
    empty_row, empty_col = _pairs(None, picked)
    assert empty_row.size == empty_col.size == 0


# -- model names: matched ignoring case when exactly one registered name matches --------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("als", "als"), ("ALS", "als"), ("Als", "als"), ("POPULARITY", "popularity")],
)
def test_model_names_resolve_ignoring_case(name: str, expected: str) -> None:
    assert resolve_recommender_name(name) == expected
    assert create_recommender(name).params() == create_recommender(expected).params()


@pytest.mark.parametrize(
    ("name", "names", "hint"),
    [
        # the typo's message is pinned by the golden tour: unchanged
        ("alss", None, "(did you mean 'als'?)"),
        ("ALSS", None, "(did you mean 'als'?)"),
        # two registered names that differ only in case: neither is guessed, both offered
        ("Als", ["ALS", "als", "ctr"], "(did you mean 'ALS' or 'als'?)"),
        ("xyz", ["als"], ""),
    ],
)
def test_unknown_model_names_get_did_you_mean(
    name: str, names: list[str] | None, hint: str
) -> None:
    with pytest.raises(InputError) as caught:
        resolve_recommender_name(name, names)
    shown = ", ".join(sorted(names)) if names is not None else "als, ctr, logistic, lstm"
    assert str(caught.value).startswith(f"unknown model '{name}'" + (f" {hint};" if hint else ";"))
    assert f"expected one of: {shown}" in str(caught.value)


def test_an_exact_name_wins_over_a_case_match() -> None:
    assert resolve_recommender_name("ALS", ["ALS", "als"]) == "ALS"
    assert resolve_recommender_name("als", ["ALS", "als"]) == "als"
