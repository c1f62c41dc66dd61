"""``abkit models check-accuracy``: an accuracy claim, checked against the base rate.

Two sources of (probability, label) pairs, one check (:func:`abkit.stats.classification.
accuracy_check`):

* :func:`check_scores_file`: a file with columns ``score`` and ``label``
  (:func:`abkit.data.scores.read_scores`);
* :func:`check_model_accuracy`: a model of probabilities (``abkit train lstm --arch seed``)
  on held-out pairs built as its training pairs were: for every user replay evaluates, each
  item the user took in the test period and had not seen (a positive, label 1) with the same
  history the replay uses (the user's training items) and ``negatives`` items drawn
  uniformly from the catalogue items the user neither saw nor took in the test period
  (label 0); ``negatives`` defaults to the training ratio in the sidecar, so the base rate
  is the one the model was trained at (13 negatives: 92.9% of the pairs are negatives).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abkit.data.scores import read_scores
from abkit.errors import InputError, ModelError, param
from abkit.plugins import create_recommender
from abkit.replay.lstm_contract import read_sidecar, sidecar_path
from abkit.replay.runner import load_held_out
from abkit.stats.classification import AccuracyCheck, accuracy_check

__all__ = [
    "AccuracyReport",
    "check_model_accuracy",
    "check_scores_file",
    "held_out_negatives",
]

_USERS_PER_CALL = 512


@dataclass(frozen=True, kw_only=True)
class AccuracyReport:
    """The check and where its pairs came from."""

    source: str
    check: AccuracyCheck
    dataset: str | None = None
    split: str | None = None
    users: int | None = None
    negatives: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dataset": self.dataset,
            "split": self.split,
            "users": self.users,
            "negatives": self.negatives,
            **self.check.to_dict(),
        }


def check_scores_file(
    path: str | Path, *, threshold: float = 0.5, bins: int = 10, alpha: float = 0.05
) -> AccuracyReport:
    """The accuracy check of the probabilities and labels in ``path``."""
    scores, labels = read_scores(path)
    check = accuracy_check(scores, labels, threshold=threshold, bins=bins, alpha=alpha)
    return AccuracyReport(source=str(path), check=check)


def held_out_negatives(
    users: Any, taken: Any, n_items: int, negatives: int, rng: Any
) -> tuple[Any, Any]:
    """``negatives`` items per row of ``users`` drawn uniformly from the items not in the
    user's ``taken`` set (a sorted int64 array of keys ``user * n_items + item``); returns
    (users repeated, items). Redraws the draws that hit a taken item until none does."""
    import numpy as np

    users = np.repeat(np.asarray(users, dtype=np.int64), negatives)
    items = rng.integers(0, n_items, size=users.size)
    for _ in range(1000):
        keys = users * n_items + items
        pos = np.clip(np.searchsorted(taken, keys), 0, max(taken.size - 1, 0))
        hit = np.flatnonzero(taken[pos] == keys) if taken.size else np.array([], np.int64)
        if hit.size == 0:
            return users, items
        items[hit] = rng.integers(0, n_items, size=hit.size)
    raise InputError("cannot draw negatives: some user has taken nearly every item")


def check_model_accuracy(
    db: str | Path | None = None,
    *,
    model_path: str | Path,
    dataset: str | None = None,
    split: str = "temporal",
    negatives: int | None = None,
    threshold: float = 0.5,
    bins: int = 10,
    alpha: float = 0.05,
    seed: int = 0,
    device: str = "auto",
) -> AccuracyReport:
    """The accuracy check of a model of probabilities on held-out pairs; see the module
    docstring. The store is only read."""
    import numpy as np

    path = Path(model_path)
    if not path.is_file():
        raise InputError(f"{param('model_path')} {path}: no such file")
    side = sidecar_path(path)
    if not side.is_file():
        raise ModelError(f"{path}: missing its sidecar {side.name}")
    sidecar = read_sidecar(side)
    if sidecar.arch != "seed":
        raise ModelError(
            f"{path}: a {sidecar.arch} model scores items for ranking, not probabilities of a "
            "label; check a model trained with `abkit train lstm --arch seed`, or a file of "
            f"probabilities with {param('scores')}"
        )
    if negatives is None:
        negatives = int(sidecar.document.get("negatives", 1))
    if negatives < 1:
        raise InputError(f"{param('negatives')} must be at least 1, got {negatives}")
    held = load_held_out(db, dataset=dataset, split=split, seed=seed)
    data = held.data
    if held.users.size == 0:
        raise InputError(
            f"no user of dataset '{held.dataset}' has both training and new test interactions "
            f"under split {held.split}; try another {param('split')}"
        )
    model = create_recommender("lstm", {"device": device})
    model.load(path, data)
    rng = np.random.default_rng(seed)
    counts = np.diff(held.indptr)
    pos_users = np.repeat(held.users, counts)
    m = data.matrix
    seen_users = np.repeat(np.arange(data.n_users, dtype=np.int64), np.diff(m.indptr))
    taken = np.unique(
        np.concatenate(
            [
                seen_users * data.n_items + m.indices.astype(np.int64),
                pos_users * data.n_items + held.items.astype(np.int64),
            ]
        )
    )
    neg_users, neg_items = held_out_negatives(pos_users, taken, data.n_items, negatives, rng)
    pair_users = np.concatenate([pos_users, neg_users])
    pair_items = np.concatenate([held.items.astype(np.int64), neg_items])
    labels = np.concatenate([np.ones(pos_users.size, np.int64), np.zeros(neg_users.size, np.int64)])
    logits = np.empty(pair_users.size, dtype=np.float64)
    order = np.argsort(pair_users, kind="stable")
    sorted_users = pair_users[order]
    for start in range(0, held.users.size, _USERS_PER_CALL):
        chunk = held.users[start : start + _USERS_PER_CALL]
        scores = model.score(data, chunk)
        lo, hi = np.searchsorted(sorted_users, [chunk[0], chunk[-1] + 1])
        rows = order[lo:hi]
        local = np.searchsorted(chunk, pair_users[rows])
        logits[rows] = scores[local, pair_items[rows]]
    probabilities = 0.5 * (1 + np.tanh(logits / 2))  # the logistic, without overflow
    check = accuracy_check(probabilities, labels, threshold=threshold, bins=bins, alpha=alpha)
    return AccuracyReport(
        source=str(path),
        check=check,
        dataset=held.dataset,
        split=held.split,
        users=int(held.users.size),
        negatives=negatives,
    )
