"""`abkit compare` on the command line: the JSON contract with exact numbers from a hand-built
store, the report's order (warnings and SRM first), --strict, the options passed through
unchanged, and the OBD acceptance case. (``abkit compare RUN_A RUN_B`` is tested with the run
comparisons.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abkit.cli.main import app
from abkit.stats import proportions
from tests._ab_store import counts_store, day, hand_store
from tests.conftest import OBD, obd_pinned


@pytest.fixture
def hand_db(tmp_path: Path) -> Path:
    return hand_store(tmp_path / "hand.duckdb")


def test_json_contract_with_exact_numbers(runner, hand_db: Path) -> None:
    result = runner.invoke(app, ["compare", "--db", str(hand_db), "--claim", "0.2", "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    arms = [{k: a[k] for k in ("name", "units", "conversions", "rate")} for a in payload["arms"]]
    assert arms == [
        {"name": "control", "units": 10, "conversions": 2, "rate": 0.2},
        {"name": "treatment", "units": 10, "conversions": 4, "rate": 0.4},
    ]
    (c,) = payload["comparisons"]
    assert c["control"] == "control"
    assert c["treatment"] == "treatment"
    assert c["diff"] == pytest.approx(0.2)
    assert c["diff_ci"] == pytest.approx([-0.18696208287039146, 0.5210862318923274], abs=1e-12)
    assert c["lift"] == pytest.approx(1.0)
    assert c["lift_ci"] == pytest.approx([-0.4637653192684393, 7.125204980927824], abs=1e-9)
    # The pooled z-test stays the p-value (the dual of the lift interval); Fisher's exact
    # p-value is shown next to it for these small counts.
    assert c["p_value"] == pytest.approx(0.3291139859786082, abs=1e-14)
    assert c["p_adjusted"] == c["p_value"]
    assert c["method"] == "pooled two-proportion z-test"
    assert c["exact_p_value"] == pytest.approx(0.6284829721362228, abs=1e-14)
    assert c["significant"] is False
    assert payload["srm"]["ok"] is True
    assert payload["srm"]["chi2"] == 0.0
    assert payload["srm"]["p_value"] == 1.0
    claim = payload["claim"]
    assert set(claim) >= {
        "lift",
        "p_value_above",
        "p_value_below",
        "verdict",
        "max_supported_lift",
        "units_needed",
    }
    assert claim["verdict"] == "not decided"
    assert claim["level_each_side"] == 0.025
    assert claim == c["claim"]
    # 4/10 vs 2/10: small counts under the claim's null, so the exact test decides and its
    # bound (not the Koopman interval's -46.4%) is the largest supported lift.
    assert claim["method"].startswith("exact conditional test of the rate ratio")
    exact_lower = proportions.exact_ratio_bounds(4, 10, 2, 10)[0]
    assert claim["max_supported_lift"] == pytest.approx(exact_lower - 1, abs=1e-9)
    assert claim["max_supported_lift"] < c["lift_ci"][0]
    assert payload["family"] == ["treatment vs control on conversion"]
    assert payload["srm_failed"] is False


def test_human_report_reads_in_order(runner, hand_db: Path) -> None:
    result = runner.invoke(app, ["compare", "--db", str(hand_db), "--claim", "0.2", "--bayes"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    order = [
        "A/B comparison: dataset shop, experiment exp",
        "SRM check passed",
        "Tested: every arm against the control 'control' at alpha 0.05",
        "difference +20.00 pp, 95% CI [-18.70 pp, +52.11 pp] (Newcombe hybrid score)",
        "lift       +100.0%, 95% CI [-46.4%, +712.5%]",
        "p-value    0.329 (pooled two-proportion z-test)",
        "exact      0.628 (Fisher's exact test (two-sided, conditional), shown for small "
        "counts): agrees with the score test",
        "Claim lift >= +20.0% (treatment): NOT DECIDED",
        "Small counts: the claim is decided by an exact test of the rate ratio, one-sided at "
        "2.5% each way",
        "Bayesian view (a posterior probability, NOT a p-value)",
        "Defaults and definitions:",
        "share of users with at least one 'purchase' event in the experiment window",
    ]
    positions = [out.index(text) for text in order]
    assert positions == sorted(positions)
    assert "1 unit(s) were assigned to more than one arm and are excluded" in result.stderr


def test_srm_is_shown_first_and_strict_exits_1(runner, hand_db: Path) -> None:
    args = ["compare", "--db", str(hand_db), "--split", "90/10"]
    loose = runner.invoke(app, args)
    assert loose.exit_code == 0
    first_lines = loose.stdout.splitlines()[:2]
    assert first_lines[1].startswith("!! SAMPLE RATIO MISMATCH")
    assert loose.stderr.startswith("warning: sample ratio mismatch")
    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 1
    as_json = runner.invoke(app, [*args, "--strict", "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["srm"]["ok"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "conversions"], "error: --metric: unknown metric 'conversions' (did you mean 'conversion'?)"),  # noqa: E501
        (["--correction", "bonf"], "error: --correction: unknown correction 'bonf'"),
        (["--control", "x"], "error: --control: unknown arm 'x'"),
        (["--alpha", "0"], "error: --alpha must be in (0, 1), got 0.0"),
    ],
)  # fmt: skip
def test_bad_options_exit_2(runner, hand_db: Path, args, message) -> None:
    result = runner.invoke(app, ["compare", "--db", str(hand_db), *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(message)


def test_command_only_translates_options(
    runner, monkeypatch: pytest.MonkeyPatch, hand_db: Path
) -> None:
    import abkit.cli.compare
    import abkit.compare.arms

    seen: dict = {}
    real = abkit.compare.arms.compare_arms

    def spy(db, **kwargs):
        seen.update(kwargs, db=db)
        return real(db, **kwargs)

    monkeypatch.setattr(abkit.cli.compare, "compare_arms", spy)
    result = runner.invoke(app, [
        "compare", "--db", str(hand_db), "--metric", "conversion", "--metric", "mean",
        "--event", "purchase", "--control", "treatment", "--claim", "0.1", "--alpha", "0.1",
        "--split", "50/50", "--correction", "bh", "--sequential", "--looks", "daily",
        "--horizon", "500", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert seen == {
        "db": hand_db, "dataset": None, "experiment": None, "metrics": ("conversion", "mean"),
        "event": "purchase", "ratio": "clicks_per_impression", "control": "treatment",
        "claim": 0.1, "alpha": 0.1, "split": "50/50", "correction": "bh", "sequential": True,
        "looks": "daily", "horizon": 500, "cuped": False, "bayes": False,
        "engine": "duckdb", "source": None, "spark_master": None, "aggregates": None,
    }  # fmt: skip
    payload = json.loads(result.stdout)
    assert payload["control"] == "treatment"
    assert len(payload["looks"]) == 9


def test_cli_json_equals_the_library_report(runner, sim_db: Path) -> None:
    from abkit.cli import render
    from abkit.compare.arms import compare_arms

    result = runner.invoke(
        app, ["compare", "--db", str(sim_db), "--claim", "0.2", "--cuped", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    expected = json.loads(
        json.dumps(render._jsonable(compare_arms(sim_db, claim=0.2, cuped=True).to_dict()))
    )
    assert json.loads(result.stdout) == expected


def test_daily_looks_report(runner, sim_db: Path) -> None:
    result = runner.invoke(app, ["compare", "--db", str(sim_db), "--looks", "daily"])
    assert result.exit_code == 0, result.stderr
    assert "Daily looks, cumulative: treatment vs control on conversion" in result.stdout
    assert "Sequential (always valid, safe to peek; tuned for 10,000 per arm)" in result.stdout
    assert "The naive p-value is only valid at one pre-planned look" in result.stdout


def test_obd_bts_against_random_with_a_claim(runner, tmp_path: Path) -> None:
    db = tmp_path / "obd.duckdb"
    for policy in ("random", "bts"):
        ingested = runner.invoke(
            app,
            [
                "ingest",
                str(OBD / policy / "all" / "all.csv.gz"),
                "--preset",
                "obd",
                "--db",
                str(db),
            ],
        )
        assert ingested.exit_code == 0, ingested.stderr
    result = runner.invoke(app, ["compare", "--db", str(db), "--claim", "0.2"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "impressions" in out
    assert "clicks" in out
    assert "random (control)" in out
    rates, lift = obd_pinned(
        full=(("0.38%", "0.42%"), "+10.5%, 95% CI [-28.4%, +70.7%]"),
        fixture=(("0.33%",), "+0.0%, 95% CI [-57.2%, +133.8%]"),
    )
    for rate in rates:
        assert rate in out
    assert f"lift       {lift}" in out
    assert "Claim lift >= +20.0% (bts): NOT DECIDED" in out
    assert (
        "SRM check passed: units per arm (random/bts) fit an assumed equal split 50/50 (chi2 = 0"
        in out
    )
    assert "(no designed split is recorded; pass --split to give it)." in out


@pytest.mark.parametrize(("control", "treatment"), [(20, 20), (60, 20)])
def test_without_a_designed_split_srm_assumes_an_equal_split(
    runner, tmp_path: Path, control: int, treatment: int
) -> None:
    """No split in the store: the check runs against 50/50 and says so; --strict exits 1 only
    on a real mismatch (60 vs 20 users: chi2 = 20, p = 7.7e-06), and --split overrides."""
    from tests._ab_store import build_store

    assignments = [(f"c{i}", "control", None) for i in range(control)]
    assignments += [(f"t{i}", "treatment", None) for i in range(treatment)]
    events = [("c0", "purchase", day(1), 1.0, None), ("t0", "purchase", day(1), 1.0, None)]
    path = build_store(
        tmp_path / "nosplit.duckdb", split=None, assignments=assignments, events=events
    )
    args = ["compare", "--db", str(path), "--strict"]
    result = runner.invoke(app, [*args, "--json"])
    payload = json.loads(result.stdout)
    assert payload["srm"]["checked"] is True
    assert payload["srm"]["split_assumed"] is True
    assert payload["srm"]["split"] == [0.5, 0.5]
    assert (
        "SRM check: chi-square goodness of fit against an assumed equal split (the store "
        "records no designed split; pass --split to give it); a mismatch is p <= 0.001"
    ) in payload["defaults"]
    mismatch = control != treatment
    assert payload["srm"]["ok"] is (not mismatch)
    assert payload["srm_failed"] is mismatch
    assert result.exit_code == (1 if mismatch else 0)
    text = runner.invoke(app, args)
    if mismatch:
        assert text.stderr.startswith(
            "warning: sample ratio mismatch: the units per arm (control 60, treatment 20) do "
            "not fit the assumed equal split 50/50 (no designed split is known; pass --split "
            "to give it)"
        )
        assert text.stdout.splitlines()[1].startswith(
            "!! SAMPLE RATIO MISMATCH: the units per arm do not match an assumed equal split"
        )
        given = runner.invoke(app, [*args, "--split", "75/25", "--json"])
        assert given.exit_code == 0
        assert json.loads(given.stdout)["srm"]["split_assumed"] is False
    else:
        assert (
            "SRM check passed: units per arm (control/treatment) fit an assumed equal split "
            in text.stdout
        )
    assert text.exit_code == result.exit_code


def test_single_arm_experiment_exits_2_even_with_strict(runner, tmp_path: Path) -> None:
    # It once exited 1 under --strict ("mismatch p = nan") and compared nothing.
    from tests._ab_store import build_store

    path = build_store(
        tmp_path / "one.duckdb",
        arms=("control",),
        split=(1.0,),
        assignments=[(f"c{i}", "control", None) for i in range(5)],
    )
    result = runner.invoke(app, ["compare", "--db", str(path), "--strict"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: experiment 'exp' of dataset 'shop' has 1 arm(s) (control); an A/B comparison "
        "needs at least two"
    )


def test_small_counts_that_disagree_are_flagged(runner, tmp_path: Path) -> None:
    # 7/34 vs 1/34: the score test says p = 0.024, Fisher 0.054; both shown, the clash warned.
    from tests._ab_store import build_store

    assignments = [(f"c{i}", "control", None) for i in range(34)]
    assignments += [(f"t{i}", "treatment", None) for i in range(34)]
    events = [("c0", "purchase", day(1), 1.0, None)]
    events += [(f"t{i}", "purchase", day(1), 1.0, None) for i in range(7)]
    path = build_store(tmp_path / "small.duckdb", assignments=assignments, events=events)
    result = runner.invoke(app, ["compare", "--db", str(path), "--claim", "0.1"])
    assert result.exit_code == 0, result.stderr
    assert (
        "p-value    0.0239 (pooled two-proportion z-test); holm-adjusted 0.0239: significant"
        in (result.stdout)
    )
    assert "exact      0.0544 (Fisher's exact test (two-sided, conditional), shown for small " in (
        result.stdout
    )
    assert "DISAGREES with the score test at alpha 0.05; the verdict is fragile" in result.stdout
    # the exact claim test decides at these counts (the score test said SUPPORTED)
    assert "Claim lift >= +10.0% (treatment): NOT DECIDED" in result.stdout
    assert "Small counts: the claim is decided by an exact test" in result.stdout
    assert (
        "warning: treatment vs control (conversion): the exact test (Fisher p = 0.0544) and the "
        "score test (p = 0.0239) disagree at alpha 0.05"
    ) in result.stderr


# -- sequential leads with the always-valid answer; wording of intervals and claims -----------


@pytest.fixture(scope="module")
def peeked_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return counts_store(tmp_path_factory.mktemp("peeked") / "peeked.duckdb")


def test_sequential_json_is_not_significant(runner, peeked_db: Path) -> None:
    args = ["compare", "--db", str(peeked_db), "--claim", "0", "--json"]
    fixed = json.loads(runner.invoke(app, args).stdout)["comparisons"][0]
    result = runner.invoke(app, [*args, "--sequential"])
    assert result.exit_code == 0, result.stderr
    (c,) = json.loads(result.stdout)["comparisons"]
    assert fixed["significant"] is True
    assert "fixed_sample_p_value" not in fixed
    assert c["significant"] is False
    assert c["p_value"] == pytest.approx(0.256, abs=5e-4)
    assert c["fixed_sample_p_value"] == pytest.approx(0.0187, abs=5e-5)
    assert c["fixed_sample_significant"] is True
    assert c["claim"]["verdict"] == "not decided"
    assert c["fixed_sample_claim"]["verdict"] == fixed["claim"]["verdict"] == "supported"


def test_sequential_report_leads_with_the_always_valid_answer(runner, peeked_db: Path) -> None:
    result = runner.invoke(
        app, ["compare", "--db", str(peeked_db), "--claim", "0", "--sequential"], terminal_width=200
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("treatment vs control")
    method = (
        "(mSPRT with a normal mixture on the standardised effect (always-valid p-value, "
        "confidence sequence = running intersection))"
    )
    assert lines[start + 1 : start + 4] == [
        f"  difference +0.75 pp, 95% confidence sequence [-0.22 pp, +1.72 pp] {method}",
        f"  lift       +15.0%, 95% confidence sequence [-4.0%, +37.8%] {method}",
        "  fixed-sample lift CI [+2.4%, +29.2%] (Koopman asymptotic score (rate ratio)): valid "
        "only at one pre-planned look",
    ]
    assert lines[start + 4 : start + 12] == [
        "  always-valid p-value 0.256 (mSPRT, tuned for 10,000 per arm, 1 look(s)); "
        "holm-adjusted 0.256: not significant at alpha 0.05",
        "  fixed-sample p-value 0.0187 (pooled two-proportion z-test; adjusted 0.0187): valid "
        "only at one pre-planned look, not after peeking",
        "What it means: the always-valid 95% confidence sequence (-4.0% to +37.8%) includes no "
        "change, so the data cannot tell treatment from control on conversion by the "
        "always-valid test. That is not evidence of no effect: every lift in the interval is "
        "still plausible.",
        "Claim lift >= +0.0% (treatment): NOT DECIDED: the always-valid 95% confidence sequence "
        "contains +0.0% (always-valid p = 0.258 for H0: lift <= +0.0%, p = 1.000 for H0: "
        "lift >= +0.0%).",
        "  The claim is judged from the always-valid 95% confidence sequence of the lift, safe "
        "to peek at.",
        "  The fixed-sample verdict would be supported (the 95% interval), valid only at one "
        "pre-planned look.",
        "  No lift above -4.0% is supported (the lower end of the always-valid 95% confidence "
        "sequence).",
        "  Sequential (always valid, safe to peek; tuned for 10,000 per arm): p = 0.256, lift "
        "confidence sequence -4.0% to +37.8% over 1 look(s): not significant.",
    ]
    assert "more than chance explains" not in result.stdout


def test_negative_supported_lift_and_unbounded_interval_wording(runner, tmp_path: Path) -> None:
    db = counts_store(tmp_path / "zero.duckdb", units=40, conversions=(0, 6))
    result = runner.invoke(app, ["compare", "--db", str(db), "--claim", "0.2"], terminal_width=200)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert (
        "  lift       +inf, 95% CI undefined (control near 0) (Koopman asymptotic score "
        "(rate ratio))\n" in out
    )
    assert "plausible lifts run from undefined (control near 0)." in out
    assert "inf, +inf]" not in out
    negative = runner.invoke(
        app,
        ["compare", "--db", str(hand_store(tmp_path / "hand.duckdb")), "--claim", "0.2"],
        terminal_width=200,
    )
    # small counts: the exact claim test's bound (the Koopman interval says -46.4%)
    assert "\n  No lift above -74.3% is supported (the lower 95% bound).\n" in negative.stdout
    assert "The largest lift the data support is -" not in negative.stdout


def test_compare_datasets_cli(tmp_path: Path, runner) -> None:
    from abkit.compare import compare_datasets
    from abkit.data.ingest import ingest_file

    db = tmp_path / "obd.duckdb"
    for campaign in ("men", "women"):
        for policy in ("random", "bts"):
            ingest_file(OBD / policy / campaign / f"{campaign}.csv.gz", db, preset="obd")
    args = ["compare", "--db", str(db), "--datasets", "obd-men,obd-women", "--claim", "0.2"]
    out = runner.invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    library = compare_datasets(db, datasets=["obd-men", "obd-women"], claim=0.2)
    assert payload["correction"] == "holm"
    assert payload["family"] == list(library[0].family)
    assert [r["comparisons"][0]["p_adjusted"] for r in payload["reports"]] == [
        r.comparisons[0].p_adjusted for r in library
    ]
    text = runner.invoke(app, args)
    assert text.exit_code == 0
    assert "dataset obd-men" in text.output
    assert "dataset obd-women" in text.output
    bad = runner.invoke(app, [*args, "--dataset", "obd-men"])
    assert bad.exit_code == 2
    assert "--datasets compares A/B arms only" in bad.output
