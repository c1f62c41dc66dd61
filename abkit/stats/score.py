"""Restricted maximum likelihood for score tests of a rate ratio.

Shared by the Koopman / Miettinen-Nurminen score intervals (:mod:`abkit.stats.proportions`),
the exact unconditional claim test (:mod:`abkit.stats.exact_ratio`) and the Farrington-Manning
sample size (:mod:`abkit.stats.power`), which all need the rates estimated under the null
``p1 = theta p2``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["FloatArray", "ratio_restricted_mle", "ratio_score", "safe_ratio"]

FloatArray = NDArray[np.float64]


def ratio_restricted_mle(
    x1: FloatArray, n1: FloatArray, x2: FloatArray, n2: FloatArray, theta: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """MLE of ``(p1, p2)`` under ``p1 = theta p2`` (Miettinen & Nurminen 1985, eq. 8).

    ``p2~`` is the smaller root of ``N theta p^2 - (n1 theta + x1 + n2 + x2 theta) p + (x1 + x2)
    = 0``, written ``2C / (-B + sqrt(B^2 - 4AC))`` to avoid cancellation.
    """
    total = n1 + n2
    a = total * theta
    b = -(n1 * theta + x1 + n2 + x2 * theta)
    c = x1 + x2
    disc = np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        p2 = np.where(c == 0, 0.0, 2 * c / (-b + disc))
    p2 = np.clip(p2, 0.0, 1.0)
    p1 = np.clip(theta * p2, 0.0, 1.0)
    return p1, p2


def safe_ratio(num: FloatArray, var: FloatArray) -> FloatArray:
    """``num / sqrt(var)``; 0 when both vanish, +-inf when only the variance does."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = num / np.sqrt(var)
    return np.where(var > 0, z, np.where(num == 0, 0.0, np.copysign(np.inf, num)))


def ratio_score(
    x1: FloatArray,
    n1: FloatArray,
    x2: FloatArray,
    n2: FloatArray,
    theta: FloatArray,
    *,
    correction: bool = False,
) -> FloatArray:
    """Koopman's score statistic for ``p1 / p2 = theta``, elementwise (documented at
    :func:`abkit.stats.proportions.ratio_score_statistic`): ``(x1/n1 - theta x2/n2) /
    sqrt(p1~ (1 - p1~) / n1 + theta^2 p2~ (1 - p2~) / n2)``, the variance times ``N / (N - 1)``
    with ``correction`` (Miettinen-Nurminen)."""
    q1, q2 = ratio_restricted_mle(x1, n1, x2, n2, theta)
    var = q1 * (1 - q1) / n1 + theta**2 * q2 * (1 - q2) / n2
    if correction:
        total = n1 + n2
        var = var * total / (total - 1)
    return safe_ratio(x1 / n1 - theta * x2 / n2, var)
