"""abkit/__init__.py: the public API is small, pinned, and imported lazily."""

from __future__ import annotations

import pytest

import abkit

PUBLIC_API = [
    "AbkitError", "ArmComparisonReport", "ClaimCheck", "Comparison", "GateReport",
    "PowerResult", "Recommender", "ReplayResult", "SimulationConfig", "Store", "TrainingData",
    "__version__", "available_recommenders", "compare_arms", "compare_runs", "delete_runs",
    "drop_dataset", "estimate_policy_value", "gate_run", "gate_spec", "ingest_file", "list_runs",
    "open_store", "power", "ranking_metrics", "run_replay", "simulate", "store_info",
]  # fmt: skip


def test_public_api_is_pinned_and_importable() -> None:
    assert sorted(abkit.__all__) == sorted(PUBLIC_API)
    names = set(abkit.__all__)
    for name in names - {"__version__"}:
        assert getattr(abkit, name) is not None, name
    with pytest.raises(AttributeError):
        abkit.does_not_exist  # noqa: B018
