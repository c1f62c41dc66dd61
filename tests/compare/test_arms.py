"""compare_arms: aggregation in SQL, hand-worked stores, the simulator, OBD, and bad inputs."""

from __future__ import annotations

import math
import re
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats

from abkit.compare.arms import compare_arms
from abkit.errors import InputError, StoreError
from abkit.stats import proportions
from abkit.stats.means import compare_means
from abkit.stats.sufficient import ArmAggregates
from tests._ab_store import build_store, counts_store, day, hand_store
from tests.conftest import OBD, OBD_ROWS, file_digest

# -- a hand-worked store ----------------------------------------------------------------------


@pytest.fixture
def hand_db(tmp_path: Path) -> Path:
    return hand_store(tmp_path / "hand.duckdb")


def test_conversion_by_hand(hand_db: Path) -> None:
    report = compare_arms(hand_db, claim=0.2)
    control, treatment = report.arms
    assert (control.name, control.units, control.conversions) == ("control", 10, 2)
    assert (treatment.name, treatment.units, treatment.conversions) == ("treatment", 10, 4)
    assert report.excluded_units == 1
    assert report.srm.checked
    assert report.srm.ok
    assert report.srm.observed == (10, 10)
    (c,) = report.comparisons
    # Expected cells of [[4, 6], [2, 8]] are 3 and 7: Fisher's exact p-value is shown next to
    # the pooled z-test, which stays the p-value (the dual of the lift interval).
    assert c.exact
    assert c.method == "pooled two-proportion z-test"
    assert c.p_value == pytest.approx(float(proportions.pooled_z_test(4, 10, 2, 10)[1]), rel=1e-12)
    assert c.exact_p_value == pytest.approx(stats.fisher_exact([[4, 6], [2, 8]]).pvalue, rel=1e-12)
    assert c.diff == pytest.approx(0.2)
    assert c.lift == pytest.approx(1.0)
    assert (c.lift_ci_lower, c.lift_ci_upper) == pytest.approx(
        tuple(v - 1 for v in proportions.koopman_interval(4, 10, 2, 10))
    )
    assert c.diff_ci == pytest.approx(proportions.newcombe_interval(4, 10, 2, 10))
    assert report.claim is c.claim
    assert c.claim is not None
    assert c.claim.verdict == "not decided"
    warnings = " | ".join(report.warnings)
    assert "1 unit(s) were assigned to more than one arm and are excluded" in warnings
    assert "1 unit(s) carry the variant 'beta', which is not an arm of the experiment" in warnings
    assert "Fisher" in warnings


def test_mean_by_hand(hand_db: Path) -> None:
    report = compare_arms(hand_db, metrics="mean")
    (c,) = report.comparisons
    revenue_c = np.array([10.0, 25.0] + [0.0] * 8)
    revenue_t = np.array([30.0, 12.0, 8.0, 40.0] + [0.0] * 6)
    ref = stats.ttest_ind(revenue_t, revenue_c, equal_var=False)
    assert (c.control_value, c.treatment_value) == pytest.approx((3.5, 9.0))
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert c.method == "Welch t-test"
    assert [a.sum for a in report.arms] == [35.0, 90.0]


def test_ratio_metrics_by_hand(hand_db: Path) -> None:
    per_order = compare_arms(hand_db, metrics="ratio", ratio="revenue_per_order")
    (c,) = per_order.comparisons
    assert c.metric == "revenue_per_order"
    assert (c.control_value, c.treatment_value) == pytest.approx((35 / 3, 90 / 4))
    per_session = compare_arms(hand_db, metrics="ratio", ratio="orders_per_session")
    arms = {a.name: (a.sum, a.denominator) for a in per_session.arms}
    assert arms == {"control": (3.0, 3.0), "treatment": (4.0, 4.0)}


