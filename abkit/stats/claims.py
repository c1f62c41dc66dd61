"""The one validation of a claimed relative lift (``--claim``), shared by every test of it."""

from __future__ import annotations

import math

from abkit.errors import InputError, param

__all__ = ["check_claim"]


def check_claim(claim: float) -> float:
    """``claim`` as a float: a finite relative lift above -1 (0.2 = +20%), else InputError."""
    value = float(claim)
    if not (math.isfinite(value) and value > -1):
        raise InputError(
            f"{param('claim')} must be a relative lift above -1 (e.g. 0.2 for +20%), got {claim}"
        )
    return value
