"""All terminal output: rich tables and messages on a console, JSON on stdout.

The library returns typed result objects; this module is the only place that turns them into
text, and the only module that imports rich.

Text is never read as rich markup: both consoles are built with ``markup=False`` (and no emoji
codes, no highlighting), so a dataset, arm, run or file name such as ``[/b]ctrl``,
``ranker [v1]`` or ``:cat:`` prints exactly as typed wherever it appears (tables, titles,
rules, messages). Styling is explicit instead: :func:`say` assembles a line from plain parts and
``(text, style)`` pairs, and :func:`line` takes a ``style``.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table
    from rich.text import Text

#: stdout's and stderr's consoles; built, and rich imported, on first use (PEP 562
#: ``__getattr__`` below), so a ``--json`` command never imports rich
console: Console
err_console: Console


def _build_consoles() -> None:
    from rich.console import Console

    g = globals()
    g.setdefault("console", Console(highlight=False, markup=False, emoji=False))
    g.setdefault("err_console", Console(stderr=True, highlight=False, markup=False, emoji=False))


def _out() -> Console:
    """stdout's console (the module attribute, so a test may replace it)."""
    if "console" not in globals():
        _build_consoles()
    return globals()["console"]


def _err() -> Console:
    """stderr's console (the module attribute, so a test may replace it)."""
    if "err_console" not in globals():
        _build_consoles()
    return globals()["err_console"]


def __getattr__(name: str) -> Any:
    if name == "console":
        return _out()
    if name == "err_console":
        return _err()
    if name in ("_Count", "_Remaining"):
        return _columns()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: the longest error line printed (and put in the JSON error); longer ones are cut in the middle
ERROR_LIMIT = 400

#: one part of a line for :func:`say`: plain text, or ``(text, style)``
Part = str | tuple[str, str]


def say(*parts: Part, **print_options: Any) -> None:
    """One line on stdout assembled from literal parts: ``say(("run ", "bold"), run_id)``."""
    from rich.text import Text

    _out().print(Text.assemble(*parts), **print_options)


def clip(text: str, limit: int = ERROR_LIMIT) -> str:
    """``text`` on one line and at most ``limit`` characters: newlines become spaces, and a
    longer text keeps its beginning (which names the file, row or option) and its end, joined
    by ``...``."""
    text = " ".join(text.splitlines())
    if len(text) <= limit:
        return text
    head = (limit - 3) * 2 // 3
    tail = limit - 3 - head
    return f"{text[:head]}...{text[len(text) - tail :]}"


def error(message: str) -> None:
    """One line on stderr, no traceback, at most :data:`ERROR_LIMIT` characters."""
    from rich.text import Text

    _err().print(Text.assemble(("error:", "bold red"), " ", clip(message)), soft_wrap=True)


def error_json(message: str, *, kind: str, exit_code: int) -> None:
    """The error as JSON on stdout, for commands run with ``--json`` (stderr still gets
    :func:`error`): ``{"error": {"message": ..., "kind": ..., "exit_code": ...}}``."""
    print_json({"error": {"message": clip(message), "kind": kind, "exit_code": exit_code}})


def warning(message: str) -> None:
    from rich.text import Text

    _err().print(Text.assemble(("warning:", "bold yellow"), " ", message), soft_wrap=True)


def note(message: str) -> None:
    from rich.text import Text

    _err().print(Text(message, style="dim"), soft_wrap=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def print_json(payload: Any) -> None:
    """JSON on stdout; non-finite floats become null so any parser accepts it."""
    sys.stdout.write(json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    justify_numbers: bool = True,
    whole: Sequence[int] = (),
) -> Table:
    """A table whose cells fold onto the next line when the terminal is narrow; the columns
    in ``whole`` (ids a user copies) are never broken."""
    from rich.table import Table
    from rich.text import Text

    # Text, not markup: titles and cells carry data (paths, column names like "[/b]x").
    out = Table(
        title=None if title is None else Text(title),
        title_justify="left",
        show_edge=False,
        header_style="bold",
    )
    for i, column in enumerate(columns):
        # fold, never "…": two names that differ only at the end stay distinct, and an
        # install line stays whole
        out.add_column(
            column,
            justify="right" if (justify_numbers and i > 0 and _numeric(rows, i)) else "left",
            overflow="fold",
            no_wrap=i in whole,
            min_width=max((len(fmt(row[i])) for row in rows), default=None) if i in whole else None,
        )
    for row in rows:
        out.add_row(*(Text(fmt(v)) for v in row))
    return out


def _numeric(rows: Sequence[Sequence[Any]], i: int) -> bool:
    """Column ``i`` holds numbers (or blanks): right-justify it."""
    values = [row[i] for row in rows if row[i] is not None]
    return bool(values) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    )


