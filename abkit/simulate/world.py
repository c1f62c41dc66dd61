"""The latent state of a simulated shop: tastes, popularity, relevance, policies, true rates.

A :class:`World` is a pure function of a :class:`SimulationConfig`: :meth:`World.from_config`
regenerates it exactly (no database needed), so tests and estimators can compare what they
measure in the stored logs with the truth that produced them.

The model (all constants below are module-level and named):

* **Items.** ``items`` items in up to 20 categories (balanced sizes). Popularity is Zipf:
  the item of popularity rank ``k`` (a random permutation) has weight ``k^-1.0``.
  Prices are lognormal per category: ``log price ~ N(mu_c, 0.4²)``, ``mu_c`` uniform on
  ``[log 8, log 150]``. Each item has an embedding ``e_i = centroid_c + 0.5·noise``.
* **Users.** A taste vector ``t_u = 0.8·centroid_{c1} + 0.45·centroid_{c2} + 0.3·noise``
  around two favourite categories (drawn by category popularity).
* **Affinity.** ``s(u, i) = 3·<t_u, e_i> + 0.3·z_i`` where ``z_i`` is the standardised
  log-popularity of ``i`` (popular items are slightly better on average).
* **Relevance** (click probability before position bias):
  ``r(u, i) = sigmoid(-4 + s(u, i))``; about 2% for a random item, 10-20% for a favourite.
* **Position bias** ``θ_k = k^-0.75`` for positions ``k = 1..slots`` (cascade-like decay).
  A displayed item is clicked with probability ``θ_k · r(u, i)``.
* **Browsing.** Organic views follow the user's preference ``b_u(i) ∝ pop_i^0.5 · e^{s(u,i)}``
  mixed with a sparse item-to-item transition structure: each item has 4 successors in its
  own category with weights (0.5, 0.25, 0.15, 0.1); after a view, the next view follows a
  successor with probability 0.6, else a fresh draw from ``b_u``. A sequence model can learn
  the transitions; a matrix-factorisation model can learn ``b_u``.
* **Logging policies.** Control (arm 0) shows each slot an item drawn uniformly from the
  catalogue: propensity ``1/items``. Non-control arm ``k`` draws each slot independently from
  the softmax ``π_k(i | u) ∝ exp(s(u, i) / τ_k)`` with temperature ``τ_k = 1 / k``
  (a sharper policy for each further arm). Slots are independent draws, so an item may appear
  in two slots of one slate, exactly as the per-position propensities of the Open Bandit
  Dataset assume; the propensity of the item in a slot is ``π_k(i | u)``, exactly.
* **Conversion.** User ``u`` has a latent conversion probability ``q_u ~ Beta(κm, κ(1-m))``
  with ``m = base_conversion`` and ``κ = 4`` (heterogeneous buyers). ``q_u`` and the user's
  activity share a Gaussian copula with correlation 0.5: with ``z_u, e_u ~ N(0, 1)``,
  ``q_u = F_Beta^{-1}(Φ(z_u))`` and the session rate is
  ``λ_u = 0.35 · exp(0.8·(0.5 z_u + √0.75 e_u) - 0.8²/2)`` per day, so busy users buy more and
  pre-period activity and purchases are useful CUPED covariates. The marginal of ``q_u`` is
  exactly the Beta, whatever the copula.
  In the experiment window a user in arm ``a`` with planted lift ``L_a`` converts with
  probability ``min(1, q_u (1 + L_a))``. The clip binds only when ``q_u > 1/(1+L_a)``; with
  ``κ = 4`` and ``m = 0.05`` that has probability about 1e-4 for ``L = 0.2`` (stored as the
  truth ``clipped_share``), and the exact truth accounts for it anyway:
  ``E[min(1, c q)] = c·m·I_{1/c}(a+1, b) + 1 - I_{1/c}(a, b)`` for ``c = 1 + L > 1``, with
  ``I`` the regularised incomplete beta function (``E[q 1{q<t}] = m I_t(a+1, b)``).
  In the pre-period (no treatment) the user converts with probability
  ``1 - (1 - q_u)^{pre_days/days}`` (a constant hazard over a window of another length).
  A converting user makes ``1 + min(Poisson(0.3), 4)`` purchases of items drawn by
  popularity (so revenue per user has an exact truth: ``P(convert) · E[purchases] ·
  Σ_i pop_i price_i``).
* **Assignment.** Each user's arm is drawn by ``split``; with ``srm > 0`` each non-control user
  is independently lost (assignment, experiment-window events and impressions) with
  probability ``srm``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from abkit._util import unknown_choice
from abkit.errors import InputError
from abkit.simulate.config import SimulationConfig

CATEGORY_NAMES = (
    "shoes", "dresses", "tops", "jeans", "jackets", "bags", "watches", "jewellery",
    "sportswear", "underwear", "kitchen", "bedding", "lighting", "decor", "toys",
    "books", "beauty", "electronics", "garden", "pets",
)  # fmt: skip
TASTE_DIM = 16
ZIPF_EXPONENT = 1.0
PRICE_LOG_SD = 0.4
PRICE_RANGE = (8.0, 150.0)
ITEM_NOISE = 0.5
TASTE_WEIGHTS = (0.8, 0.45)
TASTE_NOISE = 0.3
AFFINITY_SCALE = 3.0
POPULARITY_QUALITY = 0.3
RELEVANCE_INTERCEPT = -4.0
POSITION_BIAS_EXPONENT = 0.75
BROWSE_POPULARITY_EXPONENT = 0.5
SUCCESSOR_WEIGHTS = (0.5, 0.25, 0.15, 0.1)
SEQUENTIAL_SHARE = 0.6
POLICY_TEMPERATURE = 1.0
CONVERSION_CONCENTRATION = 4.0
ACTIVITY_RATE = 0.35
ACTIVITY_SIGMA = 0.8
ACTIVITY_CORRELATION = 0.5
EXTRA_PURCHASES_MEAN = 0.3
MAX_PURCHASES = 5

# Independent random streams, one per concern, so that changing one part of the model does
# not reshuffle the others: SeedSequence(seed, spawn_key=(stream,)).
STREAM_ITEMS, STREAM_USERS, STREAM_ARMS, STREAM_SRM, STREAM_CHUNKS = 0, 1, 2, 3, 10


def stream(seed: int, *key: int) -> np.random.Generator:
    """The generator of one named random stream of a seed."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    out = logits - logits.max(axis=1, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


