"""What a command needs before it draws: the chart formats, :class:`Chart`, and the check
that the ``report`` extra is installed.

This module imports no plotting code and none of abkit's result modules, so `abkit compare`
(which checks ``--plot`` before any work) loads it for almost nothing; the drawing lives in
:mod:`abkit.report.charts` and :mod:`abkit.report.figures`, imported when a chart is drawn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from abkit.errors import InputError, MissingExtraError, param

__all__ = [
    "DPI",
    "FORMATS",
    "WIDTH_IN",
    "Chart",
    "chart_format",
    "matplotlib_classes",
    "require_matplotlib",
]

#: file extension -> format
FORMATS: dict[str, str] = {".png": "png", ".svg": "svg"}
#: every chart is this wide (inches); PNGs are drawn at :data:`DPI` dots per inch
WIDTH_IN = 8.0
DPI = 100


@dataclass(frozen=True, kw_only=True)
class Chart:
    """A chart written to ``path``: its format, title, caption (the numbers in words) and
    size in pixels (at :data:`DPI`; an SVG's size is the same in points x 0.72)."""

    path: Path | None
    format: str
    title: str
    caption: str
    width_px: int
    height_px: int
    #: the encoded file (PNG bytes or SVG text as UTF-8); the HTML report inlines it
    data: bytes = field(default=b"", repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["data"]
        out["path"] = None if self.path is None else str(self.path)
        return out


def chart_format(path: str | Path) -> str:
    """The format the extension of ``path`` picks (``png`` or ``svg``); anything else is an
    :class:`~abkit.errors.InputError` naming the parameter ``plot``."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"{param('plot')} {path}: the extension picks the chart's format, .png or .svg; "
            f"got {suffix or 'no extension'}"
        )
    return FORMATS[suffix]


def require_matplotlib(purpose: str | None = None) -> None:
    """Raise :class:`~abkit.errors.MissingExtraError` (with the install line) when matplotlib
    cannot be imported; a command calls it before any work, so a missing extra costs nothing.
    ``purpose`` is what needs it (default the ``plot`` parameter)."""
    try:
        matplotlib_classes()
    except MissingExtraError:
        if purpose is None:
            raise
        raise MissingExtraError("matplotlib", "report", purpose) from None


def matplotlib_classes() -> tuple[Any, Any]:
    """matplotlib's ``Figure`` class and its Agg canvas (imported here, never at module top)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtraError("matplotlib", "report", param("plot")) from exc
    return Figure, FigureCanvasAgg
