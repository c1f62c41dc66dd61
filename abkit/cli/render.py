"""All terminal output: rich tables and messages on a console, JSON on stdout.

The library returns typed result objects; this module is the only place that turns them into
text, and the only module that imports rich.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def error(message: str) -> None:
    """One line on stderr, no traceback."""
    err_console.print(
        f"[bold red]error:[/] {message}", soft_wrap=True, markup=True, emoji=False, highlight=False
    )


def warning(message: str) -> None:
    err_console.print(f"[bold yellow]warning:[/] {message}", soft_wrap=True, emoji=False)


def note(message: str) -> None:
    err_console.print(f"[dim]{message}[/]", soft_wrap=True, emoji=False)


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
) -> Table:
    out = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for i, column in enumerate(columns):
        out.add_column(column, justify="right" if (justify_numbers and i > 0) else "left")
    for row in rows:
        out.add_row(*(fmt(v) for v in row))
    return out


def fmt(value: Any) -> str:
    """A readable cell: thousands separators for ints, 4 significant digits for floats."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3g}"
        return f"{value:,.4g}" if abs(value) >= 1 else f"{value:.4f}"
    return str(value)


def pct(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{100 * value:.{digits}f}%"


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Any]:
    """A progress bar on stderr; yields ``advance(n)``. Silent when stderr is not a terminal."""
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    with bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


def store_info(result: Any) -> None:
    """Render :class:`abkit.data.info.StoreInfo`."""
    console.print(
        f"[bold]{result.path}[/]  schema v{result.schema_version} ({result.created_by}), "
        f"{len(result.datasets)} dataset(s), {result.runs} replay run(s)"
    )
    if not result.datasets:
        console.print("No datasets yet: add one with `abkit simulate` or `abkit ingest`.")
    for ds in result.datasets:
        console.print()
        console.print(f"[bold cyan]dataset {ds.name}[/] ({ds.source}; unit of analysis: {ds.unit})")
        if ds.unit == "impression":
            console.print(
                "  This log has no user id: each impression is its own unit of randomisation "
                "and analysis."
            )
        if ds.time_range:
            console.print(f"  time range: {ds.time_range[0]} .. {ds.time_range[1]} (UTC)")
        rows = [(t, n) for t, n in ds.rows.items()]
        console.print(table(None, ["table", "rows"], rows))
        if ds.event_types:
            console.print(table(None, ["event type", "events"], sorted(ds.event_types.items())))
        console.print(
            f"  users {ds.users:,}, items {ds.items:,}, impressions {ds.impressions:,}, "
            f"clicks {ds.clicks:,}"
            + (f" (CTR {pct(ds.clicks / ds.impressions, 3)})" if ds.impressions else "")
        )
        for exp in ds.experiments:
            arm_rows = [
                (
                    a.variant + (" (control)" if a.variant == exp.control else ""),
                    a.units,
                    pct(a.observed_share, 1),
                    pct(a.design_share, 1) if a.design_share is not None else "-",
                )
                for a in exp.arms
            ]
            console.print(
                table(
                    f"experiment {exp.name}",
                    ["arm", "units", "share", "designed"],
                    arm_rows,
                )
            )
        if ds.truth:
            truth_rows = [(t["metric"], t["variant"] or "(all)", t["value"]) for t in ds.truth]
            console.print(
                table("planted truth (simulator)", ["metric", "arm", "value"], truth_rows)
            )


def heading(title: str, subtitle: str = "") -> None:
    console.rule(f"[bold]{title}[/]" + (f" [dim]- {subtitle}[/]" if subtitle else ""))


def step(number: int, title: str, explanation: str) -> None:
    """A numbered step of the demo: a title and a sentence on what it shows and why."""
    console.print()
    console.print(f"[bold magenta]Step {number}. {title}[/]")
    console.print(explanation, soft_wrap=False)


def line(text: str = "", *, style: str | None = None) -> None:
    """One line of plain text on stdout: no markup is interpreted (safe for data values)."""
    console.print(text, style=style, markup=False, highlight=False, soft_wrap=True, emoji=False)
