"""Per-arm sufficient statistics: the only input the inference in :mod:`abkit.stats` needs.

An arm is summarised by a handful of sums over its randomisation units (users, or impressions
when each impression is its own unit). ``abkit.data.aggregate`` computes them in DuckDB in one
pass; any warehouse that can run ``GROUP BY arm`` can produce the same numbers, and the
statistics below run unchanged on them.

Per unit ``i`` of an arm:

``y_i``  the outcome: 1/0 for a conversion, the value for a mean metric (revenue per user), the
         numerator of a ratio metric (the unit's clicks).
``d_i``  the denominator of a ratio metric (the unit's impressions, orders or sessions).
``x_i``  a pre-experiment covariate (CUPED): the same metric in the pre-period.

and per analysis row ``r`` (impression, order, session) of a ratio metric, ``row_y_sum_sq``
= sum of the squared row outcomes, used only to show how wrong the naive variance would be.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from abkit.errors import InputError


@dataclass(frozen=True, kw_only=True)
class ArmAggregates:
    """Sums over the randomisation units of one arm (see the module docstring)."""

    name: str
    units: int
    y_sum: float
    y_sum_sq: float
    d_sum: float | None = None
    d_sum_sq: float | None = None
    yd_sum: float | None = None
    x_sum: float | None = None
    x_sum_sq: float | None = None
    xy_sum: float | None = None
    row_y_sum_sq: float | None = None

    def __post_init__(self) -> None:
        if self.units < 0:
            raise InputError(f"arm '{self.name}': units must be >= 0, got {self.units}")
        if self.y_sum_sq < 0:
            raise InputError(f"arm '{self.name}': y_sum_sq must be >= 0, got {self.y_sum_sq}")

    @property
    def mean(self) -> float:
        """Mean outcome per unit, ``sum y / n`` (the conversion rate for a 0/1 outcome)."""
        return self.y_sum / self.units if self.units else math.nan

    @property
    def variance(self) -> float:
        """Sample variance of the per-unit outcome (ddof = 1)."""
        return _sample_cov(self.units, self.y_sum, self.y_sum, self.y_sum_sq, variance=True)

    def covariance_matrix(self, second: str) -> tuple[float, float, float]:
        """``(var y, cov(y, z), var z)`` with ``z`` the denominator ``d`` or covariate ``x``."""
        if second == "d":
            z_sum, z_sum_sq, yz_sum = self.d_sum, self.d_sum_sq, self.yd_sum
        else:
            z_sum, z_sum_sq, yz_sum = self.x_sum, self.x_sum_sq, self.xy_sum
        if z_sum is None or z_sum_sq is None or yz_sum is None:
            raise InputError(f"arm '{self.name}': no sums for the {second} column")
        n = self.units
        return (
            _sample_cov(n, self.y_sum, self.y_sum, self.y_sum_sq, variance=True),
            _sample_cov(n, self.y_sum, z_sum, yz_sum),
            _sample_cov(n, z_sum, z_sum, z_sum_sq, variance=True),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sample_cov(
    n: int, a_sum: float, b_sum: float, ab_sum: float, *, variance: bool = False
) -> float:
    """Sample covariance from sums: ``(sum ab - sum a sum b / n) / (n - 1)``."""
    if n < 2:
        return math.nan
    value = (ab_sum - a_sum * b_sum / n) / (n - 1)
    # Sums of large numbers can leave a tiny negative variance by rounding.
    return max(value, 0.0) if variance else value
