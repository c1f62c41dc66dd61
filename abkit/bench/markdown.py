"""README tables from the JSON of ``abkit bench --json``: ``abkit bench --markdown FILE``.

The README's benchmark numbers are printed from a saved run, never typed in: the tables here
are a pure function of the JSON (one or several runs), so regenerating them is mechanical.
Several runs (e.g. the three in a row that accept a change) give one column per run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from abkit.errors import InputError

__all__ = ["format_value", "load_reports", "markdown"]


def load_reports(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The reports saved by ``abkit bench --json > FILE``; one-line errors naming the file."""
    reports = []
    for path in paths:
        try:
            report = json.loads(Path(path).read_text())
        except OSError as exc:
            raise InputError(f"--markdown {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise InputError(
                f"--markdown {path}: not JSON ({exc.msg}, line {exc.lineno})"
            ) from None
        if not isinstance(report, dict) or not isinstance(report.get("lines"), list):
            raise InputError(f"--markdown {path}: not the JSON of `abkit bench --json`")
        reports.append(report)
    if not reports:
        raise InputError("--markdown: give at least one JSON file")
    return reports


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g} s" if value < 10 else f"{value:,.1f} s"


def _memory(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e9:.2f} GB" if value >= 1e9 else f"{value / 1e6:,.0f} MB"


def format_value(metric: str, value: float | None) -> str:
    """A line's value as the report prints it (``2.31x``, ``0.30 GB``, ``0.21 s``...)."""
    if value is None or not math.isfinite(value):
        return "-"
    if metric == "speedup":
        return f"{value:.2f}x"
    if metric in ("peak_gb", "projected_peak_gb"):
        return f"{value:.2f} GB"
    if metric == "peak_ratio":
        return f"{value:.2f}x"
    if metric == "seconds":
        return f"{value:.3g} s"
    return f"{value:.2g}"


def _verdict(line: Mapping[str, Any]) -> str:
    if line.get("direction") == "info":
        return "info"
    holds = line.get("holds")
    if holds is None:
        return str(line.get("status", "-"))
    text = "yes" if holds else "**NO**"
    if line.get("agree") is False:
        text += " (results differ!)"
    return text


def _side(m: Mapping[str, Any] | None) -> str:
    if m is None:
        return "-"
    return (
        f"{_seconds(m['seconds'])} (min {_seconds(m.get('min_seconds', m['seconds']))}), "
        f"{_memory(m['peak_rss_bytes'])}"
    )


def _load(line: Mapping[str, Any]) -> str:
    load = line.get("load_1m")
    if not load:
        return "-"
    low, high = load
    return f"{low:.1f}" if low == high else f"{low:.1f}-{high:.1f}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def markdown(reports: Sequence[Mapping[str, Any]]) -> str:
    """The README tables for one or several saved runs: the verdicts (one column per run:
    median value, the value of the fastest runs, load), then the first run's lines in full
    (both sides' median and minimum times and peak memories) and what it ran on."""
    first = reports[0]
    out: list[str] = []
    names = [line["name"] for line in first["lines"]]
    by_run = [{line["name"]: line for line in r["lines"]} for r in reports]
    header = ["line", "target"] + [
        f"run {i + 1}: median (min), load" if len(reports) > 1 else "median (min), load"
        for i in range(len(reports))
    ]
    header.append("holds" if len(reports) == 1 else "holds (runs)")
    out += [_row(header), _row(["---"] * len(header))]
    for name in names:
        lines = [runs.get(name) for runs in by_run]
        declared = next(line for line in lines if line is not None)
        cells = [f"`{name}`", str(declared.get("target") or "-")]
        for line in lines:
            if line is None:
                cells.append("-")
                continue
            metric = line.get("metric", "")
            cells.append(
                f"{format_value(metric, line.get('value'))} "
                f"({format_value(metric, line.get('value_min'))}), load {_load(line)}"
            )
        verdicts = [_verdict(line) for line in lines if line is not None]
        if len(reports) == 1:
            cells.append(verdicts[0])
        elif all(v == "info" for v in verdicts):
            cells.append("info")
        else:
            held = sum(1 for line in lines if line is not None and line.get("holds") is True)
            cells.append(f"{held} of {len(reports)}")
        out.append(_row(cells))
    out.append("")
    out += [
        _row(["line", "abkit: median (min), peak", "reference", "reference: median (min), peak"]),
        _row(["---"] * 4),
    ]
    for line in first["lines"]:
        out.append(
            _row(
                [
                    f"`{line['name']}`: {line.get('description', '')}",
                    _side(line.get("abkit")),
                    str(line.get("reference_name") or "-"),
                    _side(line.get("reference")),
                ]
            )
        )
    machine = first.get("machine", {})
    runs = ", ".join(f"{r.get('seconds', 0):,.0f} s" for r in reports)
    out += [
        "",
        f"`{first.get('command') or 'abkit bench'}` on {machine.get('cpus', '?')} CPUs "
        f"({machine.get('processor', '?')}), Python {machine.get('python', '?')}, numpy "
        f"{machine.get('numpy', '?')}, duckdb {machine.get('duckdb', '?')}; "
        f"{len(reports)} run(s) of {runs}; abkit and the reference interleaved "
        f"{first.get('sizes', {}).get('repeats', '?')} times per line (the simulator once).",
    ]
    return "\n".join(out) + "\n"
