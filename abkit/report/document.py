"""``abkit report``: one HTML file (or Markdown with its images beside it) of a
:class:`~abkit.report.build.Report`.

The HTML is self-contained and works offline: no script, no font, no stylesheet from the
network; every chart is an SVG inlined as a ``data:`` URI image whose ``alt`` text is its
caption (the numbers in words). The CSS is responsive (one column on a phone, the numbers
beside the chart on a laptop) and has print rules (no page break inside a chart). The
Markdown report (``--format md``, for pull-request comments) links PNG images written into a
folder beside it.

:func:`sections` turns the report into format-neutral sections (title, sentences, tables,
charts); :func:`write_html` and :func:`write_markdown` lay them out. Every number is a field of
the report's result objects (``abkit report --json`` prints them).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from abkit import __version__
from abkit.errors import InputError, param
from abkit.report.build import Report
from abkit.report.charts import (
    CAPTION_IN_IMAGE,
    Chart,
    chart_html,
    interval,
    number,
    p_text,
    pct,
    plot_arm_comparison,
    plot_run_comparison,
    write_file,
)
from abkit.report.figures import (
    plot_cumulative_lift,
    plot_daily_units,
    plot_gate,
    plot_offpolicy,
    plot_power,
    plot_rates,
    plot_units,
    plot_user_values,
    plot_weights,
)
from abkit.stats.results import ArmComparisonReport, Comparison

__all__ = [
    "REPORT_FORMATS",
    "Section",
    "Table",
    "WrittenReport",
    "report_format",
    "sections",
    "write_html",
    "write_markdown",
    "write_report",
]

#: ``--format`` -> the file extension it writes
REPORT_FORMATS: dict[str, str] = {"html": ".html", "md": ".md"}


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


# a chart is drawn once its format is known: (format) -> Chart
Draw = Callable[[str | None], Chart]


@dataclass(frozen=True, kw_only=True)
class Section:
    """One part of the report: sentences and tables (the numbers) beside its charts."""

    key: str
    title: str
    text: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    charts: tuple[tuple[str, Draw], ...] = field(default=())  # (file stem, draw)


@dataclass(frozen=True, kw_only=True)
class WrittenReport:
    """What :func:`write_report` wrote: the file, its format, its charts (in order)."""

    path: Path
    format: str
    charts: tuple[Chart, ...]
    sections: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "sections": list(self.sections),
            "charts": [c.to_dict() for c in self.charts],
        }


def report_format(path: str | Path, fmt: str | None) -> str:
    """The format to write: ``fmt`` when given (html or md), else the one ``path``'s
    extension names; an :class:`~abkit.errors.InputError` otherwise."""
    if fmt is not None:
        if fmt not in REPORT_FORMATS:
            raise InputError(f"{param('format')} must be html or md, got {fmt}")
        return fmt
    suffix = Path(path).suffix.lower()
    for name, ext in REPORT_FORMATS.items():
        if suffix == ext:
            return name
    raise InputError(
        f"{param('out')} {path}: the extension picks the format, .html or .md (or pass "
        f"{param('format')})"
    )


# -- the sections -------------------------------------------------------------------------------


def _level(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def _verdict(report: ArmComparisonReport, c: Comparison) -> str:
    level = _level(1 - report.alpha)
    if c.significant:
        direction = "better" if c.diff > 0 else "worse"
        text = (
            f"Arm {c.treatment} does {direction} than arm {c.control} on {c.metric}: the lift is "
            f"{pct(c.lift)}, {level} CI {interval(c.lift_ci_lower, c.lift_ci_upper)}, more "
            f"than chance explains ({report.correction}-adjusted {p_text(c.p_adjusted)})."
        )
    else:
        text = (
            f"The data cannot tell {c.treatment} from {c.control} on {c.metric}: the {level} "
            f"interval of the lift, {interval(c.lift_ci_lower, c.lift_ci_upper)}, includes no "
            f"change ({report.correction}-adjusted {p_text(c.p_adjusted)}). That is not evidence "
            "of no effect."
        )
    k = c.claim
    if k is not None:
        meaning = {
            "supported": "SUPPORTED: the whole interval lies above it",
            "refuted": f"REFUTED: the data rule out lifts above {pct(k.min_refuted_lift)}",
            "not decided": "NOT DECIDED: the interval contains it",
        }[k.verdict]
        text += f" The claim of a lift of at least {pct(k.claim)} is {meaning}."
        if k.units_needed is not None and k.verdict == "not decided":
            text += (
                f" About {k.units_needed:,} {report.unit}s per arm would decide it if the true "
                f"lift were the observed {pct(k.lift)}."
            )
    return text


def _experiment(r: Report, arms: ArmComparisonReport) -> Section:
    srm = arms.srm
    where = f"dataset {arms.dataset}" + (
        f", experiment {arms.experiment}" if arms.experiment else ""
    )
    window = ""
    if arms.window_start is not None and arms.window_end is not None:
        window = f" from {arms.window_start:%Y-%m-%d} to {arms.window_end:%Y-%m-%d}"
    text = [
        f"{where}: {len(srm.arms)} arms ({', '.join(srm.arms)}; the control is "
        f"{arms.control}), randomised by {arms.unit}{window}.",
    ]
    if arms.srm_failed:
        text.append(
            f"SAMPLE RATIO MISMATCH (chi2 = {srm.chi2:.3g}, {p_text(srm.p_value)}): the units "
            "per arm do not match the split; fix the assignment before trusting anything below."
        )
    elif srm.checked:
        text.append(
            f"Sample ratio check passed (chi2 = {srm.chi2:.3g}, {p_text(srm.p_value)}; a "
            f"mismatch is flagged at p <= {srm.alpha:g})"
            + (", against an assumed equal split." if srm.split_assumed else ".")
        )
    else:
        text.append(f"Sample ratio check skipped: {srm.note}.")
    text += list(arms.warnings)
    table = Table(
        ("arm", f"{arms.unit}s", "expected", "designed share"),
        tuple(
            (a, f"{o:,}", f"{e:,.0f}", f"{100 * s:g}%")
            for a, o, e, s in zip(srm.arms, srm.observed, srm.expected, srm.split, strict=True)
        ),
    )
    return Section(
        key="experiment",
        title="The experiment",
        text=tuple(text),
        tables=(table,),
        charts=(("units", lambda f: plot_units(arms, fmt=f)),),
    )


def _lift(r: Report, arms: ArmComparisonReport) -> Section:
    level = _level(1 - arms.alpha)
    metric = arms.metrics[0]
    scale, unit = (100.0, "%") if metric == "conversion" else (1.0, "")
    rates = Table(
        ("arm", "metric", f"{arms.unit}s", "rate", f"{level} CI"),
        tuple(
            (
                x.arm,
                x.metric,
                f"{x.units:,}",
                f"{scale * x.rate:.4g}{unit}" if x.metric == metric else number(x.rate),
                "-"
                if x.ci_low is None or x.ci_high is None
                else f"[{scale * x.ci_low:.4g}{unit}, {scale * x.ci_high:.4g}{unit}] ({x.method})",
            )
            for x in r.rates
        ),
    )
    lifts = Table(
        ("comparison", "lift", f"{level} CI", "p (adj.)", "verdict", "claim"),
        tuple(
            (
                f"{c.treatment} vs {c.control} ({c.metric})",
                pct(c.lift),
                interval(c.lift_ci_lower, c.lift_ci_upper),
                p_text(c.p_adjusted).removeprefix("p = "),
                "significant" if c.significant else "not significant",
                "-" if c.claim is None else f"{pct(c.claim.claim)}: {c.claim.verdict}",
            )
            for c in arms.comparisons
        ),
    )
    return Section(
        key="lift",
        title="Rates and the lift",
        text=tuple(_verdict(arms, c) for c in arms.comparisons),
        tables=(rates, lifts),
        charts=(
            ("rates", lambda f: plot_rates(r.rates, arms, fmt=f)),
            ("lift", lambda f: plot_arm_comparison(arms, fmt=f)),
        ),
    )


def _over_time(r: Report, daily: ArmComparisonReport) -> Section:
    first = daily.looks[0].comparisons[0]
    rows = []
    for look in daily.looks:
        c = next(
            x
            for x in look.comparisons
            if (x.metric, x.treatment) == (first.metric, first.treatment)
        )
        rows.append(
            (
                look.day_start.date().isoformat() if look.day_start else f"day {look.day}",
                "/".join(f"{u:,}" for u in look.units),
                pct(c.lift),
                interval(c.lift_cs_lower, c.lift_cs_upper),
                p_text(c.always_valid_p_value).removeprefix("p = "),
            )
        )
    return Section(
        key="over-time",
        title="Over time",
        text=(
            f"The cumulative lift of {first.treatment} after each day with its always-valid "
            f"{_level(1 - daily.alpha)} confidence sequence (mSPRT): unlike a fixed-sample "
            "interval it may be looked at every day without inflating false positives.",
        ),
        tables=(
            Table(
                (
                    "day",
                    f"{daily.unit}s so far ({'/'.join(daily.srm.arms)})",
                    "lift",
                    "confidence sequence",
                    "always-valid p",
                ),
                tuple(rows),
            ),
        ),
        charts=(
            ("cumulative-lift", lambda f: plot_cumulative_lift(daily, fmt=f)),
            ("daily-units", lambda f: plot_daily_units(daily, fmt=f)),
        ),
    )


def _power(r: Report) -> Section:
    curve = r.power
    assert curve is not None
    d = curve.detectable
    return Section(
        key="power",
        title="Power",
        text=(
            f"With {curve.units_per_arm:,} units in its smallest arm this experiment detects a "
            f"true lift of {pct(d.mde_relative)} with {100 * d.power:.0f}% power at two-sided "
            f"alpha {d.alpha:g}; smaller true lifts would often go unseen.",
        ),
        tables=(
            Table(
                ("true lift", "units per arm", "total"),
                tuple(
                    (pct(p.mde_relative), f"{p.n_per_arm:,}", f"{p.total_units:,}")
                    for p in curve.points
                ),
            ),
        ),
        charts=(("power", lambda f: plot_power(curve, fmt=f)),),
    )


def _models(r: Report) -> Section:
    comparison = r.run_comparison
    assert comparison is not None
    level = _level(comparison.confidence)
    text = [
        f"{len(comparison.runs)} runs compared with the reference {comparison.reference.label}, "
        + (
            f"paired over {comparison.paired_users:,} test users"
            if comparison.kind == "ranking"
            else f"paired over {comparison.paired_rounds:,} logged rounds"
        )
        + f"; {comparison.correction}-adjusted p-values. With thousands of paired units nearly "
        "every difference is significant: read the effect and its interval.",
    ]
    rows: list[tuple[str, ...]] = []
    for m in comparison.rows:
        c = m.result
        rows.append(
            (
                m.metric,
                m.candidate,
                f"{number(c.mean_baseline)} / {number(c.mean_candidate)}",
                pct(c.relative_difference),
                interval(c.relative_ci_low, c.relative_ci_high),
                p_text(m.p_adjusted).removeprefix("p = "),
            )
        )
    for o in comparison.offpolicy:
        d = o.result
        rows.append(
            (
                o.estimator,
                o.candidate,
                f"{number(d.value_a)} / {number(d.value_b)}",
                pct(d.relative_difference),
                interval(d.relative_ci_low, d.relative_ci_high),
                p_text(o.p_adjusted).removeprefix("p = "),
            )
        )
    charts: list[tuple[str, Draw]] = [("models", lambda f: plot_run_comparison(comparison, fmt=f))]
    if r.user_values:
        charts.append(("per-user", lambda f: plot_user_values(r.user_values, fmt=f)))
    return Section(
        key="models",
        title="Replayed models",
        text=tuple(text),
        tables=(
            Table(
                ("metric", "run", "reference / run", "relative", f"{level} paired CI", "p (adj.)"),
                tuple(rows),
            ),
        ),
        charts=tuple(charts),
    )


def _offpolicy(r: Report) -> Section:
    rows = []
    for w in r.weights:
        for name, e in w.run.summary.get("estimates", {}).items():
            ci = e.get("ci")
            rows.append(
                (
                    w.run.label,
                    name,
                    number(e.get("value")),
                    "-" if ci is None else f"[{number(ci[0])}, {number(ci[1])}]",
                    f"{e.get('ess', math.nan):,.0f}",
                    e.get("refused") or "",
                )
            )
    charts: list[tuple[str, Draw]] = [("offpolicy", lambda f: plot_offpolicy(r.weights, fmt=f))]
    for i, w in enumerate(r.weights):
        charts.append((f"weights-{i + 1}", lambda f, w=w: plot_weights(w, fmt=f)))  # type: ignore[misc]
    return Section(
        key="offpolicy",
        title="Off-policy estimates",
        text=(
            "What each policy would have earned per logged round, estimated from the logging "
            "policy's propensities. A small effective sample size (ESS) means a few large "
            "weights decide the estimate.",
        ),
        tables=(Table(("run", "estimator", "value", "CI", "ESS", "refused"), tuple(rows)),),
        charts=tuple(charts),
    )


def _gates(r: Report) -> Section:
    rows = []
    for g in r.gates:
        for o in g.outcomes:
            rel = o.check.margin_type == "relative"

            def show(v: float, rel: bool = rel) -> str:
                return pct(v, 2) if rel else f"{v:+.4g}"

            rows.append(
                (
                    g.name,
                    o.metric,
                    show(o.change),
                    f"{show(o.upper_bound)} ({_level(o.bound_confidence)})",
                    show(o.limit),
                    p_text(o.p_adjusted).removeprefix("p = "),
                    "pass" if o.passed else "FAIL",
                )
            )
    charts: list[tuple[str, Draw]] = [
        (f"gate-{i + 1}", lambda f, g=g: plot_gate(g, fmt=f))  # type: ignore[misc]
        for i, g in enumerate(r.gates)
    ]
    return Section(
        key="gates",
        title="Gates",
        text=tuple(
            f"Gate {g.name}: "
            + ("passed." if g.passed else "FAILED on " + ", ".join(g.failed_metrics) + ".")
            + f" Decided by: {g.decision}."
            for g in r.gates
        ),
        tables=(
            Table(
                ("gate", "metric", "change", "upper bound", "allowed", "p (adj.)", "result"),
                tuple(rows),
            ),
        ),
        charts=tuple(charts),
    )


def sections(report: Report) -> tuple[Section, ...]:
    """The report's sections, in reading order, for the parts it holds."""
    out: list[Section] = []
    if report.arms is not None:
        out += [_experiment(report, report.arms), _lift(report, report.arms)]
    if report.daily is not None and report.daily.looks:
        out.append(_over_time(report, report.daily))
    if report.power is not None:
        out.append(_power(report))
    if report.run_comparison is not None:
        out.append(_models(report))
    if report.weights:
        out.append(_offpolicy(report))
    if report.gates:
        out.append(_gates(report))
    return tuple(out)


