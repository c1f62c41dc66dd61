"""``--plot FILE.png|.svg``: the option and the two steps every command that draws takes.

:func:`check_plot` runs before any work (a bad extension or a missing matplotlib costs
nothing and stores nothing); :func:`write_plot` draws the chart from the same frozen result
``--json`` prints (:func:`abkit.report.write_chart`) and says where it went, on stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any

import typer

from abkit.cli import render
from abkit.report.formats import Chart, chart_format, require_matplotlib

PlotOption = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        help="Also draw the result as a chart: FILE.png or FILE.svg (the extension picks the "
        'format; needs pip install "abkit-lift[report]").',
        show_default=False,
    ),
]


def check_plot(path: Path | None) -> None:
    """Refuse a ``--plot`` path of another extension, or a missing matplotlib, up front."""
    if path is not None:
        chart_format(path)
        require_matplotlib()


def write_plot(
    result: Any, path: Path | None, draw: Callable[[Any, Path], Chart] | None = None
) -> Chart | None:
    """Draw ``result`` to ``path`` (when given, with ``draw``; by default
    :func:`abkit.report.charts.write_chart`, loaded only now) and note it on stderr."""
    if path is None:
        return None
    if draw is None:
        draw = import_module("abkit.report.charts").write_chart
    chart = draw(result, path)
    render.note(f"chart: wrote {chart.path} ({chart.width_px}x{chart.height_px} px)")
    return chart
