"""Checking an accuracy claim: a probabilistic classifier against the base rate.

"Test Accuracy: 0.93" says little on its own: when 93% of the examples are negatives, the
classifier that always answers "no" scores 0.93 too. :func:`accuracy_check` reports, for
predicted probabilities ``p`` and labels ``y`` in {0, 1}:

* the accuracy at a threshold (``p >= 0.5`` predicts 1) beside the majority classifier's
  (the share of the more frequent label), and whether the model beats the majority
  classifier significantly: an exact one-sided McNemar test on the same examples. Of the
  examples where exactly one of the two is right, ``b`` are won by the model and ``c`` by
  the majority classifier; under "equally accurate" ``b ~ Binomial(b + c, 1/2)`` and
  ``p = P(X >= b)``. (Against the majority classifier ``b`` is the minority-class examples
  the model gets right and ``c`` the majority-class examples it gets wrong.) The McNemar
  test is chosen over a binomial test of the accuracy against the base rate because the
  base rate is itself estimated on the same examples: the paired test uses exactly the
  examples on which the two classifiers disagree.
* the AUC with a DeLong interval (:func:`delong_auc`);
* the log loss and the Brier score, each beside the base-rate forecaster's (always
  predicting the observed share of positives) and its skill ``1 - score / base``;
* a calibration table: equal-width bins of ``p``, the mean prediction and the observed rate
  (Wilson interval) per bin, and the expected calibration error
  ``sum_b n_b / n |observed_b - predicted_b|``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from abkit.errors import InputError, param
from abkit.stats.dist import norm_ppf
from abkit.stats.proportions import wilson_interval

__all__ = [
    "AUCEstimate",
    "AccuracyCheck",
    "CalibrationBin",
    "accuracy_check",
    "delong_auc",
    "exact_mcnemar_greater",
    "midranks",
]

# log loss clips probabilities to [EPS, 1 - EPS], as scikit-learn does
EPS = 1e-15


@dataclass(frozen=True, kw_only=True)
class AUCEstimate:
    """The AUC with its DeLong standard error and a ``1 - alpha`` normal interval (clipped
    to [0, 1])."""

    auc: float
    se: float
    ci_low: float
    ci_high: float
    positives: int
    negatives: int
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "auc": self.auc,
            "se": self.se,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "positives": self.positives,
            "negatives": self.negatives,
            "alpha": self.alpha,
        }


@dataclass(frozen=True, kw_only=True)
class CalibrationBin:
    """One bin ``[low, high)`` of predicted probabilities (the last one includes 1)."""

    low: float
    high: float
    n: int
    mean_predicted: float
    observed: float
    observed_ci_low: float
    observed_ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "mean_predicted": self.mean_predicted,
            "observed": self.observed,
            "observed_ci_low": self.observed_ci_low,
            "observed_ci_high": self.observed_ci_high,
        }


@dataclass(frozen=True, kw_only=True)
class AccuracyCheck:
    """Everything :func:`accuracy_check` reports (see the module docstring)."""

    n: int
    positives: int
    base_rate: float
    threshold: float
    accuracy: float
    accuracy_ci_low: float
    accuracy_ci_high: float
    majority_label: int
    majority_accuracy: float
    model_only_right: int
    majority_only_right: int
    p_value: float
    beats_majority: bool
    alpha: float
    auc: AUCEstimate
    log_loss: float
    log_loss_base: float
    brier: float
    brier_base: float
    calibration: tuple[CalibrationBin, ...]
    ece: float

    @property
    def brier_skill(self) -> float:
        return 1 - self.brier / self.brier_base if self.brier_base > 0 else float("nan")

    @property
    def log_loss_skill(self) -> float:
        return 1 - self.log_loss / self.log_loss_base if self.log_loss_base > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "positives": self.positives,
            "base_rate": self.base_rate,
            "threshold": self.threshold,
            "accuracy": self.accuracy,
            "accuracy_ci_low": self.accuracy_ci_low,
            "accuracy_ci_high": self.accuracy_ci_high,
            "majority_label": self.majority_label,
            "majority_accuracy": self.majority_accuracy,
            "model_only_right": self.model_only_right,
            "majority_only_right": self.majority_only_right,
            "p_value": self.p_value,
            "beats_majority": self.beats_majority,
            "alpha": self.alpha,
            "auc": self.auc.to_dict(),
            "log_loss": self.log_loss,
            "log_loss_base": self.log_loss_base,
            "log_loss_skill": self.log_loss_skill,
            "brier": self.brier,
            "brier_base": self.brier_base,
            "brier_skill": self.brier_skill,
            "calibration": [b.to_dict() for b in self.calibration],
            "ece": self.ece,
        }


def midranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x`` with ties given the mean of the ranks they span."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # first position of each run of equal values, and the run's length
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    lengths = np.diff(np.r_[starts, x.size])
    mean_rank = starts + (lengths + 1) / 2  # 1-based mean of positions start+1..start+len
    out = np.empty(x.size)
    out[order] = np.repeat(mean_rank, lengths)
    return out


def delong_auc(scores: Any, labels: Any, *, alpha: float = 0.05) -> AUCEstimate:
    """The AUC (ties count one half) and DeLong's variance, by the fast algorithm of Sun &
    Xu (2014, IEEE Signal Processing Letters 21:1389), O(n log n).

    With ``m`` positives ``X``, ``n`` negatives ``Y`` and midranks ``T_Z`` (all scores),
    ``T_X`` (positives only), ``T_Y`` (negatives only)::

        AUC    = (sum_i T_Z(X_i) - m (m + 1) / 2) / (m n)
        V10_i  = (T_Z(X_i) - T_X(X_i)) / n          (DeLong's structural components)
        V01_j  = 1 - (T_Z(Y_j) - T_Y(Y_j)) / m
        Var    = S10 / m + S01 / n                  (S: sample variances, ddof 1)

    (DeLong, DeLong & Clarke-Pearson 1988, Biometrics 44:837.) The interval is
    ``AUC +- z_{1-alpha/2} sqrt(Var)`` clipped to [0, 1], as pROC's ``ci.auc`` does.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.shape != y.shape or s.ndim != 1:
        raise InputError("scores and labels must be one-dimensional and of the same length")
    positive = y == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        raise InputError(
            f"the AUC and its DeLong variance need at least two positives and two negatives "
            f"(got {m} and {n})"
        )
    if not 0 < alpha < 1:
        raise InputError(f"{param('alpha')} must be in (0, 1), got {alpha}")
    x_scores, y_scores = s[positive], s[~positive]
    tz = midranks(np.concatenate([x_scores, y_scores]))
    tx, ty = midranks(x_scores), midranks(y_scores)
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:m] - tx) / n
    v01 = 1 - (tz[m:] - ty) / m
    variance = v10.var(ddof=1) / m + v01.var(ddof=1) / n
    se = float(np.sqrt(variance))
    z = float(norm_ppf(1 - alpha / 2))
    return AUCEstimate(
        auc=float(auc),
        se=se,
        ci_low=float(max(0.0, auc - z * se)),
        ci_high=float(min(1.0, auc + z * se)),
        positives=m,
        negatives=n,
        alpha=alpha,
    )


