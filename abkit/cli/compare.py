"""``abkit compare``: the A/B arms of an experiment, or stored replay runs paired by user.

The command parses its options, calls one library function of :mod:`abkit.compare`
(:func:`~abkit.compare.arms.compare_arms` or :func:`~abkit.compare.runs.compare_runs`) and
renders the frozen result; no statistics happen here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from abkit.cli import render
from abkit.cli.common import (
    DEFAULT_DB,
    RELATIVE_RULE,
    DatasetOption,
    DbOption,
    EngineOption,
    EventOption,
    JsonOption,
    MetricOption,
    RatioOption,
    SourceOption,
    SparkMasterOption,
    relative_option,
)
from abkit.cli.plot import PlotOption, check_plot, write_plot
from abkit.cli.render import diff_text as _diff
from abkit.cli.render import lift_interval_text as _lift_interval
from abkit.cli.render import lift_text as _lift
from abkit.cli.render import p_eq_text as _p_eq
from abkit.cli.render import p_text as _p
from abkit.cli.render import value_text as _value
from abkit.compare.arms import compare_arms, compare_datasets
from abkit.errors import InputError

if TYPE_CHECKING:
    from abkit.stats.results import ArmComparisonReport, Comparison


def compare(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="Replay runs to compare (ids or names; the first is the reference): paired by "
            "user, or by logged round for off-policy runs. Without them, the A/B arms of the "
            "dataset's experiment are compared.",
            show_default=False,
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
    dataset: DatasetOption = None,
    datasets: Annotated[
        str | None,
        typer.Option(
            "--datasets",
            help="Compare the arms of several datasets (comma-separated, e.g. "
            "obd-all,obd-men,obd-women) with ONE multiple-testing family over all their "
            "comparisons (--correction).",
            show_default=False,
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(help="Experiment inside the dataset (default: the only one)."),
    ] = None,
    metric: MetricOption = None,
    event: EventOption = None,
    ratio: RatioOption = "clicks_per_impression",
    control: Annotated[
        str | None,
        typer.Option(help="The control arm (default: the experiment's own)."),
    ] = None,
    claim: Annotated[
        float | None,
        relative_option(
            "Check a claimed relative lift, 0.2 or 20% for 'converts 20% better': verdict "
            "supported / refuted / not decided. " + RELATIVE_RULE
        ),
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level (two-sided).")] = 0.05,
    split: Annotated[
        str | None,
        typer.Option(
            help="Designed split for the SRM check, e.g. 50/50 or 40/30/30: the control's "
            "share first, then the other arms in the experiment's order (alphabetical when the "
            "store records no design, as with --aggregates) (default: the experiment's own).",
            show_default=False,
        ),
    ] = None,
    correction: Annotated[
        str,
        typer.Option(help="Multiple-testing correction: holm, bh, bonferroni, hochberg, by, none."),
    ] = "holm",
    sequential: Annotated[
        bool,
        typer.Option(
            "--sequential",
            help="Add always-valid p-values and confidence sequences (mSPRT), safe to peek at.",
        ),
    ] = False,
    looks: Annotated[
        str,
        typer.Option(
            help="final (one analysis) or daily (the path day by day; implies --sequential)."
        ),
    ] = "final",
    horizon: Annotated[
        int | None,
        typer.Option(
            help="Planned units per arm the sequential test is tuned for (default 10,000). Fix "
            "it before the experiment; never set it to the size observed so far.",
            show_default=False,
        ),
    ] = None,
    cuped: Annotated[
        bool,
        typer.Option("--cuped", help="Reduce variance with the pre-experiment period (CUPED)."),
    ] = False,
    bayes: Annotated[
        bool,
        typer.Option(
            "--bayes", help="Add the Beta-Binomial P(treatment > control) (not a p-value)."
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Exit with code 1 on a sample ratio mismatch."),
    ] = False,
    engine: EngineOption = "duckdb",
    source: SourceOption = None,
    spark_master: SparkMasterOption = None,
    aggregates: Annotated[
        Path | None,
        typer.Option(
            "--aggregates",
            help="Read the per-arm sums from this file (CSV, Parquet or JSON: the result of "
            "`abkit sql` run in a warehouse) instead of aggregating; the design comes from "
            "--db when it exists, else from the file and --control. Without --metric, every "
            "metric the file holds is compared.",
            show_default=False,
        ),
    ] = None,
    json: JsonOption = False,
    plot: PlotOption = None,
) -> None:
    """Compare A/B arms: effects with intervals, the SRM check, and an honest claim verdict."""
    check_plot(plot)
    if targets and (engine != "duckdb" or aggregates is not None):
        raise InputError(
            "--engine spark and --aggregates compare A/B arms; replay runs are compared from "
            "the DuckDB store (--db)"
        )
    if aggregates is not None and engine != "duckdb":
        raise InputError("--aggregates reads finished sums; it takes no --engine")
    if targets:
        ab_only = [
            name
            for name, given in (
                ("--dataset", dataset is not None),
                ("--datasets", datasets is not None),
                ("--experiment", experiment is not None),
                ("--event", event is not None),
                ("--ratio", ratio != "clicks_per_impression"),
                ("--control", control is not None),
                ("--split", split is not None),
                ("--sequential", sequential),
                ("--looks", looks != "final"),
                ("--horizon", horizon is not None),
                ("--cuped", cuped),
                ("--bayes", bayes),
                ("--strict", strict),
                ("--source", source is not None),
                ("--spark-master", spark_master is not None),
            )
            if given
        ]
        if ab_only:
            raise InputError(
                f"{', '.join(ab_only)}: A/B options only; replay runs are compared with "
                "--metric, --alpha, --correction, --claim, --json and --plot (the first run is "
                "the reference)"
            )
        from abkit.compare.runs import compare_runs  # not imported to compare arms

        result = compare_runs(
            db, targets, metrics=metric, confidence=1 - alpha, correction=correction, claim=claim
        )
        if json:
            render.print_json(result.to_dict())
        else:
            render.run_comparison(result)
        write_plot(result, plot)
        return
    if datasets is not None:
        if dataset is not None or targets or plot is not None or strict:
            raise InputError(
                "--datasets compares A/B arms only: no --dataset, runs, --plot or --strict"
            )
        reports = compare_datasets(
            db,
            datasets=[d.strip() for d in datasets.split(",") if d.strip()],
            experiment=experiment,
            metrics=tuple(metric or ("conversion",)),
            event=event,
            ratio=ratio,
            control=control,
            claim=claim,
            alpha=alpha,
            split=split,
            correction=correction,  # type: ignore[arg-type]
            sequential=sequential,
            looks=looks,
            horizon=horizon,
            cuped=cuped,
            bayes=bayes,
        )
        if json:
            render.print_json(
                {
                    "correction": correction,
                    "family": list(reports[0].family),
                    "reports": [r.to_dict() for r in reports],
                }
            )
        else:
            for r in reports:
                render_arm_report(r)
        return
    report = compare_arms_command(
        db=db,
        dataset=dataset,
        experiment=experiment,
        metric=metric,
        event=event,
        ratio=ratio,
        control=control,
        claim=claim,
        alpha=alpha,
        split=split,
        correction=correction,
        sequential=sequential,
        looks=looks,
        horizon=horizon,
        cuped=cuped,
        bayes=bayes,
        json=json,
        engine=engine,
        source=source,
        spark_master=spark_master,
        aggregates=aggregates,
    )
    write_plot(report, plot)
    if strict and report.srm_failed:
        raise typer.Exit(1)


def compare_arms_command(
    *,
    db: Path,
    dataset: str | None,
    experiment: str | None,
    metric: list[str] | None,
    event: str | None,
    ratio: str,
    control: str | None,
    claim: float | None,
    alpha: float,
    split: str | None,
    correction: str,
    sequential: bool,
    looks: str,
    horizon: int | None,
    cuped: bool,
    bayes: bool,
    json: bool,
    engine: str = "duckdb",
    source: str | None = None,
    spark_master: str | None = None,
    aggregates: Path | None = None,
) -> ArmComparisonReport:
    """The arm-comparison path of ``abkit compare``: run the analysis and render it."""

    report = compare_arms(
        db,
        dataset=dataset,
        experiment=experiment,
        # none given: conversion, or every metric an --aggregates file holds
        metrics=tuple(metric) if metric else None,  # type: ignore[arg-type]
        event=event,
        ratio=ratio,
        control=control,
        claim=claim,
        alpha=alpha,
        split=split,
        correction=correction,  # type: ignore[arg-type]
        sequential=sequential,
        looks=looks,  # type: ignore[arg-type]
        horizon=horizon,
        cuped=cuped,
        bayes=bayes,
        engine=engine,  # type: ignore[arg-type]
        source=source,
        spark_master=spark_master,
        aggregates=aggregates,
    )
    if json:
        render.print_json(report.to_dict())
    else:
        render_arm_report(report)
    return report


# -- the human report -------------------------------------------------------------------------


def render_arm_report(report: ArmComparisonReport) -> None:
    """Print an :class:`ArmComparisonReport` as a short report: warnings first."""

    for message in report.warnings:
        render.warning(message)
    confidence = f"{100 * (1 - report.alpha):g}%"
    title = f"A/B comparison: dataset {report.dataset}"
    if report.experiment:
        title += f", experiment {report.experiment}"
    render.line(title, style="bold")
    which = "an assumed equal split" if report.srm.split_assumed else "the designed split"
    if report.srm_failed:
        render.line(
            f"!! SAMPLE RATIO MISMATCH: the units per arm do not match {which} "
            f"(chi2 = {report.srm.chi2:.4g}, {_p_eq(report.srm.p_value)} <= {report.srm.alpha:g}). "
            "Fix the assignment before trusting anything below.",
            style="bold red",
        )
    elif report.srm.checked:
        shares = "/".join(f"{100 * s:g}" for s in report.srm.split)
        arms = "/".join(report.srm.arms)
        render.line(
            f"SRM check passed: units per arm ({arms}) fit {which} {shares} "
            f"(chi2 = {report.srm.chi2:.3g}, {_p_eq(report.srm.p_value)})"
            + (
                " (no designed split is recorded; pass --split to give it)."
                if report.srm.split_assumed
                else "."
            ),
            style="green",
        )
    else:
        render.line(f"SRM check skipped: {report.srm.note}.", style="yellow")
    render.line(
        f"Tested: every arm against the control '{report.control}' at alpha {report.alpha:g} "
        f"(two-sided, {confidence} intervals); "
        + (
            f"{len(report.comparisons)} comparison(s) corrected with {report.correction}."
            if len(report.family) == len(report.comparisons)
            else f"{len(report.comparisons)} comparison(s) here, corrected with "
            f"{report.correction} over a family of {len(report.family)} across the datasets."
        )
    )
    for metric in report.metrics:
        _render_metric(report, metric, confidence)
    if report.looks:
        _render_looks(report)
    render.line()
    render.line("Defaults and definitions:", style="bold")
    for text in report.defaults:
        render.line(f"  - {text}")


def _render_metric(report: ArmComparisonReport, metric: str, confidence: str) -> None:

    render.line()
    arms = [a for a in report.arms if a.metric == metric]
    is_conversion = metric == "conversion"
    columns = ["arm", f"{report.unit}s"]
    if is_conversion:
        columns += [
            f"{report.event} ({report.unit}s)" if report.unit == "user" else f"{report.event}s",
            "rate",
        ]
    elif metric == "mean":
        columns += ["total value", "mean per unit", "sd"]
    else:
        columns += ["numerator", "denominator", metric]
    rows = []
    for a in arms:
        name = a.name + (" (control)" if a.name == report.control else "")
        if is_conversion:
            rows.append([name, a.units, a.conversions, _value(metric, a.rate)])
        elif metric == "mean":
            rows.append([name, a.units, a.sum, a.rate, a.sd])
        else:
            rows.append(
                [name, a.units, _count(a.sum), _count(a.denominator), _value(metric, a.rate)]
            )
    render.console.print(render.table(f"{metric}", columns, rows))
    comparisons = [c for c in report.comparisons if c.metric == metric]
    for c in comparisons:
        _render_meaning(report, c, confidence)


def _count(value: float | None) -> float | int | None:
    """Whole-number totals print as integers (``35,500``, not ``3.55e+04``)."""
    if value is not None and math.isfinite(value) and value == int(value):
        return int(value)
    return value


def _render_meaning(report: ArmComparisonReport, c: Comparison, confidence: str) -> None:

    m = c.metric
    s = c.sequential
    render.line(f"{c.treatment} vs {c.control}", style="bold")
    band = "CI" if s is None else "confidence sequence"
    render.line(
        f"  difference {_diff(m, c.diff)}, {confidence} {band} [{_diff(m, c.diff_ci_lower)}, "
        f"{_diff(m, c.diff_ci_upper)}] ({c.diff_ci_method})"
    )
    render.line(
        f"  lift       {_lift(c.lift)}, {confidence} {band} "
        f"{_lift_interval(c.lift_ci_lower, c.lift_ci_upper)} ({c.lift_ci_method})"
    )
    if (
        s is not None
        and c.fixed_sample_lift_ci_lower is not None
        and c.fixed_sample_lift_ci_upper is not None
    ):
        render.line(
            f"  fixed-sample lift CI "
            f"{_lift_interval(c.fixed_sample_lift_ci_lower, c.fixed_sample_lift_ci_upper)} "
            f"({c.fixed_sample_lift_ci_method}): valid only at one pre-planned look"
        )
    verdict = "significant" if c.significant else "not significant"
    if s is None:
        render.line(
            f"  p-value    {_p(c.p_value)} ({c.method}); {report.correction}-adjusted "
            f"{_p(c.p_adjusted)}: {verdict} at alpha {report.alpha:g}"
        )
    else:
        render.line(
            f"  always-valid p-value {_p(c.p_value)} (mSPRT, tuned for {s.horizon:,} per arm, "
            f"{s.looks} look(s)); {report.correction}-adjusted {_p(c.p_adjusted)}: {verdict} "
            f"at alpha {report.alpha:g}"
        )
        render.line(
            f"  fixed-sample p-value {_p(c.fixed_sample_p_value)} ({c.fixed_sample_method}; "
            f"adjusted {_p(c.fixed_sample_p_adjusted)}): valid only at one pre-planned look, "
            "not after peeking"
        )
    score_p = c.fixed_sample_p_value if c.fixed_sample_p_value is not None else c.p_value
    if c.exact_p_value is not None:
        agree = (c.exact_p_value <= report.alpha) == (score_p <= report.alpha)
        render.line(
            f"  exact      {_p(c.exact_p_value)} ({c.exact_method}, shown for small counts): "
            + (
                "agrees with the score test"
                if agree
                else f"DISAGREES with the score test at alpha {report.alpha:g}; the verdict is "
                "fragile"
            )
        )
    if s is None:
        interval = _span(c.lift_ci_lower, c.lift_ci_upper)
        plausible = f"the plausible lifts run from {interval}"
        band = f"the {confidence} interval ({interval})"
        by = ""
    else:
        interval = _span(s.lift_cs_lower, s.lift_cs_upper)
        plausible = (
            f"the always-valid {confidence} confidence sequence of the lift runs from {interval}"
        )
        band = f"the always-valid {confidence} confidence sequence ({interval})"
        by = " by the always-valid test"
    if c.significant:
        direction = "better" if c.diff > 0 else "worse"
        render.line(
            f"What it means: {c.treatment} does {direction} than {c.control} on {c.metric}, "
            f"more than chance explains at alpha {report.alpha:g} after {report.correction}"
            f"{by}; {plausible}."
        )
    else:
        low, high = (
            (c.lift_ci_lower, c.lift_ci_upper) if s is None else (s.lift_cs_lower, s.lift_cs_upper)
        )
        if low > 0 or high < 0:  # the interval is per comparison; the verdict is adjusted
            render.line(
                f"What it means: {band} excludes no change, but after {report.correction} over "
                f"the {len(report.family)} comparisons the difference is not significant "
                f"at alpha {report.alpha:g}{by}: the data cannot tell {c.treatment} from "
                f"{c.control} on {c.metric} once the family is counted (the interval is not "
                "adjusted for it)."
            )
        else:
            render.line(
                f"What it means: {band} includes no change, so the "
                f"data cannot tell {c.treatment} from {c.control} on {c.metric}{by}. That is not "
                "evidence of no effect: every lift in the interval is still plausible."
            )
    if c.design_effect is not None:
        render.line(
            f"  Design effect {c.design_effect:.2f}: treating rows as independent would "
            f"understate the variance {c.design_effect:.2f}x (abkit uses the delta method over "
            f"{report.unit}s)."
        )
    if c.variance_reduction is not None:
        render.line(
            f"  CUPED reduced the variance of the difference by {100 * c.variance_reduction:.1f}%."
        )
    if c.claim is not None:
        _render_claim(report, c, confidence)
    if s is not None:
        render.line(
            f"  Sequential (always valid, safe to peek; tuned for {s.horizon:,} per arm): "
            f"{_p_eq(s.p_adjusted)}, lift confidence sequence "
            f"{_span(s.lift_cs_lower, s.lift_cs_upper)} over "
            f"{s.looks} look(s): {'significant' if s.significant else 'not significant'}."
        )
    if c.bayes is not None:
        b = c.bayes
        render.line(
            f"  Bayesian view (a posterior probability, NOT a p-value): P({c.treatment} > "
            f"{c.control}) = {100 * b.prob_treatment_better:.1f}% under a Beta({b.prior_alpha:g}, "
            f"{b.prior_beta:g}) prior; expected loss of shipping {c.treatment}: "
            f"{_diff(c.metric, b.expected_loss_treatment)}, of keeping {c.control}: "
            f"{_diff(c.metric, b.expected_loss_control)}."
        )


def _span(low: float, high: float) -> str:
    """``-4.0% to +31.1%`` for an interval in words; "undefined (control near 0)" when an end is
    infinite, "empty or undefined" when both are missing (an empty confidence sequence)."""
    if math.isnan(low) and math.isnan(high):
        return "empty or undefined"
    if math.isinf(low) or math.isinf(high):
        return render.UNDEFINED_RELATIVE
    return f"{_lift(low)} to {_lift(high)}"


def _render_claim(report: ArmComparisonReport, c: Comparison, confidence: str) -> None:
    k = c.claim
    assert k is not None
    sequential = c.sequential is not None
    claim = _lift(k.claim)
    band = (
        f"always-valid {confidence} confidence sequence" if sequential else f"{confidence} interval"
    )
    valid = "always-valid " if sequential else ""
    if k.method.startswith("exact") and not sequential:
        # the exact test's bounds, not the interval printed above, decide: name them
        upper = (
            f"to {_lift(k.min_refuted_lift)}" if math.isfinite(k.min_refuted_lift) else "and above"
        )
        band = (
            f"range the exact test allows at {confidence} ({_lift(k.max_supported_lift)} {upper})"
        )
    if k.verdict == "supported":
        meaning = (
            f"SUPPORTED: the whole {band} lies above {claim} "
            f"({valid}{_p_eq(k.p_value_above)} for H0: lift <= {claim})."
        )
    elif k.verdict == "refuted":
        meaning = (
            f"REFUTED: the whole {band} lies below {claim} "
            f"({valid}{_p_eq(k.p_value_below)} for H0: lift >= {claim}); the data rule "
            f"out lifts above {_lift(k.min_refuted_lift)}."
            if sequential
            else f"REFUTED: the lift is below {claim} with {confidence} confidence "
            f"({_p_eq(k.p_value_below)} for H0: lift >= {claim}); the data rule "
            f"out lifts above {_lift(k.min_refuted_lift)}."
        )
    else:
        meaning = (
            f"NOT DECIDED: the {band} contains {claim} "
            f"({valid}{_p_eq(k.p_value_above)} for H0: lift <= {claim}, "
            f"{_p_eq(k.p_value_below)} for H0: lift >= {claim})."
        )
    render.line(f"Claim lift >= {claim} ({c.treatment}): {meaning}", style="bold")
    if sequential:
        render.line(f"  The claim is judged from the {band} of the lift, safe to peek at.")
        fixed = c.fixed_sample_claim
        if fixed is not None:
            render.line(
                f"  The fixed-sample verdict would be {fixed.verdict} (the {confidence} "
                "interval), valid only at one pre-planned look."
            )
    elif k.method.startswith("exact"):
        render.line(
            f"  Small counts: the claim is decided by an exact test of the rate ratio, one-sided "
            f"at {100 * k.level_each_side:g}% each way; its bounds can be wider than the "
            f"{confidence} interval above."
        )
    else:
        render.line(
            f"  The claim is tested one-sided at {100 * k.level_each_side:g}% each way "
            f"(alpha/2, so it agrees with the {confidence} interval)."
        )
    bound = (
        f"the lower end of the always-valid {confidence} confidence sequence"
        if sequential
        else f"the lower {confidence} bound"
    )
    render.line("  " + render.supported_lift_text(k.max_supported_lift, bound))
    if k.units_needed is not None and k.verdict == "not decided":
        render.line(
            f"  About {k.units_needed:,} {report.unit}s per arm would decide it with 80% "
            f"power if the true lift were the observed {_lift(k.lift)}."
        )


def _render_looks(report: ArmComparisonReport) -> None:

    keys = [(c.metric, c.treatment) for c in report.looks[0].comparisons]
    for metric, treatment in keys:
        render.line()
        rows = []
        for look in report.looks:
            c = next(x for x in look.comparisons if (x.metric, x.treatment) == (metric, treatment))
            rows.append([
                look.day_start.date().isoformat() if look.day_start else f"day {look.day}",
                "/".join(f"{u:,}" for u in look.units),
                _lift(c.lift),
                _lift_interval(c.lift_cs_lower, c.lift_cs_upper),
                _p(c.naive_p_value),
                _p(c.always_valid_p_value),
            ])  # fmt: skip
        render.console.print(
            render.table(
                f"Daily looks, cumulative: {treatment} vs {report.control} on {metric}",
                ["day", "units", "lift", "conf. sequence", "naive p", "valid p"],
                rows,
            )
        )
    render.line(
        "The naive p-value is only valid at one pre-planned look; checking it every day "
        "inflates false positives. The always-valid p-value and the confidence sequence may be "
        "checked at every look."
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("compare")(compare)
