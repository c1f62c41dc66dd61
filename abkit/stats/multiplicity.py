"""Multiple-testing corrections over an explicit family of p-values.

With ``m`` p-values sorted ascending ``p(1) <= ... <= p(m)``, the adjusted p-values are
(each capped at 1, then mapped back to the input order):

``bonferroni``  ``m p(i)`` (Dunn 1961): controls the family-wise error rate (FWER).
``holm``        step-down ``max_{j<=i} (m - j + 1) p(j)`` (Holm 1979, Scand J Stat 6:65): FWER,
                uniformly more powerful than Bonferroni, valid under any dependence. abkit's
                default.
``hochberg``    step-up ``min_{j>=i} (m - j + 1) p(j)`` (Hochberg 1988, Biometrika 75:800): FWER
                under independence or positive dependence.
``bh``          step-up ``min_{j>=i} m p(j) / j`` (Benjamini & Hochberg 1995, JRSS B 57:289):
                false discovery rate (FDR) under independence or positive dependence.
``by``          BH times ``c(m) = sum_{k<=m} 1/k`` (Benjamini & Yekutieli 2001, Ann Stat 29:1165):
                FDR under any dependence.

The same definitions as R's ``p.adjust`` and statsmodels' ``multipletests``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from abkit._util import unknown_choice
from abkit.errors import InputError

Correction = Literal["bonferroni", "holm", "hochberg", "bh", "by", "none"]
CORRECTIONS: tuple[str, ...] = ("bonferroni", "holm", "hochberg", "bh", "by", "none")

DESCRIPTIONS = {
    "bonferroni": "Bonferroni (family-wise error rate)",
    "holm": "Holm step-down (family-wise error rate)",
    "hochberg": (
        "Hochberg step-up (family-wise error rate, independent or positively dependent tests)"
    ),
    "bh": "Benjamini-Hochberg (false discovery rate)",
    "by": "Benjamini-Yekutieli (false discovery rate under any dependence)",
    "none": "no correction",
}


def adjust(pvalues: Sequence[float] | np.ndarray, method: Correction = "holm") -> np.ndarray:
    """Adjusted p-values in the input order (formulas in the module docstring)."""
    if method not in CORRECTIONS:
        raise InputError(unknown_choice("correction", str(method), CORRECTIONS))
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise InputError("p-values must be a flat list")
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise InputError("p-values must be numbers in [0, 1]")
    m = p.size
    if m == 0 or method == "none":
        return p.copy()
    order = np.argsort(p, kind="stable")
    sorted_p = p[order]
    rank = np.arange(1, m + 1)
    if method == "bonferroni":
        adj = sorted_p * m
    elif method == "holm":
        adj = np.maximum.accumulate((m - rank + 1) * sorted_p)
    elif method == "hochberg":
        adj = np.minimum.accumulate(((m - rank + 1) * sorted_p)[::-1])[::-1]
    else:
        factor = 1.0 if method == "bh" else float(np.sum(1.0 / rank))
        adj = np.minimum.accumulate((sorted_p * m * factor / rank)[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def reject(
    pvalues: Sequence[float] | np.ndarray, method: Correction = "holm", alpha: float = 0.05
) -> np.ndarray:
    """Which hypotheses the procedure rejects at level ``alpha`` (adjusted p <= alpha)."""
    return adjust(pvalues, method) <= alpha
