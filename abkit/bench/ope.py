"""The off-policy line of ``abkit bench``: the data, abkit's side and its three references.

* **the data** (:func:`prep_offpolicy`): logged rounds of a uniform-random logging policy over
  ``actions`` items (propensity ``1/actions``, as in the Open Bandit Dataset's random logs),
  clicks with known per-item rates, and a context-dependent softmax target policy;
* **abkit** (:func:`abkit_offpolicy`): :func:`abkit.replay.offpolicy.estimate_policy_value`,
  IPS with its Poisson-bootstrap interval;
* **plain numpy** (:func:`numpy_poisson_ips`): the Poisson bootstrap as a competent user
  writes it in numpy;
* **Open Bandit Pipeline's code path** (:func:`obp_ipw_round_rewards`,
  :func:`obp_bootstrap_interval`): obp does not install on Python 3.11, so its formulas are
  reimplemented here line for line, as a user would;
* **a per-row Python loop** plus OBP's bootstrap (information only).

This module imports only numpy and abkit's off-policy module, so the processes of every side
carry the same libraries and their peak memories compare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from abkit.bench.harness import Clock, TaskOutcome
from abkit.replay.offpolicy import estimate_policy_value

if TYPE_CHECKING:
    import numpy as np


def prep_offpolicy(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """Logged rounds of a uniform-random logging policy over ``actions`` items (propensity
    ``1/actions``, as in the Open Bandit Dataset's random logs), clicks with known per-item
    rates, and a context-dependent target policy: a softmax over the items of per-user scores,
    so its probability of the logged item differs from round to round (one user per 100
    rounds)."""
    import numpy as np

    rng = np.random.default_rng(int(params["seed"]))
    n, actions = int(params["rounds"]), int(params["actions"])
    users = max(1, n // 100)
    rates = 0.002 + 0.02 * rng.random(actions)
    scores = rng.standard_normal((users, actions)) + 3.0 * rates / rates.max()
    policy = np.exp(scores)
    policy /= policy.sum(axis=1, keepdims=True)
    user = rng.integers(0, users, size=n)
    action = rng.integers(0, actions, size=n)
    reward = (rng.random(n) < rates[action]).astype(np.float64)
    np.savez(
        params["offpolicy_npz"],
        reward=reward,
        pscore=np.full(n, 1.0 / actions),
        target_prob=policy[user, action],
    )
    return TaskOutcome(units=float(n))


def abkit_offpolicy(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """:func:`abkit.replay.offpolicy.estimate_policy_value`: IPS with a ``bootstrap``-resample
    Poisson-bootstrap percentile interval, on every logged round."""
    import numpy as np

    data = np.load(params["offpolicy_npz"], allow_pickle=False)
    reward, pscore, target = data["reward"], data["pscore"], data["target_prob"]
    # warm-up on a slice: imports (scipy.stats) and first-call costs stay out of the timing
    estimate_policy_value(
        reward[:1000], pscore[:1000], target[:1000], estimator="ips", ci="bootstrap", n_boot=10
    )
    with clock:
        estimate = estimate_policy_value(
            reward,
            pscore,
            target,
            estimator="ips",
            ci="bootstrap",
            n_boot=int(params["bootstrap"]),
            rng=np.random.default_rng(int(params["seed"])),
        )
    return TaskOutcome(units=float(reward.size), check=estimate.raw_value)


def _offpolicy_arrays(params: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    import numpy as np

    data = np.load(params["offpolicy_npz"], allow_pickle=False)
    return data["reward"], data["pscore"], data["target_prob"]


def numpy_poisson_ips(
    reward: np.ndarray,
    pscore: np.ndarray,
    target: np.ndarray,
    *,
    n_boot: int,
    rng: np.random.Generator,
    alpha: float = 0.05,
    block: int = 1 << 22,
) -> tuple[float, float, float]:
    """IPS with a Poisson-bootstrap percentile interval in plain numpy, as a competent user
    writes it: (estimate, low, high).

    The estimate is ``mean(pi_i / p_i * r_i)``; a replicate is ``sum_i P_i w_i r_i /
    sum_i P_i`` with independent ``P_i ~ Poisson(1)``. Only rewarded rounds move the
    numerator, so they get one Poisson(1) weight each (in blocks of replicates of about
    ``block`` draws, never an n x B matrix), and the other rounds' weights enter the
    denominator as one Poisson(n0) total per replicate (a sum of independent Poisson(1) is
    Poisson(n0))."""
    import numpy as np

    terms = target / pscore * reward
    estimate = float(terms.mean())
    rewarded = terms[terms != 0]
    n_zero = terms.size - rewarded.size
    replicates = np.empty(n_boot)
    per_block = max(1, block // max(1, rewarded.size))
    for first in range(0, n_boot, per_block):
        last = min(first + per_block, n_boot)
        weights = rng.poisson(1.0, size=(last - first, rewarded.size))
        numerator = weights @ rewarded
        denominator = weights.sum(axis=1) + rng.poisson(n_zero, size=last - first)
        replicates[first:last] = numerator / denominator
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return estimate, float(low), float(high)


def numpy_ips(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """:func:`numpy_poisson_ips` on every logged round (the bench's plain-numpy reference)."""
    import numpy as np

    reward, pscore, target = _offpolicy_arrays(params)
    with clock:
        estimate, _, _ = numpy_poisson_ips(
            reward,
            pscore,
            target,
            n_boot=int(params["bootstrap"]),
            rng=np.random.default_rng(int(params["seed"])),
        )
    return TaskOutcome(units=float(reward.size), check=estimate)


def obp_ipw_round_rewards(
    reward: np.ndarray, pscore: np.ndarray, target: np.ndarray, *, lambda_: float = math.inf
) -> np.ndarray:
    """Open Bandit Pipeline's ``InverseProbabilityWeighting._estimate_round_rewards``
    (obp 0.5, ``obp/ope/estimators.py``) with the target policy's probability of the logged
    action already picked out of its ``action_dist`` (``action_dist[i, a_i, position_i]``):
    ``iw = pi / pscore``, clipped at ``lambda_`` (no clipping by default), times the reward."""
    import numpy as np

    iw = target / pscore
    if lambda_ < math.inf:
        iw = np.minimum(iw, lambda_)
    return reward * iw


def obp_bootstrap_interval(
    samples: np.ndarray, *, alpha: float = 0.05, n_bootstrap_samples: int, random_state: int
) -> dict[str, float]:
    """OBP's ``estimate_confidence_interval_by_bootstrap`` (``obp/utils.py``): per resample
    ``np.mean(random_.choice(samples, size=samples.shape[0]))`` with a
    ``check_random_state``-style ``RandomState``, in a Python loop; the percentile interval
    and the mean of the resampled means."""
    import numpy as np

    random_ = np.random.RandomState(random_state)
    boot_samples = [
        np.mean(random_.choice(samples, size=samples.shape[0])) for _ in range(n_bootstrap_samples)
    ]
    lower_bound = np.percentile(boot_samples, 100 * (alpha / 2))
    upper_bound = np.percentile(boot_samples, 100 * (1.0 - alpha / 2))
    return {
        "mean": float(np.mean(boot_samples)),
        f"{100 * (1.0 - alpha)}% CI (lower)": float(lower_bound),
        f"{100 * (1.0 - alpha)}% CI (upper)": float(upper_bound),
    }


def obp_ips(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """OBP's code path for IPW with its bootstrap interval: ``estimate_policy_value`` (the
    mean of the round rewards) on every round, ``estimate_interval`` (the bootstrap above) on
    the first ``subsample`` rounds, its time extrapolated linearly to all rounds (each
    resample costs O(n)); running it whole would take minutes per run."""
    reward, pscore, target = _offpolicy_arrays(params)
    total = reward.size
    n = min(int(params["subsample"]), total)
    boot = int(params["bootstrap"])
    with clock:
        estimate = float(obp_ipw_round_rewards(reward, pscore, target).mean())
    whole = clock.seconds
    with clock:
        samples = obp_ipw_round_rewards(reward[:n], pscore[:n], target[:n])
        obp_bootstrap_interval(samples, n_bootstrap_samples=boot, random_state=int(params["seed"]))
    part = clock.seconds - whole
    # the estimate was timed whole; the bootstrap on n rounds scales by total / n
    scale = (whole + part * total / n) / clock.seconds
    return TaskOutcome(
        units=float(total),
        check=estimate,
        extrapolation=scale,
        note=f"bootstrap measured on {n:,} of {total:,} rounds, its time extrapolated linearly",
    )


def loop_ips(params: Mapping[str, Any], clock: Clock) -> TaskOutcome:
    """IPS the way per-row code does it: a Python loop for the importance-weighted rewards
    ``w_i r_i = pi(a_i|x_i) / p_i * r_i``, then OBP's bootstrap (above). On the first
    ``subsample`` rows only, extrapolated linearly (both parts are O(n) per resample); the
    line is for information, it has no target."""
    import numpy as np

    reward_all, pscore_all, target_all = _offpolicy_arrays(params)
    total = reward_all.size
    n = min(int(params["subsample"]), total)
    reward = reward_all[:n].tolist()
    pscore = pscore_all[:n].tolist()
    target = target_all[:n].tolist()
    with clock:
        samples = []
        for r, p, q in zip(reward, pscore, target, strict=True):
            samples.append(q / p * r)
        values = np.asarray(samples)
        obp_bootstrap_interval(
            values, n_bootstrap_samples=int(params["bootstrap"]), random_state=int(params["seed"])
        )
    return TaskOutcome(
        units=float(total),
        extrapolation=total / n,
        note=f"measured on {n:,} of {total:,} rows, time extrapolated linearly",
    )
