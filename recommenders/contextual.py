"""Recommenders that learn from logged impressions: ``ctr`` and the contextual ``logistic``.

Both need exposures (``learns_from = "impressions"``, see :mod:`abkit.plugins`): the replay
builds them from the earlier part of an impression log (``--split temporal:SHARE`` or
``temporal:DATE`` on the impressions).

``ctr``, click rate by item corrected for the slot (a position-based click model: Richardson,
Dominowska & Ragno 2007; Chuklin, Markov & de Rijke 2015, ch. 3). A click needs the slot to
be examined, so an exposure in slot p counts as theta_p exposures, theta_p = (click rate of
slot p) / (overall click rate). An item's score is its smoothed, slot-corrected click rate

    s_a = (clicks_a + prior * r) / (sum over its exposures of theta_p + prior)

with r the overall click rate and ``prior`` pseudo-exposures; the same for every user (a
popularity policy that divides by exposures instead of counting clicks).

``logistic``, a contextual logistic regression of the reward on the exposure (personalised):

    logit P(click | x, a, p) = b_a + c_p + w_a . x + g * aff(x, a)

with x the round's context (numeric features; categorical ones one-hot), w_a one weight
vector per item (so each item has its own response to the context), aff(x, a) the user-item
feature ``user-item_affinity_<item id>`` when the logs have one (the Open Bandit Dataset),
and c_p the slot's effect (it does not change the order of items within a slot). Fitted by
maximum likelihood with an L2 penalty ``l2 * (|b|^2 + |W|^2 + g^2) / 2`` (slot effects
unpenalised) with scipy's L-BFGS-B on the analytic gradient; numpy and scipy only, no other
dependency. Ranks items by b_a + w_a . x + g aff(x, a) for each round's context.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from abkit_recommenders.baselines import load_fitted, save_fitted

from abkit.errors import InputError, ModelError
from abkit.plugins import top_k_from_scores

if TYPE_CHECKING:
    import numpy as np
    import scipy.sparse as sp

    from abkit.plugins import Exposures, TrainingData

__all__ = ["ClickRateRecommender", "LogisticRecommender"]

AFFINITY = re.compile(r"^user-item_affinity_(.+)$")


def _exposures(data: TrainingData, model: str) -> Exposures:
    exposures = data.exposures
    if exposures is None or exposures.item_idx.size == 0:
        raise InputError(
            f"model '{model}' learns from logged impressions (exposures and clicks), and this "
            "training split has none; use a dataset with impressions and a temporal split"
        )
    return exposures


def _slot_factors(exposures: Exposures) -> np.ndarray:
    """theta_p = click rate of slot p / overall click rate (1 where undefined); 1-based."""
    import numpy as np

    n_pos = int(exposures.position.max()) + 1
    shows = np.bincount(exposures.position, minlength=n_pos).astype(float)
    clicks = np.bincount(exposures.position, weights=exposures.reward, minlength=n_pos)
    overall = clicks.sum() / shows.sum()
    rate = np.divide(clicks, shows, out=np.zeros(n_pos), where=shows > 0)
    theta = np.where((shows > 0) & (overall > 0), rate / overall if overall > 0 else 1.0, 1.0)
    return theta


class _ScoresRanked:
    """``recommend`` = the top ``k`` of ``score``, seen items excluded."""

    def score(self, data: TrainingData, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recommend(
        self, data: TrainingData, users: np.ndarray, k: int, *, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = self.score(data, users)
        return top_k_from_scores(scores, k, exclude=data.seen_rows(users) if exclude_seen else None)


class ClickRateRecommender(_ScoresRanked):
    """Click rate per exposure, corrected for the slot (learns from impression logs)."""

    name: ClassVar[str] = "ctr"
    #: not meant to personalise (an off-policy replay does not warn that it ignores the user)
    personalised: ClassVar[bool] = False
    extra: ClassVar[str | None] = None
    requires: ClassVar[tuple[str, ...]] = ()
    needs_training: ClassVar[bool] = True
    learns_from: ClassVar[str] = "impressions"

    def __init__(self, *, prior: float = 100.0) -> None:
        if not prior > 0:
            raise ValueError(f"prior must be > 0, got {prior}")
        self.prior = float(prior)
        self._rates: np.ndarray | None = None
        self._item_ids: np.ndarray | None = None
        self._fingerprint = ""

    def params(self) -> dict[str, Any]:
        return {"prior": self.prior}

    def fit(self, data: TrainingData) -> None:
        import numpy as np

        exp = _exposures(data, self.name)
        theta = _slot_factors(exp)
        examined = np.bincount(exp.item_idx, weights=theta[exp.position], minlength=data.n_items)
        clicks = np.bincount(exp.item_idx, weights=exp.reward, minlength=data.n_items)
        overall = float(exp.reward.sum()) / exp.reward.size
        self._rates = ((clicks + self.prior * overall) / (examined + self.prior)).astype(np.float32)
        self._item_ids = data.item_ids
        self._fingerprint = data.fingerprint

    def _fitted(self) -> np.ndarray:
        if self._rates is None:
            raise ModelError("the ctr model is not fitted; call fit() or load() first")
        return self._rates

    def score(self, data: TrainingData, users: np.ndarray) -> np.ndarray:
        import numpy as np

        rates = self._fitted()
        return np.broadcast_to(rates, (len(users), rates.shape[0])).copy()

    def save(self, path: Path) -> None:
        save_fitted(self, path, {"rates": self._fitted()})

    def load(self, path: Path, data: TrainingData) -> None:
        import numpy as np

        arrays, meta = load_fitted(self, path, data, ("rates",))
        self.prior = float(meta["params"]["prior"])
        self._rates = np.asarray(arrays["rates"], dtype=np.float32)
        self._item_ids = data.item_ids
        self._fingerprint = data.fingerprint


class LogisticRecommender(_ScoresRanked):
    """Contextual logistic regression of clicks on exposures (personalised; impression logs)."""

    name: ClassVar[str] = "logistic"
    extra: ClassVar[str | None] = None
    requires: ClassVar[tuple[str, ...]] = ()
    needs_training: ClassVar[bool] = True
    learns_from: ClassVar[str] = "impressions"

    def __init__(self, *, l2: float = 1.0, max_iter: int = 500) -> None:
        if not l2 > 0:
            raise ValueError(f"l2 must be > 0, got {l2}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        self.l2 = float(l2)
        self.max_iter = int(max_iter)
        self._bias: np.ndarray | None = None  # b, (n_items,)
        self._slot: np.ndarray | None = None  # c, (n_positions + 1,)
        self._weights: np.ndarray | None = None  # W, (n_items, n_user_features)
        self._affinity = 0.0  # g
        self._names: np.ndarray | None = None  # the context features the model was fitted on
        self._item_ids: np.ndarray | None = None
        self._fingerprint = ""
        self.converged = False

    def params(self) -> dict[str, Any]:
        return {"l2": self.l2, "max_iter": self.max_iter}

    @staticmethod
    def _design(data: TrainingData) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(user features X, user-item affinities A), both ``(n_users, .)`` CSR."""
        import numpy as np
        import scipy.sparse as sp

        if data.context is None or data.context_names is None:
            empty = sp.csr_matrix((data.n_users, 0))
            return empty, sp.csr_matrix((data.n_users, data.n_items))
        names = np.asarray(data.context_names, dtype=str)
        item_of = {item: i for i, item in enumerate(data.item_ids.tolist())}
        affinity_item = np.full(names.size, -1, dtype=np.int64)
        for j, name in enumerate(names.tolist()):
            match = AFFINITY.match(name)
            if match and match.group(1) in item_of:
                affinity_item[j] = item_of[match.group(1)]
        context = data.context.tocsc()
        is_aff = affinity_item >= 0
        x = context[:, np.flatnonzero(~is_aff)].tocsr()
        coo = context[:, np.flatnonzero(is_aff)].tocoo()
        a = sp.csr_matrix(
            (coo.data, (coo.row, affinity_item[is_aff][coo.col])),
            shape=(data.n_users, data.n_items),
        )
        return x, a

    def fit(self, data: TrainingData) -> None:
        import numpy as np
        from scipy import optimize

        exp = _exposures(data, self.name)
        x_all, a_all = self._design(data)
        x = x_all[exp.user_idx]  # (rounds, d)
        aff = np.asarray(a_all[exp.user_idx, exp.item_idx]).ravel()
        y = exp.reward.astype(np.float64)
        if np.any((y < 0) | (y > 1)):
            raise InputError("the logistic model needs rewards in [0, 1] (clicks, conversions)")
        n_items, n_pos, d = data.n_items, int(exp.position.max()) + 1, x.shape[1]
        items, pos = exp.item_idx, exp.position
        # x in coordinate form: round of each stored value, its feature, its item
        x = x.tocsr()
        nz_round = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        nz_feature, nz_value = x.indices, x.data
        nz_item = items[nz_round]
        n_rounds = items.size
        sizes = (n_items, n_pos, n_items * d, 1)
        cuts = np.cumsum(sizes)[:-1]
        l2 = self.l2

        def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
            b, c, w, g = np.split(theta, cuts)
            return b, c, w.reshape(n_items, d), float(g[0])

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            b, c, w, g = unpack(theta)
            # w_a . x_i for each round, over the stored (nonzero) values of x only: O(nnz)
            xw = np.bincount(
                nz_round, weights=nz_value * w[nz_item, nz_feature], minlength=n_rounds
            )
            z = b[items] + c[pos] + xw + g * aff
            # log-likelihood of Bernoulli(sigmoid(z)); log(1 + e^z) computed stably
            loss = float(np.sum(np.logaddexp(0.0, z) - y * z))
            resid = 1.0 / (1.0 + np.exp(-z)) - y
            grad_b = np.bincount(items, weights=resid, minlength=n_items)
            grad_c = np.bincount(pos, weights=resid, minlength=n_pos)
            # d/dw_a = sum over the rounds showing a of resid_i x_i
            grad_w = np.bincount(
                nz_item * d + nz_feature,
                weights=nz_value * resid[nz_round],
                minlength=n_items * d,
            ).reshape(n_items, d)
            grad_g = float(np.dot(resid, aff))
            loss += 0.5 * l2 * (float(b @ b) + float(np.sum(w * w)) + g * g)
            grad = np.concatenate(
                [grad_b + l2 * b, grad_c, (grad_w + l2 * w).ravel(), [grad_g + l2 * g]]
            )
            return loss, grad

        start = np.zeros(int(np.sum(sizes)))
        result = optimize.minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter},
        )
        self.converged = bool(result.success)
        b, c, w, g = unpack(np.asarray(result.x))
        self._bias, self._slot, self._weights, self._affinity = b, c, w, g
        self._names = (
            np.asarray(data.context_names, dtype=str)
            if data.context_names is not None
            else np.zeros(0, dtype=str)
        )
        self._item_ids = data.item_ids
        self._fingerprint = data.fingerprint

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self._bias is None or self._weights is None:
            raise ModelError("the logistic model is not fitted; call fit() or load() first")
        return self._bias, self._weights

    def score(self, data: TrainingData, users: np.ndarray) -> np.ndarray:
        import numpy as np

        bias, weights = self._fitted()
        x_all, a_all = self._design(data)
        if x_all.shape[1] != weights.shape[1]:
            raise ModelError(
                f"the logistic model was fitted on {weights.shape[1]} context features, "
                f"these data have {x_all.shape[1]}; retrain it on this data"
            )
        rows = np.asarray(users, dtype=np.int64)
        scores = bias[None, :] + np.asarray(x_all[rows] @ weights.T)
        scores += self._affinity * a_all[rows].toarray()
        return scores.astype(np.float32)

    def save(self, path: Path) -> None:
        bias, weights = self._fitted()
        save_fitted(
            self,
            path,
            {
                "bias": bias,
                "slot": self._slot,
                "weights": weights,
                "affinity": [self._affinity],
                "context_names": self._names,
            },
        )

    def load(self, path: Path, data: TrainingData) -> None:
        import numpy as np

        keys = ("bias", "slot", "weights", "affinity", "context_names")
        arrays, meta = load_fitted(self, path, data, keys)
        names = np.asarray(arrays["context_names"], dtype=str)
        ours = (
            np.zeros(0, dtype=str)
            if data.context_names is None
            else np.asarray(data.context_names, dtype=str)
        )
        if not np.array_equal(names, ours):
            raise ModelError(f"{path}: fitted on other context features; retrain it on this data")
        self.l2 = float(meta["params"]["l2"])
        self.max_iter = int(meta["params"]["max_iter"])
        self._bias = np.asarray(arrays["bias"], dtype=np.float64)
        self._slot = np.asarray(arrays["slot"], dtype=np.float64)
        self._weights = np.asarray(arrays["weights"], dtype=np.float64)
        self._affinity = float(np.asarray(arrays["affinity"])[0])
        self._names = names
        self._item_ids = data.item_ids
        self._fingerprint = data.fingerprint
