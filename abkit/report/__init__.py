"""Charts of abkit's results (``--plot``): drawn with matplotlib, the optional extra
``abkit-lift[report]``, from the same frozen result objects ``--json`` prints.

matplotlib is imported only inside the functions that draw, so importing this package (and
``abkit --help``) never loads it.
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
