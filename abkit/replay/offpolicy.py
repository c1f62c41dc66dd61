"""Off-policy estimates of a target policy's reward rate from logged impressions.

Each logged round i shows item a_i in slot p_i to context x_i (the user), chosen by the logging
policy with known propensity mu_i = mu(a_i | x_i, p_i), and records the reward r_i (a click).
A target policy pi gives pi_i = pi(a_i | x_i, p_i); the importance weight is
w_i = pi_i / mu_i. With n rounds:

* **IPS** (Horvitz & Thompson 1952; Precup et al. 2000):  V = (1/n) sum w_i r_i. Unbiased
  when mu_i > 0 wherever pi_i > 0.
* **SNIPS**, self-normalised IPS (Swaminathan & Joachims 2015):  V = sum w_i r_i / sum w_i.
  Slightly biased, far less variable when weights are uneven.
* **DR**, doubly robust (Dudík, Langford & Li 2011):
  V = (1/n) sum [ q(x_i, pi) + w_i (r_i - q(x_i, a_i)) ] with a reward model q; unbiased when
  either the propensities or the reward model are right. abkit's reward model is the click
  rate of each (item, slot), shrunk toward the slot's rate with ``prior_rounds`` pseudo-rounds
  and cross-fitted over two folds (rounds with even / odd impression id; by a hash of the
  user or slate when the id's parity is the slot's, as with slates of an even number of slots),
  so no round's own reward enters its q.
* **replay** (Li, Chu, Langford & Wang 2011):  V = sum pi_i r_i / sum pi_i, i.e. the mean
  reward of the rounds where the logged item is the one the policy would have shown
  (weighted by pi_i for stochastic policies). Exact only on uniformly random logs; abkit
  refuses it when the propensities are not all equal.

Estimand and confidence intervals (level 1 - alpha). The estimand is the target policy's
expected reward **per logged round**, over the population of randomisation units (users) that
produced the logs: V = E[sum of a unit's round values] / E[its number of rounds]. The rounds of
one user share the user (and the slots of one slate share the context and the logging draw),
so they are not independent: every interval is **clustered** by ``clusters`` (the replay
runner passes the user for user-level datasets, the slate, or else the impression, for
impression-level datasets such as OBD; None treats every round as its own unit). Each
estimator is a ratio of sums, V = sum num_i / sum den_i (den_i = 1 for IPS and DR, w_i for
SNIPS, pi_i for replay), whose linearisation is e_i = num_i - V den_i; with cluster totals
E_g = sum_{i in g} e_i over G clusters,

    SE = sqrt(G / (G - 1) * sum_g E_g^2) / sum_i den_i

(the cluster-robust "CR1" sandwich: Liang & Zeger 1986; Cameron & Miller 2015, J. Human
Resources 50:317). With one round per cluster it is the usual sd / sqrt(n) for IPS and DR and
the delta-method SE of the ratio estimators (times sqrt(n / (n - 1))). ``normal`` (the
default) is V +/- z SE. ``bootstrap`` is the Poisson bootstrap (Hanley & MacGibbon 2006;
Chamandy et al. 2012) over CLUSTERS: each cluster gets one Poisson(1) count per resample,
shared by all its rounds, and the estimate is recomputed as a ratio of weighted sums; that is
done on the per-cluster totals of num and den (one ``np.bincount`` pass), and clusters with
identical totals are pooled (a sum of m Poisson(1) counts is Poisson(m)), so uniformly random
logs with a deterministic policy cost O(resamples x distinct totals). Percentile intervals.

Bounded rewards (``reward_range``, [0, 1] by default: clicks and conversions). A normal or
bootstrap interval alone fails for rare clicks: with no click among the rounds the policy
could have produced, IPS and SNIPS are 0 with SE 0 and the interval is [0, 0] (on the OBD
Men's Bernoulli-TS logs, 298 matched rounds of a top-k policy hold no click, while the rate is
about 0.005), and with one or two clicks V - z SE < 0 and the upper end is far below the
exact one. So, for a bounded range [lo, hi], the interval is the hull of that interval and
the **Korn-Graubard** interval (Korn & Graubard 1998, Survey Methodology 24:193; Dean & Pagano
2015, J. Survey Statistics and Methodology 3:1), a Clopper-Pearson interval (Clopper & Pearson
1934) on an effective sample size, then clipped to [lo, hi]. With p = (V - lo) / (hi - lo),

    n* = p (1 - p) / (SE / (hi - lo))^2, at most n_max   (0 < p < 1 and SE > 0)
    n* = ESS_G = (sum_g W_g)^2 / sum_g W_g^2            (otherwise: e.g. no reward observed)
    x* = n* p
    [Beta(alpha/2; x*, n* - x* + 1), Beta(1 - alpha/2; x* + 1, n* - x*)]   (0 / 1 at x* = 0 / n*)

where W_g is cluster g's total weight (w_i; pi_i for replay), so ESS_G is Kish's effective
sample size of the clusters (the number of matched rounds for a deterministic policy on
uniform logs without clustering). n_max is n (as Korn & Graubard cap it), but ESS_G when the
rewards are rare: fewer than 30 (``RARE_REWARDS``) clusters hold a round with pi > 0 and a
reward above lo (or, symmetrically, below hi). Then the SE rests on a few rewarded rounds and
misses the heavy-weight rounds that happened to get no reward (a simulation with weights from
3 to 50 and about four expected clicks covers 80% without the cap), so the design effect is
taken to be at least Kish's weighting one, n / ESS_G. With no reward observed the interval is
thus
[lo, lo + (hi - lo) (1 - (alpha/2)^(1/ESS_G))] (for DR at least that), never of zero width;
with a rewarded round x* is about the number of rewarded matched rounds and the interval is
the exact binomial one. Rewards outside [lo, hi] are refused; an unbounded range (the
``value`` reward: ``(-inf, inf)``) keeps the normal or bootstrap interval as it is. The point
estimate is clipped to [lo, hi] like its interval (DR's model term, or IPS's weights, can
carry the formula's value past an end); the formula's own value stays beside it
(``Estimate.value_unclipped``). Coverage
of the 95% interval for click rates down to 1 expected click in the matched rounds is checked
by simulation (tests/replay/test_offpolicy.py).

Weight diagnostics: Kish's effective sample size ESS = (sum w)^2 / sum w^2, ESS / n, the largest
weight and the mean weight (which is 1 in expectation when the propensities are right). An
estimate whose ESS is below ``min_ess`` (default 30) is **refused**: its value is withheld and
the reason says why (e.g. on the OBD Bernoulli-TS logs a uniform policy has one weight above
20,000 and ESS about 2, so one round decides the estimate).

How a recommender becomes a per-slot policy (:func:`policy_probabilities`): ``topk`` (the
default) is deterministic, slot p shows the recommender's p-th ranked item, so
pi(a | x, p) = 1[a = rank_p(x)]. ``stochastic`` draws the item of every slot independently from
the recommender's distribution over the catalogue (the way the simulator's and the OBD's
logging policies choose): uniform for ``random``, proportional to popularity for
``popularity``, a softmax of the scores with ``temperature`` for the others; then
pi(a | x, p) = P(a | x) for every slot.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from abkit._util import unknown_choice
from abkit.errors import InputError, param
from abkit.plugins import softmax_probabilities
from abkit.stats.dist import beta_ppf, norm_ppf
from abkit.stats.paired import cluster_codes, clustered_covariance

if TYPE_CHECKING:
    import numpy as np

    from abkit.plugins import Recommender, TrainingData
    from abkit.replay.policy_file import PolicyFile

__all__ = [
    "CI_METHODS",
    "ESTIMATORS",
    "POLICIES",
    "UNIT_RANGE",
    "WEIGHT_TOLERANCE",
    "Estimate",
    "PolicyRounds",
    "WeightDiagnostics",
    "cross_fitted_tables",
    "degenerate_policy_warnings",
    "estimate_policy_value",
    "file_policy_probabilities",
    "fit_reward_table",
    "parse_estimators",
    "poisson_bootstrap_ratio",
    "policy_probabilities",
]

EstimatorName = Literal["replay", "ips", "snips", "dr"]
ESTIMATORS: tuple[str, ...] = ("replay", "ips", "snips", "dr")
CI_METHODS: tuple[str, ...] = ("normal", "bootstrap")  # the intervals of an estimate
PolicyKind = Literal["topk", "stochastic"]
POLICIES: tuple[str, ...] = ("topk", "stochastic")
CIMethod = Literal["normal", "bootstrap"]
DEFAULT_MIN_ESS = 30.0
UNIT_RANGE: tuple[float, float] = (0.0, 1.0)  # clicks, conversions
RARE_REWARDS = 30  # fewer rewarded clusters: the SE is not trusted (Korn-Graubard cap)


def parse_estimators(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"ips,snips"`` -> ``("ips", "snips")``; a did-you-mean error for an unknown name."""
    parts = (
        [p.strip().lower() for p in value.split(",")]
        if isinstance(value, str)
        else [str(p).strip().lower() for p in value]
    )
    out: list[str] = []
    for part in parts:
        if part not in ESTIMATORS:
            raise InputError(
                f"{param('estimators')}: " + unknown_choice("estimator", part, ESTIMATORS)
            )
        if part not in out:
            out.append(part)
    if not out:
        raise InputError(f"{param('estimators')}: expected one or more of {', '.join(ESTIMATORS)}")
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class WeightDiagnostics:
    """How usable the importance weights are."""

    n: int
    ess: float
    ess_ratio: float
    max_weight: float
    mean_weight: float
    nonzero: int  # rounds the target policy could have produced (w > 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "ess": self.ess,
            "ess_ratio": self.ess_ratio,
            "max_weight": self.max_weight,
            "mean_weight": self.mean_weight,
            "nonzero": self.nonzero,
        }


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """One estimator's result; ``value`` and the interval are None when ``refused``.

    ``value`` is clipped to the reward's range like the interval, so the interval always
    holds it; ``value_unclipped`` is the estimator's own formula (equal to the Open Bandit
    Pipeline's), which can fall outside that range: DR's model term is not bounded (on the
    OBD a top-k policy's DR came out at -0.00011 with interval [0, 0.0486]), and IPS's
    weights can take it above the top. Both are None when refused, and ``to_dict`` always
    carries both keys (``value_unclipped`` equals ``value`` unless ``clipped``), so the JSON
    has one schema; ``raw_value`` is the unclipped value even when refused (the stored
    diagnostics). An unbounded range (``(-inf, inf)``) clips nothing.
    """

    estimator: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    se: float | None
    level: float
    ci_method: str
    ess: float
    n: int
    clusters: int  # independent units the interval rests on (n when rounds are independent)
    diagnostics: WeightDiagnostics
    refused: str | None
    flags: tuple[str, ...]
    raw_value: float  # the computed value, unclipped, kept for diagnosis even when refused

    @property
    def value_unclipped(self) -> float | None:
        """The estimator's own value before clipping to the reward's range (None if refused)."""
        return None if self.value is None else self.raw_value

    @property
    def clipped(self) -> bool:
        """Whether ``value`` was moved to the end of the reward's range."""
        return (
            self.value is not None
            and math.isfinite(self.raw_value)
            and self.value != self.raw_value
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "value_unclipped": self.value_unclipped,
            "ci": None if self.ci_low is None else [self.ci_low, self.ci_high],
            "se": self.se,
            "level": self.level,
            "ci_method": self.ci_method,
            "ess": self.ess,
            "n": self.n,
            "clusters": self.clusters,
            "refused": self.refused,
            "flags": list(self.flags),
            "diagnostics": self.diagnostics.to_dict(),
        }

    def diagnostics_json(self) -> str:
        payload = self.diagnostics.to_dict()
        payload.update(
            clusters=self.clusters,
            refused=self.refused,
            flags=list(self.flags),
            raw_value=self.raw_value,
            se=self.se,
            level=self.level,
            ci_method=self.ci_method,
        )
        return json.dumps(finite_json(payload), allow_nan=False)


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (for strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def weight_diagnostics(weights: np.ndarray) -> WeightDiagnostics:
    import numpy as np

    n = int(weights.size)
    total = float(weights.sum())
    squares = float(np.dot(weights, weights))  # no n-long temporary
    ess = total * total / squares if squares > 0 else 0.0
    return WeightDiagnostics(
        n=n,
        ess=ess,
        ess_ratio=ess / n if n else 0.0,
        max_weight=float(weights.max()) if n else 0.0,
        mean_weight=total / n if n else 0.0,
        nonzero=int(np.count_nonzero(weights)),
    )


def poisson_bootstrap_ratio(
    numerator: np.ndarray,
    denominator: np.ndarray | None,
    *,
    n_boot: int,
    rng: np.random.Generator,
    block: int = 1 << 20,
    skip_empty: bool = False,
    large_group: int = 64,
) -> np.ndarray:
    """``n_boot`` Poisson-bootstrap replicates of sum(numerator) / sum(denominator).

    Each entry (a round, or a cluster's totals) gets an independent Poisson(1) count per
    replicate. ``denominator=None`` means 1 for every entry (IPS, DR): nothing n-long is built
    for it. Two exact shortcuts keep this fast on millions of rounds:

    * entries with identical (numerator, denominator) pairs are pooled: a sum of m independent
      Poisson(1) counts is Poisson(m), so a pooled group of ``large_group`` or more entries
      (e.g. every non-click under IPS) costs one draw per replicate;
    * the remaining (small) groups use the superposition property: independent Poisson(c_j)
      counts have the joint law of ``N ~ Poisson(sum c_j)`` draws allocated to the groups with
      probabilities c_j / sum c_j. So a replicate costs one Poisson draw and N uniform
      integers (about as many as there are entries) instead of one Poisson variate per entry
      (~50x cheaper per entry). Replicates are processed in blocks of about ``block`` draws
      (12 MB of temporaries: the draws and the gathered numerators);
      when the small groups share one denominator (IPS: every round's is 1), a replicate's
      denominator is N times it, so only the numerators are gathered.

    ``skip_empty`` drops (0, 0) entries first (codes of empty clusters; they cannot change a
    replicate). A replicate whose denominator is 0 is NaN.
    """
    import numpy as np

    num = np.asarray(numerator, dtype=np.float64)
    den = None if denominator is None else np.asarray(denominator, dtype=np.float64)
    if skip_empty and den is not None:
        keep = (num != 0) | (den != 0)
        num, den = num[keep], den[keep]
    num_values, den_values, counts = _pool_pairs(num, den)

    large = counts >= large_group
    draws = rng.poisson(counts[large], size=(n_boot, int(large.sum()))).astype(np.float64)
    num_sum = draws @ num_values[large]
    den_sum = draws @ den_values[large]

    small_counts = counts[~large]
    if small_counts.size:
        # one row per entry of the small groups, so a uniform integer picks an entry directly
        small_num = np.repeat(num_values[~large], small_counts)
        small_den_values = den_values[~large]
        shared_den = float(small_den_values[0])
        if not np.all(small_den_values == shared_den):
            shared_den = math.nan
        small_den = None if math.isfinite(shared_den) else np.repeat(small_den_values, small_counts)
        total = small_num.size
        index = np.int32 if total < 2**31 else np.int64  # 32-bit draws are about twice as fast
        sizes = rng.poisson(total, size=n_boot)
        per_block = max(1, block // total)
        for first in range(0, n_boot, per_block):
            last = min(first + per_block, n_boot)
            block_sizes = sizes[first:last]
            ticket = rng.integers(0, total, size=int(block_sizes.sum()), dtype=index)
            # replicate boundaries inside the flat draw; reduceat needs non-empty segments
            nonempty = block_sizes > 0
            starts = (np.cumsum(block_sizes) - block_sizes)[nonempty]
            if ticket.size:
                num_sum[first:last][nonempty] += np.add.reduceat(small_num[ticket], starts)
                if small_den is not None:
                    den_sum[first:last][nonempty] += np.add.reduceat(small_den[ticket], starts)
            if small_den is None:
                den_sum[first:last] += block_sizes * shared_den
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den_sum != 0, num_sum / np.where(den_sum != 0, den_sum, 1), np.nan)


def _pool_pairs(
    num: np.ndarray, den: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (numerator, denominator) pairs and their counts (``den=None``: all 1).

    Rounds without a reward (numerator 0) are most of a log; they are pooled by denominator
    alone, without sorting when the denominator is constant (IPS), so only the rewarded rounds
    pay for a sort of complex pairs.
    """
    import numpy as np

    zero = num == 0
    rewarded = np.flatnonzero(~zero)
    n_zero = num.size - rewarded.size
    if den is None:
        zero_den, zero_counts = np.ones(1 if n_zero else 0), np.array([n_zero] if n_zero else [])
        rewarded_den = np.ones(rewarded.size)
    else:
        den_zero = den[zero]
        if den_zero.size and den_zero.min() == den_zero.max():
            zero_den, zero_counts = den_zero[:1], np.array([den_zero.size])
        else:
            zero_den, zero_counts = np.unique(den_zero, return_counts=True)
        rewarded_den = den[rewarded]
    distinct, counts = np.unique(num[rewarded] + 1j * rewarded_den, return_counts=True)
    return (
        np.concatenate([np.zeros(zero_den.size), distinct.real]),
        np.concatenate([zero_den, distinct.imag]),
        np.concatenate([zero_counts, counts]).astype(np.int64),
    )


def _sum_of_squares(values: np.ndarray, center: float = 0.0, *, block: int = 1 << 20) -> float:
    """``sum((values - center)^2)`` in blocks: no n-long temporary."""
    import numpy as np

    total = 0.0
    for first in range(0, values.size, block):
        part = values[first : first + block] - center
        total += float(np.dot(part, part))
    return total


def _ratio_residual_squares(
    numerator: np.ndarray, denominator: np.ndarray | None, value: float, *, block: int = 1 << 20
) -> float:
    """``sum((num_i - value den_i)^2)`` in blocks (``denominator=None``: all 1)."""
    import numpy as np

    if denominator is None:
        return _sum_of_squares(numerator, value, block=block)
    total = 0.0
    for first in range(0, numerator.size, block):
        part = numerator[first : first + block] - value * denominator[first : first + block]
        total += float(np.dot(part, part))
    return total


def _check_inputs(
    rewards: np.ndarray,
    propensities: np.ndarray,
    target: np.ndarray,
    reward_range: tuple[float, float],
) -> None:
    import numpy as np

    lo, hi = (float(b) for b in reward_range)
    if not lo < hi or math.isnan(lo) or math.isnan(hi):
        raise InputError(f"{param('reward_range')} must be (low, high) with low < high")

    n = rewards.shape[0]
    if n == 0:
        raise InputError("no logged rounds to estimate from")
    if propensities.shape[0] != n or target.shape[0] != n:
        raise InputError("rewards, propensities and target probabilities differ in length")
    if not np.all(np.isfinite(rewards)):
        raise InputError("rewards must be finite numbers")
    outside = (rewards < lo) | (rewards > hi)
    if np.any(outside):
        bad = int(np.argmax(outside))
        raise InputError(
            f"reward of round {bad} is {float(rewards[bad])!r}, outside the reward's range "
            f"[{lo:g}, {hi:g}]"
        )
    if not np.all((propensities > 0) & (propensities <= 1)):
        bad = int(np.argmax(~((propensities > 0) & (propensities <= 1))))
        raise InputError(
            f"propensity of round {bad} is {float(propensities[bad])!r}, expected (0, 1]"
        )
    if not np.all((target >= 0) & (target <= 1 + 1e-9)):
        raise InputError("target policy probabilities must lie in [0, 1]")


def estimate_policy_value(
    rewards: np.ndarray,
    propensities: np.ndarray,
    target_probs: np.ndarray,
    *,
    estimator: str,
    q_logged: np.ndarray | None = None,
    q_policy: np.ndarray | None = None,
    alpha: float = 0.05,
    ci: CIMethod = "normal",
    n_boot: int = 1000,
    rng: np.random.Generator | None = None,
    min_ess: float = DEFAULT_MIN_ESS,
    clusters: np.ndarray | None = None,
    reward_range: tuple[float, float] = UNIT_RANGE,
) -> Estimate:
    """Estimate the target policy's mean reward per round (see the module docstring).

    ``target_probs`` is pi(a_i | x_i, p_i) for each logged round; ``q_logged`` / ``q_policy``
    (the reward model at the logged item, and its expectation under pi) are needed by ``dr``.
    ``clusters`` labels each round's randomisation unit (user id or index; slate or impression
    for impression-level logs): the SE and the bootstrap treat units, not rounds, as the
    independent draws. None: every round is its own unit. ``rng`` drives the bootstrap only.
    ``reward_range`` bounds the rewards ([0, 1] for clicks and conversions; ``(-inf, inf)``
    for unbounded ones): a bounded range adds the Korn-Graubard effective-sample
    Clopper-Pearson interval (hull) and clips the interval to the range (module docstring).
    """
    import numpy as np

    if estimator not in ESTIMATORS:
        raise InputError(unknown_choice("estimator", estimator, ESTIMATORS))
    if ci not in CI_METHODS:
        raise InputError(
            f"{param('ci')}: " + unknown_choice("interval method", str(ci), CI_METHODS)
        )
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be between 0 and 1, got {alpha}")
    r = np.asarray(rewards, dtype=np.float64)
    mu = np.asarray(propensities, dtype=np.float64)
    pi = np.asarray(target_probs, dtype=np.float64)
    _check_inputs(r, mu, pi, reward_range)
    n = r.size
    # independent rounds (no clusters): the plain per-round variance, no n-long codes
    codes, n_clusters = (None, n) if clusters is None else cluster_codes(clusters, n)
    w = pi / mu
    diag = weight_diagnostics(w)
    flags: list[str] = []
    refused: str | None = None
    lo, hi = (float(b) for b in reward_range)
    bounded = math.isfinite(lo) and math.isfinite(hi)

    # Everything that needs the weights themselves is computed first, so that under IPS the
    # weight array can become the numerator in place: at 10M rounds that is 80 MB less.
    if n_clusters > 1 and estimator in ("ips", "dr", "snips"):
        # E[w] = 1 under the logging policy; its SE is clustered like the estimates'
        if codes is None:  # every round its own cluster: no n-long temporary
            var_w = _sum_of_squares(w, diag.mean_weight) * n / (n - 1)
        else:
            var_w = float(clustered_covariance(w - diag.mean_weight, codes, n_clusters)[0, 0])
        se_w = math.sqrt(var_w) / n if var_w > 0 else 0.0
        if se_w > 0 and abs(diag.mean_weight - 1) > 4 * se_w:
            flags.append(
                f"the mean weight is {diag.mean_weight:.3g}, not 1: the propensities may not "
                "be those of the logging policy"
            )
    ess_g = rewarded = unrewarded = 0.0
    if bounded:
        # Korn-Graubard's inputs (module docstring): the clusters' ESS, and the rewarded
        # clusters (and clusters short of the top) among rounds pi could produce
        if estimator == "replay":
            ess_g = cluster_ess(pi, codes, n_clusters)
        else:
            ess_g = diag.ess if codes is None else cluster_ess(w, codes, n_clusters)
        seen = w > 0 if estimator != "replay" else pi > 0
        rewarded = _clusters_among(codes, seen & (r > lo))
        unrewarded = _clusters_among(codes, seen & (r < hi))
        del seen

    # numerator_i / denominator_i per round; None as denominator: 1 for every round
    denominator: np.ndarray | None
    if estimator == "replay":
        spread = float(mu.max() - mu.min())
        if spread > 1e-9 * float(mu.max()):
            refused = (
                f"replay needs uniformly random logs, but the propensities range from "
                f"{mu.min():.3g} to {mu.max():.3g}; use ips, snips or dr"
            )
        numerator, denominator = pi * r, pi
    elif estimator == "ips":
        numerator, denominator = np.multiply(w, r, out=w), None  # w is not needed any more
    elif estimator == "snips":
        numerator, denominator = w * r, w
    else:
        if q_logged is None or q_policy is None:
            raise InputError("the dr estimator needs a reward model (q_logged and q_policy)")
        ql = np.asarray(q_logged, dtype=np.float64)
        qp = np.asarray(q_policy, dtype=np.float64)
        if ql.shape != r.shape or qp.shape != r.shape:
            raise InputError("q_logged and q_policy must have one value per round")
        numerator, denominator = qp + w * (r - ql), None

    den_total = float(n if denominator is None else denominator.sum())
    raw = float(numerator.sum() / den_total) if den_total > 0 else math.nan
    if refused is None and diag.nonzero == 0:
        refused = "no logged round shows an item the target policy could have shown"
    if refused is None and diag.ess < min_ess:
        refused = (
            f"the importance weights leave an effective sample size of {diag.ess:.1f} "
            f"out of {n:,} rounds (largest weight {diag.max_weight:,.0f}); "
            f"below {min_ess:g}, so a few rounds decide the estimate"
        )
    if refused is None and diag.ess_ratio < 0.01:
        flags.append(
            f"uneven weights: ESS is {100 * diag.ess_ratio:.2g}% of the rounds; "
            "the interval may undercover"
        )

    level = 1 - alpha
    se: float | None = None
    low = high = None
    if refused is None and math.isfinite(raw):
        z = float(norm_ppf(1 - alpha / 2))
        # ratio linearisation e_i = num_i - V den_i, summed per cluster (module docstring)
        if codes is None:
            var = (
                _ratio_residual_squares(numerator, denominator, raw) * n / (n - 1)
                if n > 1
                else math.nan
            )
        else:
            ones = np.ones(n) if denominator is None else denominator
            var = clustered_covariance(numerator - raw * ones, codes, n_clusters)[0, 0]
        se = float(math.sqrt(var) / den_total) if math.isfinite(var) else math.nan
        if ci == "normal":
            low, high = raw - z * se, raw + z * se
        else:
            generator = rng if rng is not None else np.random.default_rng(0)
            boot_num: np.ndarray = numerator
            boot_den: np.ndarray | None = denominator
            if codes is not None:  # per-cluster totals
                size = int(codes.max()) + 1
                boot_num = np.bincount(codes, weights=numerator, minlength=size).astype(float)
                boot_den = (
                    np.bincount(codes, minlength=size).astype(float)
                    if denominator is None
                    else np.bincount(codes, weights=denominator, minlength=size).astype(float)
                )
            reps = poisson_bootstrap_ratio(
                boot_num,
                boot_den,
                n_boot=n_boot,
                rng=generator,
                skip_empty=True,
            )
            reps = reps[np.isfinite(reps)]
            if reps.size < 0.9 * n_boot:
                flags.append("many bootstrap resamples had no matching round")
            if reps.size:
                low, high = (float(q) for q in np.quantile(reps, [alpha / 2, 1 - alpha / 2]))
        if bounded and math.isfinite(se):
            # Korn-Graubard (module docstring), on the rate scale of [lo, hi]
            rare = min(rewarded, unrewarded) < RARE_REWARDS
            rate = (raw - lo) / (hi - lo)
            exact = effective_binomial_interval(
                rate, se / (hi - lo), n_max=ess_g if rare else n, n_eff=ess_g, alpha=alpha
            )
            exact_low, exact_high = lo + (hi - lo) * exact[0], lo + (hi - lo) * exact[1]
            low = exact_low if low is None else min(low, exact_low)
            high = exact_high if high is None else max(high, exact_high)
        if low is not None and high is not None:  # clipped to the reward's range
            low, high = min(max(low, lo), hi), min(max(high, lo), hi)
    value = None if refused else raw
    if value is not None and bounded and math.isfinite(value):  # like the interval
        value = min(max(value, lo), hi)
    return Estimate(
        estimator=estimator,
        value=value,
        ci_low=low,
        ci_high=high,
        se=se,
        level=level,
        ci_method=ci,
        ess=diag.ess,
        n=n,
        clusters=n_clusters,
        diagnostics=diag,
        refused=refused,
        flags=tuple(flags),
        raw_value=raw,
    )


def _clusters_among(codes: np.ndarray | None, rounds: np.ndarray) -> int:
    """How many clusters hold at least one of the ``rounds`` (a boolean mask); every round is
    its own cluster when ``codes`` is None."""
    import numpy as np

    if codes is None:
        return int(np.count_nonzero(rounds))
    return int(np.unique(codes[rounds]).size)


def cluster_ess(weights: np.ndarray, codes: np.ndarray | None, n_clusters: int) -> float:
    """Kish's effective sample size of the clusters' total weights, (sum W_g)^2 / sum W_g^2.

    At most the rounds' ESS (a cluster's rounds count as one unit); the number of rounds with
    a nonzero weight when the weights are equal and every round is its own cluster
    (``codes=None``: the rounds' own ESS)."""
    import numpy as np

    totals = (
        np.asarray(weights, dtype=float)
        if codes is None
        else np.bincount(codes, weights=weights, minlength=n_clusters)
    )
    squares = float(np.square(totals).sum())
    return float(totals.sum()) ** 2 / squares if squares > 0 else 0.0


def effective_binomial_interval(
    p_hat: float, se: float, *, n_max: float, n_eff: float, alpha: float
) -> tuple[float, float]:
    """Korn & Graubard's (1998) interval for a rate in [0, 1] estimated with standard error
    ``se``: Clopper-Pearson with n* = p(1 - p) / se^2 (at most ``n_max``) trials and n* p
    successes; n* = ``n_eff`` when p is 0 or 1 or se is 0 (nothing to estimate a design effect
    from). ``p_hat`` outside [0, 1] is clipped first. (0, 1) when n* is 0."""
    p = min(max(p_hat, 0.0), 1.0)
    n_star = p * (1 - p) / (se * se) if 0 < p < 1 and se > 0 else n_eff
    n_star = min(n_star, n_max)
    if not n_star > 0:
        return 0.0, 1.0
    x = n_star * p
    low = 0.0 if x <= 0 else float(beta_ppf(alpha / 2, x, n_star - x + 1))
    high = 1.0 if x >= n_star else float(beta_ppf(1 - alpha / 2, x + 1, n_star - x))
    return low, high


# -- reward model for DR -----------------------------------------------------------------------


def fit_reward_table(
    item_idx: np.ndarray,
    position: np.ndarray,
    reward: np.ndarray,
    *,
    n_items: int,
    n_positions: int,
    prior_rounds: float = 20.0,
) -> np.ndarray:
    """q[item, slot]: the (item, slot) reward rate shrunk toward the slot's rate.

    q = (sum of rewards + prior_rounds * slot rate) / (rounds + prior_rounds). Slots are
    1-based: slot p is column p of the returned ``(n_items, n_positions + 1)`` table (column 0
    is unused).
    """
    import numpy as np

    cols = n_positions + 1
    key = item_idx * cols + position
    shows = np.bincount(key, minlength=n_items * cols).reshape(n_items, cols)
    gains = np.bincount(key, weights=reward, minlength=n_items * cols).reshape(n_items, cols)
    slot_shows = shows.sum(axis=0)
    slot_rate = np.divide(gains.sum(axis=0), slot_shows, out=np.zeros(cols), where=slot_shows > 0)
    return (gains + prior_rounds * slot_rate) / (shows + prior_rounds)


def cross_fitted_tables(
    item_idx: np.ndarray,
    position: np.ndarray,
    reward: np.ndarray,
    fold: np.ndarray,
    *,
    n_items: int,
    n_positions: int,
) -> tuple[list[np.ndarray], np.ndarray]:
    """The two folds' reward tables (:func:`fit_reward_table`) and, for each round, the
    reward model at its logged item from the table of the OTHER fold (cross-fitting)."""
    import numpy as np

    tables = [
        fit_reward_table(
            item_idx[fold == f],
            position[fold == f],
            reward[fold == f],
            n_items=n_items,
            n_positions=n_positions,
        )
        for f in (0, 1)
    ]
    other = 1 - fold
    q_logged = np.where(other == 0, tables[0][item_idx, position], tables[1][item_idx, position])
    return tables, q_logged


def file_policy_probabilities(
    policy: PolicyFile,
    *,
    rounds: np.ndarray,
    item_idx: np.ndarray,
    position: np.ndarray,
    reward: np.ndarray,
    fold: np.ndarray,
    n_items: int,
) -> PolicyRounds:
    """:class:`PolicyRounds` of a policy given by its action probabilities
    (:mod:`abkit.replay.policy_file`); ``rounds`` numbers each logged row's round."""
    import numpy as np

    n_positions = int(position.max()) if position.size else 1
    tables, q_logged = cross_fitted_tables(
        item_idx, position, reward, fold, n_items=n_items, n_positions=n_positions
    )
    other = 1 - fold
    expected = [policy.expected(rounds, position, table) for table in tables]
    q_policy = np.where(other == 0, expected[0], expected[1])
    target = np.asarray(policy.target(rounds, item_idx, position), dtype=np.float64)
    return PolicyRounds(target_probs=target, q_logged=q_logged, q_policy=q_policy)


@dataclass(frozen=True, kw_only=True, eq=False)
class PolicyRounds:
    """The target policy evaluated at every logged round."""

    target_probs: np.ndarray  # pi(a_i | x_i, p_i)
    q_logged: np.ndarray  # cross-fitted reward model at the logged item
    q_policy: np.ndarray  # its expectation under pi
    #: whether the policy (a user's top-k list, or distribution over items) differs between
    #: the users it scored; None when not checked (a policy file, or a model whose class
    #: sets ``personalised = False``: one ranking for every user by design)
    varies: bool | None = None


#: the uniform-in-disguise rule: every importance weight within this of 1 (5%)
WEIGHT_TOLERANCE = 0.05


def _differs(rows: np.ndarray, reference: np.ndarray) -> bool:
    """Whether any row of ``rows`` differs from ``reference`` (floats to 1e-9 relative)."""
    import numpy as np

    if rows.dtype.kind in "iub":
        return bool((rows != reference).any())
    return not np.allclose(rows, reference, rtol=1e-9, atol=1e-12)


def degenerate_policy_warnings(
    weights: np.ndarray,
    *,
    n_users: int,
    varies: bool | None,
    cold_users: int | None = None,
    stochastic: bool,
    temperature_hint: bool = True,
    tolerance: float = WEIGHT_TOLERANCE,
) -> list[str]:
    """One-line warnings for a target policy that cannot show what a personalised policy does.

    * ``varies`` False (over ``n_users`` >= 2 scored users): the policy is the same for every
      user, so it ignores the context (pass None for models constant by design, such as
      ``popularity``);
    * ``cold_users == n_users``: the model had no training interaction for any scored user, so
      each got its fallback ranking (None: not applicable, e.g. models of the context);
    * ``stochastic`` and every weight ``w = pi / mu`` within ``tolerance`` of 1: the policy is
      the logging policy in disguise (``temperature_hint``: a softmax policy, which a lower
      ``--temperature`` sharpens unless every weight is the same).
    """
    import numpy as np

    out: list[str] = []
    n_rounds = int(weights.size)
    where = (
        f"every one of the {n_rounds:,} evaluated rounds"
        if n_users == n_rounds
        else f"every one of the {n_rounds:,} evaluated rounds ({n_users:,} users)"
    )
    if varies is False and n_users >= 2:
        what = "distribution over items" if stochastic else "ranking"
        out.append(
            f"the policy is the same in {where} (it ignores the context): its estimate is that "
            f"of one fixed {what}, not of personalisation"
        )
    if cold_users is not None and n_users > 0 and cold_users == n_users:
        out.append(
            f"the model knew none of the {n_users:,} evaluated users (all cold: no training "
            "interaction for any of them): every one got its fallback for an unknown user"
        )
    if stochastic and n_rounds:
        low, high = float(np.min(weights)), float(np.max(weights))
        if max(1.0 - low, high - 1.0) <= tolerance:
            # equal weights: the scores tie, which no temperature changes
            sharpens = temperature_hint and high > low
            hint = " (lower --temperature to make it choose)" if sharpens else ""
            out.append(
                f"every importance weight lies within {tolerance:.0%} of 1 ({low:.3f} to "
                f"{high:.3f}): the policy is the logging policy in disguise; its estimate "
                f"cannot differ from the logging policy's{hint}"
            )
    return out


def policy_probabilities(
    model: Recommender,
    data: TrainingData,
    *,
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    position: np.ndarray,
    reward: np.ndarray,
    fold: np.ndarray,
    policy: PolicyKind = "topk",
    temperature: float = 1.0,
    exclude_seen: bool = False,
    chunk_users: int = 1024,
    progress: Callable[[int], None] | None = None,
) -> PolicyRounds:
    """pi(a_i | x_i, p_i) for every round, plus the cross-fitted DR reward model terms.

    The model is asked once per distinct user, in chunks of ``chunk_users`` users (memory
    ``chunk_users x n_items`` for the stochastic policy).
    """
    import numpy as np

    if policy not in POLICIES:
        raise InputError(f"{param('policy')}: " + unknown_choice("policy", str(policy), POLICIES))
    n_positions = int(position.max()) if position.size else 1
    if int(position.min()) < 1:
        raise InputError("logged positions must be 1-based slot numbers")
    if policy == "topk" and n_positions > data.n_items:
        raise InputError(
            f"the logs have {n_positions} slots but the catalogue only {data.n_items} items"
        )
    tables, q_logged = cross_fitted_tables(
        item_idx, position, reward, fold, n_items=data.n_items, n_positions=n_positions
    )
    other = 1 - fold
    target = np.zeros(item_idx.size)
    q_policy = np.zeros(item_idx.size)
    users, inverse = np.unique(user_idx, return_inverse=True)
    reference: np.ndarray | None = None  # the first user's policy, to tell whether it varies
    check = bool(getattr(model, "personalised", True))  # not meant to vary: left unchecked
    varies = False
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(users.size + 1))
    for start in range(0, users.size, chunk_users):
        stop = min(start + chunk_users, users.size)
        batch = users[start:stop]
        rows = order[bounds[start] : bounds[stop]]  # rounds of these users
        local = inverse[rows] - start
        pos = position[rows]
        table_rows = np.where(other[rows] == 0, 0, 1)
        if policy == "topk":
            items, _ = model.recommend(data, batch, n_positions, exclude_seen=exclude_seen)
            if check and not varies:
                reference = items[0].copy() if reference is None else reference
                varies = _differs(items, reference)
            shown = items[local, pos - 1]
            target[rows] = (shown == item_idx[rows]).astype(np.float64)
            q_policy[rows] = np.where(table_rows == 0, tables[0][shown, pos], tables[1][shown, pos])
        else:
            probs_fn = getattr(model, "probabilities", None)
            if probs_fn is not None:
                probs = np.asarray(probs_fn(data, batch, temperature), dtype=np.float64)
            else:
                probs = softmax_probabilities(model.score(data, batch), temperature)
            if exclude_seen:
                probs = np.array(probs, dtype=np.float64)
                seen = data.seen_rows(batch)
                seen_rows = np.repeat(np.arange(batch.size), np.diff(seen.indptr))
                probs[seen_rows, seen.indices] = 0.0
                totals = probs.sum(axis=1, keepdims=True)
                probs = np.divide(probs, totals, out=np.zeros_like(probs), where=totals > 0)
            if check and not varies:
                reference = np.array(probs[0]) if reference is None else reference
                varies = _differs(probs, reference)
            target[rows] = probs[local, item_idx[rows]]
            # E_pi[q] for each round: (probabilities @ q table)[user, slot], per fold's table
            expected = [probs @ tables[0], probs @ tables[1]]  # [users, n_positions + 1] each
            q_policy[rows] = np.where(
                table_rows == 0, expected[0][local, pos], expected[1][local, pos]
            )
        if progress is not None:
            progress(stop - start)
    return PolicyRounds(
        target_probs=target, q_logged=q_logged, q_policy=q_policy, varies=varies if check else None
    )
