"""Generate the traffic of one chunk of users, vectorised (no per-event Python loop).

Every array is built with numpy over all sessions of the chunk at once; the only Python loops
run over the steps of a session (at most :data:`MAX_VIEWS`) and over the arms.

Session anatomy (times relative to the session start ``t0``, which falls inside its day):

* ``t0``: the first product view; the carousel (one slate of ``slots`` positions) is shown
  with it. The session's views follow every 30-120 s (``30 + min(Exp(45 s), 90 s)``).
* ``t0 + k·25/(slots+1)`` s: a ``click`` event for each clicked carousel position ``k``
  (clicks are on the carousel only; browsing is modelled by the views).
* a view is followed 5-24 s later by an ``add_to_cart`` with probability ``0.3·r(u, i)``
  (cart abandonment: no purchase).
* purchases come after the session's last view: purchase ``j`` of the session is a
  ``view`` at ``+40 + 100 j`` s, an ``add_to_cart`` 10 s later and the ``purchase`` 25 s later.

A session starts at most ``86,400 - SESSION_SPAN`` seconds into its day and lasts at most
``(MAX_VIEWS - 1)·120 + 40 + 100·(MAX_PURCHASES - 1) + 25`` = 4,145 s < ``SESSION_SPAN``
(7,200 s), so every timestamp lies inside the session's day. Pre-period sessions show the
control carousel too (the shop's status quo): its clicks are logged as events, its
impressions are not. Impressions exist for the experiment window only; their ``conversion``
and ``value`` columns are NULL, because conversion is planted per user (see
:mod:`abkit.simulate.world`), not attributed to an impression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abkit.simulate.world import (
    EXTRA_PURCHASES_MEAN,
    MAX_PURCHASES,
    SEQUENTIAL_SHARE,
    SUCCESSOR_WEIGHTS,
    World,
)

DAY_US = 86_400 * 1_000_000
SECOND = 1_000_000
SESSION_SPAN = 7_200
MEAN_EXTRA_VIEWS = 4.5
MAX_VIEWS = 30
CART_RATE = 0.3

VIEW, CLICK, ADD_TO_CART, PURCHASE = 0, 1, 2, 3
EVENT_KINDS = ("view", "click", "add_to_cart", "purchase")


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """The rows of one chunk of users (integer codes; the writer turns them into strings).

    Times are microseconds since ``config.start``. ``session`` is the 0-based number of the
    session within its user, in time order; slates are numbered within the chunk.
    """

    ev_user: np.ndarray
    ev_session: np.ndarray
    ev_item: np.ndarray
    ev_kind: np.ndarray
    ev_ts: np.ndarray
    ev_value: np.ndarray  # NaN where not a purchase
    im_slate: np.ndarray
    im_user: np.ndarray
    im_session: np.ndarray
    im_ts: np.ndarray
    im_arm: np.ndarray
    im_item: np.ndarray
    im_position: np.ndarray  # 1-based
    im_propensity: np.ndarray
    im_click: np.ndarray
    as_user: np.ndarray
    as_arm: np.ndarray
    as_ts: np.ndarray
    n_slates: int
    n_sessions: int  # sessions written (a lost user's experiment-window sessions are not)
    expected_clicks: np.ndarray  # (policies, logged arms): Σ over logged rounds of E[click]
    rounds: np.ndarray  # (logged arms,): logged rounds (impression rows)


class _RowSampler:
    """Draw one item per request from per-row categorical distributions, vectorised.

    The rows' cumulative sums are shifted by the row number and flattened, so one
    ``searchsorted`` of ``row + U(0,1)`` samples every request at once (float64 keeps the
    shift exact to about 1e-12 for the chunk sizes used).
    """

    def __init__(self, probs: np.ndarray) -> None:
        n_rows, self.width = probs.shape
        cdf = np.cumsum(probs, axis=1)
        cdf /= cdf[:, -1:]
        cdf[:, -1] = 1.0
        cdf += np.arange(n_rows, dtype=float)[:, None]
        self.flat = cdf.ravel()

    def sample(self, rows: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        found = np.searchsorted(self.flat, rows + uniform, side="right")
        return np.clip(found - rows * self.width, 0, self.width - 1)


def _group_starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0-based rank of each element among equal values of ``groups`` (stable order)."""
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    is_start = np.ones(len(ordered), dtype=bool)
    is_start[1:] = ordered[1:] != ordered[:-1]
    start_index = np.maximum.accumulate(np.where(is_start, np.arange(len(ordered)), 0))
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(ordered)) - start_index
    return rank


