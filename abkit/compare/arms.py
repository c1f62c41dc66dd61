"""A/B analysis of a store's experiment: aggregate in DuckDB, infer in :mod:`abkit.stats`, report.

:func:`compare_arms` is the library behind ``abkit compare``: it reads the experiment's design,
asks :mod:`abkit.data.aggregate` for per-arm sufficient statistics (one query per metric, one
more per metric for ``looks="daily"``), runs the statistics on those few numbers and returns a
frozen :class:`~abkit.stats.results.ArmComparisonReport`. It never prints and never raises for
a sample ratio mismatch: the report carries ``srm_failed`` and the caller decides (``abkit
compare --strict`` exits 1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from abkit._util import unknown_choice
from abkit.compare.metrics import (
    KINDS,
    Metric,
    MetricName,
    make_metric,
    metric_choices,
    ratio_choices,
    registered_metrics,
)
from abkit.data.aggregate import (
    AggregateResult,
    DailyAggregates,
    ExperimentDesign,
    arm_aggregates,
    daily_aggregates,
    load_design,
)
from abkit.data.engines import Engine, open_source
from abkit.data.store import open_store
from abkit.errors import InputError, param
from abkit.stats.claims import check_claim
from abkit.stats.multiplicity import CORRECTIONS, DESCRIPTIONS, Correction, adjust
from abkit.stats.proportions import ExactMode
from abkit.stats.results import (
    ArmComparisonReport,
    ArmSummary,
    Comparison,
    Look,
    LookComparison,
    SRMResult,
)
from abkit.stats.sequential import DEFAULT_HORIZON, check_horizon, sequential_comparison
from abkit.stats.srm import normalise_split, parse_split, srm_check
from abkit.stats.sufficient import ArmAggregates

Looks = Literal["final", "daily"]


def compare_arms(
    db: str | Path | None = None,
    *,
    dataset: str | None = None,
    experiment: str | None = None,
    metrics: Sequence[MetricName] | MetricName | None = None,
    event: str | None = None,
    ratio: str = "clicks_per_impression",
    control: str | None = None,
    claim: float | None = None,
    alpha: float = 0.05,
    split: Sequence[float] | str | None = None,
    correction: Correction = "holm",
    sequential: bool = False,
    looks: Looks = "final",
    cuped: bool = False,
    bayes: bool = False,
    exact: ExactMode = "auto",
    srm_alpha: float = 0.001,
    horizon: int | None = None,
    engine: Engine = "duckdb",
    source: str | None = None,
    spark_master: str | None = None,
    aggregates: str | Path | None = None,
) -> ArmComparisonReport:
    """Compare every treatment arm of an experiment with its control.

    ``metrics``: ``conversion`` (share of units with >= 1 ``event``; default event ``purchase``,
    or ``click`` for impression datasets), ``mean`` (value per unit, Welch) and/or ``ratio``
    (``ratio`` names which: clicks_per_impression, revenue_per_order, orders_per_session; delta
    method); None (the default): ``conversion``, or with ``aggregates`` every metric the file
    holds. ``claim`` checks "lift >= claim" for every comparison. ``split`` is the designed
    split (``"50/50"`` or numbers; default the experiment's own) for the SRM check at
    ``srm_alpha``. The family for ``correction`` is every treatment x metric comparison with the
    control. ``sequential`` makes the always-valid p-value (mSPRT) and the lift's confidence
    sequence the headline: each comparison's ``p_value``, ``p_adjusted``, ``significant`` and
    claim verdict are then the always-valid ones, and the fixed-sample values move to its
    ``fixed_sample_*`` fields; ``looks="daily"`` also computes the path over days (and implies
    ``sequential``); ``horizon`` is the planned units per arm the sequential mixture is tuned
    for, fixed before the data (default :data:`abkit.stats.sequential.DEFAULT_HORIZON`, never
    the observed size, so daily re-runs stay always valid). ``cuped`` adjusts conversion/mean
    metrics with the pre-period; ``bayes`` adds the Beta-Binomial view of conversion metrics.
    ``exact`` controls when Fisher's exact p-value is shown next to the score-test p-value of a
    conversion metric (it never replaces it).

    ``engine="spark"`` runs the same aggregation SQL in Apache Spark over ``source`` (a
    folder written by ``abkit export``, or ``catalog:DB``; see :mod:`abkit.data.engines`);
    the inference below is the same. ``aggregates`` reads the per-arm sums from a file (the
    result of ``abkit sql``, :func:`abkit.data.aggregates_file.read_aggregates`) instead of
    aggregating; the design (arms, control, split, window) comes from the store ``db`` when it
    exists, else from the file and the options. The file is checked first
    (:func:`abkit.data.aggregates_file.check_aggregates`: non-numbers, missing or fractional
    counts, impossible negatives, duplicate rows are refused naming the file, row and column).

    Raises :class:`~abkit.errors.InputError` when the experiment has fewer than two arms, or
    an arm has no units (the message carries the SRM result, the most extreme mismatch).
    """

    if metrics is None and aggregates is None:
        metrics = "conversion"
    metric_list = _validate(
        metrics=metrics,
        alpha=alpha,
        correction=correction,
        looks=looks,
        cuped=cuped,
        sequential=sequential,
        bayes=bayes,
        claim=claim,
        ratio=ratio,
        srm_alpha=srm_alpha,
    )
    split_values = parse_split(split) if isinstance(split, str) else split
    sequential = sequential or looks == "daily"
    planned = check_horizon(horizon) if horizon is not None else DEFAULT_HORIZON

    if aggregates is not None:
        if looks == "daily":
            raise InputError(
                f"{param('looks')} daily needs the events per day; an {param('aggregates')} "
                "file holds the final sums only"
            )
        name, design, chosen_event, control_arm, specs, results = _from_aggregates_file(
            aggregates,
            db,
            dataset=dataset,
            experiment=experiment,
            asked=None if metrics is None else metric_list,
            event=event,
            ratio=ratio,
            control=control,
            cuped=cuped,
            bayes=bayes,
        )
        daily: dict[str, DailyAggregates] = {}
    else:
        with open_source(db, engine=engine, source=source, spark_master=spark_master) as store:
            name = store.resolve_dataset(dataset)
            design = load_design(store.con, name, experiment)
            chosen_event = event or ("click" if design.unit == "impression" else "purchase")
            control_arm = _choose_control(design.arms, control, design.control, name)
            specs = [make_metric(m, event=chosen_event, ratio=ratio) for m in metric_list]
            results = {
                m.name: arm_aggregates(store.con, design, m.spec, cuped=cuped) for m in specs
            }
            daily = (
                {m.name: daily_aggregates(store.con, design, m.spec) for m in specs}
                if looks == "daily"
                else {}
            )

    warnings: list[str] = []
    defaults: list[str] = []
    first = results[specs[0].name]
    units = [a.units for a in first.arms]
    designed = design.split
    if split_values is not None:
        # --split is control first, then the other arms in the design's order (as ingest's
        # --split); the SRM check pairs shares with design.arms, whose order (alphabetical for
        # --aggregates and undesigned impression logs) need not put the control first.
        shares = normalise_split(split_values, len(design.arms))
        order = [control_arm, *(a for a in design.arms if a != control_arm)]
        by_arm = dict(zip(order, shares, strict=True))
        designed = tuple(by_arm[a] for a in design.arms)
    srm = srm_check(design.arms, units, designed, alpha=srm_alpha)
    if srm.ok is False:
        warnings.append(srm.note)
    if first.excluded_units:
        warnings.append(
            f"{first.excluded_units:,} unit(s) were assigned to more than one arm and are excluded"
        )
    for arm, count in first.unknown_arms:
        warnings.append(
            f"{count:,} unit(s) carry the variant '{arm}', which is not an arm of the "
            "experiment; they are excluded"
        )
    for aggregate in first.arms:
        if aggregate.units == 0:
            raise InputError(
                f"arm '{aggregate.name}' of dataset '{name}' has no units to analyse; "
                + _srm_text(srm)
            )

    comparisons: list[Comparison] = []
    arm_rows: list[ArmSummary] = []
    for metric in specs:
        result = results[metric.name]
        metric.check(result, dataset=name, unit=design.unit, cuped=cuped, warnings=warnings)
        arm_rows += [metric.summary(arm) for arm in result.arms]
        by_name = {a.name: a for a in result.arms}
        for treatment in design.arms:
            if treatment == control_arm:
                continue
            comparisons.append(
                metric.compare(
                    by_name[control_arm],
                    by_name[treatment],
                    alpha=alpha,
                    claim=claim,
                    cuped=cuped,
                    bayes=bayes,
                    exact=exact,
                )
            )

    look_rows: tuple[Look, ...] = ()
    if sequential:
        comparisons, look_rows = _sequential(
            specs, comparisons, results, daily, design.arms, control_arm, alpha, planned, claim
        )
    comparisons = _correct(comparisons, correction, alpha)
    family = tuple(f"{c.treatment} vs {c.control} on {c.metric}" for c in comparisons)

    for c in comparisons:
        notes = c.notes + (c.sequential.notes if c.sequential is not None else ())
        warnings += [f"{c.treatment} vs {c.control} ({c.metric}): {n}" for n in notes]
    if claim is not None and len(comparisons) > 1:
        warnings.append(
            f"the claim is checked separately in each of the {len(comparisons)} comparisons; "
            "its verdicts and the confidence intervals are not adjusted for the family"
        )
    defaults += _defaults(
        design=design,
        specs=specs,
        control=control_arm,
        control_given=control is not None,
        alpha=alpha,
        correction=correction,
        family=len(comparisons),
        srm_alpha=srm_alpha,
        split_given=split_values is not None,
        sequential=sequential,
        looks=looks,
        claim=claim,
        cuped=cuped,
        horizon=planned,
        horizon_given=horizon is not None,
    )
    return ArmComparisonReport(
        dataset=name,
        experiment=design.experiment,
        unit=design.unit,
        metrics=tuple(s.name for s in specs),
        event=chosen_event,
        control=control_arm,
        arms=tuple(arm_rows),
        srm=srm,
        comparisons=tuple(comparisons),
        alpha=alpha,
        correction=correction,
        family=family,
        # With several comparisons no one claim check speaks for the report: each
        # comparison carries its own.
        claim=comparisons[0].claim if len(comparisons) == 1 else None,
        looks=look_rows,
        window_start=design.start_ts,
        window_end=design.end_ts,
        warnings=tuple(warnings),
        defaults=tuple(defaults),
        excluded_units=first.excluded_units,
    )


def _from_aggregates_file(
    aggregates: str | Path,
    db: str | Path | None,
    *,
    dataset: str | None,
    experiment: str | None,
    asked: list[MetricName] | None,
    event: str | None,
    ratio: str,
    control: str | None,
    cuped: bool,
    bayes: bool,
) -> tuple[str, Any, str, str, list[Any], dict[str, AggregateResult]]:
    """The design, metrics and per-arm sums of ``compare --aggregates FILE``: the file checked
    first (:func:`abkit.data.aggregates_file.check_aggregates`), the design from the store
    ``db`` when it exists, else from the file. ``asked`` None: every metric the file holds."""
    from abkit.data.aggregates_file import (  # only for --aggregates
        aggregates_from_rows,
        check_aggregates,
        design_from_aggregates,
        read_aggregates,
    )

    design = None
    name = dataset or ""
    if db is not None and Path(db).exists():
        with open_store(db) as store:
            name = store.resolve_dataset(dataset)
            design = load_design(store.con, name, experiment)
    known = registered_metrics()
    rows, names = check_aggregates(
        read_aggregates(aggregates),
        aggregates,
        kinds={n: c.kind for n, c in known.items()},
        needs_values={n for n, c in known.items() if c.needs_values},
        metrics=None if asked is None else [ratio if m == "ratio" else m for m in asked],
        cuped=cuped,
    )
    if bayes and "conversion" not in names:
        raise InputError(
            f"{param('bayes')} needs the conversion metric; {param('aggregates')} "
            f"{aggregates} holds {', '.join(names)}"
        )
    if design is None:
        design = design_from_aggregates(rows, dataset=dataset, experiment=experiment)
        name = design.dataset
    chosen_event = event or ("click" if design.unit == "impression" else "purchase")
    control_arm = _choose_control(design.arms, control, design.control, name)
    specs = [
        make_metric("ratio", event=chosen_event, ratio=n)
        if known[n].kind == "ratio"
        else make_metric(n, event=chosen_event)
        for n in names
    ]
    results = {m.name: aggregates_from_rows(rows, design, m.spec, cuped=cuped) for m in specs}
    return name, design, chosen_event, control_arm, specs, results


def compare_datasets(
    db: str | Path | None = None,
    *,
    datasets: Sequence[str],
    correction: Correction = "holm",
    alpha: float = 0.05,
    **options: Any,
) -> tuple[ArmComparisonReport, ...]:
    """:func:`compare_arms` on each of ``datasets`` (e.g. the three Open Bandit campaigns), with
    ONE multiple-testing family over all their comparisons: each comparison's ``p_adjusted``
    and ``significant`` come from ``correction`` applied to the p-values of every dataset's
    comparisons together (each report's ``family`` lists them all). ``options`` are
    :func:`compare_arms`'s other keywords; ``sequential`` is not supported here (each
    dataset's looks have their own calendar)."""
    names = list(datasets)
    if len(names) < 2:
        raise InputError(f"{param('datasets')}: expected two or more datasets")
    if len(set(names)) != len(names):
        raise InputError(f"{param('datasets')}: a dataset is named twice")
    if options.get("sequential") or options.get("looks", "final") != "final":
        raise InputError(
            f"{param('sequential')} compares one dataset at a time; drop it or pass one "
            f"{param('dataset')}"
        )
    reports = [
        compare_arms(db, dataset=name, correction=correction, alpha=alpha, **options)
        for name in names
    ]
    pooled = _correct([c for r in reports for c in r.comparisons], correction, alpha)
    family = tuple(f"{r.dataset}: {f}" for r in reports for f in r.family)
    line = (
        f"multiple testing: {DESCRIPTIONS[correction]} over a family of {len(family)} "
        f"comparison(s): every treatment x metric against the control, in each of the "
        f"{len(reports)} datasets"
    )
    out = []
    start = 0
    for r in reports:
        mine = tuple(pooled[start : start + len(r.comparisons)])
        start += len(r.comparisons)
        defaults = tuple(line if d.startswith("multiple testing:") else d for d in r.defaults)
        out.append(dataclasses.replace(r, comparisons=mine, family=family, defaults=defaults))
    return tuple(out)


def _validate(
    *,
    metrics: Sequence[str] | str | None,
    alpha: float,
    correction: str,
    looks: str,
    cuped: bool,
    sequential: bool,
    bayes: bool,
    claim: float | None,
    ratio: str,
    srm_alpha: float,
) -> list[MetricName]:
    # None: the metrics an --aggregates file holds, checked when it is read
    metric_list = [metrics] if isinstance(metrics, str) else list(metrics or ())
    if metrics is not None and not metric_list:
        raise InputError(
            f"{param('metrics')}: give at least one metric (conversion, mean or ratio)"
        )
    for m in metric_list:
        if m not in metric_choices():
            raise InputError(
                f"{param('metrics')}: " + unknown_choice("metric", m, metric_choices())
            )
    if len(set(metric_list)) != len(metric_list):
        raise InputError(f"{param('metrics')}: each metric may be given once")
    if "ratio" in metric_list and ratio not in ratio_choices():
        raise InputError(
            f"{param('ratio')}: " + unknown_choice("ratio metric", ratio, ratio_choices())
        )
    if not 0 < alpha < 1:
        raise InputError(f"{param('alpha')} must be in (0, 1), got {alpha}")
    if not 0 < srm_alpha < 1:
        raise InputError(f"the SRM alpha must be in (0, 1), got {srm_alpha}")
    if correction not in CORRECTIONS:
        raise InputError(
            f"{param('correction')}: " + unknown_choice("correction", correction, CORRECTIONS)
        )
    if looks not in ("final", "daily"):
        raise InputError(f"{param('looks')}: " + unknown_choice("looks", looks, ("final", "daily")))
    if cuped and (sequential or looks == "daily"):
        raise InputError(
            f"{param('cuped')} cannot be combined with {param('sequential')} or "
            f"{param('looks')} daily yet"
        )
    if bayes and metrics is not None and "conversion" not in metric_list:
        raise InputError(
            f"{param('bayes')} needs the conversion metric ({param('metrics')} conversion)"
        )
    if claim is not None:
        check_claim(claim)
    return metric_list  # type: ignore[return-value]


def _choose_control(
    arms: tuple[str, ...], given: str | None, designed: str | None, dataset: str
) -> str:
    if given is not None:
        if given not in arms:
            raise InputError(f"{param('control')}: " + unknown_choice("arm", given, arms))
        return given
    if designed is not None and designed in arms:
        return designed
    raise InputError(
        f"dataset '{dataset}' does not say which arm is the control; "
        f"choose it with {param('control')} (arms: {', '.join(arms)})"
    )


def _srm_text(srm: SRMResult) -> str:
    """The SRM result in words, for the error raised when an arm has no units (an empty arm is
    the most extreme sample ratio mismatch, whatever the chi-square p-value of a tiny
    experiment says)."""
    observed = ", ".join(f"{a} {c:,}" for a, c in zip(srm.arms, srm.observed, strict=True))
    if not srm.checked:
        return f"units per arm: {observed}; SRM check skipped: {srm.note}"
    shares = "/".join(f"{100 * s:g}" for s in srm.split)
    which = "an assumed equal split" if srm.split_assumed else "the designed split"
    return (
        f"units per arm: {observed}; SRM check against {which} {shares}: "
        f"chi2 = {srm.chi2:.4g}, p = {srm.p_value:.3g}. An empty arm is the most extreme "
        "sample ratio mismatch: the assignment or logging is broken"
    )


def _sequential(
    specs: list[Metric],
    comparisons: list[Comparison],
    results: dict[str, AggregateResult],
    daily: dict[str, DailyAggregates],
    arms: tuple[str, ...],
    control: str,
    alpha: float,
    horizon: int,
    claim: float | None,
) -> tuple[list[Comparison], tuple[Look, ...]]:
    """Sequential results for every comparison and, with daily looks, the path keyed by day.

    Every metric's daily series is aligned on the union of the days: a metric without a row
    for a later day (no new data after its last day) carries its last cumulative sums forward,
    so look ``k`` of every path is the same calendar day.
    """

    days, aligned = _align_days(daily, arms)
    labels = [_day_label(daily, day) for day in days]
    out: list[Comparison] = []
    paths: list[tuple[LookComparison, ...]] = []
    for comparison in comparisons:
        metric = next(s for s in specs if s.name == comparison.metric)
        i_c, i_t = arms.index(control), arms.index(comparison.treatment)
        if daily:
            looks = [(look[i_c], look[i_t]) for look in aligned[metric.name]]
        else:
            final = results[metric.name]
            looks = [(final.arms[i_c], final.arms[i_t])]
        result, path = sequential_comparison(
            metric.kind,
            looks,
            alpha=alpha,
            horizon=horizon,
            metric=metric.name,
            look_labels=labels if daily else None,
            claim=claim,
        )
        paths.append(path)
        out.append(dataclasses.replace(comparison, sequential=result))
    look_rows: list[Look] = []
    first = specs[0]
    for k, day in enumerate(days):
        arms_today = aligned[first.name][k]
        look_rows.append(
            Look(
                day=day,
                day_start=_day_start(daily, day),
                units=tuple(a.units for a in arms_today),
                rates=tuple(first.rate(a) for a in arms_today),
                comparisons=tuple(path[k] for path in paths),
            )
        )
    return out, tuple(look_rows)


def _align_days(
    daily: dict[str, DailyAggregates], arms: tuple[str, ...]
) -> tuple[list[int], dict[str, list[tuple[ArmAggregates, ...]]]]:
    """The union of the days over the metrics, and each metric's cumulative sums on it."""
    days = sorted(set().union(*(d.days for d in daily.values()))) if daily else []
    aligned: dict[str, list[tuple[ArmAggregates, ...]]] = {}
    for name, series in daily.items():
        by_day = dict(zip(series.days, series.looks, strict=True))
        current = tuple(ArmAggregates(name=a, units=0, y_sum=0.0, y_sum_sq=0.0) for a in arms)
        row = []
        for day in days:
            current = by_day.get(day, current)
            row.append(current)
        aligned[name] = row
    return days, aligned


def _day_start(daily: dict[str, DailyAggregates], day: int) -> datetime | None:
    return next(iter(daily.values())).day_start(day) if daily else None


def _day_label(daily: dict[str, DailyAggregates], day: int) -> str:
    start = _day_start(daily, day)
    return start.date().isoformat() if start is not None else f"day {day}"


def _correct(
    comparisons: list[Comparison], correction: Correction, alpha: float
) -> list[Comparison]:
    if not comparisons:
        return comparisons
    adjusted = adjust([c.p_value for c in comparisons], correction)
    out = []
    for c, p_adj in zip(comparisons, adjusted, strict=True):
        out.append(
            dataclasses.replace(c, p_adjusted=float(p_adj), significant=bool(p_adj <= alpha))
        )
    if out[0].sequential is not None:
        seq_adjusted = adjust([c.sequential.p_value for c in out], correction)  # type: ignore[union-attr]
        out = [
            _always_valid_headline(c, float(p), alpha)
            for c, p in zip(out, seq_adjusted, strict=True)
        ]
    return out


def _always_valid_headline(c: Comparison, p_adjusted: float, alpha: float) -> Comparison:
    """The comparison led by its always-valid result (``p_adjusted``: the sequential p-value
    corrected over the family; ``diff_ci`` / ``lift_ci``: the confidence sequences); the
    fixed-sample values move to the ``fixed_sample_*`` fields. Under sequential looks the
    fixed-sample p-value and intervals are valid only at one pre-planned look, so neither
    ``significant``, the intervals nor the claim verdict may come from them."""
    assert c.sequential is not None
    s = dataclasses.replace(c.sequential, p_adjusted=p_adjusted, significant=p_adjusted <= alpha)
    return dataclasses.replace(
        c,
        sequential=s,
        p_value=s.p_value,
        p_adjusted=s.p_adjusted,
        significant=s.significant,
        method=s.method,
        claim=s.claim,
        diff_ci_lower=s.diff_cs_lower,
        diff_ci_upper=s.diff_cs_upper,
        lift_ci_lower=s.lift_cs_lower,
        lift_ci_upper=s.lift_cs_upper,
        diff_ci_method=s.method,
        lift_ci_method=s.method,
        fixed_sample_diff_ci_lower=c.diff_ci_lower,
        fixed_sample_diff_ci_upper=c.diff_ci_upper,
        fixed_sample_lift_ci_lower=c.lift_ci_lower,
        fixed_sample_lift_ci_upper=c.lift_ci_upper,
        fixed_sample_diff_ci_method=c.diff_ci_method,
        fixed_sample_lift_ci_method=c.lift_ci_method,
        fixed_sample_p_value=c.p_value,
        fixed_sample_p_adjusted=c.p_adjusted,
        fixed_sample_significant=c.significant,
        fixed_sample_method=c.method,
        fixed_sample_claim=c.claim,
    )


def _defaults(
    *,
    design: ExperimentDesign,
    specs: list[Metric],
    control: str,
    control_given: bool,
    alpha: float,
    correction: str,
    family: int,
    srm_alpha: float,
    split_given: bool,
    sequential: bool,
    looks: str,
    claim: float | None,
    cuped: bool,
    horizon: int,
    horizon_given: bool,
) -> list[str]:
    unit = design.unit
    lines = []
    for metric in specs:
        lines.append(f"metric {metric.name}: " + metric.describe(unit))
    lines.append(f"randomisation unit: {unit}")
    if unit == "impression":
        lines.append(
            "impression-unit dataset: every impression is its own unit, so the tests assume "
            "impressions are independent; repeated impressions of one user are correlated, "
            "which makes the intervals too narrow when users see many impressions"
        )
    start = design.start_ts.isoformat(sep=" ") if design.start_ts else "the first record"
    if design.end_ts is None:
        end = "the last record"
    elif design.end_ts.microsecond == 1:  # ingest's exclusive end, just after the last record
        end = f"{(design.end_ts - timedelta(microseconds=1)).isoformat(sep=' ')} (included)"
    else:
        end = f"{design.end_ts.isoformat(sep=' ')} (excluded)"
    lines.append(f"experiment window: {start} to {end}")
    lines.append(
        f"control: {control}" + ("" if control_given else " (from the experiment's design)")
    )
    lines.append(
        f"alpha {alpha:g}, two-sided; confidence intervals at {100 * (1 - alpha):g}%; "
        "'significant' means p <= alpha (adjusted p for the family)"
    )
    lines.append(
        f"multiple testing: {DESCRIPTIONS[correction]} over a family of {family} comparison(s): "
        "every treatment x metric against the control"
    )
    if len(design.arms) < 2:
        lines.append("SRM check: skipped, the experiment has fewer than two arms")
    else:
        lines.append(
            "SRM check: chi-square goodness of fit against "
            + (
                "the --split given"
                if split_given
                else "the experiment's designed split"
                if design.split is not None
                else "an assumed equal split (the store records no designed split; "
                "pass --split to give it)"
            )
            + f"; a mismatch is p <= {srm_alpha:g}"
        )
    if cuped:
        lines.append(
            "CUPED: covariate = the same metric before the experiment's start; theta pooled "
            "within arms; lift interval by Fieller with the covariance of the adjusted means"
        )
    # each method once, in the order of the kinds (CUPED replaces the methods it adjusts)
    methods = {s.kind: s.method for s in specs if not (cuped and s.supports_cuped)}
    lines += [methods[kind] for kind in KINDS if kind in methods]
    if claim is not None and sequential:
        lines.append(
            f"claim: lift >= {claim:g} judged from the lift's always-valid "
            f"{100 * (1 - alpha):g}% confidence sequence (supported when it lies wholly above "
            "the claim, refuted when wholly below), in each comparison, not adjusted for the "
            "family; the fixed-sample verdict is fixed_sample_claim"
        )
    elif claim is not None:
        lines.append(
            f"claim: lift >= {claim:g} tested one-sided at {100 * alpha / 2:g}% each way "
            "(alpha/2, so it agrees with the two-sided interval), in each comparison, not "
            "adjusted for the family; units needed at 80% power at the same level"
        )
    if sequential:
        lines.append(
            "sequential: p_value, p_adjusted, 'significant', the claim verdict and diff_ci / "
            "lift_ci (the confidence sequences) are the always-valid ones; the fixed-sample "
            "values (valid only at one pre-planned look) are in the fixed_sample_* fields"
        )
        lines.append(
            "sequential: mSPRT with a normal mixture on the standardised effect, tuned to be "
            f"tightest at a planned {horizon:,} {unit}s per arm "
            + ("(--horizon)" if horizon_given else "(the default; set it with --horizon)")
            + ", fixed before the data so daily re-runs stay always valid; confidence sequence "
            f"= running intersection over the looks; looks: {looks}"
        )
    return lines