def exact_mcnemar_greater(b: int, c: int) -> float:
    """One-sided exact McNemar p-value, ``P(X >= b)`` for ``X ~ Binomial(b + c, 1/2)``
    (1 when there is no discordant pair)."""
    from scipy.special import bdtrc

    if b + c == 0:
        return 1.0
    # bdtrc(k, n, p) = P(X > k)
    return float(bdtrc(b - 1, b + c, 0.5)) if b > 0 else 1.0


def accuracy_check(
    probabilities: Any,
    labels: Any,
    *,
    threshold: float = 0.5,
    bins: int = 10,
    alpha: float = 0.05,
) -> AccuracyCheck:
    """Check an accuracy claim for predicted ``probabilities`` of ``labels`` (0/1); see the
    module docstring. Raises :class:`~abkit.errors.InputError` on probabilities outside
    [0, 1] or not finite, labels other than 0 and 1, or fewer than two of either label."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    if p.shape != y.shape or p.ndim != 1:
        raise InputError("scores and labels must be one-dimensional and of the same length")
    if not np.all(np.isfinite(p)) or (p.size and (p.min() < 0 or p.max() > 1)):
        raise InputError("scores must be probabilities in [0, 1]")
    if not np.all((y == 0) | (y == 1)):
        raise InputError("labels must be 0 or 1")
    if not 0 < threshold < 1:
        raise InputError(f"{param('threshold')} must be in (0, 1), got {threshold}")
    if bins < 1:
        raise InputError(f"{param('bins')} must be at least 1, got {bins}")
    y = y.astype(np.int64)
    auc = delong_auc(p, y, alpha=alpha)  # also refuses fewer than two of either label
    n = int(y.size)
    positives = int(y.sum())
    base = positives / n
    predicted = (p >= threshold).astype(np.int64)
    right = predicted == y
    majority = 1 if positives > n - positives else 0
    majority_right = y == majority
    b = int(np.sum(right & ~majority_right))
    c = int(np.sum(~right & majority_right))
    p_value = exact_mcnemar_greater(b, c)
    correct = int(right.sum())
    acc_low, acc_high = wilson_interval(correct, n, alpha)

    clipped = np.clip(p, EPS, 1 - EPS)
    log_loss = float(-np.mean(y * np.log(clipped) + (1 - y) * np.log1p(-clipped)))
    log_loss_base = float(-(base * np.log(base) + (1 - base) * np.log1p(-base)))
    brier = float(np.mean((p - y) ** 2))
    brier_base = base * (1 - base)

    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    table = []
    ece = 0.0
    for k in range(bins):
        inside = which == k
        count = int(inside.sum())
        if count == 0:
            continue
        hits = int(y[inside].sum())
        low, high = wilson_interval(hits, count, alpha)
        mean_p = float(p[inside].mean())
        table.append(
            CalibrationBin(
                low=float(edges[k]),
                high=float(edges[k + 1]),
                n=count,
                mean_predicted=mean_p,
                observed=hits / count,
                observed_ci_low=float(low),
                observed_ci_high=float(high),
            )
        )
        ece += count / n * abs(hits / count - mean_p)
    return AccuracyCheck(
        n=n,
        positives=positives,
        base_rate=base,
        threshold=threshold,
        accuracy=correct / n,
        accuracy_ci_low=float(acc_low),
        accuracy_ci_high=float(acc_high),
        majority_label=majority,
        majority_accuracy=float(np.mean(majority_right)),
        model_only_right=b,
        majority_only_right=c,
        p_value=p_value,
        beats_majority=p_value <= alpha,
        alpha=alpha,
        auc=auc,
        log_loss=log_loss,
        log_loss_base=log_loss_base,
        brier=brier,
        brier_base=brier_base,
        calibration=tuple(table),
        ece=float(ece),
    )
