"""abkit: check recommender uplift claims rigorously from logged e-commerce traffic.

The public API is the names in ``__all__`` (pinned by ``tests/test_public_api.py``). They are
imported lazily so that ``import abkit`` and ``abkit --help`` stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "AbkitError": "abkit.errors",
    "open_store": "abkit.data.store",
    "Store": "abkit.data.store",
    "ingest_file": "abkit.data.ingest",
    "simulate": "abkit.simulate",
    "SimulationConfig": "abkit.simulate",
    "store_info": "abkit.data.info",
    "compare_arms": "abkit.compare.arms",
    "ArmComparisonReport": "abkit.stats.results",
    "Comparison": "abkit.stats.results",
    "ClaimCheck": "abkit.stats.results",
    "power": "abkit.stats.power",
    "PowerResult": "abkit.stats.results",
    "run_replay": "abkit.replay.runner",
    "ReplayResult": "abkit.replay.runner",
    "list_runs": "abkit.replay.runs",
    "delete_runs": "abkit.replay.runs",
    "drop_dataset": "abkit.data.datasets",
    "Recommender": "abkit.plugins",
    "TrainingData": "abkit.plugins",
    "available_recommenders": "abkit.plugins",
    "ranking_metrics": "abkit.replay.metrics",
    "estimate_policy_value": "abkit.replay.offpolicy",
    "compare_runs": "abkit.compare.runs",
    "gate_spec": "abkit.experiments.gate",
    "gate_run": "abkit.experiments.gate",
    "GateReport": "abkit.experiments.gate",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'abkit' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
