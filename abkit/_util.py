"""Small helpers shared across abkit (no heavy imports here)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_choice(kind: str, name: str, choices: Iterable[str]) -> str:
    """One-line message for an unknown name: what it was, the closest match, every choice."""
    options = sorted(choices)
    return (
        f"unknown {kind} '{name}'{did_you_mean(name, options)}; "
        f"expected one of: {', '.join(options) if options else '(none)'}"
    )