@dataclass(frozen=True, eq=False)
class World:
    """The latent state behind a simulated dataset (see the module docstring for the model).

    Arrays are indexed by user index ``0..users-1`` and item index ``0..items-1``; the stored
    ids are ``str(index)``, so :meth:`user_index` / :meth:`item_index` map them back.
    """

    config: SimulationConfig
    item_category: np.ndarray  # (items,) int, index into category_names
    category_names: tuple[str, ...]
    item_price: np.ndarray  # (items,) float
    item_popularity: np.ndarray  # (items,) sums to 1 (Zipf)
    item_embedding: np.ndarray  # (items, TASTE_DIM)
    item_quality: np.ndarray  # (items,) standardised log-popularity
    successors: np.ndarray  # (items, 4) int
    user_taste: np.ndarray  # (users, TASTE_DIM)
    user_conversion: np.ndarray  # (users,) latent q_u
    user_activity: np.ndarray  # (users,) sessions per day
    user_arm: np.ndarray  # (users,) int arm index
    user_lost: np.ndarray  # (users,) bool: records lost by the planted SRM
    position_bias: np.ndarray = field(repr=False)  # (slots,)

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: SimulationConfig) -> World:
        """Regenerate the world of ``config`` (deterministic for its seed)."""
        from scipy import special

        n_items, n_users = config.items, config.users
        n_cat = min(len(CATEGORY_NAMES), n_items)

        rng = stream(config.seed, STREAM_ITEMS)
        category = rng.permutation(np.arange(n_items) % n_cat)
        rank = rng.permutation(n_items) + 1
        popularity = rank.astype(float) ** -ZIPF_EXPONENT
        popularity /= popularity.sum()
        log_pop = np.log(popularity)
        quality = (log_pop - log_pop.mean()) / (log_pop.std() or 1.0)
        mu = rng.uniform(np.log(PRICE_RANGE[0]), np.log(PRICE_RANGE[1]), n_cat)
        price = np.round(np.exp(mu[category] + PRICE_LOG_SD * rng.standard_normal(n_items)), 2)
        price = np.maximum(price, 0.5)
        centroids = rng.standard_normal((n_cat, TASTE_DIM))
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        embedding = centroids[category] + ITEM_NOISE * rng.standard_normal(
            (n_items, TASTE_DIM)
        ) / np.sqrt(TASTE_DIM)
        successors = _successors(rng, category, popularity, n_cat)

        rng = stream(config.seed, STREAM_USERS)
        category_pop = np.bincount(category, weights=popularity, minlength=n_cat)
        favourites = rng.choice(n_cat, size=(n_users, 2), p=category_pop / category_pop.sum())
        taste = (
            TASTE_WEIGHTS[0] * centroids[favourites[:, 0]]
            + TASTE_WEIGHTS[1] * centroids[favourites[:, 1]]
            + TASTE_NOISE * rng.standard_normal((n_users, TASTE_DIM)) / np.sqrt(TASTE_DIM)
        )
        a, b = _beta_params(config.base_conversion)
        z = rng.standard_normal(n_users)
        e = rng.standard_normal(n_users)
        q = special.betaincinv(a, b, special.ndtr(z))
        rho = ACTIVITY_CORRELATION
        mixed = rho * z + np.sqrt(1 - rho**2) * e
        activity = ACTIVITY_RATE * np.exp(ACTIVITY_SIGMA * mixed - ACTIVITY_SIGMA**2 / 2)

        split = np.asarray(config.split) / np.sum(config.split)
        arm = stream(config.seed, STREAM_ARMS).choice(len(config.arms), size=n_users, p=split)
        lost_draw = stream(config.seed, STREAM_SRM).random(n_users)
        lost = (arm != 0) & (lost_draw < config.srm)

        position_bias = np.arange(1, config.slots + 1, dtype=float) ** -POSITION_BIAS_EXPONENT
        return cls(
            config=config,
            item_category=category,
            category_names=CATEGORY_NAMES[:n_cat],
            item_price=price,
            item_popularity=popularity,
            item_embedding=embedding,
            item_quality=quality,
            successors=successors,
            user_taste=taste,
            user_conversion=q,
            user_activity=activity,
            user_arm=arm.astype(np.int8),
            user_lost=lost,
            position_bias=position_bias,
        )

    # -- ids ---------------------------------------------------------------------------------

    @property
    def n_users(self) -> int:
        return self.config.users

    @property
    def n_items(self) -> int:
        return self.config.items

    def user_index(self, user_ids: Iterable[str] | np.ndarray) -> np.ndarray:
        """Indices of stored user ids (``"17"`` -> 17); InputError for an id not in this world."""
        return _indices(user_ids, self.config.users, "user")

    def item_index(self, item_ids: Iterable[str] | np.ndarray) -> np.ndarray:
        """Indices of stored item ids (``"17"`` -> 17); InputError for an id not in this world."""
        return _indices(item_ids, self.config.items, "item")

    def arm_index(self, arm: str | int) -> int:
        if isinstance(arm, str):
            if arm not in self.config.arms:
                raise InputError(unknown_choice("arm", arm, self.config.arms))
            return self.config.arms.index(arm)
        if not 0 <= int(arm) < len(self.config.arms):
            raise InputError(f"arm index {arm} out of range 0..{len(self.config.arms) - 1}")
        return int(arm)

    # -- the model ---------------------------------------------------------------------------

    def affinity(self, user_idx: np.ndarray, item_idx: np.ndarray | None = None) -> np.ndarray:
        """``s(u, i) = 3·<t_u, e_i> + 0.3·z_i``: users x items, or pairwise when items given."""
        user_idx = np.asarray(user_idx)
        taste = self.user_taste[user_idx]
        if item_idx is None:
            return AFFINITY_SCALE * (taste @ self.item_embedding.T) + (
                POPULARITY_QUALITY * self.item_quality
            )
        item_idx = np.asarray(item_idx)
        dot = np.einsum("ij,ij->i", taste, self.item_embedding[item_idx])
        return AFFINITY_SCALE * dot + POPULARITY_QUALITY * self.item_quality[item_idx]

    def relevance(self, user_idx: np.ndarray, item_idx: np.ndarray | None = None) -> np.ndarray:
        """Click probability before position bias: ``sigmoid(-4 + s(u, i))``.

        With ``item_idx=None`` a (len(user_idx), items) matrix; else the pairwise values of
        equally long ``user_idx`` and ``item_idx``.
        """
        from scipy.special import expit

        return expit(RELEVANCE_INTERCEPT + self.affinity(user_idx, item_idx))

    def temperature(self, arm: str | int) -> float:
        """The softmax temperature of a non-control arm's policy (``1 / k`` for arm ``k``)."""
        k = self.arm_index(arm)
        if k == 0:
            raise InputError(f"arm {self.config.arms[0]!r} is control: a uniform policy")
        return POLICY_TEMPERATURE / k

    def policy_probs(self, arm: str | int, user_idx: np.ndarray) -> np.ndarray:
        """The arm's logging policy, (len(user_idx), items), rows summing to 1.

        Control: uniform ``1/items``. Arm ``k >= 1``: ``softmax(s(u, ·) / (1/k))``.
        """
        k = self.arm_index(arm)
        user_idx = np.asarray(user_idx)
        if k == 0:
            return np.full((len(user_idx), self.n_items), 1.0 / self.n_items)
        return _softmax_rows(self.affinity(user_idx) / self.temperature(k))

    def browse_probs(self, user_idx: np.ndarray) -> np.ndarray:
        """Organic browsing preference ``b_u(i) ∝ pop_i^0.5 e^{s(u,i)}``, rows sum to 1."""
        logits = self.affinity(user_idx) + BROWSE_POPULARITY_EXPONENT * np.log(self.item_popularity)
        return _softmax_rows(logits)

    def expected_ctr(self, probs: np.ndarray, user_idx: np.ndarray, position: np.ndarray) -> float:
        """Exact expected CTR of a policy over given logged rounds.

        Round ``j`` (user ``user_idx[j]``, 1-based slot ``position[j]``, as stored in
        ``impressions.position``) shows an item drawn from ``probs[j]``:
        ``CTR = mean_j θ_{position_j} Σ_i probs[j, i] · r(user_j, i)``. Computed in blocks of
        rows so memory stays bounded by the block, not by the number of rounds.
        """
        probs = np.asarray(probs, dtype=float)
        user_idx = np.asarray(user_idx)
        position = np.asarray(position)
        n = len(user_idx)
        if probs.shape != (n, self.n_items) or position.shape != (n,):
            raise InputError(
                f"expected_ctr: probs must be ({n}, {self.n_items}) and position ({n},), "
                f"got {probs.shape} and {position.shape}"
            )
        if n == 0:
            raise InputError("expected_ctr: no rounds given")
        if position.min() < 1 or position.max() > self.config.slots:
            raise InputError(f"expected_ctr: positions must be in 1..{self.config.slots}")
        total = 0.0
        block = max(1, 2_000_000 // self.n_items)
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            rel = self.relevance(user_idx[lo:hi])
            per_round = np.einsum("ij,ij->i", probs[lo:hi], rel)
            total += float(np.dot(self.position_bias[position[lo:hi] - 1], per_round))
        return total / n

    # -- exact truths ------------------------------------------------------------------------

    def conversion_rate(self, arm: str | int) -> float:
        """Exact ``E[min(1, q (1 + L_arm))]`` over the population distribution of ``q``."""
        a, b = _beta_params(self.config.base_conversion)
        return _expected_clipped(a, b, 1.0 + self.config.lifts[self.arm_index(arm)])

    def clipped_share(self, arm: str | int) -> float:
        """``P(q (1 + L_arm) > 1)``: how often the clip at probability 1 binds."""
        from scipy import special

        a, b = _beta_params(self.config.base_conversion)
        c = 1.0 + self.config.lifts[self.arm_index(arm)]
        return 0.0 if c <= 1 else float(special.betaincc(a, b, 1.0 / c))

    def purchases_per_converter(self) -> float:
        """``E[1 + min(X, 4)]``, ``X ~ Poisson(0.3)``, exactly:
        ``1 + Σ_{x<4} x p(x) + 4 (1 - Σ_{x<4} p(x))`` with ``p`` the Poisson pmf."""
        cap = MAX_PURCHASES - 1
        mu = EXTRA_PURCHASES_MEAN
        pmf = [math.exp(-mu) * mu**x / math.factorial(x) for x in range(cap)]
        return 1.0 + sum(x * p for x, p in enumerate(pmf)) + cap * (1.0 - math.fsum(pmf))

    def mean_purchase_value(self) -> float:
        """Expected price of a purchased item (items are bought by popularity)."""
        return float(np.dot(self.item_popularity, self.item_price))

    def revenue_per_user(self, arm: str | int) -> float:
        return (
            self.conversion_rate(arm) * self.purchases_per_converter() * self.mean_purchase_value()
        )


def _beta_params(mean: float) -> tuple[float, float]:
    return CONVERSION_CONCENTRATION * mean, CONVERSION_CONCENTRATION * (1.0 - mean)


def _expected_clipped(a: float, b: float, c: float) -> float:
    """``E[min(1, c q)]`` for ``q ~ Beta(a, b)`` and ``c >= 0``."""
    from scipy import special

    mean = a / (a + b)
    if c <= 1.0:
        return c * mean
    t = 1.0 / c
    return float(c * mean * special.betainc(a + 1, b, t) + special.betaincc(a, b, t))


def _successors(
    rng: np.random.Generator, category: np.ndarray, popularity: np.ndarray, n_cat: int
) -> np.ndarray:
    """Four successors per item, drawn within its category by popularity^0.5 (no self-loops
    where the category has another item). One loop over categories, never over items."""
    n_items = len(category)
    width = len(SUCCESSOR_WEIGHTS)
    out = np.empty((n_items, width), dtype=np.int64)
    weights = np.sqrt(popularity)
    for c in range(n_cat):
        members = np.flatnonzero(category == c)
        p = weights[members] / weights[members].sum()
        draws = rng.choice(members, size=(len(members), width), p=p)
        if len(members) > 1:
            # Replace self-loops with the next member of the category (a valid other item).
            own = members[:, None]
            position = np.searchsorted(members, own)
            other = members[(position + 1) % len(members)]
            draws = np.where(draws == own, np.broadcast_to(other, draws.shape), draws)
        out[members] = draws
    return out


def _indices(ids: Iterable[str] | np.ndarray, size: int, kind: str) -> np.ndarray:
    arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids))
    if arr.dtype.kind in "iu":
        out = arr.astype(np.int64)
    else:
        try:
            out = arr.astype(str).astype(np.int64)
        except ValueError:
            bad = next(x for x in arr.astype(str) if not x.strip().lstrip("-").isdigit())
            raise InputError(f"{kind} id '{bad}' is not a simulated {kind} id") from None
    if out.size and (out.min() < 0 or out.max() >= size):
        bad_value = out[(out < 0) | (out >= size)][0]
        raise InputError(f"{kind} id '{bad_value}' is not in this world (0..{size - 1})")
    return out
