"""`abkit bench`: measured speed and memory, side by side with the tools users would pick."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from abkit.bench import run_bench
from abkit.bench.markdown import format_value, load_reports, markdown
from abkit.bench.runner import with_command
from abkit.cli import render
from abkit.cli.common import JsonOption

if TYPE_CHECKING:
    from abkit.bench import BenchLine, BenchReport, Measurement

_WORKLOAD_NAMES = "simulate, ingest, compare, als, lstm, offpolicy; and spark (only when named)"


def bench(
    scale: Annotated[
        float,
        typer.Option(
            "--scale",
            help="Multiply the default sizes (users, events, rounds) by this factor; the "
            "default scale simulates about 10M events and takes about 3 minutes on 2 cores.",
        ),
    ] = 1.0,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Tiny sizes (under a minute): a smoke test of every workload; the ratios "
            "mean nothing.",
        ),
    ] = False,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help=f"Comma-separated workloads to run (default all but spark): {_WORKLOAD_NAMES}.",
        ),
    ] = None,
    db_dir: Annotated[
        Path | None,
        typer.Option(
            "--db-dir",
            help="Folder for the generated data (a fresh subfolder, removed afterwards; "
            "default: the system temp folder). Needs a few GB at the default scale.",
        ),
    ] = None,
    markdown_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--markdown",
            help="Run nothing: print the README's benchmark tables (Markdown) from the JSON "
            "of earlier runs (`abkit bench --json > run1.json`). Repeat for several runs.",
            show_default=False,
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Measure abkit's hot paths against the references users would otherwise pick.

    Each workload (ingest, A/B compare, ALS replay, LSTM inference, off-policy bootstrap, the
    simulator) and its reference (DuckDB, tea-tasting, implicit, torch, plain numpy, Open
    Bandit Pipeline's code path) run interleaved, at least three times each, every run in a
    fresh process on the same generated data; each line shows the median and fastest times,
    peak memories, the ratio, the machine's load while it ran, the target and whether it
    holds (on the median). Never touches ./abkit.duckdb.
    """

    if markdown_files:
        sys.stdout.write(markdown(load_reports(markdown_files)))
        return
    names = [n for n in only.split(",")] if only is not None else None
    if json:
        report = run_bench(scale=scale, quick=quick, only=names, work_dir=db_dir)
    else:
        started: list[bool] = []

        def on_step(text: str) -> None:
            if not started:  # options are valid once the first step runs
                started.append(True)
                render.note(
                    "abkit bench: abkit and each reference run interleaved, each run in a "
                    "fresh process; ratios are medians of the interleaved pairs, within this run."
                )
            render.note(f"  {text}...")

        report = run_bench(
            scale=scale,
            quick=quick,
            only=names,
            work_dir=db_dir,
            on_line=_print_line,
            on_step=on_step,
        )
    argv = ["abkit", "bench"]
    if scale != 1.0:
        argv += ["--scale", f"{scale:g}"]
    if quick:
        argv.append("--quick")
    if only:
        argv += ["--only", only]
    report = with_command(report, " ".join(argv))
    if json:
        render.print_json(report.to_dict())
    else:
        _print_report(report)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g} s" if value < 10 else f"{value:,.1f} s"


def _memory(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e9:.2f} GB" if value >= 1e9 else f"{value / 1e6:,.0f} MB"


def _value(line: BenchLine) -> str:
    return format_value(line.metric, line.value)


def _short_target(line: BenchLine) -> str:
    if not line.target or line.direction == "info":
        return "-"
    sign = ">=" if line.direction == "at_least" else "<="
    t = line.threshold
    if line.metric in ("speedup", "peak_ratio"):
        return f"{sign} {t:.0f}x" if t >= 10 else f"{sign} {t:.2g}x"
    if line.metric in ("peak_gb", "projected_peak_gb"):
        return f"{sign} {t:g} GB"
    if line.metric == "seconds":
        return f"{sign} {t:g} s"
    return f"{sign} {t:g}"


def _holds(line: BenchLine) -> str:
    if line.direction == "info" and line.status == "ok":
        return "info"
    if line.holds is None:
        return line.status
    text = "yes" if line.holds else "NO"
    if line.agree is False:
        text += " (results differ!)"
    return text


def _time(m: Measurement | None) -> str:
    """Median and minimum of a side's runs."""
    if m is None:
        return "-"
    if len(m.samples) == 1:
        return _seconds(m.seconds)
    return f"{_seconds(m.seconds)} ({_seconds(m.min_seconds)})"


def _load(line: BenchLine) -> str:
    if line.load_1m is None:
        return "-"
    low, high = line.load_1m
    return f"{low:.1f}" if low == high else f"{low:.1f}-{high:.1f}"


def _row(line: BenchLine) -> tuple[Any, ...]:
    a, r = line.abkit, line.reference
    return (
        line.name,
        _time(a),
        _memory(a.peak_rss_bytes) if a else "-",
        _time(r),
        _memory(r.peak_rss_bytes) if r else "-",
        f"{_value(line)} ({format_value(line.metric, line.value_min)})",
        _short_target(line),
        _holds(line),
        _load(line),
    )


_COLUMNS = [
    "line",
    "abkit (min)",
    "peak",
    "reference (min)",
    "peak",
    "value (min)",
    "target",
    "holds",
    "load",
]


def _print_line(line: BenchLine) -> None:

    a, r = line.abkit, line.reference
    text = f"{line.name}: {line.description}"
    if a is not None:
        text += f"; abkit {_time(a)}, {_memory(a.peak_rss_bytes)}"
    if r is not None:
        text += f"; reference {_time(r)}, {_memory(r.peak_rss_bytes)}"
    text += f"; {_value(line)} (target {line.target}): {_holds(line)}; load {_load(line)}"
    render.note(text)
    if line.message:
        render.note(f"    {line.message}")


def _print_report(report: BenchReport) -> None:

    m = report.machine
    render.say(
        ("abkit bench", "bold"),
        f" scale {report.scale:g}{' (quick)' if report.quick else ''}: "
        f"{m.get('cpus')} CPUs ({m.get('processor')}), {report.seconds:,.0f} s in all; "
        f"times are medians of {report.sizes.repeats} interleaved runs (the fastest in "
        "brackets), speed-ups the median of the pairs' ratios (of the fastest runs in brackets), "
        "verdicts on the medians, load = the 1-minute load average while the "
        "line ran",
        soft_wrap=True,
    )
    render.console.print(render.table(None, _COLUMNS, [_row(line) for line in report.lines]))
    render.console.print()
    for line in report.lines:
        ref = f" vs {line.reference_name}" if line.reference_name else ""
        render.say(
            (line.name, "bold"), f": {line.description}{ref}; target {line.target}", soft_wrap=True
        )
        for measured, who in ((line.abkit, "abkit"), (line.reference, "reference")):
            if measured is not None and measured.note:
                render.console.print(f"  {who}: {measured.note}", soft_wrap=True)
        if line.message:
            render.say("  ", (line.message, "yellow"), soft_wrap=True)
    if report.quick:
        render.note("--quick sizes are too small for the ratios to mean anything.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("bench")(bench)
