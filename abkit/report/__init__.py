"""Charts of abkit's results (``--plot``): drawn with matplotlib, the optional extra
``abkit-lift[report]``, from the same frozen result objects ``--json`` prints.

matplotlib is imported only inside the functions that draw, so importing this package (and
``abkit --help``) never loads it. Importing it also gives the result objects their chart in a
notebook (``_repr_html_``: :func:`abkit._util.register_html_chart`).
"""

from __future__ import annotations

from abkit.report.charts import (
    DPI,
    FORMATS,
    WIDTH_IN,
    Chart,
    chart_format,
    plot_arm_comparison,
    plot_replay,
    plot_run_comparison,
    require_matplotlib,
    write_chart,
)
from abkit.report.figures import plot_gate

__all__ = [
    "DPI",
    "FORMATS",
    "WIDTH_IN",
    "Chart",
    "chart_format",
    "plot_arm_comparison",
    "plot_gate",
    "plot_replay",
    "plot_run_comparison",
    "require_matplotlib",
    "write_chart",
]