def _title(report: Report) -> str:
    return f"abkit report: dataset {report.dataset}" if report.dataset else "abkit report"


# -- HTML -----------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6574; --line: #dde2ea; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: #f6f7f9; }
main { max-width: 1320px; margin: 0 auto; padding: 1rem; }
header h1 { font-size: 1.6rem; margin: 0.5rem 0 0.25rem; }
header p { color: var(--muted); margin: 0 0 1rem; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 1rem 1.25rem; margin: 0 0 1.25rem; }
h2 { font-size: 1.25rem; margin: 0 0 0.75rem; }
.pair { display: grid; grid-template-columns: minmax(0, 1fr); gap: 1rem; }
@media (min-width: 900px) {
  .pair { grid-template-columns: minmax(0, 4fr) minmax(0, 3fr); align-items: start; }
}
figure { margin: 0 0 1rem; }
.chart { overflow-x: auto; border: 1px solid var(--line); border-radius: 4px; }
figure img { display: block; width: 100%; min-width: 540px; height: auto; background: #fff; }
figcaption { font-size: 0.85rem; color: var(--muted); margin-top: 0.35rem; }
.numbers p { margin: 0 0 0.6rem; }
.scroll { overflow-x: auto; margin: 0 0 0.75rem; }
table { border-collapse: collapse; font-size: 0.85rem; width: 100%;
  font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 0.25rem 0.5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: #f0f2f5; }
.skipped { color: var(--muted); font-size: 0.9rem; }
footer { color: var(--muted); font-size: 0.8rem; text-align: center; padding: 1rem; }
@media print {
  body { background: #fff; font-size: 11pt; }
  main { max-width: none; padding: 0; }
  section { border: none; padding: 0; page-break-inside: auto; }
  .pair { display: block; }
  figure, table { break-inside: avoid; page-break-inside: avoid; }
  .chart { overflow: visible; border: none; }
  figure img { min-width: 0; max-width: 100%; }
  h2 { break-after: avoid; page-break-after: avoid; }
}
"""


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in t.rows
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def write_html(report: Report, path: str | Path) -> WrittenReport:
    """The report as one self-contained HTML file (charts inline as SVG images)."""
    parts: list[str] = []
    charts: list[Chart] = []
    shown = sections(report)
    for s in shown:
        token = CAPTION_IN_IMAGE.set(False)  # the caption is page text beside the chart
        try:
            drawn = [draw("svg") for _, draw in s.charts]
        finally:
            CAPTION_IN_IMAGE.reset(token)
        charts += drawn
        numbers = "".join(f"<p>{html.escape(t)}</p>" for t in s.text) + "".join(
            _html_table(t) for t in s.tables
        )
        figures = "".join(chart_html(c) for c in drawn)
        parts.append(
            f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>'
            f'<div class="pair"><div class="charts">{figures}</div>'
            f'<div class="numbers">{numbers}</div></div></section>'
        )
    if report.skipped:
        items = "".join(
            f"<li>{html.escape(what)}: {html.escape(why)}</li>" for what, why in report.skipped
        )
        parts.append(
            f'<section id="skipped"><h2>Not shown</h2><ul class="skipped">{items}</ul></section>'
        )
    title = _title(report)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    document = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # no script, no network: the page may not load anything but its own data: images
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<header><h1>{html.escape(title)}</h1><p>Store {html.escape(report.db)}; "
        f"{len(charts)} charts; every number is a field of the result objects that the "
        "commands' --json prints (abkit report --json)."
        "</p></header>" + "".join(parts) + "</main>"
        f"<footer>abkit {html.escape(__version__)}, {stamp}</footer></body></html>\n"
    )
    target = Path(path)
    write_file(target, document.encode("utf-8"))
    return WrittenReport(
        path=target, format="html", charts=tuple(charts), sections=tuple(s.key for s in shown)
    )


# -- Markdown ------------------------------------------------------------------------------


# Markdown's own syntax, backslash-escaped: table cells (`|`), links (`[`, `]`), code spans
# (backticks), emphasis (`*`, `_`) and the backslash itself
_MD_SYNTAX = re.compile(r"([\\`*_\[\]|])")


def _md(text: str) -> str:
    """``text`` (any of it may be user-supplied: dataset, arm, run and gate names) as inert
    Markdown: HTML-escaped, Markdown syntax backslash-escaped, on one line. Every piece of text
    the Markdown writer puts out goes through here (headings, sentences, table cells, alt
    text), so no name can add markup, a link, a code span, a table cell or a line."""
    text = _MD_SYNTAX.sub(r"\\\1", text)
    # HTML's special characters as entities (GitHub and GitLab render Markdown as HTML, and a
    # backslash before `<` is dropped by some renderers); `'` stays (no attribute here)
    text = html.escape(text, quote=False).replace('"', "&quot;")
    return " ".join(text.splitlines())


def _md_table(t: Table) -> list[str]:
    lines = [
        "| " + " | ".join(_md(c) for c in t.columns) + " |",
        "|" + "---|" * len(t.columns),
    ]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in t.rows]
    return [*lines, ""]


def write_markdown(report: Report, path: str | Path) -> WrittenReport:
    """The report as Markdown (a pull-request comment) with its charts as PNG files in the
    folder ``NAME_files`` beside ``NAME.md``, linked by relative paths."""
    target = Path(path)
    folder = target.parent / f"{target.stem}_files"
    folder.mkdir(exist_ok=True)
    lines = [f"# {_md(_title(report))}", ""]
    charts: list[Chart] = []
    shown = sections(report)
    for s in shown:
        lines += [f"## {_md(s.title)}", ""]
        for stem, draw in s.charts:
            chart = draw("png")
            write_file(folder / f"{stem}.png", chart.data)
            chart = Chart(
                path=folder / f"{stem}.png",
                format="png",
                title=chart.title,
                caption=chart.caption,
                width_px=chart.width_px,
                height_px=chart.height_px,
                data=chart.data,
            )
            charts.append(chart)
            # intervals are shown as (a, b) in the alt text, which stays readable as source
            alt = _md(chart.caption.replace("[", "(").replace("]", ")"))
            lines += [f"![{alt}]({quote(folder.name)}/{quote(stem)}.png)", ""]
        for sentence in s.text:
            lines += [_md(sentence), ""]
        for table in s.tables:
            lines += _md_table(table)
    if report.skipped:
        lines += ["## Not shown", ""]
        lines += [f"- {_md(what)}: {_md(why)}" for what, why in report.skipped]
        lines.append("")
    write_file(target, "\n".join(lines).encode("utf-8"))
    return WrittenReport(
        path=target, format="md", charts=tuple(charts), sections=tuple(s.key for s in shown)
    )


def write_report(report: Report, path: str | Path, fmt: str | None = None) -> WrittenReport:
    """Write ``report`` to ``path`` as HTML or Markdown (``fmt``, else ``path``'s extension)."""
    if report_format(path, fmt) == "md":
        return write_markdown(report, path)
    return write_html(report, path)
