"""`abkit bench`: measured speed and memory, side by side with the tools users would pick."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from abkit.bench import run_bench
from abkit.bench.runner import with_command
from abkit.cli import render
from abkit.cli.common import JsonOption

if TYPE_CHECKING:
    from abkit.bench import BenchLine, BenchReport

_WORKLOAD_NAMES = "simulate, ingest, compare, als, lstm, offpolicy; and spark (only when named)"


def bench(
    scale: Annotated[
        float,
        typer.Option(
            "--scale",
            help="Multiply the default sizes (users, events, rounds) by this factor; the "
            "default scale simulates about 10M events and takes a few minutes on 2 cores.",
        ),
    ] = 1.0,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Tiny sizes (seconds): a smoke test of every workload, no timing."
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
    json: JsonOption = False,
) -> None:
    """Measure abkit's hot paths against the references users would otherwise pick.

    Each workload (ingest, A/B compare, ALS replay, LSTM inference, off-policy bootstrap, the
    simulator) and its reference (DuckDB, pandas, implicit, torch, a per-row Python loop) runs
    in a fresh process on the same generated data; each line shows both wall times and peak
    memories, the ratio, the target and whether it holds. Never touches ./abkit.duckdb.
    """

    names = [n for n in only.split(",")] if only is not None else None
    if json:
        report = run_bench(scale=scale, quick=quick, only=names, work_dir=db_dir)
    else:
        started: list[bool] = []

        def on_step(text: str) -> None:
            if not started:  # options are valid once the first step runs
                started.append(True)
                render.note(
                    "abkit bench: each workload and its reference run in fresh processes; "
                    "ratios are within this run."
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
    v = line.value
    if v is None:
        return "-"
    if line.metric == "speedup":
        return f"{v:.2f}x"
    if line.metric in ("peak_gb", "projected_peak_gb"):
        return f"{v:.2f} GB"
    if line.metric == "fraction":
        return f"{100 * v:.0f}%"
    if line.metric == "seconds":
        return f"{v:.3g} s"
    return f"{v:.2g}"


def _short_target(line: BenchLine) -> str:
    if not line.target:
        return "-"
    sign = ">=" if line.direction == "at_least" else "<="
    t = line.threshold
    if line.metric == "speedup":
        return f"{sign} {t:.0f}x" if t >= 10 else f"{sign} {t:.2g}x"
    if line.metric in ("peak_gb", "projected_peak_gb"):
        return f"{sign} {t:g} GB"
    if line.metric == "fraction":
        return f"{sign} {100 * t:.0f}%"
    if line.metric == "seconds":
        return f"{sign} {t:g} s"
    return f"{sign} {t:g}"


def _holds(line: BenchLine) -> str:
    if line.holds is None:
        return line.status
    text = "yes" if line.holds else "NO"
    if line.agree is False:
        text += " (results differ!)"
    return text


def _row(line: BenchLine) -> tuple[Any, ...]:
    a, r = line.abkit, line.reference
    return (
        line.name,
        _seconds(a.seconds) if a else "-",
        _memory(a.peak_rss_bytes) if a else "-",
        _seconds(r.seconds) if r else "-",
        _memory(r.peak_rss_bytes) if r else "-",
        _value(line),
        _short_target(line),
        _holds(line),
    )


_COLUMNS = ["line", "abkit", "peak", "reference", "peak", "value", "target", "holds"]


def _print_line(line: BenchLine) -> None:

    a, r = line.abkit, line.reference
    text = f"{line.name}: {line.description}"
    if a is not None:
        text += f"; abkit {_seconds(a.seconds)}, {_memory(a.peak_rss_bytes)}"
    if r is not None:
        text += f"; reference {_seconds(r.seconds)}, {_memory(r.peak_rss_bytes)}"
    text += f"; {_value(line)} (target {line.target}): {_holds(line)}"
    render.note(text)
    if line.message:
        render.note(f"    {line.message}")


def _print_report(report: BenchReport) -> None:

    m = report.machine
    render.say(
        ("abkit bench", "bold"),
        f" scale {report.scale:g}{' (quick)' if report.quick else ''}: "
        f"{m.get('cpus')} CPUs ({m.get('processor')}), {report.seconds:,.0f} s in all"
        + (
            f", load average {m['load_average_1m']:.1f} at the end (other processes share "
            "the CPUs: the ratios are only as steady as that)"
            if "load_average_1m" in m
            else ""
        ),
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