def test_clicks_per_impression_uses_users_not_impressions(tmp_path: Path) -> None:
    # User u0 clicks on all of its 10 impressions, the others on none: the delta method
    # sees 5 users, not 50 independent impressions.
    assignments = [(f"c{i}", "control", None) for i in range(5)]
    assignments += [(f"t{i}", "treatment", None) for i in range(5)]
    impressions = []
    for arm, prefix in (("control", "c"), ("treatment", "t")):
        for i in range(5):
            clicks = 1 if (i == 0 or (arm == "treatment" and i == 1)) else 0
            impressions += [(f"{prefix}{i}", day(1), arm, clicks) for _ in range(10)]
    path = build_store(tmp_path / "imp.duckdb", assignments=assignments, impressions=impressions)
    report = compare_arms(path, metrics="ratio")
    (c,) = report.comparisons
    assert (c.control_value, c.treatment_value) == pytest.approx((0.2, 0.4))
    y_t = np.array([10.0, 10, 0, 0, 0])
    y_c = np.array([10.0, 0, 0, 0, 0])
    # All users have 10 impressions, so the delta-method variance is var(y / 10) / n.
    var = np.var(y_t / 10, ddof=1) / 5 + np.var(y_c / 10, ddof=1) / 5
    assert c.p_value == pytest.approx(2 * stats.norm.sf(0.2 / math.sqrt(var)))
    naive = 0.4 * 0.6 * 50 / 49 / 50 + 0.2 * 0.8 * 50 / 49 / 50
    assert c.design_effect is not None
    assert c.design_effect == pytest.approx(var / naive)
    assert c.design_effect > 5


