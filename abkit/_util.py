"""Small helpers shared across abkit (no heavy imports here)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

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
