"""``abkit compare``: conversion-rate and metric differences, with inference a statistician signs.

Two comparisons live here, both aggregating in DuckDB and inferring in :mod:`abkit.stats`:

* :mod:`abkit.compare.arms` -- :func:`compare_arms`, the A/B arms of a dataset's experiment
  (SRM check, difference and lift intervals, the claim, sequential looks, CUPED, Bayes), and
  :func:`compare_datasets`, the same on several datasets with one multiple-testing family;
* :mod:`abkit.compare.runs` -- :func:`compare_runs`, stored replay runs paired by user (or by
  logged round for off-policy estimates);
* :mod:`abkit.compare.metrics` -- the A/B metrics as objects: each declares its per-unit
  outcome (the SQL fragment lives in :mod:`abkit.data.aggregate`), its checks and its inference.

``abkit power`` (sizing before a test) is :func:`abkit.stats.power.power`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from abkit.compare.arms import compare_arms, compare_datasets
    from abkit.compare.runs import RunComparison, compare_runs

__all__ = ["RunComparison", "compare_arms", "compare_datasets", "compare_runs"]

#: where each public name lives; imported on first use (PEP 562), so comparing arms never
#: imports the paired run comparison, and the reverse
_HOMES = {
    "RunComparison": "abkit.compare.runs",
    "compare_runs": "abkit.compare.runs",
    "compare_arms": "abkit.compare.arms",
    "compare_datasets": "abkit.compare.arms",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
