"""The recommender plug-in interface and its entry-point registry.

A recommender is any class that satisfies :class:`Recommender` and is registered in the
``abkit.recommenders`` entry-point group of an installed distribution, e.g. in its
``pyproject.toml``::

    [project.entry-points."abkit.recommenders"]
    mymodel = "mypackage.module:MyRecommender"

abkit's own built-ins (``random``, ``popularity``, ``als``, ``lstm``) register exactly that way.
Models never grade themselves: they fit on a :class:`TrainingData` and return top-K lists;
:mod:`abkit.replay` does the evaluation.

Conventions every plug-in follows (checked by ``tests/recommenders/test_contract.py``):

* The constructor takes keyword-only parameters with defaults (e.g. ``factors=64``); values
  given on the command line as strings are converted to the type of the default.
* ``recommend(data, users, k)`` returns two ``(len(users), k)`` arrays: int64 item indices
  into ``data.item_ids`` in decreasing score order, and their float32 scores. With
  ``exclude_seen=True`` no item of the user's training history appears.
* ``score(data, users)`` returns the full ``(len(users), n_items)`` float32 score matrix
  (higher is better); it feeds softmax target policies and sampled metrics.
* ``save(path)`` / ``load(path)`` never pickle: ``.npz`` read with ``allow_pickle=False``, or
  ONNX. A loaded model refuses data whose item vocabulary or training fingerprint differ
  from those it was trained on (:class:`~abkit.errors.ModelError`).
* Impression-trained models (the extension for logs of recommendation impressions, such as
  the Open Bandit Dataset, that have no interaction events): the replay splits the logged
  impressions by time and builds the :class:`TrainingData` from the earlier part, with the
  rewarded impressions (clicks, or conversions) as the interactions, every impression as an
  exposure in ``data.exposures`` (:class:`Exposures`: user, item, 1-based slot, reward,
  logging propensity; the denominator of a click rate), and the logs' context, one sparse row
  per user, in ``data.context`` with ``data.context_names`` (numeric features by column name,
  categorical ones one-hot as ``name=level``; on OBD a user is one impression, so a row is
  that impression's context, and ``user-item_affinity_<item id>`` names a user-item
  feature). Users of the later, evaluated impressions follow the training users and have
  context rows too, so ``score(data, users)`` can use the context of the round it scores. A
  model that can only learn from exposures sets the class attribute
  ``learns_from = "impressions"`` (the default, ``"interactions"``, needs nothing): the replay
  then refuses data without exposures instead of fitting on nothing. Any other model fits on
  the clicks as implicit feedback, unchanged.
* A model that is not meant to personalise (``popularity``, ``ctr``: one ranking for every
  user) sets the class attribute ``personalised = False``; otherwise an off-policy replay
  whose policy comes out the same for every user, or whose users are all unknown to the
  model, warns that its estimate is not one of personalisation.
* Optional heavy dependencies are imported inside methods; ``requires`` names them and
  ``extra`` the pip extra that installs them, so ``abkit models`` can report a missing one
  without importing it. A model that can replay a saved file without a package it needs to
  *fit* names that package in the optional ``train_requires`` and the pip line in
  ``train_install``; ``abkit models`` then says it is ready for inference only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, overload, runtime_checkable

from abkit._util import unknown_choice
from abkit.errors import InputError, MissingExtraError, ModelError, param

if TYPE_CHECKING:
    import numpy as np
    import scipy.sparse as sp

__all__ = [
    "ENTRY_POINT_GROUP",
    "FIT_STEPS",
    "Device",
    "Exposures",
    "InnerProductTopK",
    "Recommender",
    "RecommenderInfo",
    "TrainingData",
    "available_recommenders",
    "create_recommender",
    "load_recommender_class",
    "resolve_recommender_name",
    "softmax_probabilities",
    "top_k_from_scores",
]

ENTRY_POINT_GROUP = "abkit.recommenders"

#: An optional hook of the protocol: a recommender whose fit goes in known steps (ALS's
#: iterations) has this attribute (an int, the number of steps) and a ``fit(data, *,
#: on_step)`` that calls ``on_step(1)`` after each step, so the command line shows the fit's
#: progress (``fitting als 3/15``) instead of a phase of unknown length.
FIT_STEPS = "fit_steps"

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


@dataclass(frozen=True, kw_only=True, eq=False)
class Exposures:
    """Training impressions (see the module docstring): one entry per shown item."""

    user_idx: np.ndarray  # int64 user index
    item_idx: np.ndarray  # int64 item index
    position: np.ndarray  # int64, 1-based slot
    reward: np.ndarray  # float64 (click 0/1, ...)
    propensity: np.ndarray  # float64, the logging policy's probability of the shown item


@dataclass(frozen=True, kw_only=True, eq=False)
class TrainingData:
    """Training interactions, indexed: users x items, plus each user's ordered history.

    ``user_ids[u]`` / ``item_ids[i]`` are the external ids of user index ``u`` and item index
    ``i``; ``item_ids`` is the whole catalogue (sorted), so items never seen in training can
    still be recommended (with whatever score a model gives them). The first
    ``n_train_users`` users have training interactions; users after them (e.g. users that only
    appear in logged impressions) have empty histories.

    ``matrix`` is a CSR ``(n_users, n_items)`` float32 matrix of interaction counts (the
    implicit-feedback confidence). ``seq_indptr`` / ``seq_items`` hold each user's training
    items in time order (``seq_items[seq_indptr[u]:seq_indptr[u + 1]]``), repeats included.
    ``fingerprint`` identifies the training interactions (see :func:`fingerprint_arrays`):
    a saved model records it and refuses other data.

    ``exposures``, ``context`` and ``context_names`` are set when the data come from logged
    impressions (the module docstring): the training impressions, and a CSR
    ``(n_users, n_features)`` float64 context matrix with its feature names. None otherwise.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    n_train_users: int
    matrix: sp.csr_matrix
    seq_indptr: np.ndarray
    seq_items: np.ndarray
    fingerprint: str
    exposures: Exposures | None = None
    context: sp.csr_matrix | None = None
    context_names: np.ndarray | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def n_interactions(self) -> int:
        return int(self.seq_items.shape[0])

    @classmethod
    def from_arrays(
        cls,
        *,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        user_ids: Sequence[str] | np.ndarray,
        item_ids: Sequence[str] | np.ndarray,
        n_train_users: int | None = None,
        fingerprint: str | None = None,
        exposures: Exposures | None = None,
        context: sp.csr_matrix | None = None,
        context_names: np.ndarray | None = None,
    ) -> TrainingData:
        """Build from interaction rows already sorted by (user, time).

        ``user_idx`` / ``item_idx`` index ``user_ids`` / ``item_ids``. The fingerprint is
        computed from the arrays when not given.
        """
        import numpy as np
        import scipy.sparse as sp

        users = np.asarray(user_idx, dtype=np.int64)
        items = np.asarray(item_idx, dtype=np.int64)
        uid = np.asarray(user_ids, dtype=str)
        iid = np.asarray(item_ids, dtype=str)
        n_users, n_items = uid.shape[0], iid.shape[0]
        if users.shape != items.shape:
            raise InputError("user and item index arrays differ in length")
        if users.size and (users.min() < 0 or users.max() >= n_users):
            raise InputError("a user index is outside the user vocabulary")
        if items.size and (items.min() < 0 or items.max() >= n_items):
            raise InputError("an item index is outside the item catalogue")
        if users.size > 1 and np.any(np.diff(users) < 0):
            raise InputError("interactions must be sorted by user (then time)")
        counts = np.bincount(users, minlength=n_users)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        matrix = sp.csr_matrix(
            (np.ones(users.size, dtype=np.float32), items, indptr), shape=(n_users, n_items)
        )
        matrix.sum_duplicates()  # repeats become counts; also sorts the column indices
        n_train = int(np.count_nonzero(counts)) if n_train_users is None else n_train_users
        fp = fingerprint or fingerprint_arrays(users, items, uid[:n_train], iid)
        return cls(
            user_ids=uid,
            item_ids=iid,
            n_train_users=n_train,
            matrix=matrix,
            seq_indptr=indptr,
            seq_items=items.astype(np.int32),
            fingerprint=fp,
            exposures=exposures,
            context=context,
            context_names=context_names,
        )

    def histories(self, users: np.ndarray, length: int) -> np.ndarray:
        """The last ``length`` training items of each user, as ``item index + 1``.

        Left-padded with 0 (so the most recent item is always in the last column); this is
        the input layout of the sequence models.
        """
        import numpy as np

        users = np.asarray(users, dtype=np.int64)
        start, end = self.seq_indptr[users], self.seq_indptr[users + 1]
        # column j of row r holds position end[r] - length + j of seq_items, when >= start[r]
        positions = end[:, None] - length + np.arange(length)[None, :]
        valid = positions >= start[:, None]
        out = np.zeros((users.size, length), dtype=np.int64)
        out[valid] = self.seq_items[positions[valid]].astype(np.int64) + 1
        return out

    def seen_rows(self, users: np.ndarray) -> sp.csr_matrix:
        """The CSR rows (seen items) of ``users``."""
        import numpy as np

        return self.matrix[np.asarray(users, dtype=np.int64)]

    def item_user_counts(self) -> np.ndarray:
        """Number of distinct training users per item (float64, length n_items)."""
        import numpy as np

        if "item_user_counts" not in self._cache:
            m = self.matrix
            self._cache["item_user_counts"] = np.bincount(m.indices, minlength=self.n_items).astype(
                np.float64
            )
        return self._cache["item_user_counts"]

    def check_vocabulary(
        self, item_ids: Sequence[str], fingerprint: str | None, *, source: str
    ) -> None:
        """Raise :class:`ModelError` unless a model's vocabulary and fingerprint match
        (``fingerprint=None``, a model whose training data is unknown: the vocabulary only)."""
        import numpy as np

        theirs = np.asarray(item_ids, dtype=str)
        if theirs.shape != self.item_ids.shape or not np.array_equal(theirs, self.item_ids):
            missing = np.setdiff1d(self.item_ids, theirs).size
            extra = np.setdiff1d(theirs, self.item_ids).size
            raise ModelError(
                f"{source}: item vocabulary does not match the data ({theirs.size} model items, "
                f"{self.n_items} catalogue items; {missing} catalogue items unknown to the model, "
                f"{extra} model items not in the catalogue); retrain it on this data"
            )
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise ModelError(
                f"{source}: trained on data with fingerprint {fingerprint[:12]}, but this "
                f"training split has fingerprint {self.fingerprint[:12]}; "
                f"retrain it on this split (same dataset and {param('split')})"
            )


