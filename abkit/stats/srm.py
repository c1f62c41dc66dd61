"""Sample ratio mismatch (SRM): are the units per arm what the design promised?

Pearson's chi-square goodness of fit of the observed units per arm against the designed split
(any number of arms): ``X2 = sum (O_k - E_k)^2 / E_k`` with ``E_k = N s_k``, ``k - 1`` degrees
of freedom. A mismatch means the assignment or the logging is broken, and every other number
of the experiment is suspect (Kohavi, Tang & Xu 2020, *Trustworthy Online Controlled
Experiments*, ch. 3 and 21; Fabijan et al. 2019, KDD). abkit tests at alpha = 0.001 by default
so that routine checks on every experiment rarely raise false alarms. A mismatch is
``p <= alpha``, the same convention as "significant" everywhere in abkit. With fewer than two
arms there is no split to test: the check is skipped (``checked=False``, ``ok=None``: never
a pass) and says why. Without a designed split the units are checked against an equal split
(an assumption the result and the report state; ``--split`` gives the real design). The
designed split is checked by :mod:`abkit.stats.shares`: percentages that sum to 100 or
fractions that sum to 1, never silently rescaled (``50/40`` or ``1/1`` is refused).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from abkit.errors import InputError
from abkit.stats.dist import chi2_sf
from abkit.stats.results import SRMResult
from abkit.stats.shares import normalise_split, parse_split

__all__ = ["SRM_ALPHA", "normalise_split", "parse_split", "srm_check"]

SRM_ALPHA = 0.001


def srm_check(
    arms: Sequence[str],
    observed: Sequence[int],
    split: Sequence[float] | None,
    *,
    alpha: float = SRM_ALPHA,
) -> SRMResult:
    """Chi-square goodness of fit of ``observed`` units per arm against ``split``.

    ``split`` has one share per arm: percentages that sum to 100 or fractions that sum to 1
    (:func:`abkit.stats.shares.normalise_split`; anything else is an InputError).

    ``split=None`` (no designed split known) checks against an EQUAL split, as tea-tasting and
    GrowthBook do, and says so (``split_assumed=True`` and a ``note`` naming the assumption
    and ``--split``): equal allocation is by far the common design, and an unequal one that
    nobody recorded is worth a question. Fewer than two arms cannot be checked: the result
    has ``checked=False``, ``ok=None`` (never a pass) and a note saying why. A mismatch is
    ``p_value <= alpha``.
    """
    counts = tuple(int(c) for c in observed)
    if len(counts) < 2:
        return SRMResult(
            arms=tuple(arms),
            observed=counts,
            expected=(),
            split=(),
            chi2=math.nan,
            df=0,
            p_value=math.nan,
            alpha=alpha,
            ok=None,
            checked=False,
            note=f"the experiment has {len(counts)} arm(s); a sample ratio check needs at "
            "least two",
        )
    assumed = split is None
    shares = (
        tuple(1.0 / len(counts) for _ in counts)
        if split is None
        else normalise_split(split, len(counts))
    )
    total = sum(counts)
    if total == 0:
        raise InputError("the experiment has no units in any arm; nothing to check")
    expected = tuple(total * s for s in shares)
    # scipy.stats.chisquare(counts, expected), term for term
    terms = (np.asarray(counts, dtype=np.float64) - np.asarray(expected, dtype=np.float64)) ** 2
    statistic = np.sum(terms / np.asarray(expected, dtype=np.float64))
    chi2, p_value = float(statistic), float(chi2_sf(statistic, float(len(counts) - 1)))
    ok = p_value > alpha  # a mismatch is p <= alpha, abkit's one convention
    observed_text = ", ".join(f"{a} {c:,}" for a, c in zip(arms, counts, strict=True))
    shares_text = "/".join(f"{100 * s:g}" for s in shares)
    against = (
        f"the assumed equal split {shares_text} (no designed split is known; pass --split "
        "to give it)"
        if assumed
        else f"the designed split {shares_text}"
    )
    if not ok:
        note = (
            f"sample ratio mismatch: the units per arm ({observed_text}) do not fit {against} "
            f"(chi2 = {chi2:.4g}, p = {p_value:.3g} <= {alpha:g}); the assignment or logging is "
            "broken and every result below is suspect"
        )
    elif assumed:
        note = (
            f"no designed split is known; checked against an assumed equal split {shares_text} "
            "(pass --split to check against another)"
        )
    else:
        note = ""
    return SRMResult(
        arms=tuple(arms),
        observed=counts,
        expected=expected,
        split=shares,
        chi2=chi2,
        df=len(counts) - 1,
        p_value=p_value,
        alpha=alpha,
        ok=ok,
        checked=True,
        note=note,
        split_assumed=assumed,
    )
