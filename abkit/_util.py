"""Small helpers shared across abkit (no heavy imports here)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Any

from abkit.errors import AbkitError

SHOW_LIMIT = 80


def show_value(value: object, limit: int = SHOW_LIMIT, *, quote: bool = True) -> str:
    """A value from user data as it may appear in a one-line message.

    Text is shown as ``repr`` (quoted, with line breaks and control characters escaped, so the
    message stays one line); ``quote=False`` leaves out the quotes when nothing needs escaping
    (for numbers: ``found 0.5``). Text longer than ``limit`` characters is cut and says its full
    length: ``'aaaa...' (65,536 characters)``. Other values are shown with ``str`` and cut alike.
    """
    text = value if isinstance(value, str) else str(value)
    cut = text[:limit]
    shown = repr(cut)
    if (not quote or not isinstance(value, str)) and shown[1:-1] == cut:
        shown = cut
    if len(text) > limit:
        shown += f"... ({len(text):,} characters)"
    return shown


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_choice(kind: str, name: str, choices: Iterable[str]) -> str:
    """One-line message for an unknown name: what it was, the closest match, every choice."""
    options = sorted(choices)
    hint = did_you_mean(name, options) if len(name) <= 4 * SHOW_LIMIT else ""
    return (
        f"unknown {kind} {show_value(name)}{hint}; "
        f"expected one of: {', '.join(options) if options else '(none)'}"
    )


# -- notebooks: results as tables (and charts) --------------------------------------------------

#: result type ("module.QualName") -> a function giving its chart as HTML; filled by
#: :mod:`abkit.report` when it is imported (the layers below it cannot import it), so a result
#: shows its chart in a notebook once ``abkit.report`` is loaded and matplotlib is installed.
#: Keyed by name so that registering a chart never imports the result's (heavy) module.
HTML_CHARTS: dict[str, Callable[[Any], str]] = {}
#: the module whose import registers every chart of :data:`HTML_CHARTS`
CHART_REGISTRY = "abkit.report.figures"


def type_key(kind: type) -> str:
    """The :data:`HTML_CHARTS` key of a result type."""
    return f"{kind.__module__}.{kind.__qualname__}"


def register_html_chart(kind: type | str, draw: Callable[[Any], str]) -> None:
    """Show ``draw(result)`` (HTML) above the table of every ``kind`` result in a notebook;
    ``kind`` is the type or its ``"module.QualName"``."""
    HTML_CHARTS[kind if isinstance(kind, str) else type_key(kind)] = draw


class TableDisplay:
    """Notebook display for a frozen result, as tea-tasting's results: :meth:`to_pandas`
    gives one row per comparison (or metric, gate, ...), ``_repr_html_`` shows that table
    under the result's chart (see :data:`HTML_CHARTS`). A subclass says what a row is in
    :meth:`table_rows`."""

    def table_rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame`` (pandas is imported here, on first use)."""
        import pandas as pd

        return pd.DataFrame(self.table_rows())

    def _repr_html_(self) -> str:
        table = self.to_pandas().to_html(
            index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", border=0
        )
        chart = ""
        # the report package registers the charts; it sits above this layer, so it is loaded
        # by name (it imports no plotting library until a chart is drawn)
        import_module(CHART_REGISTRY)
        draw = HTML_CHARTS.get(type_key(type(self)))
        if draw is not None:
            try:
                chart = draw(self)
            except AbkitError:  # no matplotlib, or nothing to draw: the table alone
                chart = ""
        return f"<div>{chart}{table}</div>"
