"""The two baselines every model must beat: ``random`` and ``popularity``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from abkit.errors import InputError, ModelError
from abkit.plugins import top_k_from_scores

if TYPE_CHECKING:
    import numpy as np

    from abkit.plugins import TrainingData

__all__ = [
    "PopularityRecommender",
    "RandomRecommender",
    "load_fitted",
    "read_npz",
    "save_fitted",
    "write_npz",
]

_MASK64 = (1 << 64) - 1


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mixer."""
    import numpy as np

    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def write_npz(path: Path, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
    """Save arrays plus a JSON ``meta`` string; everything loads with ``allow_pickle=False``."""
    import numpy as np

    payload = {key: np.asarray(value) for key, value in arrays.items()}
    for key, value in payload.items():
        if value.dtype == object:
            raise ValueError(f"array {key!r} has dtype object and would need pickle")
    try:
        with Path(path).open("wb") as fh:
            np.savez(fh, meta=np.asarray(json.dumps(meta)), **payload)  # type: ignore[arg-type]
    except OSError as exc:
        raise InputError(f"{path}: cannot write the model ({exc.strerror})") from None


def save_fitted(model: Any, path: Path, arrays: dict[str, Any]) -> None:
    """:func:`write_npz` of a model fitted on a catalogue: ``arrays`` plus the catalogue's item
    ids, with the model's name, parameters and training fingerprint as ``meta``."""
    write_npz(
        path,
        {**arrays, "item_ids": model._item_ids},
        {"model": model.name, "params": model.params(), "fingerprint": model._fingerprint},
    )


def load_fitted(
    model: Any, path: Path, data: TrainingData, keys: tuple[str, ...]
) -> tuple[dict[str, Any], dict]:
    """The arrays ``keys`` and the meta of a file written by :func:`save_fitted`, refused
    (:class:`ModelError`) unless its catalogue and training split are ``data``'s."""
    arrays, meta = read_npz(path, model=model.name, keys=(*keys, "item_ids"))
    data.check_vocabulary(arrays["item_ids"], str(meta.get("fingerprint")), source=str(path))
    return arrays, meta


def read_npz(path: Path, *, model: str, keys: tuple[str, ...]) -> tuple[dict[str, Any], dict]:
    """Load a model written by :func:`write_npz`; one-line :class:`ModelError` when unusable."""
    import zipfile

    import numpy as np

    if not Path(path).is_file():
        raise ModelError(f"{path}: no such model file")
    with Path(path).open("rb") as fh:
        if fh.read(4) != b"PK\x03\x04":  # an .npz is a zip archive
            raise ModelError(f"{path}: not a readable .npz model file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            arrays = {key: npz[key] for key in keys}
    except KeyError as exc:
        raise ModelError(f"{path}: not a '{model}' model file (missing array {exc})") from None
    except ValueError as exc:
        # numpy's message for object arrays suggests enabling pickle; abkit never does
        if "pickle" in str(exc):
            raise ModelError(
                f"{path}: the file holds Python objects, not plain arrays; abkit loads models "
                "only as plain .npz arrays or ONNX, never as Python objects"
            ) from None
        raise ModelError(f"{path}: not a readable .npz model file ({exc})") from None
    except (OSError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a readable .npz model file ({exc})") from None
    if meta.get("model") != model:
        raise ModelError(f"{path}: holds a '{meta.get('model')}' model, expected '{model}'")
    return arrays, meta


class _RanksItsScores:
    """``recommend`` = the top ``k`` of the model's full ``score`` matrix, seen items excluded."""

    def score(self, data: TrainingData, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recommend(
        self, data: TrainingData, users: np.ndarray, k: int, *, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = self.score(data, users)
        return top_k_from_scores(scores, k, exclude=data.seen_rows(users) if exclude_seen else None)


class RandomRecommender(_RanksItsScores):
    """Uniformly random ranking (the floor; as a stochastic policy, uniform over the catalogue).

    The score of (user, item) is a SplitMix64 hash of ``(seed, user, item)`` mapped to [0, 1),
    so a user's list does not depend on how users are batched.
    """

    name: ClassVar[str] = "random"
    #: not meant to personalise (an off-policy replay does not warn that it ignores the user)
    personalised: ClassVar[bool] = False
    extra: ClassVar[str | None] = None
    requires: ClassVar[tuple[str, ...]] = ()
    needs_training: ClassVar[bool] = False

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = int(seed)

    def params(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def fit(self, data: TrainingData) -> None:
        """Nothing to learn."""

    def score(self, data: TrainingData, users: np.ndarray) -> np.ndarray:
        import numpy as np

        n = data.n_items
        base = _splitmix64(np.asarray([self.seed & _MASK64], dtype=np.uint64))[0]
        keys = (np.asarray(users, dtype=np.uint64)[:, None] * np.uint64(n)) + np.arange(
            n, dtype=np.uint64
        )[None, :]
        with np.errstate(over="ignore"):
            mixed = _splitmix64(keys ^ base)
        return ((mixed >> np.uint64(40)).astype(np.float32)) / np.float32(1 << 24)

    def probabilities(
        self, data: TrainingData, users: np.ndarray, temperature: float
    ) -> np.ndarray:
        """Uniform over the catalogue: 1 / n_items for every item."""
        import numpy as np

        return np.full((len(users), data.n_items), 1.0 / data.n_items)

    def save(self, path: Path) -> None:
        write_npz(path, {}, {"model": self.name, "params": self.params()})

    def load(self, path: Path, data: TrainingData) -> None:
        _, meta = read_npz(path, model=self.name, keys=())
        self.seed = int(meta["params"]["seed"])


class PopularityRecommender(_RanksItsScores):
    """Most popular items first: the number of distinct training users of each item.

    As a stochastic policy it draws items with probability proportional to
    ``count + smoothing`` (``smoothing`` keeps unseen items possible).
    """

    name: ClassVar[str] = "popularity"
    #: not meant to personalise (an off-policy replay does not warn that it ignores the user)
    personalised: ClassVar[bool] = False
    extra: ClassVar[str | None] = None
    requires: ClassVar[tuple[str, ...]] = ()
    needs_training: ClassVar[bool] = True

    def __init__(self, *, smoothing: float = 1.0) -> None:
        if not smoothing >= 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing}")
        self.smoothing = float(smoothing)
        self._counts: np.ndarray | None = None
        self._item_ids: np.ndarray | None = None
        self._fingerprint = ""

    def params(self) -> dict[str, Any]:
        return {"smoothing": self.smoothing}

    def fit(self, data: TrainingData) -> None:
        import numpy as np

        self._counts = data.item_user_counts().astype(np.float32)
        self._item_ids = data.item_ids
        self._fingerprint = data.fingerprint

    def _fitted(self) -> np.ndarray:
        if self._counts is None:
            raise ModelError("the popularity model is not fitted; call fit() or load() first")
        return self._counts

    def score(self, data: TrainingData, users: np.ndarray) -> np.ndarray:
        import numpy as np

        counts = self._fitted()
        return np.broadcast_to(counts, (len(users), counts.shape[0])).copy()

    def probabilities(
        self, data: TrainingData, users: np.ndarray, temperature: float
    ) -> np.ndarray:
        """P(item) = (count + smoothing) / sum(count + smoothing), the same for every user."""
        import numpy as np

        weights = self._fitted().astype(np.float64) + self.smoothing
        total = weights.sum()
        if total <= 0:
            raise ModelError("popularity policy: every item has zero count and smoothing is 0")
        return np.broadcast_to(weights / total, (len(users), weights.shape[0]))

    def save(self, path: Path) -> None:
        save_fitted(self, path, {"counts": self._fitted()})

    def load(self, path: Path, data: TrainingData) -> None:
        import numpy as np

        arrays, meta = load_fitted(self, path, data, ("counts",))
        self.smoothing = float(meta["params"]["smoothing"])
        self._counts = np.asarray(arrays["counts"], dtype=np.float32)
        self._item_ids = data.item_ids
        self._fingerprint = data.fingerprint
