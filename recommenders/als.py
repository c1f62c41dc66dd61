"""``als``: implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008) from ``implicit``.

Training runs on the GPU when ``implicit.gpu.HAS_CUDA`` is true (and ``device`` allows it),
otherwise on the CPU. BLAS is limited to one thread around everything that calls implicit:
implicit parallelises itself, and a multi-threaded BLAS underneath it oversubscribes the cores
(implicit warns about exactly this).

Ranking is abkit's own: the exact top-K of ``user_factors[users] @ item_factors.T`` with seen
items excluded, by :class:`abkit.plugins.InnerProductTopK`: only the items of largest norm are
scored (a float32 GEMM over 1/32 of the catalogue), and a user whose K-th score beats
what any item left out could reach (Cauchy-Schwarz) is settled; the others are scored over a
larger head, up to the whole catalogue. The selection is
:func:`abkit.plugins.top_k_from_scores` (exact block-max pruning); the GEMM runs with the
process's normal BLAS threads because implicit is not involved. ``score`` still gives the
full score matrix. On a GPU model the top-K comes from implicit's GPU ``recommend`` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from abkit.errors import MissingExtraError, ModelError
from abkit.plugins import InnerProductTopK, resolve_device

from .baselines import load_fitted, save_fitted

if TYPE_CHECKING:
    import numpy as np

    from abkit.plugins import TrainingData

__all__ = ["ALSRecommender", "has_cuda"]


def has_cuda() -> bool:
    """``implicit.gpu.HAS_CUDA`` (False when implicit's CUDA extension is absent)."""
    try:
        import implicit.gpu
    except ImportError:
        return False
    return bool(getattr(implicit.gpu, "HAS_CUDA", False))


class ALSRecommender:
    """Alternating least squares on implicit feedback (implicit; GPU when available).

    Confidence ``alpha * count`` per observed (user, item), preference 1; every unobserved
    pair has confidence 1, preference 0. implicit (0.7) multiplies the count matrix abkit passes
    by ``alpha`` and uses the product as the confidence itself, not Hu, Koren & Volinsky's
    ``1 + alpha * count``: with ``alpha = 1`` one interaction weighs as much as one unobserved
    pair. The defaults (16 factors, strong
    regularisation) suit catalogues of hundreds to thousands of items with tens of
    interactions per user, like the simulator's; tune them for larger data.
    """

    name: ClassVar[str] = "als"
    extra: ClassVar[str | None] = "als"
    requires: ClassVar[tuple[str, ...]] = ("implicit",)
    needs_training: ClassVar[bool] = True

    def __init__(
        self,
        *,
        factors: int = 16,
        regularization: float = 1.0,
        alpha: float = 1.0,
        iterations: int = 15,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        if factors < 1 or iterations < 1:
            raise ValueError("factors and iterations must be at least 1")
        if regularization < 0 or alpha <= 0:
            raise ValueError("regularization must be >= 0 and alpha > 0")
        self.factors = int(factors)
        self.regularization = float(regularization)
        self.alpha = float(alpha)
        self.iterations = int(iterations)
        self.seed = int(seed)
        self.device = device
        self.user_factors: np.ndarray | None = None
        self.item_factors: np.ndarray | None = None
        self._gpu_model: Any = None
        self._top_k: InnerProductTopK | None = None
        self._item_ids: np.ndarray | None = None
        self._fingerprint = ""
        self._n_train_users = 0
        self.used_device = "cpu"

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "seed": self.seed,
            "device": self.device,
        }

    @property
    def fit_steps(self) -> int:
        """The fit's steps as the progress line counts them (abkit.plugins.FIT_STEPS)."""
        return self.iterations

    def fit(self, data: TrainingData, *, on_step: Callable[[int], None] | None = None) -> None:
        import warnings

        import numpy as np
        from threadpoolctl import threadpool_limits

        try:
            import implicit.als
        except ImportError:
            raise MissingExtraError("implicit", "als", "the 'als' model") from None
        device, note = resolve_device(self.device, cuda_available=has_cuda(), what="als")
        if note:
            warnings.warn(note, RuntimeWarning, stacklevel=2)
        with threadpool_limits(1, "blas"):
            model = implicit.als.AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
                use_gpu=device == "cuda",
                calculate_training_loss=False,
            )
            # implicit calls back after each iteration: (iteration, seconds, loss)
            callback = None if on_step is None else (lambda *_: on_step(1))
            model.fit(
                data.matrix.tocsr().astype(np.float32), show_progress=False, callback=callback
            )
        if device == "cuda":
            self._gpu_model = model
            cpu = model.to_cpu()
            self.user_factors = np.ascontiguousarray(cpu.user_factors, dtype=np.float32)
            self.item_factors = np.ascontiguousarray(cpu.item_factors, dtype=np.float32)
        else:
            self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
            self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.used_device = device
        self._n_train_users = data.n_train_users
        self._item_ids = data.item_ids
        self._fingerprint = data.fingerprint

    def _factors(self, data: TrainingData) -> tuple[np.ndarray, np.ndarray]:
        if self.user_factors is None or self.item_factors is None:
            raise ModelError("the als model is not fitted; call fit() or load() first")
        if self.user_factors.shape[0] != data.n_users or self.item_factors.shape[0] != (
            data.n_items
        ):
            raise ModelError(
                f"als: the model has {self.user_factors.shape[0]} users x "
                f"{self.item_factors.shape[0]} items, the data {data.n_users} x {data.n_items}"
            )
        return self.user_factors, self.item_factors

    def score(self, data: TrainingData, users: np.ndarray) -> np.ndarray:
        import numpy as np

        user_f, item_f = self._factors(data)
        return user_f[np.asarray(users, dtype=np.int64)] @ item_f.T

    def recommend(
        self, data: TrainingData, users: np.ndarray, k: int, *, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        users = np.asarray(users, dtype=np.int64)
        if self._gpu_model is not None:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1, "blas"):
                ids, scores = self._gpu_model.recommend(
                    users, data.matrix[users], N=k, filter_already_liked_items=exclude_seen
                )
            return np.asarray(ids, dtype=np.int64), np.asarray(scores, dtype=np.float32)
        user_f, item_f = self._factors(data)
        if self._top_k is None or self._top_k.items is not item_f:
            self._top_k = InnerProductTopK(item_f)
        exclude = data.seen_rows(users) if exclude_seen else None
        return self._top_k.top_k(user_f[users], k, exclude=exclude)

    def save(self, path: Path) -> None:
        user_f, item_f = self.user_factors, self.item_factors
        if user_f is None or item_f is None:
            raise ModelError("the als model is not fitted; nothing to save")
        # only users with training interactions: the users after them (e.g. impression-only
        # users of an off-policy run) have no data and differ between runs
        save_fitted(
            self, path, {"user_factors": user_f[: self._n_train_users], "item_factors": item_f}
        )

    def load(self, path: Path, data: TrainingData) -> None:
        import numpy as np

        arrays, meta = load_fitted(self, path, data, ("user_factors", "item_factors"))
        user_f = np.zeros((data.n_users, arrays["user_factors"].shape[1]), dtype=np.float32)
        n_saved = min(arrays["user_factors"].shape[0], data.n_users)
        user_f[:n_saved] = arrays["user_factors"][:n_saved]
        self.user_factors = user_f
        self._n_train_users = data.n_train_users
        self.item_factors = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        for key, value in meta.get("params", {}).items():
            if key != "device" and hasattr(self, key):
                setattr(self, key, value)
        self._gpu_model = None
        self._item_ids = data.item_ids
        self._fingerprint = data.fingerprint
