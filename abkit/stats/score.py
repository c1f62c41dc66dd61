"""Restricted maximum likelihood for score tests of a rate ratio.

Shared by the Koopman / Miettinen-Nurminen score intervals (:mod:`abkit.stats.proportions`)
and the Farrington-Manning sample size (:mod:`abkit.stats.power`), which both need the rates
estimated under the null ``p1 = theta p2``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["FloatArray", "ratio_restricted_mle"]

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
