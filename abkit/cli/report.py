"""``abkit report``: the experiment, its lift, its days, its power, the replayed models and
the gates as one HTML file (or Markdown with its images), charts beside the numbers.

The command parses its options, calls :func:`abkit.report.build_report` (the same library
calls as ``compare``, ``power``, ``compare RUN...`` and ``gate``) and writes the result with
:func:`abkit.report.write_report`; nothing is computed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from abkit.cli import render
from abkit.cli.common import (
    DEFAULT_DB,
    RELATIVE_RULE,
    DatasetOption,
    DbOption,
    JsonOption,
    relative_option,
)
from abkit.errors import InputError, param
from abkit.report.build import build_report
from abkit.report.charts import require_matplotlib
from abkit.report.document import report_format, write_report


def report(
    db: DbOption = DEFAULT_DB,
    dataset: DatasetOption = None,
    experiment: Annotated[
        str | None,
        typer.Option(help="Experiment inside the dataset (default: the only one)."),
    ] = None,
    runs: Annotated[
        list[str] | None,
        typer.Option(
            "--runs",
            help="Replay runs to show (ids or names; the first is the reference): repeat "
            "--runs, or give them comma-separated (a name may hold spaces: --runs 'my run,b'; "
            "name a run whose name holds a comma by its id).",
            show_default=False,
        ),
    ] = None,
    claim: Annotated[
        float | None,
        relative_option(
            "A claimed relative lift to check and draw: 0.2 or 20% for +20%. " + RELATIVE_RULE
        ),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            help="Experiment spec with a \\[gate] table: its gate runs (as `abkit gate SPEC`) "
            "and is shown. That writes to --db as the gate does: the spec's simulated dataset "
            "when the store lacks it, and the candidate's run (give the report a store of its "
            "own, e.g. --db /tmp/ci.duckdb, to keep your data alone).",
            show_default=False,
        ),
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level (two-sided).")] = 0.05,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The file to write (overwritten).")
    ] = Path("report.html"),
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="html (one self-contained file) or md (Markdown, its PNG images in "
            "NAME_files/ beside it); default: the extension of --out.",
            show_default=False,
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Write an HTML (or Markdown) report: arms, lift, days, power, models, gates, with charts."""
    chosen = report_format(out, fmt)
    if out.is_dir() or not out.parent.is_dir():
        raise InputError(f"{param('out')} {out}: expected a file in an existing folder")
    require_matplotlib("abkit report")
    result = build_report(
        db,
        dataset=dataset,
        experiment=experiment,
        runs=_split(runs),
        claim=claim,
        spec=spec,
        alpha=alpha,
        progress=render.progress,
    )
    written = write_report(result, out, chosen)
    if json:
        render.print_json({**written.to_dict(), "results": result.to_dict()})
        return
    render.line(
        f"Wrote {written.path} ({written.format}, {len(written.charts)} charts: "
        f"{', '.join(written.sections)})."
    )
    for what, why in result.skipped:
        render.note(f"not shown: {what} ({why})")


def _split(runs: list[str] | None) -> list[str]:
    """``--runs a --runs "my run"`` and ``--runs "a, my run"`` both give ``[a, my run]``: a
    value splits at commas only (a run name may hold spaces), each part stripped of the
    spaces around it; a run whose name holds a comma is named by its id."""
    names = [part.strip() for value in runs or () for part in value.split(",")]
    if runs and not all(names):
        shown = ", ".join(repr(value) for value in runs)
        raise InputError(f"{param('runs')} has an empty run name in {shown}")
    return names


def register(app: typer.Typer) -> None:
    """Add ``report`` to the app."""
    app.command("report")(report)