def generate_chunk(world: World, lo: int, hi: int, rng: np.random.Generator) -> Chunk:
    """All rows of users ``lo..hi-1`` (see the module docstring for the session anatomy)."""
    config = world.config
    n_items, slots = config.items, config.slots
    n_arms = len(config.arms)
    users = np.arange(lo, hi)
    n_users = hi - lo
    arm = world.user_arm[lo:hi].astype(np.int64)
    lost = world.user_lost[lo:hi]

    # -- sessions -----------------------------------------------------------------------------
    activity = world.user_activity[lo:hi]
    n_pre = rng.poisson(activity * config.pre_days) if config.pre_days else np.zeros(n_users, int)
    n_exp = 1 + rng.poisson(activity * config.days)
    n_sess = n_pre + n_exp
    first = _group_starts(n_sess)
    n_sessions = int(n_sess.sum())
    s_user = np.repeat(np.arange(n_users), n_sess)
    s_number = np.arange(n_sessions) - first[s_user]
    s_exp = s_number >= n_pre[s_user]
    day = np.empty(n_sessions, dtype=np.int64)
    n_pre_sessions = int((~s_exp).sum())
    if n_pre_sessions:
        day[~s_exp] = rng.integers(0, config.pre_days, n_pre_sessions)
    day[s_exp] = config.pre_days + rng.integers(0, config.days, n_sessions - n_pre_sessions)
    second = rng.integers(0, 86_400 - SESSION_SPAN, n_sessions)
    t0 = day * DAY_US + second * SECOND
    # Number sessions in time order within each user (pre-period days come first anyway).
    t0 = t0[np.lexsort((t0, s_user))]

    # -- organic views: taste plus item-to-item transitions -----------------------------------
    relevance = world.relevance(users)
    browse = _RowSampler(world.browse_probs(users))
    successor_cdf = np.cumsum(SUCCESSOR_WEIGHTS)
    successor_cdf[-1] = 1.0
    n_views = 1 + np.minimum(rng.poisson(MEAN_EXTRA_VIEWS, n_sessions), MAX_VIEWS - 1)
    current = np.zeros(n_sessions, dtype=np.int64)
    parts_session, parts_step, parts_item = [], [], []
    for step in range(int(n_views.max())):
        active = np.flatnonzero(n_views > step)
        rows = s_user[active]
        item = browse.sample(rows, rng.random(len(active)))
        if step:
            follow = rng.random(len(active)) < SEQUENTIAL_SHARE
            column = np.searchsorted(successor_cdf, rng.random(len(active)), side="right")
            item = np.where(follow, world.successors[current[active], column], item)
        current[active] = item
        parts_session.append(active)
        parts_step.append(np.full(len(active), step))
        parts_item.append(item)
    v_session = np.concatenate(parts_session)
    v_step = np.concatenate(parts_step)
    v_item = np.concatenate(parts_item)
    order = np.lexsort((v_step, v_session))
    v_session, v_step, v_item = v_session[order], v_step[order], v_item[order]
    gap = np.where(
        v_step == 0,
        0,
        # whole seconds, as most shops log them
        np.round(30 + np.minimum(rng.exponential(45, len(v_step)), 90)).astype(np.int64) * SECOND,
    )
    elapsed = np.cumsum(gap)
    v_start = _group_starts(n_views)
    v_ts = t0[v_session] + elapsed - elapsed[np.repeat(v_start, n_views)]
    last_view_ts = v_ts[v_start + n_views - 1]

    # -- carts without a purchase ----------------------------------------------------------------
    cart = rng.random(len(v_item)) < CART_RATE * relevance[s_user[v_session], v_item]
    c_session, c_item = v_session[cart], v_item[cart]
    c_ts = v_ts[cart] + rng.integers(5, 25, int(cart.sum())) * SECOND

    # -- the carousel: one slate per session; logged (impressions) in the experiment window ----
    s_arm = np.where(s_exp, arm[s_user], 0)
    slate_item = np.empty((n_sessions, slots), dtype=np.int64)
    slate_prop = np.empty((n_sessions, slots), dtype=float)
    expected_clicks = np.zeros((n_arms, n_arms))
    rounds = np.zeros(n_arms, dtype=np.int64)
    logged_user = ~lost
    theta_sum = float(world.position_bias.sum())
    for k in range(n_arms):
        # Σ_i π_k(i|u) r(u,i) per user; the uniform policy needs no matrix of its own.
        probs = None if k == 0 else world.policy_probs(k, users)
        value = relevance.mean(axis=1) if probs is None else np.einsum("ij,ij->i", probs, relevance)
        for a in range(n_arms):
            mask = logged_user & (arm == a)
            expected_clicks[k, a] = theta_sum * float(np.dot(value[mask], n_exp[mask]))
        in_arm = np.flatnonzero(s_arm == k)
        if k == 0:
            slate_item[in_arm] = rng.integers(0, n_items, (len(in_arm), slots))
            slate_prop[in_arm] = 1.0 / n_items
        elif len(in_arm) and probs is not None:
            arm_users = np.flatnonzero(arm == k)
            row_of_user = np.full(n_users, -1)
            row_of_user[arm_users] = np.arange(len(arm_users))
            sampler = _RowSampler(probs[arm_users])
            rows = np.repeat(row_of_user[s_user[in_arm]], slots)
            drawn = sampler.sample(rows, rng.random(len(rows))).reshape(-1, slots)
            slate_item[in_arm] = drawn
            slate_prop[in_arm] = probs[s_user[in_arm][:, None], drawn]
        del probs
    for a in range(n_arms):
        mask = logged_user & (arm == a)
        rounds[a] = int(n_exp[mask].sum()) * slots
    click_prob = world.position_bias[None, :] * relevance[s_user[:, None], slate_item]
    slate_click = rng.random((n_sessions, slots)) < click_prob
    k_session, k_position = np.nonzero(slate_click)
    k_item = slate_item[k_session, k_position]
    k_ts = t0[k_session] + (k_position + 1) * (25 * SECOND // (slots + 1))

    # -- purchases: planted conversion at user level -----------------------------------------
    q = world.user_conversion[lo:hi]
    lifts = np.asarray(config.lifts)[arm]
    converts = rng.random(n_users) < np.minimum(1.0, q * (1.0 + lifts))
    extra = np.minimum(rng.poisson(EXTRA_PURCHASES_MEAN, n_users), MAX_PURCHASES - 1)
    n_buy = np.where(converts, 1 + extra, 0)
    # Pre-period: no treatment; a constant hazard over a window of pre_days instead of days.
    pre_prob = 1.0 - (1.0 - q) ** (config.pre_days / config.days)
    pre_converts = (n_pre > 0) & (rng.random(n_users) < pre_prob)
    pre_extra = np.minimum(rng.poisson(EXTRA_PURCHASES_MEAN, n_users), MAX_PURCHASES - 1)
    n_pre_buy = np.where(pre_converts, 1 + pre_extra, 0)
    buyer = np.concatenate([np.repeat(np.arange(n_users), n_buy),
                            np.repeat(np.arange(n_users), n_pre_buy)])  # fmt: skip
    window_first = np.concatenate([np.repeat(first + n_pre, n_buy), np.repeat(first, n_pre_buy)])
    window_size = np.concatenate([np.repeat(n_exp, n_buy), np.repeat(n_pre, n_pre_buy)])
    p_session = window_first + np.floor(rng.random(len(buyer)) * window_size).astype(np.int64)
    pop_cdf = np.cumsum(world.item_popularity)
    pop_cdf[-1] = 1.0
    p_item = np.minimum(np.searchsorted(pop_cdf, rng.random(len(buyer)), side="right"), n_items - 1)
    p_view_ts = last_view_ts[p_session] + (40 + 100 * _rank_within(p_session)) * SECOND

    # -- events -----------------------------------------------------------------------------
    n_p = len(p_session)
    ev_session = np.concatenate([v_session, k_session, c_session, p_session, p_session, p_session])
    ev_item = np.concatenate([v_item, k_item, c_item, p_item, p_item, p_item])
    ev_kind = np.concatenate([
        np.full(len(v_session), VIEW), np.full(len(k_session), CLICK),
        np.full(len(c_session), ADD_TO_CART), np.full(n_p, VIEW),
        np.full(n_p, ADD_TO_CART), np.full(n_p, PURCHASE),
    ]).astype(np.int8)  # fmt: skip
    ev_ts = np.concatenate([
        v_ts, k_ts, c_ts, p_view_ts, p_view_ts + 10 * SECOND, p_view_ts + 25 * SECOND,
    ])  # fmt: skip
    ev_value = np.full(len(ev_kind), np.nan)
    ev_value[len(ev_kind) - n_p :] = world.item_price[p_item]
    ev_user = s_user[ev_session]
    keep = ~(lost[ev_user] & s_exp[ev_session])
    order = np.lexsort((ev_kind, ev_ts, ev_user))
    order = order[keep[order]]

    # -- impressions and assignments (experiment window, users not lost) ----------------------
    slate_logged = np.flatnonzero(s_exp & ~lost[s_user])
    n_slates = len(slate_logged)
    im_session = np.repeat(slate_logged, slots)
    first_exp = first + n_pre
    assigned = np.flatnonzero(~lost)

    return Chunk(
        ev_user=users[ev_user[order]],
        ev_session=s_number[ev_session[order]],
        ev_item=ev_item[order],
        ev_kind=ev_kind[order],
        ev_ts=ev_ts[order],
        ev_value=ev_value[order],
        im_slate=np.repeat(np.arange(n_slates), slots),
        im_user=users[s_user[im_session]],
        im_session=s_number[im_session],
        im_ts=t0[im_session],
        im_arm=s_arm[im_session].astype(np.int8),
        im_item=slate_item[slate_logged].ravel(),
        im_position=np.tile(np.arange(1, slots + 1, dtype=np.int32), n_slates),
        im_propensity=slate_prop[slate_logged].ravel(),
        im_click=slate_click[slate_logged].ravel().astype(np.int8),
        as_user=users[assigned],
        as_arm=arm[assigned].astype(np.int8),
        as_ts=t0[first_exp[assigned]],
        n_slates=n_slates,
        n_sessions=int((~(lost[s_user] & s_exp)).sum()),
        expected_clicks=expected_clicks,
        rounds=rounds,
    )