def test_cuped_by_hand(hand_db: Path) -> None:
    report = compare_arms(hand_db, cuped=True)
    (c,) = report.comparisons
    # Only c2 converted before the start: x = 1 for c2, 0 for everyone else.
    y_c = np.array([1.0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    x_c = np.array([0.0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    y_t = np.array([1.0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    x_t = np.zeros(10)
    theta = (np.cov(x_c, y_c)[0, 1] * 9 + 0.0) / (np.var(x_c, ddof=1) * 9)
    assert c.diff == pytest.approx(0.2 - theta * (x_t.mean() - x_c.mean()))
    assert c.method.startswith("CUPED z-test")
    assert c.variance_reduction is not None
    assert report.comparisons[0].treatment == "treatment"
    _ = y_t


def test_definitions_say_what_is_dual_to_what(hand_db: Path) -> None:
    defaults = " | ".join(compare_arms(hand_db, claim=0.2).defaults)
    sequential = " | ".join(compare_arms(hand_db, claim=0.2, sequential=True).defaults)
    assert "claim: lift >= 0.2 judged from the lift's always-valid 95% confidence sequence" in (
        sequential
    )
    assert "the fixed-sample values (valid only at one pre-planned look) are in the " in (
        sequential
    )
    assert "tightest at a planned 10,000 users per arm (the default; set it with --horizon)" in (
        sequential
    )
    assert "the score test whose dual is the Koopman lift CI" in defaults
    assert "difference CI Newcombe hybrid score, which is not exactly dual to the z-test" in (
        defaults
    )
    assert "'significant' means p <= alpha" in defaults
    assert "a mismatch is p <= 0.001" in defaults
    assert "tested one-sided at 2.5% each way" in defaults


def test_several_comparisons_have_no_top_level_claim(hand_db: Path) -> None:
    report = compare_arms(hand_db, metrics=("conversion", "mean"), claim=0.2)
    assert report.claim is None  # it once was the first comparison's, arbitrarily
    assert all(c.claim is not None for c in report.comparisons)
    payload = report.to_dict()
    assert payload["claim"] is None
    assert [c["claim"]["claim"] for c in payload["comparisons"]] == [0.2, 0.2]
    assert [c["claim"]["level_each_side"] for c in payload["comparisons"]] == [0.025, 0.025]


def test_daily_looks_end_where_the_single_analysis_ends(hand_db: Path) -> None:
    final = compare_arms(hand_db, metrics=("conversion", "mean"))
    daily = compare_arms(hand_db, metrics=("conversion", "mean"), looks="daily")
    last = daily.looks[-1]
    assert last.units == (10, 10)
    assert last.rates == pytest.approx((0.2, 0.4))
    # c9 / t9 are assigned on day 4.5: 9 units per arm on day 4, all 10 from day 4 on.
    assert [look.units for look in daily.looks[:5]] == [(2, 2), (4, 4), (6, 6), (8, 8), (10, 10)]
    for metric in ("conversion", "mean"):
        f = next(c for c in final.comparisons if c.metric == metric)
        path = [next(x for x in look.comparisons if x.metric == metric) for look in daily.looks]
        assert path[-1].diff == pytest.approx(f.diff)
        assert path[-1].always_valid_p_value == min(p.always_valid_p_value for p in path)
    assert all(c.sequential is not None for c in daily.comparisons)


def test_aggregation_happens_in_sql(sim_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every query that reaches Python returns a handful of rows (arms x looks); one query per
    # metric, one more per metric for the daily path. Nothing per event or per user.
    import abkit.data.aggregate as aggregate

    seen: list[int] = []
    original = aggregate._fetch

    def recording(con, sql, params):
        result = original(con, sql, params)
        seen.append(len(next(iter(result.values()))))
        return result

    monkeypatch.setattr(aggregate, "_fetch", recording)
    report = compare_arms(sim_db, metrics=("conversion", "mean", "ratio"))
    assert len(seen) == 3
    assert max(seen) <= 3
    events = (
        duckdb.connect(str(sim_db), read_only=True)
        .execute("SELECT count(*) FROM events")
        .fetchone()
    )
    assert events is not None
    assert events[0] > 10_000
    seen.clear()
    daily = compare_arms(sim_db, looks="daily")
    assert len(seen) == 2
    assert max(seen) <= 2 * len(daily.looks)
    assert report.arms[0].units + report.arms[1].units == 3000


# -- the simulator ----------------------------------------------------------------------------


def _sql(path: Path, query: str, params: list | None = None):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def test_sim_store_numbers_match_independent_sql(sim_db: Path) -> None:
    report = compare_arms(sim_db, claim=0.2, bayes=True)
    rows = _sql(
        sim_db,
        "SELECT a.variant, count(*), count(p.user_id) FROM assignments a LEFT JOIN ("
        " SELECT DISTINCT e.user_id FROM events e, experiments x WHERE e.event_type = 'purchase'"
        " AND e.ts >= x.start_ts AND e.ts <= x.end_ts) p ON p.user_id = a.user_id "
        "GROUP BY a.variant",
    )
    counts = {arm: (n, x) for arm, n, x in rows}
    for arm in report.arms:
        assert (arm.units, arm.conversions) == counts[arm.name]
    (c,) = report.comparisons
    (n_c, x_c), (n_t, x_t) = counts["control"], counts["treatment"]
    assert c.p_value == pytest.approx(float(proportions.pooled_z_test(x_t, n_t, x_c, n_c)[1]))
    truth = dict(_sql(sim_db, "SELECT metric, value FROM truth WHERE variant IS NULL"))
    assert c.lift_ci_lower < truth["lift"] < c.lift_ci_upper
    assert report.srm.ok
    assert c.bayes is not None


def test_planted_srm_is_caught(tmp_path: Path) -> None:
    from abkit.simulate import SimulationConfig, simulate

    path = tmp_path / "srm.duckdb"
    simulate(SimulationConfig(users=4000, items=50, days=3, pre_days=1, srm=0.15, seed=3), path)
    report = compare_arms(path)
    assert report.srm_failed
    assert not report.srm.ok
    assert report.warnings[0].startswith("sample ratio mismatch")


def test_several_arms_and_metrics_form_one_family(tmp_path: Path) -> None:
    from abkit.simulate import SimulationConfig, simulate

    path = tmp_path / "three.duckdb"
    config = SimulationConfig(
        users=3000, items=50, days=3, pre_days=1, arms=("control", "b", "c"),
        split=(0.4, 0.3, 0.3), arm_lifts=(0.0, 0.1, 0.3), seed=4,
    )  # fmt: skip
    simulate(config, path)
    report = compare_arms(path, metrics=("conversion", "mean"), correction="bh")
    assert report.family == (
        "b vs control on conversion", "c vs control on conversion",
        "b vs control on mean", "c vs control on mean",
    )  # fmt: skip
    from abkit.stats.multiplicity import adjust

    expected = adjust([c.p_value for c in report.comparisons], "bh")
    assert [c.p_adjusted for c in report.comparisons] == pytest.approx(list(expected))
    assert report.srm.split == pytest.approx((0.4, 0.3, 0.3))


# -- the Open Bandit Dataset sample ----------------------------------------------------------------


def test_obd_bts_against_random(tmp_path: Path) -> None:
    from abkit.data.ingest import ingest_file

    path = tmp_path / "obd.duckdb"
    for policy in ("random", "bts"):
        ingest_file(OBD / policy / "all" / "all.csv.gz", path, preset="obd")
    report = compare_arms(path, claim=0.2)
    assert report.unit == "impression"
    assert report.event == "click"
    assert report.control == "random"
    clicks = dict(_sql(path, "SELECT variant, sum(click) FROM impressions GROUP BY variant"))
    arms = {a.name: a for a in report.arms}
    assert arms["random"].conversions == clicks["random"]
    assert arms["bts"].conversions == clicks["bts"]
    assert arms["random"].units == arms["bts"].units == OBD_ROWS
    (c,) = report.comparisons
    lower, upper = proportions.koopman_interval(clicks["bts"], OBD_ROWS, clicks["random"], OBD_ROWS)
    assert (c.lift_ci_lower, c.lift_ci_upper) == pytest.approx((lower - 1, upper - 1))
    # About 40 clicks per arm (10 in the fixture) cannot tell +20% from no effect: an honest
    # "not decided".
    assert c.claim is not None
    assert c.claim.verdict == "not decided"
    # the sample records no designed split: checked against an assumed equal one (it fits)
    assert report.srm.checked
    assert report.srm.split_assumed
    assert report.srm.ok is True
    assert any("assumed equal split" in line for line in report.defaults)


# -- bad inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"metrics": "conversions"}, InputError, "metrics: unknown metric 'conversions' (did you mean 'conversion'?); expected one of: conversion, mean, ratio"),  # noqa: E501
        ({"metrics": ()}, InputError, "metrics: give at least one metric (conversion, mean or ratio)"),  # noqa: E501
        ({"metrics": ("mean", "mean")}, InputError, "metrics: each metric may be given once"),
        ({"control": "contrl"}, InputError, "control: unknown arm 'contrl' (did you mean 'control'?); expected one of: control, treatment"),  # noqa: E501
        ({"event": "buy"}, InputError, "event: unknown event type 'buy'; expected one of: add_to_cart, click, purchase, rating, view"),  # noqa: E501
        ({"alpha": 1.5}, InputError, "alpha must be in (0, 1), got 1.5"),
        ({"correction": "holms"}, InputError, "correction: unknown correction 'holms' (did you mean 'holm'?); expected one of: bh, bonferroni, by, hochberg, holm, none"),  # noqa: E501
        ({"metrics": "ratio", "ratio": "ctr"}, InputError, "ratio: unknown ratio metric 'ctr'; expected one of: clicks_per_impression, orders_per_session, revenue_per_order"),  # noqa: E501
        ({"looks": "weekly"}, InputError, "looks: unknown looks 'weekly'; expected one of: daily, final"),  # noqa: E501
        ({"cuped": True, "sequential": True}, InputError, "cuped cannot be combined with sequential or looks daily yet"),  # noqa: E501
        ({"metrics": "mean", "bayes": True}, InputError, "bayes needs the conversion metric (metrics conversion)"),  # noqa: E501
        ({"horizon": 1, "sequential": True}, InputError, "horizon must be a whole number of units per arm, at least 2, got 1"),  # noqa: E501
        ({"claim": -2.0}, InputError, "claim must be a relative lift above -1 (e.g. 0.2 for +20%), got -2.0"),  # noqa: E501
        ({"split": "50/25/25"}, InputError, "split has 3 share(s) but the experiment has 2 arms; give one share per arm, e.g. 50/50"),  # noqa: E501
        ({"metrics": "mean", "event": "view"}, InputError, "metrics mean: no 'view' event of dataset 'shop' has a value in the experiment window; choose another event"),  # noqa: E501
        ({"metrics": "ratio", "ratio": "clicks_per_impression"}, InputError, "ratio clicks_per_impression: dataset 'shop' has no impressions of assigned users in the experiment window"),  # noqa: E501
        ({"cuped": True, "event": "view"}, InputError, "cuped: no unit of dataset 'shop' has 'view' events before the experiment's start, so there is no pre-period covariate"),  # noqa: E501
        ({"cuped": True, "metrics": "ratio"}, InputError, "cuped supports the conversion and mean metrics, not ratio metrics"),  # noqa: E501
        ({"experiment": "exq"}, StoreError, "dataset 'shop': unknown experiment 'exq' (did you mean 'exp'?); expected one of: exp"),  # noqa: E501
        ({"dataset": "shoq"}, StoreError, "unknown dataset 'shoq' (did you mean 'shop'?); expected one of: shop"),  # noqa: E501
    ],
)  # fmt: skip
def test_invalid_inputs(hand_db: Path, kwargs, error, message) -> None:
    before = file_digest(hand_db)
    with pytest.raises(error, match=re.escape(message)):
        compare_arms(hand_db, **kwargs)
    assert file_digest(hand_db) == before


def test_missing_store(tmp_path: Path) -> None:
    path = tmp_path / "nope.duckdb"
    with pytest.raises(StoreError, match=re.escape(f"{path}: no such database")):
        compare_arms(path)
    assert not path.exists()


def test_store_without_control_or_experiment(tmp_path: Path) -> None:
    impressions = [("i0", day(0), "a", 1), ("i1", day(0), "b", 0), ("i2", day(1), "a", 0)]
    path = build_store(
        tmp_path / "imp.duckdb", unit="impression", impressions=impressions, with_experiment=False
    )
    with pytest.raises(
        InputError,
        match=re.escape(
            "dataset 'shop' does not say which arm is the control; choose it with control (arms: a, b)"  # noqa: E501
        ),
    ):
        compare_arms(path)
    with pytest.raises(
        InputError, match=re.escape("metrics ratio: dataset 'shop' has one unit per impression")
    ):
        compare_arms(path, control="a", metrics="ratio")
    report = compare_arms(path, control="a")
    assert [a.units for a in report.arms] == [2, 1]
    assert (
        "impression-unit dataset: every impression is its own unit, so the tests assume "
        "impressions are independent; repeated impressions of one user are correlated, which "
        "makes the intervals too narrow when users see many impressions"
    ) in report.defaults
    with pytest.raises(
        InputError,
        match=re.escape(
            "event purchase: the impressions of dataset 'shop' record no conversion outcome; "
            "use event click"
        ),
    ):
        compare_arms(path, control="a", event="purchase")
    users = build_store(tmp_path / "users.duckdb", with_experiment=False)
    with pytest.raises(
        StoreError,
        match=re.escape("dataset 'shop' has no experiment (no rows in the experiments table)"),
    ):
        compare_arms(users)


def test_several_experiments_need_a_choice(tmp_path: Path) -> None:
    path = hand_store(tmp_path / "two.duckdb")
    con = duckdb.connect(str(path))
    con.execute(
        "INSERT INTO experiments VALUES ('shop', 'other', ['x', 'y'], NULL, 'x', NULL, NULL)"
    )
    con.close()
    with pytest.raises(
        StoreError,
        match=re.escape(
            "dataset 'shop' holds several experiments (exp, other); choose one with experiment"
        ),
    ):
        compare_arms(path)
    assert compare_arms(path, experiment="exp").experiment == "exp"


def test_compare_means_zero_control_mean() -> None:
    control = ArmAggregates(name="C", units=3, y_sum=0.0, y_sum_sq=0.0)
    treatment = ArmAggregates(name="T", units=3, y_sum=3.0, y_sum_sq=5.0)
    result = compare_means(control, treatment)
    assert math.isnan(result.lift)
    assert any("control mean is 0" in n for n in result.notes)


def test_report_tables(hand_db: Path) -> None:
    report = compare_arms(hand_db, metrics=("conversion", "mean"))
    table = report.to_pandas()
    assert list(table["metric"]) == ["conversion", "mean"]
    assert {"diff_ci_lower", "lift_ci_upper", "p_adjusted", "significant"} <= set(table.columns)
    arms = report.arms_to_pandas()
    assert list(arms["units"]) == [10, 10, 10, 10]


# -- fewer than two arms, empty arms ------------------------------------------------------------


def test_single_arm_experiment_is_an_input_error(tmp_path: Path) -> None:
    # It once ran: SRM chi2 = 0, p = NaN, "mismatch p = nan" and zero comparisons, silently.
    path = build_store(
        tmp_path / "one.duckdb",
        arms=("control",),
        split=(1.0,),
        assignments=[(f"c{i}", "control", None) for i in range(5)],
    )
    before = file_digest(path)
    with pytest.raises(
        InputError,
        match=re.escape(
            "experiment 'exp' of dataset 'shop' has 1 arm(s) (control); an A/B comparison "
            "needs at least two"
        ),
    ):
        compare_arms(path)
    assert file_digest(path) == before


def test_an_empty_arm_names_the_srm(tmp_path: Path) -> None:
    path = build_store(
        tmp_path / "empty.duckdb", assignments=[(f"c{i}", "control", None) for i in range(10)]
    )
    with pytest.raises(
        InputError,
        match=re.escape(
            "arm 'treatment' of dataset 'shop' has no units to analyse; units per arm: "
            "control 10, treatment 0; SRM check against the designed split 50/50: chi2 = 10, "
            "p = 0.00157. An empty arm is the most extreme sample ratio mismatch: the "
            "assignment or logging is broken"
        ),
    ):
        compare_arms(path)


# -- daily looks: the last look is the single analysis ------------------------------------------


def _edge_store(path: Path) -> Path:
    """Purchases before the user's assignment day, a session crossing midnight, impressions
    and purchases that end on different days."""
    assignments = [(f"c{i}", "control", day(i)) for i in range(4)]
    assignments += [(f"t{i}", "treatment", day(i)) for i in range(4)]
    events = [
        ("c2", "purchase", day(0.5), 10.0, "s1"),  # day 0, before c2's assignment on day 2
        ("c3", "purchase", day(1.2), 4.0, "s2"),
        ("t1", "purchase", day(1.9), 7.0, "s3"),  # session s3 crosses midnight:
        ("t1", "purchase", day(2.1), 3.0, "s3"),  # one session, two orders
        ("t1", "view", day(2.2), None, "s3"),
        ("t2", "purchase", day(2.5), 8.0, "s4"),
        ("t3", "purchase", day(3.5), 6.0, "s5"),
        ("c0", "purchase", day(3.5), 5.0, "s6"),
    ]
    impressions = [(f"{a}{i}", day(i + 1.5), None, (i + j) % 2) for a in "ct" for i in range(4)
                   for j in range(3)]  # fmt: skip
    impressions += [("c0", day(7.5), None, 1), ("t0", day(6.5), None, 0)]
    return build_store(path, assignments=assignments, events=events, impressions=impressions)


@pytest.mark.parametrize(
    ("metric", "ratio"),
    [
        ("conversion", None),
        ("mean", None),
        ("ratio", "revenue_per_order"),
        ("ratio", "orders_per_session"),
        ("ratio", "clicks_per_impression"),
    ],
)
def test_last_daily_look_is_the_single_analysis_exactly(tmp_path: Path, metric, ratio) -> None:
    # Daily aggregation once dropped outcomes from before a user's assignment day and counted
    # a session crossing midnight twice, so its last look differed from the final analysis.
    from abkit.data.aggregate import MetricSpec, arm_aggregates, daily_aggregates, load_design
    from abkit.data.store import open_store

    path = _edge_store(tmp_path / "edge.duckdb")
    spec = MetricSpec(kind=metric, event="purchase", ratio=ratio)
    with open_store(path) as store:
        design = load_design(store.con, "shop", None)
        final = arm_aggregates(store.con, design, spec)
        daily = daily_aggregates(store.con, design, spec)
    assert daily.looks[-1] == final.arms
    if ratio == "orders_per_session":
        assert [a.d_sum for a in final.arms] == [3.0, 3.0]  # s3 is one session


def test_last_daily_look_is_the_single_analysis_on_the_simulator(sim_db: Path) -> None:
    from abkit.data.aggregate import MetricSpec, arm_aggregates, daily_aggregates, load_design
    from abkit.data.store import open_store

    with open_store(sim_db) as store:
        design = load_design(store.con, "sim", None)
        metrics = [("conversion", None), ("mean", None), ("ratio", "orders_per_session"),
                   ("ratio", "clicks_per_impression"), ("ratio", "revenue_per_order")]  # fmt: skip
        for kind, ratio in metrics:
            spec = MetricSpec(kind=kind, event="purchase", ratio=ratio)
            final = arm_aggregates(store.con, design, spec).arms
            last = daily_aggregates(store.con, design, spec).looks[-1]
            for a, b in zip(final, last, strict=True):
                assert (a.name, a.units) == (b.name, b.units)
                # Counts are exact; revenue sums differ only by floating-point summation order.
                for key, value in a.to_dict().items():
                    if value is None:
                        assert getattr(b, key) is None
                    elif key not in ("name", "units"):
                        assert getattr(b, key) == pytest.approx(value, rel=1e-12), (kind, key)


def test_daily_paths_are_keyed_by_day_across_metrics(tmp_path: Path) -> None:
    # Purchases end on day 3, impressions run to day 7: every look carries both metrics, and
    # the conversion path stays where it was after its last data (day 3).
    path = _edge_store(tmp_path / "edge.duckdb")
    report = compare_arms(path, metrics=("conversion", "ratio"), looks="daily")
    assert [look.day for look in report.looks] == list(range(8))
    for look in report.looks:
        assert [c.metric for c in look.comparisons] == ["conversion", "clicks_per_impression"]
    conversion = [look.comparisons[0] for look in report.looks]
    assert all(c == conversion[3] for c in conversion[3:])
    clicks = report.looks[-1].comparisons[1]
    final = compare_arms(path, metrics="ratio")
    assert clicks.diff == pytest.approx(final.comparisons[0].diff, rel=1e-12)


# -- sequential: the always-valid answer leads ------------------------------------------------


@pytest.fixture(scope="module")
def peeked_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """575 vs 500 conversions of 10,000 users per arm: significant at one planned look only."""
    return counts_store(tmp_path_factory.mktemp("peeked") / "peeked.duckdb")


def _reference_always_valid_p(x_t: int, x_c: int, n: int, horizon: int, alpha: float) -> float:
    """The mSPRT p-value at one look, straight from Johari et al. (2017) with Howard et al.'s
    (2021) tuning: Lambda = sqrt(V / (V + tau2)) exp(tau2 d^2 / (2 V (V + tau2)))."""
    p_t, p_c = x_t / n, x_c / n
    var = p_t * (1 - p_t) / n + p_c * (1 - p_c) / n
    log_term = 2 * math.log(1 / alpha)
    tau2 = n * var * (log_term + math.log(1 + log_term)) / horizon
    d = p_t - p_c
    lam = math.sqrt(var / (var + tau2)) * math.exp(tau2 * d**2 / (2 * var * (var + tau2)))
    return min(1.0, 1 / lam)


def test_sequential_headline_is_the_always_valid_one(peeked_db: Path) -> None:
    from statsmodels.stats.proportion import test_proportions_2indep

    fixed = compare_arms(peeked_db).comparisons[0]
    (c,) = compare_arms(peeked_db, sequential=True).comparisons
    z_ref = test_proportions_2indep(575, 10_000, 500, 10_000, method="score", correction=False)
    # the fixed-sample answer, kept aside
    assert c.fixed_sample_p_value == pytest.approx(0.0187, abs=5e-5)
    assert c.fixed_sample_p_value == pytest.approx(z_ref.pvalue, rel=1e-9)
    assert c.fixed_sample_p_value == fixed.p_value
    assert c.fixed_sample_p_adjusted == fixed.p_adjusted
    assert c.fixed_sample_significant is True
    assert c.fixed_sample_method == fixed.method == "pooled two-proportion z-test"
    # the headline: always valid, not significant
    assert c.p_value == pytest.approx(_reference_always_valid_p(575, 500, 10_000, 10_000, 0.05))
    assert c.p_value == pytest.approx(0.256, abs=5e-4)
    assert c.p_adjusted == c.p_value == c.sequential.p_value
    assert c.significant is False
    assert c.method == c.sequential.method
    # the headline intervals are the confidence sequences; the fixed-sample ones kept aside
    s = c.sequential
    assert c.diff_ci == (s.diff_cs_lower, s.diff_cs_upper)
    assert c.lift_ci == (s.lift_cs_lower, s.lift_cs_upper)
    assert c.lift_ci_method == c.diff_ci_method == s.method
    assert (c.fixed_sample_diff_ci_lower, c.fixed_sample_diff_ci_upper) == fixed.diff_ci
    assert (c.fixed_sample_lift_ci_lower, c.fixed_sample_lift_ci_upper) == fixed.lift_ci
    assert c.fixed_sample_lift_ci_method == fixed.lift_ci_method
    assert c.lift_ci[0] < 0 < fixed.lift_ci[0]  # only the fixed-sample interval excludes 0
    assert c.to_dict()["fixed_sample_lift_ci"] == list(fixed.lift_ci)
    assert "fixed_sample_lift_ci" not in fixed.to_dict()
    # the fixed-sample fields are absent without --sequential, present with it
    assert fixed.fixed_sample_p_value is None
    assert "fixed_sample_p_value" not in fixed.to_dict()
    assert c.to_dict()["fixed_sample_p_value"] == c.fixed_sample_p_value


@pytest.mark.parametrize(
    ("claim", "sequential_verdict", "fixed_verdict"),
    [
        (0.0, "not decided", "supported"),  # the fixed interval starts at +2.4%, the CS at -4.0%
        (0.3, "not decided", "refuted"),  # the fixed interval ends at +29.2%, the CS at +37.8%
        (0.5, "refuted", "refuted"),
        (-0.5, "supported", "supported"),
    ],
)
def test_sequential_claim_follows_the_confidence_sequence(
    peeked_db: Path, claim: float, sequential_verdict: str, fixed_verdict: str
) -> None:
    report = compare_arms(peeked_db, sequential=True, claim=claim)
    (c,) = report.comparisons
    s = c.sequential
    assert c.claim is not None
    assert c.fixed_sample_claim is not None
    assert report.claim == c.claim == s.claim
    assert c.claim.verdict == sequential_verdict
    assert c.fixed_sample_claim.verdict == fixed_verdict
    assert c.fixed_sample_claim == compare_arms(peeked_db, claim=claim).claim
    assert (c.claim.max_supported_lift, c.claim.min_refuted_lift) == (
        s.lift_cs_lower,
        s.lift_cs_upper,
    )
    assert (c.claim.verdict == "supported") == (s.lift_cs_lower > claim)
    assert (c.claim.verdict == "refuted") == (s.lift_cs_upper < claim)


def test_sequential_family_is_corrected_on_the_always_valid_p_values(hand_db: Path) -> None:
    from abkit.stats.multiplicity import adjust

    report = compare_arms(hand_db, metrics=("conversion", "mean"), sequential=True)
    plain = compare_arms(hand_db, metrics=("conversion", "mean"))
    always_valid = [c.sequential.p_value for c in report.comparisons]
    assert [c.p_value for c in report.comparisons] == always_valid
    assert [c.p_adjusted for c in report.comparisons] == pytest.approx(
        list(adjust(always_valid, "holm"))
    )
    assert [c.fixed_sample_p_adjusted for c in report.comparisons] == [
        c.p_adjusted for c in plain.comparisons
    ]


@pytest.fixture(scope="module")
def obd_campaigns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from abkit.data.ingest import ingest_file

    db = tmp_path_factory.mktemp("obd-campaigns") / "obd.duckdb"
    for campaign in ("all", "men", "women"):
        for policy in ("random", "bts"):
            ingest_file(OBD / policy / campaign / f"{campaign}.csv.gz", db, preset="obd")
    return db


def test_compare_datasets_one_holm_family(obd_campaigns: Path) -> None:
    from statsmodels.stats.multitest import multipletests

    from abkit.compare import compare_datasets

    names = ["obd-all", "obd-men", "obd-women"]
    reports = compare_datasets(obd_campaigns, datasets=names, claim=0.2)
    alone = [compare_arms(obd_campaigns, dataset=n, claim=0.2) for n in names]
    raw = [r.comparisons[0].p_value for r in alone]
    holm = multipletests(raw, method="holm")[1]
    for report, single, expected in zip(reports, alone, holm, strict=True):
        (c,) = report.comparisons
        assert report.dataset == single.dataset
        assert c.p_value == single.comparisons[0].p_value  # only the adjustment changes
        assert c.lift_ci == single.comparisons[0].lift_ci
        assert c.p_adjusted == pytest.approx(expected, rel=1e-12)
        assert c.significant == (expected <= 0.05)
        assert len(report.family) == 3
        assert any("family of 3 comparison(s)" in d for d in report.defaults)


def test_compare_datasets_refusals(obd_campaigns: Path) -> None:
    from abkit.compare import compare_datasets

    with pytest.raises(InputError, match="named twice"):
        compare_datasets(obd_campaigns, datasets=["obd-all", "obd-all"])
    with pytest.raises(InputError, match="two or more"):
        compare_datasets(obd_campaigns, datasets=["obd-all"])
    with pytest.raises(InputError, match="one dataset at a time"):
        compare_datasets(obd_campaigns, datasets=["obd-all", "obd-men"], sequential=True)
