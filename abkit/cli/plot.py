"""``--plot FILE.png|.svg``: the option and the two steps every command that draws takes.

:func:`check_plot` runs before any work (a bad extension or a missing matplotlib costs
nothing and stores nothing); :func:`write_plot` draws the chart from the same frozen result
``--json`` prints (:func:`abkit.report.write_chart`) and says where it went, on stderr.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any

import typer

from abkit.cli import render
from abkit.errors import InputError, param
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
    """Refuse, up front, a ``--plot`` path of another extension, one that is a folder or in a
    folder that does not exist (else a replay or a gate would store its run and then fail to
    draw it), or a missing matplotlib."""
    if path is not None:
        chart_format(path)
        if path.is_dir() or not path.parent.is_dir():
            raise InputError(f"{param('plot')} {path}: expected a file in an existing folder")
        if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise InputError(f"{param('plot')} {path}: not writable")
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
