"""The charts behind ``--plot FILE.png|.svg``, drawn from the frozen result objects.

* :func:`plot_arm_comparison` (:class:`~abkit.stats.results.ArmComparisonReport`): a forest
  plot of the relative lift of each comparison with its interval, a line at zero and one at
  the claimed lift; the verdicts in words in the caption.
* :func:`plot_run_comparison` (:class:`~abkit.compare.runs.RunComparison`): each metric's (or
  estimator's) relative difference with its paired interval.
* :func:`plot_replay` (:class:`~abkit.replay.runner.ReplayResult`): the run's metrics at each
  K as bars (and its off-policy estimates with their intervals).

Nothing is recomputed: every number drawn or written is a field of the result object, the
same one ``--json`` prints. Each chart has a title, axis labels with units and a caption that
states the numbers; the caption is drawn under the plot, stored as the file's metadata (PNG
``Title``/``Description`` text chunks; SVG ``<title>`` and ``<desc>``) and returned in
:class:`Chart`. The extension of the path picks the format (:data:`FORMATS`).

matplotlib (the extra ``abkit-lift[report]``) is imported only inside the functions that draw,
and only its object-oriented API with the Agg canvas is used: no pyplot, no global state.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import tempfile
import textwrap
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from abkit._util import register_html_chart
from abkit.compare.runs import RunComparison
from abkit.errors import InputError, param
from abkit.report.formats import (
    DPI,
    FORMATS,
    WIDTH_IN,
    Chart,
    chart_format,
    matplotlib_classes,
    require_matplotlib,
)
from abkit.stats.results import ArmComparisonReport, Comparison

if TYPE_CHECKING:  # at run time a replay result is told by its run id: `abkit compare`
    # imports this module and need not import the replay runner (and its recommenders)
    from abkit.replay.runner import ReplayResult

__all__ = [
    "DPI",
    "FORMATS",
    "WIDTH_IN",
    "Chart",
    "chart_format",
    "plot_arm_comparison",
    "plot_replay",
    "plot_run_comparison",
    "require_matplotlib",
    "write_chart",
]

#: whether the caption is drawn under the plot (the HTML report sets it False for its charts
#: and shows the caption as page text beside them; it stays in the file's metadata either way)
CAPTION_IN_IMAGE: ContextVar[bool] = ContextVar("CAPTION_IN_IMAGE", default=True)

_CAPTION_FONT = 8.0
_CAPTION_CHARS = 112  # characters per caption line at WIDTH_IN and _CAPTION_FONT
_CAPTION_LINE_IN = 0.16


def _target_format(path: str | Path | None, fmt: str | None) -> str:
    """The format of a chart written to ``path``, or kept in memory (``path`` None) as
    ``fmt`` (SVG by default)."""
    if path is not None:
        return chart_format(path)
    if fmt not in (None, *FORMATS.values()):
        raise ValueError(f"unknown chart format {fmt!r}")
    return fmt or "svg"


def write_chart(
    result: ArmComparisonReport | RunComparison | ReplayResult, path: str | Path
) -> Chart:
    """Draw the chart of any result ``--plot`` supports to ``path``."""
    if isinstance(result, ArmComparisonReport):
        return plot_arm_comparison(result, path)
    if isinstance(result, RunComparison):
        return plot_run_comparison(result, path)
    if hasattr(result, "run_id") and hasattr(result, "metrics"):  # a ReplayResult
        return plot_replay(result, path)
    raise TypeError(f"no chart for {type(result).__name__}")


# -- numbers in words (as the command-line report shows them) ----------------------------------


def pct(value: float, digits: int = 1) -> str:
    """``+12.3%``; ``-`` for NaN, ``+inf`` / ``-inf`` for an infinite value."""
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{100 * value:+.{digits}f}%"


def interval(low: float, high: float) -> str:
    """``[-4.0%, +31.1%]``, or ``undefined (reference near 0)`` when an end is infinite."""
    if math.isinf(low) or math.isinf(high):
        return "undefined (reference near 0)"
    return f"[{pct(low)}, {pct(high)}]"


def p_text(value: float) -> str:
    """``p = 0.0213`` or ``p < 1e-16``."""
    if math.isnan(value):
        return "p = -"
    return "p < 1e-16" if value < 1e-16 else f"p = {value:.3g}"


def number(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4g}"


def _level(confidence: float) -> str:
    return f"{100 * confidence:g}%"


# -- the charts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    label: str
    estimate: float
    low: float
    high: float


def plot_arm_comparison(
    report: ArmComparisonReport, path: str | Path | None = None, *, fmt: str | None = None
) -> Chart:
    """A forest plot of each comparison's relative lift with its interval (the fields
    ``lift``, ``lift_ci_lower``, ``lift_ci_upper`` of the report), a line at zero and, when the
    report checked a claim, a dashed line at the claimed lift."""
    fmt = _target_format(path, fmt)
    level = _level(1 - report.alpha)
    several_metrics = len(report.metrics) > 1
    rows = [
        _Row(
            f"{c.treatment} vs {c.control}" + (f" ({c.metric})" if several_metrics else ""),
            c.lift,
            c.lift_ci_lower,
            c.lift_ci_upper,
        )
        for c in report.comparisons
    ]
    claim = _claim_value(report)
    where = f"dataset {report.dataset}" + (
        f", experiment {report.experiment}" if report.experiment else ""
    )
    title = f"Relative lift over the control '{report.control}': {where}"
    n = len(report.comparisons)
    parts = [
        f"{title}. Each row: the relative lift of an arm over the control with its {level} "
        f"interval; {n} comparison(s) {report.correction}-adjusted at alpha {report.alpha:g}."
    ]
    if report.srm_failed:
        parts.append(
            f"SAMPLE RATIO MISMATCH ({p_text(report.srm.p_value)}): fix the assignment before "
            "trusting these lifts."
        )
    parts += [_arm_sentence(c, level, report.alpha) for c in report.comparisons]
    return _forest(
        rows,
        path=path,
        fmt=fmt,
        title=title,
        xlabel=f"relative lift of the {report.metrics[0] if not several_metrics else 'metric'} "
        "over the control (%)",
        claim=claim,
        caption=" ".join(parts),
    )


def _claim_value(report: ArmComparisonReport) -> float | None:
    if report.claim is not None:
        return report.claim.claim
    for c in report.comparisons:
        if c.claim is not None:
            return c.claim.claim
    return None


def _arm_sentence(c: Comparison, level: str, alpha: float) -> str:
    significant = "significant" if c.significant else "not significant"
    text = (
        f"{c.treatment} vs {c.control} ({c.metric}): lift {pct(c.lift)}, {level} CI "
        f"{interval(c.lift_ci_lower, c.lift_ci_upper)} ({c.lift_ci_method}); adjusted "
        f"{p_text(c.p_adjusted)}: {significant} at alpha {alpha:g}"
    )
    if c.sequential is not None:
        s = c.sequential
        text += f"; always-valid confidence sequence {interval(s.lift_cs_lower, s.lift_cs_upper)}"
    if c.claim is not None:
        text += f"; the claim {pct(c.claim.claim)} is {c.claim.verdict}"
    return text + "."


def plot_run_comparison(
    result: RunComparison, path: str | Path | None = None, *, fmt: str | None = None
) -> Chart:
    """Each metric's (ranking runs) or estimator's (off-policy runs) relative difference of a
    candidate run over the reference run, with its paired interval (Fieller)."""
    fmt = _target_format(path, fmt)
    level = _level(result.confidence)
    ref = result.reference
    claim: float | None = None
    parts: list[str] = []
    rows: list[_Row] = []
    n = len(result.rows) + len(result.offpolicy)
    if result.kind == "ranking":
        title = f"Paired comparison against the reference run {ref.label}"
        parts.append(
            f"{title}, on the same {result.paired_users:,} test users (split {ref.split}). "
            f"Each row: a metric's relative difference of a run over the reference with its "
            f"{level} paired interval (Fieller); {n} comparison(s) {result.correction}-adjusted."
        )
        for r in result.rows:
            c = r.result
            rows.append(
                _Row(
                    f"{r.metric}: {r.candidate}",
                    c.relative_difference,
                    c.relative_ci_low,
                    c.relative_ci_high,
                )
            )
            parts.append(
                f"{r.metric}, {r.candidate} vs {r.reference}: {number(c.mean_candidate)} vs "
                f"{number(c.mean_baseline)}, relative {pct(c.relative_difference)}, {level} CI "
                f"{interval(c.relative_ci_low, c.relative_ci_high)}; difference "
                f"{c.difference:+.4g} [{c.ci_low:+.4g}, {c.ci_high:+.4g}]; adjusted "
                f"{p_text(r.p_adjusted)}."
            )
    else:
        title = f"Off-policy comparison against the reference policy {ref.label}"
        parts.append(
            f"{title}, on the same {result.paired_rounds:,} logged rounds. Each row: an "
            f"estimator's relative difference of a policy's reward per round over the "
            f"reference with its {level} paired interval (Fieller); {n} comparison(s) "
            f"{result.correction}-adjusted."
        )
        for o in result.offpolicy:
            d = o.result
            rows.append(
                _Row(
                    f"{o.estimator}: {o.candidate}",
                    d.relative_difference,
                    d.relative_ci_low,
                    d.relative_ci_high,
                )
            )
            text = (
                f"{o.estimator}, {o.candidate} vs {o.reference}: {number(d.value_b)} vs "
                f"{number(d.value_a)} per round, relative {pct(d.relative_difference)}, {level} "
                f"CI {interval(d.relative_ci_low, d.relative_ci_high)}; adjusted "
                f"{p_text(o.p_adjusted)}"
            )
            if o.claim is not None:
                claim = o.claim.claim
                text += f"; the claim {pct(o.claim.claim)} is {o.claim.verdict}"
            parts.append(text + ".")
    return _forest(
        rows,
        path=path,
        fmt=fmt,
        title=title,
        xlabel="relative difference over the reference run (%)",
        claim=claim,
        caption=" ".join(parts),
    )


def plot_replay(
    result: ReplayResult, path: str | Path | None = None, *, fmt: str | None = None
) -> Chart:
    """The run's metrics at each K as grouped bars (shares on a 0-1 axis; novelty, in bits, on
    its own axis) and its off-policy estimates with their intervals."""
    fmt = _target_format(path, fmt)
    values: dict[tuple[str, int], float] = {}
    names: list[str] = []
    for m in result.metrics:
        base, _, at = m.name.partition("@")
        if base not in names:
            names.append(base)
        values[(base, int(at))] = m.value
    shares = [b for b in names if b != "novelty"]
    bits = [b for b in names if b == "novelty"]
    estimates = list(result.estimates)
    if not names and not estimates:
        raise InputError(f"{param('plot')}: run {result.run_id} has no metrics to plot")
    title = f"Replay run {result.name or result.run_id}: model {result.model}"
    parts = [
        f"{title}, dataset {result.dataset}, split {result.split}, {result.users:,} users "
        "evaluated."
    ]
    if names:
        parts.append(
            "Metrics (mean over users; coverage over the catalogue): "
            + ", ".join(f"{n} {number(v)}" for (b, k), v in values.items() for n in [f"{b}@{k}"])
            + "."
        )
    level = _level(estimates[0].level) if estimates else ""
    for e in estimates:
        if e.value is None:
            parts.append(f"{e.estimator}: refused ({e.refused}).")
        elif e.ci_low is None or e.ci_high is None:
            parts.append(f"{e.estimator}: {number(e.value)} per round (no interval).")
        else:
            parts.append(
                f"{e.estimator}: {number(e.value)} per round, {level} CI "
                f"[{number(e.ci_low)}, {number(e.ci_high)}], ESS {e.ess:,.0f}."
            )
    caption = " ".join(parts)

    Figure, Canvas = matplotlib_classes()
    panels: list[tuple[str, float]] = []  # (kind, relative width)
    if shares:
        panels.append(("shares", max(2.0, len(shares))))
    if bits:
        panels.append(("bits", 1.5))
    if estimates:
        panels.append(("estimates", 2.5))
    plot_h = 3.2
    fig, top, bottom = _figure(Figure, Canvas, title, caption, plot_h)
    axes = fig.subplots(
        1,
        len(panels),
        squeeze=False,
        gridspec_kw={"width_ratios": [w for _, w in panels], "wspace": 0.35},
    )[0]
    fig.subplots_adjust(left=0.08, right=0.98, top=top, bottom=bottom)
    ks = list(result.ks)
    width = 0.8 / max(1, len(ks))
    for ax, (kind, _) in zip(axes, panels, strict=True):
        if kind in ("shares", "bits"):
            group = shares if kind == "shares" else bits
            for j, k in enumerate(ks):
                xs = [i + (j - (len(ks) - 1) / 2) * width for i in range(len(group))]
                heights = [values.get((b, k), math.nan) for b in group]
                ax.bar(xs, heights, width=width * 0.95, label=f"K = {k}")
            ax.set_xticks(range(len(group)))
            ax.set_xticklabels(group, rotation=30, ha="right", fontsize=8)
            ax.set_xlabel("metric at K")
            if kind == "shares":
                ax.set_ylabel("mean over users (share, 0 to 1)")
                top_value = max(
                    [v for (b, _), v in values.items() if b in shares and math.isfinite(v)] + [0.0]
                )
                ax.set_ylim(0, min(1.0, top_value * 1.15) if top_value > 0 else 1.0)
            else:
                ax.set_ylabel("novelty (bits)")
            if len(ks) > 1 and ax is axes[0]:
                ax.legend(fontsize=8)
        else:
            shown = [e for e in estimates if e.value is not None]
            ys = list(range(len(shown)))[::-1]
            for y, e in zip(ys, shown, strict=True):
                if e.ci_low is not None and e.ci_high is not None:
                    ax.hlines(y, e.ci_low, e.ci_high, color="C0", linewidth=2)
                ax.plot([e.value], [y], "o", color="C0")
            ax.set_yticks(ys)
            ax.set_yticklabels([e.estimator for e in shown], fontsize=8)
            ax.set_ylim(-0.7, max(0.7, len(shown) - 0.3))
            ax.set_xlabel(f"estimated reward per logged round ({level} CI)")
            ax.set_title(f"off-policy, {result.policy} policy", fontsize=9)
    return _save(fig, Canvas, path, fmt, title, caption)


# -- drawing helpers ---------------------------------------------------------------------------


def _wrap(caption: str) -> list[str]:
    return textwrap.wrap(caption, _CAPTION_CHARS) or [""]


def _figure(Figure: Any, Canvas: Any, title: str, caption: str, plot_h: float) -> Any:
    """A figure ``plot_h`` inches of plot high plus room for the title, the axis label and
    the wrapped caption (drawn at the bottom); returns it with the plot's top and bottom as
    fractions of the figure height."""
    lines = _wrap(caption) if CAPTION_IN_IMAGE.get() else []
    caption_h = _CAPTION_LINE_IN * len(lines) + 0.2 if lines else 0.1
    title_h, xlabel_h = 0.6, 0.9
    height = title_h + plot_h + xlabel_h + caption_h
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    Canvas(fig)
    fig.suptitle(title, fontsize=10, y=1 - 0.15 / height, va="top", parse_math=False)
    if lines:
        fig.text(
            0.02,
            (caption_h - 0.1) / height,
            "\n".join(lines),
            fontsize=_CAPTION_FONT,
            va="top",
            ha="left",
            parse_math=False,
        )
    top = 1 - title_h / height
    bottom = (caption_h + xlabel_h) / height
    return fig, top, bottom


def _forest(
    rows: Sequence[_Row],
    *,
    path: str | Path | None,
    fmt: str,
    title: str,
    xlabel: str,
    claim: float | None,
    caption: str,
) -> Chart:
    Figure, Canvas = matplotlib_classes()
    plot_h = max(1.6, 0.45 * len(rows) + 0.6)
    fig, top, bottom = _figure(Figure, Canvas, title, caption, plot_h)
    longest = max((len(r.label) for r in rows), default=10)
    left = min(0.45, (0.3 + 0.07 * longest) / WIDTH_IN)
    ax = fig.add_axes((left, bottom, 0.97 - left, top - bottom))
    finite = [100 * v for r in rows for v in (r.estimate, r.low, r.high) if math.isfinite(v)]
    finite += [0.0] + ([100 * claim] if claim is not None else [])
    lo, hi = min(finite), max(finite)
    pad = 0.08 * (hi - lo) or 1.0
    lo, hi = lo - pad, hi + pad
    ys = list(range(len(rows)))[::-1]
    for y, r in zip(ys, rows, strict=True):
        low = 100 * r.low if math.isfinite(r.low) else (lo if r.low < 0 else math.nan)
        high = 100 * r.high if math.isfinite(r.high) else (hi if r.high > 0 else math.nan)
        if math.isfinite(low) and math.isfinite(high):
            ax.hlines(y, low, high, color="C0", linewidth=2)
        if math.isinf(r.low):
            ax.plot([lo], [y], "<", color="C0")
        if math.isinf(r.high):
            ax.plot([hi], [y], ">", color="C0")
        if math.isfinite(r.estimate):
            ax.plot([100 * r.estimate], [y], "s", color="C0", markersize=7)
    ax.axvline(0, color="0.3", linewidth=1, label="no effect (0%)")
    if claim is not None:
        ax.axvline(
            100 * claim, color="C3", linestyle="--", linewidth=1.2, label=f"claim {pct(claim)}"
        )
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_yticks(ys)
    ax.set_yticklabels([r.label for r in rows], fontsize=8)
    for label in ax.get_yticklabels():
        label.set_parse_math(False)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    ax.grid(axis="x", color="0.9")
    return _save(fig, Canvas, path, fmt, title, caption)


def _save(
    fig: Any, Canvas: Any, path: str | Path | None, fmt: str, title: str, caption: str
) -> Chart:
    """Encode the figure and write it whole or not at all (a temporary file beside ``path``,
    renamed); with ``path`` None the chart stays in memory (:attr:`Chart.data`)."""
    buffer = io.BytesIO()
    if fmt == "png":
        fig.savefig(
            buffer, format="png", dpi=DPI, metadata={"Title": title, "Description": caption}
        )
        data = buffer.getvalue()
    else:
        fig.savefig(
            buffer, format="svg", metadata={"Title": title, "Description": caption, "Date": None}
        )
        text = buffer.getvalue().decode("utf-8")
        end = text.index("</title>") + len("</title>")
        data = (text[:end] + f"\n <desc>{escape(caption)}</desc>" + text[end:]).encode("utf-8")
    width, height = fig.get_size_inches()
    chart = Chart(
        path=None if path is None else Path(path),
        format=fmt,
        title=title,
        caption=caption,
        width_px=round(width * DPI),
        height_px=round(height * DPI),
        data=data,
    )
    if path is not None:
        write_file(Path(path), data)
    return chart


def write_file(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` whole or not at all (a temporary file beside it, renamed)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the chart from other readers
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- notebooks ---------------------------------------------------------------------------------


def chart_html(chart: Chart) -> str:
    """An in-memory SVG chart as an HTML ``<figure>``: the image as a ``data:`` URI (nothing
    fetched), its caption as the ``alt`` text and under it."""
    uri = "data:image/svg+xml;base64," + base64.b64encode(chart.data).decode("ascii")
    return (
        f'<figure><div class="chart"><img src="{uri}" alt="{html.escape(chart.caption)}" '
        f'width="{chart.width_px}" height="{chart.height_px}"></div>'
        f"<figcaption>{html.escape(chart.caption)}</figcaption></figure>"
    )


def notebook_chart(draw: Any) -> Any:
    """``draw(result, fmt=...)`` as the HTML a notebook shows above the result's table."""

    def html(result: Any) -> str:
        token = CAPTION_IN_IMAGE.set(False)
        try:
            return chart_html(draw(result, fmt="svg"))
        finally:
            CAPTION_IN_IMAGE.reset(token)

    return html


register_html_chart(ArmComparisonReport, notebook_chart(plot_arm_comparison))
register_html_chart(RunComparison, notebook_chart(plot_run_comparison))
# by name: importing abkit.replay.runner here would load the recommenders for every chart
register_html_chart("abkit.replay.runner.ReplayResult", notebook_chart(plot_replay))
