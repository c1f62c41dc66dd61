"""abkit.compare.metrics: the A/B metrics as objects, and adding one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from abkit.compare import metrics as metrics_module
from abkit.compare.arms import compare_arms
from abkit.compare.metrics import Mean, make_metric, registered_metrics
from abkit.data import aggregate
from abkit.errors import InputError


def test_every_registered_metric_has_its_sql_fragment() -> None:
    assert set(registered_metrics()) == set(aggregate.UNIT_OUTCOMES)


@pytest.mark.parametrize(
    ("name", "ratio", "cls"),
    [
        ("conversion", None, "Conversion"),
        ("mean", None, "Mean"),
        ("ratio", "clicks_per_impression", "ClicksPerImpression"),
        ("ratio", "revenue_per_order", "RevenuePerOrder"),
        ("ratio", "orders_per_session", "OrdersPerSession"),
    ],
)
def test_make_metric_picks_the_class_and_its_aggregate(name, ratio, cls) -> None:
    metric = make_metric(name, event="purchase", ratio=ratio)
    assert type(metric).__name__ == cls
    assert metric.spec.name == metric.name
    assert metric.spec.kind == metric.kind


def test_unknown_names_are_refused_with_the_choices() -> None:
    with pytest.raises(InputError, match=r"unknown metric 'revenue'; expected one of: conversion"):
        make_metric("revenue", event="purchase")
    with pytest.raises(InputError, match=r"unknown ratio metric 'clicks'"):
        make_metric("ratio", event="purchase", ratio="clicks")


def test_a_new_metric_is_one_class_plus_its_sql_fragment(monkeypatch, sim_db) -> None:
    """Purchases per user: a class and a fragment, and compare_arms accepts it by name."""

    @dataclass(frozen=True, kw_only=True)
    class EventsPerUser(Mean):
        name: ClassVar[str] = "events_per_user"
        definition: ClassVar[str] = "'{event}' events per {unit}"
        needs_values: ClassVar[bool] = False

    registry = dict(metrics_module._REGISTRY)
    monkeypatch.setattr(metrics_module, "_REGISTRY", registry)
    metrics_module.register(EventsPerUser)
    fragments = dict(aggregate.UNIT_OUTCOMES)
    fragments["events_per_user"] = aggregate._events_outcome(
        "count(*)::DOUBLE AS y, 0.0 AS d, 0.0 AS row_y_sq, 0 AS value_rows"
    )
    monkeypatch.setattr(aggregate, "UNIT_OUTCOMES", fragments)

    report = compare_arms(sim_db, metrics="events_per_user", event="purchase")
    (comparison,) = report.comparisons
    assert comparison.metric == "events_per_user"
    assert any(d == "metric events_per_user: 'purchase' events per user" for d in report.defaults)
    # the count per user, compared with Welch like any mean: checked against the events table
    import duckdb

    with duckdb.connect(str(sim_db), read_only=True) as con:
        (treatment_total,) = con.execute(
            "SELECT count(*) FROM events e JOIN assignments a USING (dataset, user_id) "
            "WHERE e.dataset = 'sim' AND event_type = 'purchase' AND variant = 'treatment' "
            "AND e.ts >= (SELECT start_ts FROM experiments WHERE dataset = 'sim') "
            "AND e.ts < (SELECT end_ts FROM experiments WHERE dataset = 'sim')"
        ).fetchone()
    row = next(a for a in report.arms if a.name == "treatment")
    assert row.sum == treatment_total
    assert report.to_dict()["metrics"] == ["events_per_user"]
