"""The report's further charts, each drawn from one section of
:class:`~abkit.report.build.Report` (or a :class:`~abkit.experiments.gate.GateReport`):

* :func:`plot_units` - units per arm against the designed split (the SRM check);
* :func:`plot_rates` - each arm's rate with its own interval;
* :func:`plot_cumulative_lift` - the cumulative lift day by day with its always-valid
  confidence sequence, zero and the claim;
* :func:`plot_daily_units` - new units per arm each day;
* :func:`plot_power` - units per arm needed against the lift, this experiment marked;
* :func:`plot_user_values` - the per-user distribution of a metric, run by run;
* :func:`plot_offpolicy` - each off-policy run's estimates with their intervals;
* :func:`plot_weights` - an off-policy run's importance weights and their ESS;
* :func:`plot_gate` - each gate's change with its one-sided upper bound and its limit.

Same rules as :mod:`abkit.report.charts`: titles, axis labels with units, a caption stating
the numbers; ``path`` None keeps the chart in memory (the HTML report inlines it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from abkit._util import register_html_chart
from abkit.errors import InputError
from abkit.experiments.gate import GateReport
from abkit.report.build import ArmRate, PowerCurve, RunWeights, UserValues
from abkit.report.charts import (
    Chart,
    _figure,
    _level,
    _save,
    _target_format,
    interval,
    notebook_chart,
    number,
    p_text,
    pct,
)
from abkit.report.formats import matplotlib_classes
from abkit.stats.results import ArmComparisonReport

__all__ = [
    "gate_mermaid",
    "plot_cumulative_lift",
    "plot_daily_units",
    "plot_gate",
    "plot_offpolicy",
    "plot_power",
    "plot_rates",
    "plot_units",
    "plot_user_values",
    "plot_weights",
]

Target = str | Path | None


def _axes(title: str, caption: str, plot_h: float = 2.8, *, left: float = 0.1) -> Any:
    Figure, Canvas = matplotlib_classes()
    fig, top, bottom = _figure(Figure, Canvas, title, caption, plot_h)
    ax = fig.add_axes((left, bottom, 0.97 - left, top - bottom))
    ax.grid(color="0.92")
    ax.set_axisbelow(True)
    return fig, Canvas, ax


def plot_units(
    report: ArmComparisonReport, path: Target = None, *, fmt: str | None = None
) -> Chart:
    """Units per arm (bars) and the units the designed split expects (black ticks)."""
    fmt = _target_format(path, fmt)
    srm = report.srm
    arms = list(srm.arms)
    title = f"Units per arm: dataset {report.dataset}"
    verdict = (
        "SAMPLE RATIO MISMATCH"
        if report.srm_failed
        else ("passed" if srm.checked else f"skipped ({srm.note})")
    )
    shares = "/".join(f"{100 * s:g}" for s in srm.split)
    caption = (
        f"{title}. "
        + ", ".join(
            f"{a}: {o:,} {report.unit}s (expected {e:,.0f})"
            for a, o, e in zip(arms, srm.observed, srm.expected, strict=True)
        )
        + f". SRM check {verdict} against the "
        + ("assumed equal" if srm.split_assumed else "designed")
        + f" split {shares}: chi2 = {srm.chi2:.3g}, {p_text(srm.p_value)} (mismatch at p <= "
        f"{srm.alpha:g})."
    )
    fig, Canvas, ax = _axes(title, caption, 2.4)
    xs = range(len(arms))
    ax.bar(xs, srm.observed, color="C0", width=0.6, label=f"observed {report.unit}s")
    ax.scatter(xs, srm.expected, marker="_", s=900, color="black", zorder=3, label="expected")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(arms)
    ax.set_xlabel("arm")
    ax.set_ylabel(f"{report.unit}s (count)")
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    return _save(fig, Canvas, path, fmt, title, caption)


def _rate_scale(metric: str) -> tuple[float, str]:
    return (100.0, "%") if metric == "conversion" else (1.0, "")


def plot_rates(
    rates: tuple[ArmRate, ...],
    report: ArmComparisonReport,
    path: Target = None,
    *,
    fmt: str | None = None,
) -> Chart:
    """Each arm's rate of the report's first metric with its own interval."""
    fmt = _target_format(path, fmt)
    metric = report.metrics[0]
    shown = [r for r in rates if r.metric == metric]
    scale, unit = _rate_scale(metric)
    level = _level(1 - report.alpha)
    what = "conversion rate" if metric == "conversion" else metric
    title = f"{what.capitalize()} per arm with {level} intervals: dataset {report.dataset}"

    def text(r: ArmRate) -> str:
        value = f"{scale * r.rate:.4g}{unit}"
        if r.ci_low is None or r.ci_high is None:
            return f"{r.arm}: {value} of {r.units:,} {report.unit}s"
        return (
            f"{r.arm}: {value} of {r.units:,} {report.unit}s, {level} CI "
            f"[{scale * r.ci_low:.4g}{unit}, {scale * r.ci_high:.4g}{unit}] ({r.method})"
        )

    caption = f"{title}. " + "; ".join(text(r) for r in shown) + "."
    fig, Canvas, ax = _axes(title, caption, max(1.4, 0.5 * len(shown) + 0.5), left=0.16)
    ys = list(range(len(shown)))[::-1]
    for y, r in zip(ys, shown, strict=True):
        if r.ci_low is not None and r.ci_high is not None:
            ax.hlines(y, scale * r.ci_low, scale * r.ci_high, color="C0", linewidth=2)
        ax.plot([scale * r.rate], [y], "o", color="C0", markersize=7)
    ax.set_yticks(ys)
    ax.set_yticklabels([r.arm + (" (control)" if r.arm == report.control else "") for r in shown])
    ax.set_ylim(-0.7, len(shown) - 0.3)
    ax.set_xlabel(f"{what} per {report.unit}" + (" (%)" if unit else ""))
    return _save(fig, Canvas, path, fmt, title, caption)


def _day_labels(report: ArmComparisonReport) -> list[str]:
    return [
        look.day_start.date().isoformat() if look.day_start else f"day {look.day}"
        for look in report.looks
    ]


def plot_cumulative_lift(
    daily: ArmComparisonReport, path: Target = None, *, fmt: str | None = None
) -> Chart:
    """The cumulative lift of the first treatment after each day, its always-valid confidence
    sequence as a band, a line at zero and one at the claimed lift."""
    fmt = _target_format(path, fmt)
    if not daily.looks:
        raise InputError("the report has no daily looks to draw")
    first = daily.looks[0].comparisons[0]
    metric, treatment = first.metric, first.treatment
    rows = [
        next(c for c in look.comparisons if (c.metric, c.treatment) == (metric, treatment))
        for look in daily.looks
    ]
    days = _day_labels(daily)
    level = _level(1 - daily.alpha)
    claim = daily.claim.claim if daily.claim is not None else None
    title = f"Cumulative lift of {treatment} over {daily.control} by day ({metric})"
    last = rows[-1]
    caption = (
        f"{title}, with the always-valid {level} confidence sequence (mSPRT), safe to look at "
        f"every day. After {len(rows)} day(s) ({days[-1]}): lift {pct(last.lift)}, confidence "
        f"sequence {interval(last.lift_cs_lower, last.lift_cs_upper)}, always-valid "
        f"{p_text(last.always_valid_p_value)}; after day 1: lift {pct(rows[0].lift)}, "
        f"{interval(rows[0].lift_cs_lower, rows[0].lift_cs_upper)}."
        + (f" Dashed: the claim {pct(claim)}." if claim is not None else "")
    )
    fig, Canvas, ax = _axes(title, caption, 2.8)
    xs = np.arange(1, len(rows) + 1)
    lift = np.array([100 * r.lift for r in rows])
    lo = np.array([100 * r.lift_cs_lower for r in rows])
    hi = np.array([100 * r.lift_cs_upper for r in rows])
    finite = np.isfinite(lo) & np.isfinite(hi)
    ax.fill_between(
        xs[finite],
        lo[finite],
        hi[finite],
        color="C0",
        alpha=0.2,
        label=f"{level} confidence sequence",
    )
    ax.plot(xs, lift, "o-", color="C0", markersize=3, label="cumulative lift")
    ax.axhline(0, color="0.3", linewidth=1, label="no effect (0%)")
    if claim is not None:
        ax.axhline(
            100 * claim, color="C3", linestyle="--", linewidth=1.2, label=f"claim {pct(claim)}"
        )
    shown = np.concatenate([lift[np.isfinite(lift)], lo[finite], hi[finite], [0.0]])
    span = float(shown.max() - shown.min()) or 1.0
    ax.set_ylim(
        max(float(shown.min()) - 0.05 * span, float(np.percentile(lo[finite], 10)) - 0.1 * span)
        if finite.any()
        else float(shown.min()) - 0.05 * span,
        min(float(shown.max()) + 0.05 * span, float(np.percentile(hi[finite], 90)) + 0.1 * span)
        if finite.any()
        else float(shown.max()) + 0.05 * span,
    )
    ax.set_xlabel("day of the experiment (cumulative data)")
    ax.set_ylabel(f"relative lift of {treatment} (%)")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    return _save(fig, Canvas, path, fmt, title, caption)


def plot_daily_units(
    daily: ArmComparisonReport, path: Target = None, *, fmt: str | None = None
) -> Chart:
    """New units per arm each day (from the cumulative units of each look)."""
    fmt = _target_format(path, fmt)
    if not daily.looks:
        raise InputError("the report has no daily looks to draw")
    arms = list(daily.srm.arms)
    cumulative = np.array([look.units for look in daily.looks], dtype=float)
    new = np.diff(cumulative, axis=0, prepend=0)
    days = _day_labels(daily)
    title = f"New {daily.unit}s per arm each day: dataset {daily.dataset}"
    caption = (
        f"{title} ({len(days)} days, {days[0]} to {days[-1]}). "
        + "; ".join(
            f"{a}: {int(cumulative[-1, i]):,} in all, {int(new[:, i].min()):,} to "
            f"{int(new[:, i].max()):,} a day"
            for i, a in enumerate(arms)
        )
        + "."
    )
    fig, Canvas, ax = _axes(title, caption, 2.4)
    xs = np.arange(1, len(days) + 1)
    width = 0.8 / len(arms)
    for i, a in enumerate(arms):
        ax.bar(xs + (i - (len(arms) - 1) / 2) * width, new[:, i], width=width * 0.95, label=a)
    ax.set_xlabel("day of the experiment")
    ax.set_ylabel(f"new {daily.unit}s (count)")
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    return _save(fig, Canvas, path, fmt, title, caption)


def plot_power(curve: PowerCurve, path: Target = None, *, fmt: str | None = None) -> Chart:
    """Units per arm needed against the true lift (log scale), this experiment's units as a
    line and the smallest lift it detects with the curve's power marked."""
    fmt = _target_format(path, fmt)
    p0 = curve.points[0]
    d = curve.detectable
    base = (
        f"a control conversion rate of {100 * curve.baseline:.4g}%"
        if curve.metric == "conversion"
        else f"a control mean of {curve.baseline:.4g} (sd {number(d.sd)})"
    )
    title = f"Units per arm needed against the true lift ({100 * p0.power:.0f}% power)"
    caption = (
        f"{title}, at {base}, two-sided alpha {p0.alpha:g} ({p0.method}). "
        + ", ".join(f"{pct(p.mde_relative, 1)}: {p.n_per_arm:,}" for p in curve.points)
        + f". This experiment has {curve.units_per_arm:,} units in its smallest arm: it detects "
        f"a lift of {pct(d.mde_relative)} with {100 * d.power:.0f}% power; the observed lift is "
        f"{pct(curve.observed_lift)}"
        + (f", the claim {pct(curve.claim)}" if curve.claim is not None else "")
        + "."
    )
    fig, Canvas, ax = _axes(title, caption, 2.8)
    xs = [100 * p.mde_relative for p in curve.points]
    ax.plot(xs, [p.n_per_arm for p in curve.points], "o-", color="C0", label="units needed")
    ax.set_yscale("log")
    ax.axhline(
        curve.units_per_arm,
        color="C2",
        linewidth=1.2,
        label=f"this experiment: {curve.units_per_arm:,} per arm",
    )
    ax.plot(
        [100 * d.mde_relative],
        [curve.units_per_arm],
        "D",
        color="C2",
        markersize=7,
        label=f"detectable here: {pct(d.mde_relative)}",
    )
    if math.isfinite(curve.observed_lift) and curve.observed_lift > 0:
        ax.axvline(
            100 * curve.observed_lift,
            color="0.4",
            linestyle=":",
            linewidth=1.2,
            label=f"observed lift {pct(curve.observed_lift)}",
        )
    if curve.claim is not None and curve.claim > 0:
        ax.axvline(
            100 * curve.claim,
            color="C3",
            linestyle="--",
            linewidth=1.2,
            label=f"claim {pct(curve.claim)}",
        )
    ax.set_xlabel("true relative lift (%)")
    ax.set_ylabel("units per arm (log scale)")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    return _save(fig, Canvas, path, fmt, title, caption)


