"""Charts and reports of abkit's results, drawn with matplotlib (the optional extra
``abkit-lift[report]``) from the same frozen result objects ``--json`` prints.

The names below load on first use (PEP 562), so that a command which only checks ``--plot``
(:mod:`abkit.report.formats`) does not load the drawing code and, through it, the result
modules of every workflow. matplotlib itself is imported only inside the functions that
draw. In a notebook the result objects show their chart above their table
(:meth:`abkit._util.TableDisplay._repr_html_` loads :mod:`abkit.report.figures`, which
registers every chart).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: public name -> the module that defines it
_LAZY = {
    "DPI": "abkit.report.formats",
    "FORMATS": "abkit.report.formats",
    "WIDTH_IN": "abkit.report.formats",
    "Chart": "abkit.report.formats",
    "chart_format": "abkit.report.formats",
    "require_matplotlib": "abkit.report.formats",
    "plot_arm_comparison": "abkit.report.charts",
    "plot_replay": "abkit.report.charts",
    "plot_run_comparison": "abkit.report.charts",
    "write_chart": "abkit.report.charts",
    "plot_gate": "abkit.report.figures",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'abkit.report' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
