"""Small helpers shared across abkit (no heavy imports here)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Any

from abkit.errors import AbkitError, InputError

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


def did_you_mean(name: str, choices: Iterable[str], *, ignore_case: bool = False) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string.

    ``ignore_case`` compares case-folded names: every choice equal to ``name`` but for case is
    offered (`` (did you mean 'ALS' or 'als'?)``), else the closest one case-folded
    (``ALSS`` -> ``als``)."""
    options = list(choices)
    if not ignore_case:
        close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
        return f" (did you mean '{close[0]}'?)" if close else ""
    folded = name.casefold()
    same = [c for c in options if c.casefold() == folded]
    if not same:
        by_fold = {c.casefold(): c for c in reversed(options)}  # the first spelling wins
        close = difflib.get_close_matches(folded, list(by_fold), n=1, cutoff=0.6)
        same = [by_fold[close[0]]] if close else []
    return f" (did you mean {' or '.join(repr(c) for c in same)}?)" if same else ""


def unknown_choice(
    kind: str, name: str, choices: Iterable[str], *, ignore_case: bool = False
) -> str:
    """One-line message for an unknown name: what it was, the closest match, every choice
    (``ignore_case``: the match as :func:`did_you_mean` finds it ignoring case)."""
    options = sorted(choices)
    hint = (
        did_you_mean(name, options, ignore_case=ignore_case) if len(name) <= 4 * SHOW_LIMIT else ""
    )
    return (
        f"unknown {kind} {show_value(name)}{hint}; "
        f"expected one of: {', '.join(options) if options else '(none)'}"
    )


def invalid_utf8(head: bytes) -> bool:
    """Whether the first bytes of a file are not UTF-8 text; a character cut at the end of the
    sample is not an error (the sample, not the file, ends there)."""
    import codecs

    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


# -- relative values typed the way people type them ------------------------------------------

#: the metavar of every option parsed by :func:`parse_relative`
RELATIVE_METAVAR = "FRACTION|PCT%"


def parse_relative(
    value: str | float,
    *,
    noun: str = "lift",
    signed: bool = True,
    absolute: bool = False,
    absolute_hint: str = "",
    quote_percent: bool = False,
) -> float:
    """A relative value (a lift, an effect, a drop) as a fraction: ``0.2`` and ``20%`` are both
    0.2, i.e. +20%. The one rule of every relative command-line option and spec key:

    * a value with ``%`` is divided by 100 and may be any size: ``150%`` is 1.5 (+150%), so a
      lift of +100% or more is written with ``%``;
    * a bare number is a fraction and must lie in (-1, 1): ``20`` is refused with "did you
      mean 0.2 (+20%)?" rather than read as +2000%, and ``1.5`` with "did you mean 0.015
      (+1.5%)? ... for +150% write 150%";
    * ``absolute``: the value is a difference in the metric's own units, so a bare number is
      taken as it is and ``%`` is refused (``absolute_hint`` is added to that message).

    ``signed=False`` (a drop, never negative) shows percentages without a sign and leaves a
    negative value to the caller's own range check; ``quote_percent`` writes the suggested
    percentage as a TOML string (``"20%"``). A number (a default, a TOML value) is read as a
    bare number. Raises :class:`InputError` with the reason only: the caller puts the option
    or key and the value in front (``--claim 20: a relative lift is a fraction; ...``).
    """
    from decimal import Decimal, InvalidOperation

    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"expected a number, got {show_value(value)}")
    text = value.strip() if isinstance(value, str) else repr(value)
    percent = text.endswith("%")
    number = text[:-1].strip() if percent else text
    try:
        amount = Decimal(number)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        example = (
            "a number such as 0.01"
            if absolute
            else "a fraction such as 0.2 or a percentage such as 20%"
        )
        raise InputError(f"expected {example}")
    if percent:
        if absolute:
            raise InputError(
                f"an absolute {noun} is a difference in the metric's own units, not a "
                f"percentage; write it without %{absolute_hint}"
            )
        return float(amount.scaleb(-2))
    if absolute or -1 < amount < 1 or (not signed and amount < 0):
        return float(amount)

    def shown(d: Decimal) -> str:
        return f"{d.normalize():f}"

    def pct(d: Decimal) -> str:
        return f'"{shown(d)}%"' if quote_percent else f"{shown(d)}%"

    sign = ("+" if amount > 0 else "-") if signed else ""
    fraction = amount.scaleb(-2)
    write = (
        f"Write {shown(fraction)} or {pct(amount)}" if abs(fraction) < 1 else f"Write {pct(amount)}"
    )
    if signed and 1 <= amount < 10:  # 1.5 may have meant +150%
        whole = amount.scaleb(2)
        write += f"; for {sign}{shown(whole)}% write {pct(whole)}"
    raise InputError(
        f"a relative {noun} is a fraction; did you mean {shown(fraction)} "
        f"({sign}{shown(abs(amount))}%)? {write}"
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
