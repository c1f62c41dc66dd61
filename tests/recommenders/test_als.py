"""The ALS plug-in's confidence weighting, checked against implicit itself."""

from __future__ import annotations

import numpy as np
import pytest

from abkit.plugins import TrainingData

implicit_als = pytest.importorskip("implicit.cpu.als")
threadpoolctl = pytest.importorskip("threadpoolctl")


def _data() -> TrainingData:
    rng = np.random.default_rng(7)
    users = np.sort(rng.integers(0, 30, size=400))
    items = rng.integers(0, 12, size=400)  # many repeats: counts up to ~5
    return TrainingData.from_arrays(
        user_idx=users,
        item_idx=items,
        user_ids=[f"u{i}" for i in range(30)],
        item_ids=[f"i{i}" for i in range(12)],
    )


def _implicit_factors(matrix) -> np.ndarray:
    with threadpoolctl.threadpool_limits(1, "blas"):
        model = implicit_als.AlternatingLeastSquares(
            factors=4,
            regularization=1.0,
            alpha=1.0,
            iterations=3,
            random_state=0,
            calculate_training_loss=False,
        )
        model.fit(matrix.tocsr().astype(np.float32), show_progress=False)
    return np.asarray(model.user_factors)


def test_confidence_is_alpha_times_count_not_one_plus() -> None:
    from abkit_recommenders.als import ALSRecommender

    data = _data()
    assert data.matrix.max() > 1  # repeated interactions are counts
    ours = ALSRecommender(factors=4, alpha=2.5, iterations=3, seed=0, device="cpu")
    ours.fit(data)
    scaled = _implicit_factors(2.5 * data.matrix)  # confidence = alpha * count
    np.testing.assert_allclose(ours.user_factors, scaled, rtol=1e-4, atol=1e-6)
    shifted = data.matrix.copy()
    shifted.data = 1 + 2.5 * shifted.data  # the documented-before 1 + alpha * count
    assert not np.allclose(ours.user_factors, _implicit_factors(shifted), rtol=1e-2, atol=1e-4)