def plot_user_values(
    samples: tuple[UserValues, ...], path: Target = None, *, fmt: str | None = None
) -> Chart:
    """The per-user distribution of one metric for each run: the share of users at each value
    (step histograms on shared bins), each run's mean marked."""
    fmt = _target_format(path, fmt)
    if not samples:
        raise InputError("no per-user values to draw")
    metric = samples[0].metric
    title = f"Per-user {metric}: its distribution over the test users, run by run"

    def text(s: UserValues) -> str:
        v = s.values
        return (
            f"{s.run.label}: mean {number(float(v.mean()))}, median "
            f"{number(float(np.median(v)))}, {100 * float((v == 0).mean()):.1f}% of "
            f"{v.size:,} users at 0"
        )

    caption = f"{title}. " + "; ".join(text(s) for s in samples) + "."
    fig, Canvas, ax = _axes(title, caption, 2.8)
    top = max(float(s.values.max()) for s in samples if s.values.size) if samples else 1.0
    bins = np.linspace(0.0, max(top, 1e-9), 21)
    for i, s in enumerate(samples):
        weights = np.full(s.values.size, 100.0 / max(1, s.values.size))
        ax.hist(
            s.values,
            bins=bins,
            weights=weights,
            histtype="step",
            linewidth=1.6,
            color=f"C{i}",
            label=f"{s.run.label} (mean {number(float(s.values.mean()))})",
        )
        ax.axvline(float(s.values.mean()), color=f"C{i}", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel(f"{metric} of a user (0 to 1)")
    ax.set_ylabel("share of users (%, log scale)")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    return _save(fig, Canvas, path, fmt, title, caption)


def plot_offpolicy(
    runs: tuple[RunWeights, ...], path: Target = None, *, fmt: str | None = None
) -> Chart:
    """Each off-policy run's estimates of the reward per round, with their intervals, as the
    runs store them (``abkit runs --json``)."""
    fmt = _target_format(path, fmt)
    rows: list[tuple[str, dict[str, Any]]] = [
        (f"{w.run.label}: {name}", est)
        for w in runs
        for name, est in w.run.summary.get("estimates", {}).items()
    ]
    if not rows:
        raise InputError("no off-policy estimates to draw")
    level = _level(float(rows[0][1].get("level", 0.95)))
    title = "Off-policy estimates of the reward per logged round"
    parts = []
    for label, e in rows:
        if e.get("value") is None:
            parts.append(f"{label}: refused ({e.get('refused')})")
        elif e.get("ci") is None:
            parts.append(f"{label}: {number(e['value'])} (no interval)")
        else:
            parts.append(
                f"{label}: {number(e['value'])}, {level} CI [{number(e['ci'][0])}, "
                f"{number(e['ci'][1])}], ESS {e.get('ess', math.nan):,.0f}"
            )
    caption = f"{title}, with their {level} intervals. " + "; ".join(parts) + "."
    longest = max(len(label) for label, _ in rows)
    fig, Canvas, ax = _axes(
        title, caption, max(1.4, 0.45 * len(rows) + 0.5), left=min(0.45, 0.08 + 0.009 * longest)
    )
    ys = list(range(len(rows)))[::-1]
    for y, (_, e) in zip(ys, rows, strict=True):
        if e.get("value") is None:
            continue
        if e.get("ci") is not None:
            ax.hlines(y, e["ci"][0], e["ci"][1], color="C0", linewidth=2)
        ax.plot([e["value"]], [y], "o", color="C0")
    ax.set_yticks(ys)
    ax.set_yticklabels([label for label, _ in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"estimated reward per logged round ({level} CI)")
    return _save(fig, Canvas, path, fmt, title, caption)


def plot_weights(sample: RunWeights, path: Target = None, *, fmt: str | None = None) -> Chart:
    """The histogram of an off-policy run's importance weights (log count), with the
    effective sample size of each estimator as the run stores it."""
    fmt = _target_format(path, fmt)
    w = np.asarray(sample.weights, dtype=float)
    if w.size == 0:
        raise InputError(f"run {sample.run.label} stores no importance weights")
    estimates: dict[str, Any] = sample.run.summary.get("estimates", {})
    first: dict[str, Any] = next(iter(estimates.values()), {})
    ess = first.get("diagnostics", {}).get("ess")
    title = f"Importance weights of {sample.run.label} ({w.size:,} logged rounds)"
    caption = (
        f"{title}: mean {number(float(w.mean()))}, max {number(float(w.max()))}, "
        f"{100 * float((w == 0).mean()):.1f}% at 0 (rounds the policy would not have shown)"
        + (
            f"; effective sample size {ess:,.0f} of {w.size:,} ({100 * ess / w.size:.1f}%)"
            if ess is not None
            else ""
        )
        + "."
    )
    fig, Canvas, ax = _axes(title, caption, 2.4)
    ax.hist(w, bins=40, color="C0")
    ax.set_yscale("log")
    ax.axvline(1.0, color="0.3", linewidth=1, label="weight 1 (logged = target)")
    ax.set_xlabel("importance weight (target / logging propensity)")
    ax.set_ylabel("logged rounds (count, log scale)")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    return _save(fig, Canvas, path, fmt, title, caption)


def plot_gate(report: GateReport, path: Target = None, *, fmt: str | None = None) -> Chart:
    """Each gate's change of the candidate (relative gates in %), its one-sided upper
    confidence bound as a line running left, and the limit (-margin) it may not fall below."""
    fmt = _target_format(path, fmt)
    outcomes = report.outcomes
    if not outcomes:
        raise InputError(f"gate {report.name} has no gates to draw")
    verdict = "passed" if report.passed else "FAILED on " + ", ".join(report.failed_metrics)
    title = f"Gate {report.name}: {verdict}"

    def scaled(o: Any, value: float) -> float:
        return 100 * value if o.check.margin_type == "relative" else value

    def show(o: Any, value: float) -> str:
        return pct(value, 2) if o.check.margin_type == "relative" else f"{value:+.4g}"

    caption = (
        f"{title}. Candidate {report.candidate.get('label', '?')} against baseline "
        f"{report.baseline.get('label', '?')}, paired over {outcomes[0].n:,} users. "
        + "; ".join(
            f"{o.metric}: change {show(o, o.change)}, upper bound {show(o, o.upper_bound)} "
            f"({_level(o.bound_confidence)} one-sided), allowed {show(o, o.limit)}, adjusted "
            f"{p_text(o.p_adjusted)}: {'pass' if o.passed else 'FAIL'}"
            for o in outcomes
        )
        + ". A gate fails only when its whole one-sided interval lies below its limit."
    )
    fig, Canvas, ax = _axes(title, caption, max(1.4, 0.5 * len(outcomes) + 0.5), left=0.16)
    ys = list(range(len(outcomes)))[::-1]
    values = [scaled(o, v) for o in outcomes for v in (o.change, o.upper_bound, o.limit, 0.0)]
    values = [v for v in values if math.isfinite(v)]
    lo, hi = min(values), max(values)
    pad = 0.15 * (hi - lo) or 1.0
    for y, o in zip(ys, outcomes, strict=True):
        color = "C2" if o.passed else "C3"
        ax.hlines(y, lo - pad, scaled(o, o.upper_bound), color=color, linewidth=2, alpha=0.6)
        ax.plot([scaled(o, o.upper_bound)], [y], "|", color=color, markersize=14, mew=2)
        ax.plot([scaled(o, o.change)], [y], "s", color=color, markersize=7)
        ax.vlines(scaled(o, o.limit), y - 0.35, y + 0.35, color="black", linestyle="--")
    ax.axvline(0, color="0.5", linewidth=1)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(-0.7, len(outcomes) - 0.3)
    ax.set_yticks(ys)
    ax.set_yticklabels(
        [f"{o.metric} ({'pass' if o.passed else 'FAIL'})" for o in outcomes], fontsize=8
    )
    relative = all(o.check.margin_type == "relative" for o in outcomes)
    ax.set_xlabel(
        "change over the baseline" + (" (%)" if relative else " (metric units; relative in %)")
    )
    ax.plot([], [], "s", color="0.3", label="change")
    ax.plot([], [], "|", color="0.3", markersize=10, mew=2, label="one-sided upper bound")
    ax.plot([], [], "--", color="black", label="limit (-margin)")
    # above the plot: inside it would hide a limit
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, frameon=False)
    return _save(fig, Canvas, path, fmt, title, caption)


def gate_mermaid(report: GateReport) -> str:
    """The gate chart as a Mermaid ``xychart-beta`` block (GitHub renders it in a step summary,
    where images cannot be inlined): per gate, the change as a bar and its one-sided upper
    bound and limit as lines, in % of the baseline for relative gates (absolute ones as they
    are). Needs no matplotlib."""
    outcomes = report.outcomes
    if not outcomes:
        return ""
    relative = all(o.check.margin_type == "relative" for o in outcomes)
    scale = 100.0 if relative else 1.0

    def values(field_name: str) -> str:
        return ", ".join(f"{scale * getattr(o, field_name):.4g}" for o in outcomes)

    every = [scale * getattr(o, f) for o in outcomes for f in ("change", "upper_bound", "limit")]
    every = [v for v in every if math.isfinite(v)] + [0.0]
    pad = 0.1 * (max(every) - min(every)) or 1.0
    names = ", ".join(f'"{o.metric}"' for o in outcomes)
    unit = "%" if relative else "metric units"
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'    title "Gate {report.name}: bar change, lines upper bound and limit ({unit})"',
            f"    x-axis [{names}]",
            f'    y-axis "change over the baseline ({unit})" '
            f"{min(every) - pad:.4g} --> {max(every) + pad:.4g}",
            f"    bar [{values('change')}]",
            f"    line [{values('upper_bound')}]",
            f"    line [{values('limit')}]",
            "```",
            "",
        ]
    )


register_html_chart(GateReport, notebook_chart(plot_gate))