def fmt(value: Any) -> str:
    """A readable cell: thousands separators for ints, 4 significant digits for floats, and
    large floats with separators and one decimal (an ESS of 10,312.4, a sample size of
    8,356.5: never 1.031e+04, nor rounded to a whole number that reads as the answer)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if 1e3 <= abs(value) < 1e15:
            return f"{value:,.0f}" if value.is_integer() else f"{value:,.1f}"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e15):
            return f"{value:.3g}"
        return f"{value:,.4g}" if abs(value) >= 1 else f"{value:.4f}"
    return str(value)


def pct(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{100 * value:.{digits}f}%"


@functools.cache
def _columns() -> dict[str, Any]:
    """The progress bar's two columns that stay blank for a phase of unknown length (classes
    built on first use: rich is imported only when a bar is shown)."""
    from rich.progress import MofNCompleteColumn, TimeRemainingColumn
    from rich.text import Text

    class _Count(MofNCompleteColumn):
        """``3/15``; nothing for a phase of unknown length (rich would show ``0/?``)."""

        def render(self, task: Any) -> Text:
            return Text("") if task.total is None else super().render(task)

    class _Remaining(TimeRemainingColumn):
        """The time left; nothing for a phase of unknown length."""

        def render(self, task: Any) -> Text:
            return Text("") if task.total is None else super().render(task)

    return {"_Count": _Count, "_Remaining": _Remaining}


def _bar() -> Progress:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = _columns()
    err = _err()
    return Progress(
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),  # pulses while the length of the phase is unknown
        columns["_Count"](),
        TimeElapsedColumn(),
        columns["_Remaining"](),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Any]:
    """A progress bar on stderr; yields ``advance(n)``. Silent when stderr is not a terminal.
    ``total`` None: a phase of unknown length (a pulsing bar and the time it has taken)."""
    with _bar() as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


class Phases:
    """One progress line that goes through phases: :meth:`start` replaces the phase shown
    (its description and length), :meth:`advance` moves it on."""

    def __init__(self, bar: Progress) -> None:
        self._bar = bar
        self._task: Any = None

    def start(self, description: str, total: int | None = None) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
        self._task = self._bar.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n)


@contextmanager
def phases() -> Iterator[Phases]:
    """A progress line through phases (simulating, then writing the store, ...)."""
    with _bar() as bar:
        yield Phases(bar)


def store_info(result: Any, *, selected: bool = False) -> None:
    """Render :class:`abkit.data.info.StoreInfo`; ``selected``: the user chose its one dataset
    (``--dataset``), so the header names it rather than counting the store's datasets."""
    runs = _count(result.runs, "replay run")
    if selected and len(result.datasets) == 1:
        contents = f"dataset {result.datasets[0].name}; {runs} in the store"
    else:
        contents = f"{_count(len(result.datasets), 'dataset')}, {runs}"
    say(
        (str(result.path), "bold"),
        f"  schema v{result.schema_version} ({result.created_by}), {contents}",
    )
    if not result.datasets:
        _out().print("No datasets yet: add one with `abkit simulate` or `abkit ingest`.")
    for ds in result.datasets:
        _out().print()
        say((f"dataset {ds.name}", "bold cyan"), f" ({ds.source}; unit of analysis: {ds.unit})")
        if ds.unit == "impression":
            _out().print(
                "  This log has no user id: each impression is its own unit of randomisation "
                "and analysis."
            )
        if ds.time_range:
            _out().print(f"  time range: {ds.time_range[0]} .. {ds.time_range[1]} (UTC)")
        rows = [(t, n) for t, n in ds.rows.items()]
        _out().print(table(None, ["table", "rows"], rows))
        if ds.event_types:
            _out().print(table(None, ["event type", "events"], sorted(ds.event_types.items())))
        unit_label = "units (impressions)" if ds.unit == "impression" else "users"
        _out().print(
            f"  {unit_label} {ds.users:,}, items {ds.items:,}, impressions {ds.impressions:,}, "
            f"clicks {ds.clicks:,}"
            + (f" (CTR {pct(ds.clicks / ds.impressions, 3)})" if ds.impressions else "")
        )
        for exp in ds.experiments:
            logged = any(a.impressions for a in exp.arms)
            columns = ["arm", "units", "share", "designed"]
            if logged:
                columns += ["impressions", "clicks", "CTR"]
            arm_rows = []
            for a in exp.arms:
                row = [
                    a.variant + (" (control)" if a.variant == exp.control else ""),
                    a.units,
                    pct(a.observed_share, 1),
                    pct(a.design_share, 1) if a.design_share is not None else "-",
                ]
                if logged:
                    ctr = a.clicks / a.impressions if a.impressions else None
                    row += [a.impressions, a.clicks, pct(ctr, 3)]
                arm_rows.append(row)
            _out().print(table(f"experiment {exp.name}", columns, arm_rows))
        if ds.truth:
            truth_rows = [(t["metric"], t["variant"] or "(all)", t["value"]) for t in ds.truth]
            _out().print(table("planted truth (simulator)", ["metric", "arm", "value"], truth_rows))