def fingerprint_arrays(
    users: np.ndarray, items: np.ndarray, user_ids: np.ndarray, item_ids: np.ndarray
) -> str:
    """A content hash (BLAKE2b, 128 bits) of training interactions and their vocabularies.

    Two splits have the same fingerprint exactly when they hold the same (user, item) rows in
    the same order over the same catalogue; the dataset's name does not enter it.
    """
    import numpy as np

    digest = hashlib.blake2b(digest_size=16)
    for vocab in (item_ids, user_ids):
        digest.update(str(len(vocab)).encode())
        digest.update("\x1f".join(np.asarray(vocab, dtype=str).tolist()).encode())
    digest.update(np.ascontiguousarray(users, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(items, dtype=np.int64).tobytes())
    return digest.hexdigest()


@runtime_checkable
class Recommender(Protocol):
    """What a recommender plug-in provides (see the module docstring for the contract)."""

    #: registry name, e.g. ``"als"``
    name: ClassVar[str]
    #: pip extra of abkit-lift that installs the optional packages (None: nothing needed)
    extra: ClassVar[str | None]
    #: import names of the optional packages the model needs, e.g. ``("implicit",)``
    requires: ClassVar[tuple[str, ...]]
    #: False for models that need no training interactions (``random``)
    needs_training: ClassVar[bool]

    def fit(self, data: TrainingData) -> None:
        """Learn from the training interactions."""
        ...

    def recommend(
        self, data: TrainingData, users: np.ndarray, k: int, *, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (item indices int64, scores float32), each ``(len(users), k)``."""
        ...

    def score(self, data: TrainingData, users: np.ndarray) -> np.ndarray:
        """Scores of every catalogue item, ``(len(users), n_items)`` float32."""
        ...

    def save(self, path: Path) -> None:
        """Write the fitted model to ``path`` (no pickle)."""
        ...

    def load(self, path: Path, data: TrainingData) -> None:
        """Read a fitted model from ``path``, checking it matches ``data``."""
        ...

    def params(self) -> dict[str, Any]:
        """The parameters the model was built with (JSON-serialisable)."""
        ...


# -- helpers shared by the built-ins ------------------------------------------------------


_TOP_K_BLOCK = 64  # items per block for the block-max pruning of top_k_from_scores


def top_k_from_scores(
    scores: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items of each row: by score descending, ties by item index ascending.

    ``exclude`` (CSR rows aligned with ``scores``) marks items set to ``-inf`` first; excluded
    items can only appear when a row has fewer than ``k`` allowed items, which callers
    prevent by checking ``k`` against the catalogue. The order is total: of several items
    with the same score, the lower index comes first, also at the cut (the k-th place).
    ``scores`` is modified in place when ``exclude`` is given.

    Exact block-max pruning, so that a wide catalogue is not selected over in full: cut each
    row into ``nb = n_items // 64`` blocks of 64 STRIDED items (block ``b`` holds items ``b,
    b + nb, b + 2 nb, ...``; the maxima are then one contiguous reduction over 64 rows of
    ``nb`` values, several times faster than a max over 64 neighbours) and keep the ``k``
    blocks with the largest maxima plus the items past ``64 nb`` (the tail); rows shorter than
    ``128 k`` items use blocks of 32, 16 or 8 the same way. Every top-``k``
    item is in them: rank blocks by their best item (score descending, index ascending); an
    item's block ranks no lower than its best item, which is itself in the top ``k``, and the
    blocks above it have distinct best items above it, fewer than ``k``. Ranking blocks by
    maximum alone is that ranking except among blocks whose maxima tie, so the chosen set is
    exact when no tie straddles the ``k``-th block; a row where one does (many equal scores)
    falls back to contiguous blocks (``b`` holds items ``64 b .. 64 b + 63``), where lower
    blocks hold lower items and a tie takes the lower block. The candidates are laid out in
    item order (``64 x k`` items: row ``j`` of every chosen block, blocks ascending, then the
    tail), so the selection over them, ties by position, is the selection by item index:
    the k-th largest value ``t`` (``np.sort`` of rows up to 512 wide, ``np.partition`` of
    longer ones), every candidate above ``t`` and the lowest-index ones equal to ``t``, then
    one sort of the ``k`` winners. Cost O(n_items)
    per row for the block maxima plus O(64 k) for the selection, instead of an
    ``argpartition`` over the whole row (about 85% of a full-ranking replay at 20,000
    items). Rows holding NaN are ranked as before this pruning existed (``argpartition`` of
    ``-scores``: NaN last, ties at the cut in ``argpartition``'s order).
    """
    import numpy as np

    n_rows, n_items = scores.shape
    if exclude is not None and exclude.nnz:
        rows = np.repeat(np.arange(n_rows), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    k = min(k, n_items)
    if n_rows == 0 or k <= 0:
        empty = np.zeros((n_rows, max(k, 0)))
        return empty.astype(np.int64), empty.astype(np.float32)
    # blocks of 64 items; narrower ones (down to 8) where the row is too short for 64
    block = next((b for b in (_TOP_K_BLOCK, 32, 16, 8) if k * b * 2 <= n_items), _TOP_K_BLOCK)
    n_blocks = n_items // block
    if k * block * 2 <= n_items:
        m = n_blocks * block
        strided = scores[:, :m].reshape(n_rows, block, n_blocks)  # [r, j, b] = item j nb + b
        # the maxima as `block` elementwise maxima of contiguous (n_rows, nb) slices: twice
        # as fast as strided.max(axis=1); NaN propagates the same way
        block_max = strided[:, 0].copy()
        for j in range(1, block):
            np.maximum(block_max, strided[:, j], out=block_max)
        if np.isnan(block_max).any() or (n_items > m and np.isnan(scores[:, m:]).any()):
            return _top_k_nan(scores, k)
        # (n_rows, k) block indices, ascending; `straddled`: a tie across the k-th block
        chosen, straddled = _first_k_largest(block_max, k, report_ties=True)
        width = block * k
        # gathered through a transposed view as (rows, k, 64), laid out (64, k): item order
        gathered = strided.transpose(0, 2, 1)[np.arange(n_rows)[:, None], chosen]
        candidates = gathered.transpose(0, 2, 1).reshape(n_rows, width)
        tied = np.flatnonzero(straddled)
        if tied.size:
            contiguous = scores[tied, :m].reshape(tied.size, n_blocks, block)
            chosen_tied = _first_k_largest(contiguous.max(axis=2), k)
            candidates[tied] = contiguous[np.arange(tied.size)[:, None], chosen_tied].reshape(
                tied.size, width
            )
        if n_items > m:  # the tail (past the last whole stride) is always a candidate
            candidates = np.concatenate([candidates, scores[:, m:]], axis=1)
        picked = _first_k_largest(candidates, k)
        values = np.take_along_axis(candidates, picked, axis=1)
        # candidate position -> item: lane * k + slot is item lane nb + chosen[slot]; past
        # 64 k, the tail in order
        lane, slot = np.divmod(picked, k)
        items = np.where(
            picked < width,
            lane * n_blocks + np.take_along_axis(chosen, slot, axis=1),
            m + picked - width,
        )
        if tied.size:  # contiguous layout: position 64 i + j is item 64 chosen_tied[i] + j
            p = picked[tied]
            block_of = np.take_along_axis(chosen_tied, np.minimum(p // block, k - 1), axis=1)
            items[tied] = np.where(p < width, block_of * block + p % block, m + p - width)
    else:
        if np.isnan(scores).any():
            return _top_k_nan(scores, k)
        items = _first_k_largest(scores, k)
        values = np.take_along_axis(scores, items, axis=1)
    # sort by score descending, ties by item index ascending
    order = np.lexsort((items, -values), axis=1)
    return (
        np.take_along_axis(items, order, axis=1).astype(np.int64),
        np.take_along_axis(values, order, axis=1).astype(np.float32),
    )


@overload
def _first_k_largest(values: np.ndarray, k: int) -> np.ndarray: ...


@overload
def _first_k_largest(
    values: np.ndarray, k: int, *, report_ties: Literal[True]
) -> tuple[np.ndarray, np.ndarray]: ...


def _first_k_largest(
    values: np.ndarray, k: int, *, report_ties: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Column positions (ascending, ``(n_rows, k)``) of each row's ``k`` largest values,
    ties broken by position: everything above the k-th largest value, then the first
    positions equal to it. ``values`` holds no NaN. ``report_ties`` also returns, per row,
    whether values equal to the k-th are left out (the tie break decided the set)."""
    import numpy as np

    n_cols = values.shape[1]
    # numpy's (SIMD) sort beats its partition on rows this short
    kth = (np.sort(values, axis=1) if n_cols <= 512 else np.partition(values, n_cols - k, axis=1))[
        :, n_cols - k, None
    ]
    take = values >= kth
    # rows with more than k values >= the k-th (ties at it): only the first of those ties
    tied = np.flatnonzero(take.sum(axis=1) > k)
    if tied.size:
        at = values[tied] == kth[tied]
        room = k - (values[tied] > kth[tied]).sum(axis=1, keepdims=True)
        take[tied] &= ~at | (np.cumsum(at, axis=1) <= room)
    # exactly k per row, in row-major order: the columns of the flat indices (flatnonzero is
    # several times faster than the 2-d nonzero)
    positions = (np.flatnonzero(take) % n_cols).reshape(values.shape[0], k)
    if not report_ties:
        return positions
    straddled = np.zeros(values.shape[0], dtype=bool)
    straddled[tied] = True
    return positions, straddled


class InnerProductTopK:
    """Exact top-``k`` of ``queries @ items.T`` without scoring the whole catalogue.

    Cauchy-Schwarz bounds every score: ``q . v <= |q| |v|``. With the items sorted by norm,
    score only the ``head`` items of largest norm (laid out in item order); a row's top ``k``
    among them is its top ``k`` overall when its ``k``-th score exceeds ``|q|`` times the
    largest norm left out (with a relative margin of 1e-4 for float32 rounding), since no item
    outside can then reach it, nor tie it. Rows that fail the check are scored again with a
    head four times larger, until the head is the whole catalogue (then exactly
    :func:`top_k_from_scores` on the full scores). The selection itself is
    :func:`top_k_from_scores` on the head's columns, which are in item order, so ties go to the
    lower item index as on the full scores: the result is the full computation's, at a
    fraction of its GEMM and selection (on collaborative-filtering factors, where norms
    follow popularity, a head of 1/32 of the catalogue settles most users and the next,
    1/8, nearly all: on the bench's ALS model every user's top 10 lay within the 6.3% of
    items of largest norm, half of them within 1.7%; of the heads 1/12, 1/24, 1/32 and 1/48,
    1/32 was the fastest there). Rows with NaN scores, zero vectors or fewer than ``k``
    allowed items fall through to the full scores.
    """

    #: the first head: this share of the catalogue (at least ``8 k`` items)
    HEAD_SHARE = 1 / 32
    MARGIN = 1e-4

    def __init__(self, items: np.ndarray) -> None:
        import numpy as np

        self.items = items
        self.norms = np.linalg.norm(items.astype(np.float64), axis=1)
        self.order = np.argsort(-self.norms, kind="stable")
        self._heads: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._columns: dict[int, np.ndarray] = {}

    def _head(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(item indices ascending, their vectors transposed and contiguous) of the ``size``
        items of largest norm."""
        import numpy as np

        if size not in self._heads:
            cols = np.sort(self.order[:size])
            self._heads[size] = cols, np.ascontiguousarray(self.items[cols].T)
        return self._heads[size]

    def top_k(
        self, queries: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(items, scores), ``(n_rows, k)``: as ``top_k_from_scores(queries @ items.T, k,
        exclude=exclude)``."""

        n_rows, n_items = queries.shape[0], self.items.shape[0]
        k = min(k, n_items)
        head = max(8 * k, int(n_items * self.HEAD_SHARE))
        if n_rows == 0 or k <= 0 or head >= n_items:
            return top_k_from_scores(queries @ self.items.T, k, exclude=exclude)
        with _one_blas_thread():  # small GEMMs: threads cost more than they bring
            return self._pruned(queries, k, head, exclude)

    def _pruned(
        self, queries: np.ndarray, k: int, head: int, exclude: sp.csr_matrix | None
    ) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        n_rows, n_items = queries.shape[0], self.items.shape[0]
        q_norm = np.linalg.norm(queries.astype(np.float64), axis=1)
        out_items = np.zeros((n_rows, k), dtype=np.int64)
        out_values = np.zeros((n_rows, k), dtype=np.float32)
        left = np.arange(n_rows)
        while left.size:
            # the excluded (row among `left`, item) pairs, set to -inf below
            ex_row, ex_item = _pairs(exclude, left if left.size < n_rows else None)
            if head >= n_items:
                scores = queries[left] @ self.items.T
                scores[ex_row, ex_item] = -np.inf
                out_items[left], out_values[left] = top_k_from_scores(scores, k)
                break
            cols, head_t = self._head(head)
            scores = queries[left] @ head_t
            position = self._positions(head)[ex_item]  # column in the head, -1 outside it
            inside = position >= 0
            scores[ex_row[inside], position[inside]] = -np.inf
            positions, values = top_k_from_scores(scores, k)
            bound = q_norm[left] * self.norms[self.order[head]] * (1 + self.MARGIN)
            with np.errstate(invalid="ignore"):
                settled = values[:, k - 1].astype(np.float64) > bound
            done = left[settled]
            out_items[done] = cols[positions[settled]]
            out_values[done] = values[settled]
            left = left[~settled]
            head *= 4
        return out_items, out_values

    def _positions(self, size: int) -> np.ndarray:
        """For each item, its column in the head of ``size`` items, or -1."""
        import numpy as np

        if size not in self._columns:
            cols, _ = self._head(size)
            position = np.full(self.items.shape[0], -1, dtype=np.int64)
            position[cols] = np.arange(cols.size)
            self._columns[size] = position
        return self._columns[size]


def _pairs(rows: sp.csr_matrix | None, subset: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The stored (row, column) pairs of the CSR ``rows``, or of its rows ``subset`` only
    (renumbered ``0 .. len(subset) - 1``): empty arrays for None."""
    import numpy as np

    if rows is None:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    indptr = rows.indptr
    if subset is None:
        return np.repeat(np.arange(rows.shape[0]), np.diff(indptr)), rows.indices
    starts, lengths = indptr[subset], indptr[subset + 1] - indptr[subset]
    row = np.repeat(np.arange(subset.size), lengths)
    # position of each pair in rows.indices: its row's start plus its rank within the row
    offsets = np.arange(row.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return row, rows.indices[np.repeat(starts, lengths) + offsets]


_BLAS: list[Any] = []  # one threadpoolctl controller per process (finding the libraries is slow)


def _one_blas_thread() -> Any:
    """A context that limits BLAS to one thread."""
    if not _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def _top_k_nan(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The selection for score matrices holding NaN, unchanged from before the pruning."""
    import numpy as np

    n_rows, n_items = scores.shape
    if k >= n_items:
        part = np.broadcast_to(np.arange(n_items), (n_rows, n_items)).copy()
    else:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    items = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return items, np.take_along_axis(part_scores, order, axis=1).astype(np.float32)


def softmax_probabilities(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise softmax of ``scores / temperature`` (float64, rows sum to 1).

    ``-inf`` scores get probability 0; ``temperature`` must be positive.
    """
    import numpy as np

    if not temperature > 0:
        raise InputError(f"{param('temperature')} must be positive, got {temperature}")
    z = np.asarray(scores, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def resolve_device(device: str, *, cuda_available: bool, what: str) -> tuple[str, str | None]:
    """(``cpu`` | ``cuda``, warning or None) for a requested ``auto|cpu|cuda`` device."""
    if device not in DEVICES:
        raise InputError(unknown_choice("device", device, DEVICES))
    if device == "cpu":
        return "cpu", None
    if cuda_available:
        return "cuda", None
    if device == "cuda":
        return "cpu", f"{what}: CUDA was requested but is not available; running on the CPU"
    return "cpu", None


# -- the registry ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RecommenderInfo:
    """One installed recommender plug-in as ``abkit models`` shows it."""

    name: str
    target: str  # "module:Class" of the entry point
    distribution: str | None
    status: Literal["ok", "missing package", "broken"]
    extra: str | None
    missing: tuple[str, ...]
    description: str
    #: packages that only fitting needs and that are missing (a saved model still replays)
    training_missing: tuple[str, ...] = ()
    #: the pip line that installs them
    training_install: str | None = None

    @property
    def summary(self) -> str:
        """The status in words, as ``abkit models`` shows it."""
        if self.status == "ok" and self.training_missing:
            return f"inference ready; training needs {', '.join(self.training_missing)}"
        return self.status

    @property
    def install(self) -> str | None:
        """The pip line that fixes a missing package, or None."""
        if self.status != "missing package":
            return None
        return f'pip install "abkit-lift[{self.extra}]"' if self.extra else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "distribution": self.distribution,
            "status": self.status,
            "extra": self.extra,
            "missing": list(self.missing),
            "install": self.install,
            "description": self.description,
            "training_missing": list(self.training_missing),
            "training_install": self.training_install if self.training_missing else None,
        }


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)  # first installed distribution wins on a clash
    return found


def _missing_packages(cls: type, attribute: str = "requires") -> tuple[str, ...]:
    needed = tuple(getattr(cls, attribute, ()) or ())
    return tuple(pkg for pkg in needed if importlib.util.find_spec(pkg) is None)


def available_recommenders() -> list[RecommenderInfo]:
    """Every recommender registered in the ``abkit.recommenders`` group, sorted by name.

    Loading an entry point imports only the plug-in's module (plug-ins import their heavy
    packages lazily), so a missing optional package shows as ``missing package`` with the
    extra that installs it; a plug-in that cannot even be imported shows as ``broken``.
    """
    out: list[RecommenderInfo] = []
    for name, ep in sorted(_entry_points().items()):
        dist = ep.dist.name if ep.dist is not None else None
        try:
            cls = ep.load()
        except Exception as exc:  # a third-party plug-in may fail in any way on import
            out.append(
                RecommenderInfo(
                    name=name,
                    target=ep.value,
                    distribution=dist,
                    status="broken",
                    extra=None,
                    missing=(),
                    description=f"cannot be imported: {type(exc).__name__}: {exc}",
                )
            )
            continue
        missing = _missing_packages(cls)
        doc = (inspect.getdoc(cls) or "").strip().splitlines()
        out.append(
            RecommenderInfo(
                name=name,
                target=ep.value,
                distribution=dist,
                status="missing package" if missing else "ok",
                extra=getattr(cls, "extra", None),
                missing=missing,
                description=doc[0] if doc else "",
                training_missing=_missing_packages(cls, "train_requires"),
                training_install=getattr(cls, "train_install", None),
            )
        )
    return out


def resolve_recommender_name(name: str, names: Iterable[str] | None = None) -> str:
    """The registered model name that ``name`` means (``names``: the registered ones, by
    default every entry point of the ``abkit.recommenders`` group).

    A registered name is itself; otherwise the one registered name equal to ``name`` ignoring
    case (``ALS`` is ``als``). Anything else raises :class:`InputError` naming every model,
    with "did you mean" (``alss`` -> ``als``; two names that differ only in case are both
    offered, since neither is meant more than the other).
    """
    known = list(_entry_points() if names is None else names)
    if name in known:
        return name
    same = [n for n in known if n.casefold() == name.casefold()]
    if len(same) == 1:
        return same[0]
    raise InputError(unknown_choice("model", name, known, ignore_case=True))


def load_recommender_class(name: str) -> type[Recommender]:
    """The class registered as ``name`` (matched as :func:`resolve_recommender_name` does); a
    one-line error naming every known model when unknown, :class:`MissingExtraError` when its
    optional packages are not installed."""
    eps = _entry_points()
    name = resolve_recommender_name(name, eps)
    ep = eps[name]
    try:
        cls = ep.load()
    except Exception as exc:
        raise ModelError(
            f"model '{name}' ({ep.value}) cannot be imported: {type(exc).__name__}: {exc}"
        ) from None
    missing = _missing_packages(cls)
    if missing:
        extra = getattr(cls, "extra", None) or "models"
        raise MissingExtraError(missing[0], extra, f"the '{name}' model")
    return cls


def _convert(value: Any, default: Any, *, model: str, key: str) -> Any:
    """Convert a command-line string to the type of the parameter's default."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise InputError(
            f"model '{model}' parameter {key}={value!r}: expected {type(default).__name__}"
        ) from None
    return value


def create_recommender(name: str, params: Mapping[str, Any] | None = None) -> Recommender:
    """An instance of the model registered as ``name`` (any case, see
    :func:`resolve_recommender_name`), built with ``params``.

    Unknown parameter names get a "did you mean" error listing the model's parameters;
    string values (from ``--param key=value``) are converted to the default's type.
    """
    name = resolve_recommender_name(name)
    cls = load_recommender_class(name)
    signature = inspect.signature(cls)
    accepted = {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    kwargs: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if key not in accepted:
            raise InputError(unknown_choice(f"parameter of model '{name}'", key, accepted))
        default = accepted[key]
        default = None if default is inspect.Parameter.empty else default
        kwargs[key] = _convert(value, default, model=name, key=key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"model '{name}': {exc}") from None