def _count(n: int, noun: str) -> str:
    """``1 replay run``, ``2 replay runs``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def heading(title: str, subtitle: str = "") -> None:
    parts: list[Part] = [(title, "bold")]
    if subtitle:
        parts.append((f" - {subtitle}", "dim"))
    from rich.text import Text

    _out().rule(Text.assemble(*parts))


def step(number: int, title: str, explanation: str) -> None:
    """A numbered step of the demo: a title and a sentence on what it shows and why."""
    _out().print()
    say((f"Step {number}. {title}", "bold magenta"))
    _out().print(explanation, soft_wrap=False)


def line(text: str = "", *, style: str | None = None) -> None:
    """One line of plain text on stdout: no markup is interpreted (safe for data values)."""
    _out().print(text, style=style, markup=False, highlight=False, soft_wrap=True, emoji=False)


# -- replay-run comparisons, experiment specs, gates (abkit compare RUNS, run, gate) ----------


def _signed(value: float, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-" if value is None or math.isnan(value) else ("+inf" if value > 0 else "-inf")
    return f"{value:+.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:+.2e}"


def _signed_pct(value: float, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "-" if value is None or math.isnan(value) else ("+inf" if value > 0 else "-inf")
    return f"{100 * value:+.{digits}f}%"


def _interval(low: float, high: float, *, percent: bool = False) -> str:
    f = _signed_pct if percent else _signed
    return f"[{f(low)}, {f(high)}]"


def _relative_interval(low: float, high: float) -> str:
    """A relative interval; "undefined (control near 0)" when an end is infinite (the
    reference's value is not clearly above 0), never ``[-inf, +inf]``."""
    if low is not None and high is not None and (math.isinf(low) or math.isinf(high)):
        return UNDEFINED_RELATIVE
    return _interval(low, high, percent=True)


def _p_value(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "-"
    if p < 1e-16:  # below double precision of 1 - p: the exact digits mean nothing
        return "<1e-16"
    return f"{p:.0e}" if p < 1e-3 else f"{p:.3f}"


def _params_text(params: Any) -> str:
    keep = {k: v for k, v in dict(params or {}).items() if k not in ("device", "exclude_seen")}
    return ", ".join(f"{k}={v}" for k, v in keep.items()) or "default parameters"


def run_comparison(result: Any) -> None:
    """Render :class:`abkit.compare.runs.RunComparison`: one block per metric (or estimator) and
    model, leading with the relative and absolute differences and their intervals."""
    ref = result.reference
    level = f"{100 * result.confidence:g}%"
    n_rows = len(result.rows) + len(result.offpolicy)
    adjust = (
        "not adjusted for multiplicity"
        if result.correction == "none"
        else f"{result.correction}-adjusted over {n_rows} comparisons"
    )
    if result.kind == "ranking":
        line(
            f"Paired comparison on the same {result.paired_users:,} test users (split "
            f"{ref.split}, data {ref.fingerprint[:12]}); reference {ref.label} ({ref.run_id})."
        )
        boot = (
            f"; bootstrap: percentile, {result.n_resamples} resamples, seed {result.seed}"
            if result.n_resamples
            else ""
        )
        line(
            f"{level} intervals paired over users (t; Fieller for relative{boot}); "
            f"p-values two-sided, {adjust}."
        )
        widths = []
        for r in result.rows:
            c = r.result
            line()
            line(
                f"{r.metric}: {r.candidate} {c.mean_candidate:.4g} vs {r.reference} "
                f"{c.mean_baseline:.4g}",
                style="bold",
            )
            line(
                f"  relative {_signed_pct(c.relative_difference)} "
                f"{_relative_interval(c.relative_ci_low, c.relative_ci_high)}   "
                f"difference {_signed(c.difference)} {_interval(c.ci_low, c.ci_high)}"
            )
            extra = [f"  d_z {c.cohens_dz:+.3f}" if math.isfinite(c.cohens_dz) else "  d_z -"]
            if c.bootstrap is not None:
                extra.append(f"bootstrap {_interval(c.bootstrap.ci_low, c.bootstrap.ci_high)}")
            extra.append(f"p adj. {_p_value(r.p_adjusted)}")
            if c.mcnemar is not None:
                extra.append(f"McNemar p {_p_value(c.mcnemar.p_value)}")
            line("   ".join(extra))
            paired_width = c.ci_high - c.ci_low
            if paired_width > 0:
                widths.append((c.unpaired_ci_high - c.unpaired_ci_low) / paired_width)
        line()
        if widths:
            widths.sort()
            line(
                f"Pairing made the intervals {widths[len(widths) // 2]:.1f}x narrower than "
                "unpaired (Welch) ones on the same runs (median)."
            )
        line(
            "Judge the intervals and d_z (mean difference in per-user SDs; |d_z| < 0.1 is "
            "small), not p-values: with many users tiny differences are significant."
        )
    else:
        line(
            f"Off-policy comparison on the same {result.paired_rounds:,} logged rounds; "
            f"reference {ref.label} ({ref.run_id})."
        )
        line(
            f"{level} intervals paired over rounds (influence-function variance clustered by "
            f"{result.paired_units:,} users or units; Fieller for relative); p-values "
            f"two-sided, {adjust}."
        )
        for r in result.offpolicy:
            c = r.result
            line()
            line(
                f"{r.estimator}: {r.candidate} {c.value_b:.4g} vs {r.reference} {c.value_a:.4g} "
                "per round",
                style="bold",
            )
            line(
                f"  relative {_signed_pct(c.relative_difference)} "
                f"{_relative_interval(c.relative_ci_low, c.relative_ci_high)}   "
                f"difference {_signed(c.difference)} {_interval(c.ci_low, c.ci_high)}"
            )
            line(f"  p adj. {_p_value(r.p_adjusted)}")
            if r.claim is not None:
                k = r.claim
                support = (
                    "the lift interval is unbounded: the reference's value is not clearly above 0"
                    if not math.isfinite(k.max_supported_lift)
                    else f"no lift above {_signed_pct(k.max_supported_lift)} is supported"
                    if k.max_supported_lift < 0
                    else f"the data support a lift of at least {_signed_pct(k.max_supported_lift)}"
                )
                line(
                    f"  claim: {r.candidate} beats {r.reference} by at least "
                    f"{_signed_pct(k.claim, 0).lstrip('+')}: {k.verdict.upper()} ({support}; "
                    f"p = {_p_value(k.p_value_above)} for H0: lift <= {_signed_pct(k.claim, 0)})",
                    style="bold",
                )
    for text in result.notes:
        note(text)


def experiment_run(result: Any) -> None:
    """Render :class:`abkit.experiments.runner.ExperimentRun`: the stored runs, then their
    comparison."""
    spec = result.spec
    line(
        f"Experiment {spec.name} ({spec.path})"
        + (f": {spec.description}" if spec.description else "")
    )
    if result.simulated:
        line(f"Simulated dataset '{result.dataset}' from the spec's simulator settings.")
    for label, run_id in result.runs:
        model = spec.model(label)
        line(f"  {label}: run {run_id} ({model.model}; {_params_text(model.params)})")
    if result.comparison is not None:
        line()
        run_comparison(result.comparison)
    for text in result.notes:
        warning(text)


def gate_report(report: Any) -> None:
    """Render :class:`abkit.experiments.gate.GateReport`: the verdict, then one row per gate."""
    cand, base = report.candidate, report.baseline
    n_users = report.outcomes[0].n if report.outcomes else 0
    if report.passed:
        say((f"gate {report.name}: PASSED", "bold green"), f" ({len(report.outcomes)} gate(s))")
    else:
        say((f"gate {report.name}: FAILED", "bold red"), f" on {', '.join(report.failed_metrics)}")
    line(
        f"candidate {cand.get('label')} (run {cand.get('run_id')}) vs baseline "
        f"{base.get('label')} ({base.get('source')}), {n_users:,} paired users. "
        f"{report.parameter_changes}."
    )
    rows = []
    for o in report.outcomes:
        relative = o.check.margin_type == "relative"
        show = _signed_pct if relative else _signed
        rows.append(
            (
                o.metric,
                f"{o.baseline_mean:.4g}",
                f"{o.candidate_mean:.4g}",
                show(o.change),
                show(o.upper_bound),
                show(o.limit),
                show(o.standard_error).lstrip("+"),
                _p_value(o.p_adjusted),
                "pass" if o.passed else "FAIL",
            )
        )
    columns = ["gate", "base", "cand", "change", "upper", "allowed", "SE", "p adj.", ""]
    out = table(None, columns, rows)
    from rich import box

    out.box = box.SIMPLE_HEAD  # no vertical rules, no edge padding: nine columns fit 80
    out.pad_edge = False
    out.collapse_padding = True
    _out().print(out)
    for o in report.outcomes:
        if not o.passed:
            line(o.reason, style="bold red")
    line(f"Decided by: {report.decision}.")
    line(report.bounds_note)
    for text in report.notes:
        note(text)


def baseline_saved(path: Any, size: int, baseline: Any) -> None:
    """Confirm ``abkit baseline save`` / ``abkit run --save-baseline``."""
    run = baseline.run
    line(
        f"wrote {path} ({size / 1000:.1f} kB): {len(baseline.metrics)} metric(s) x "
        f"{baseline.n_users:,} users from run {run.get('run_id')} ({run.get('model')}, "
        f"{_params_text(run.get('params'))}); commit it next to the spec"
    )


def simulation_summary(summary: Any) -> None:
    """Render :class:`abkit.simulate.SimulationSummary`."""
    truth, config = summary.truth, summary.config
    say(
        "Simulated dataset ",
        (summary.dataset, "bold"),
        " (experiment ",
        (summary.experiment, "bold"),
        f") into {summary.db} in {summary.elapsed_seconds:.1f} s",
    )
    _out().print(
        table(
            "Rows written",
            ["table", "rows"],
            [
                ["events", summary.events],
                ["sessions", summary.sessions],
                ["impressions", summary.impressions],
                ["assignments", summary.assignments],
                ["items", summary.items],
            ],
        )
    )
    rows = []
    for arm in config.arms:
        users = summary.arm_users[arm]
        rows.append([
            arm,
            users,
            pct(users / summary.assignments if summary.assignments else None, 1),
            pct(truth[f"design_share[{arm}]"], 1),
            pct(truth[f"conversion_rate[{arm}]"], 3),
            pct(truth[f"conversion_lift[{arm}]"], 1),
            pct(truth.get(f"policy_ctr[{arm}]"), 3),
        ])  # fmt: skip
    _out().print(
        table(
            "Arms and planted truth",
            ["arm", "users", "share", "design", "true conversion", "true lift", "policy CTR"],
            rows,
        )
    )
    if config.srm:
        _out().print(
            f"Planted sample-ratio mismatch: {pct(config.srm, 1)} of non-control users "
            "lost their records."
        )


# -- numbers in words (compare, power) --------------------------------------------------------

PERCENT_METRICS = {"conversion", "clicks_per_impression"}


def value_text(metric: str, value: float) -> str:
    """A metric's level: a percentage for rates, else 4 significant digits."""
    return pct(value, 2) if metric in PERCENT_METRICS else fmt(value)


def diff_text(metric: str, value: float) -> str:
    if not math.isfinite(value):
        return "-"
    if metric in PERCENT_METRICS:
        return f"{100 * value:+.2f} pp"
    return f"{value:+,.4g}"


def lift_text(value: float, digits: int = 1) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{100 * value:+.{digits}f}%"


UNDEFINED_RELATIVE = "undefined (control near 0)"
"""A relative interval with an infinite end: the reference (control) is not clearly above 0."""


def lift_interval_text(low: float, high: float, *, percent_digits: int = 1) -> str:
    """``[-4.0%, +31.1%]``, or :data:`UNDEFINED_RELATIVE` when an end is infinite."""
    if math.isinf(low) or math.isinf(high):
        return UNDEFINED_RELATIVE
    return f"[{lift_text(low, percent_digits)}, {lift_text(high, percent_digits)}]"


def supported_lift_text(lower: float, bound: str) -> str:
    """The largest lift the data support, ``lower`` (the lower end of the lift interval that
    ``bound`` names, e.g. "the lower 95% bound"), in words: a negative one supports no lift."""
    if math.isnan(lower):
        return "No lift is supported: the lift interval is empty or undefined."
    if lower < 0:
        return f"No lift above {lift_text(lower)} is supported ({bound})."
    return f"The largest lift the data support is {lift_text(lower)} ({bound})."


def p_eq_text(value: float) -> str:
    """``p = 0.021`` or ``p < 1e-16``."""
    text = p_text(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def p_text(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value < 1e-16:
        return "< 1e-16"  # below double precision's resolution next to 1; never print 0
    if value < 1e-4:
        return f"{value:.1e}"
    return f"{value:.3g}" if value < 0.1 else f"{value:.3f}"
