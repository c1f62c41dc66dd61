"""Designed traffic shares: the one parser of ``--split`` for ingest, simulate and compare.

A split is one share per arm, control first: percentages that sum to 100 (``50/50``,
``34/33/33``) or fractions that sum to 1 (``0.5/0.5``, ``0.5,0.5``), within a relative
tolerance of :data:`SUM_TOLERANCE`. Shares are separated by ``/``, ``,`` or ``:``. Anything else
is refused with a one-line error naming the option and the sum: a split that is silently
rescaled (``50/40`` read as 56/44, ``1/1`` as halves) hides a typo and then raises a false
sample-ratio alarm. ``abkit ingest`` also takes shares by variant name,
``control=0.5,treatment=0.5`` (:func:`parse_named_split`).

Parsed shares are returned as fractions that sum to 1. No heavy imports here: the CLI parses
options before anything else is loaded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from abkit._util import show_value
from abkit.errors import InputError

__all__ = ["SUM_TOLERANCE", "check_shares", "normalise_split", "parse_named_split", "parse_split"]

SUM_TOLERANCE = 1e-6  # relative: |sum - 100| <= 1e-4 for percentages, |sum - 1| <= 1e-6


def _shown(values: Sequence[float]) -> str:
    return "/".join(f"{v:g}" for v in values)


def check_shares(
    values: Sequence[float], *, option: str = "--split", text: str | None = None
) -> tuple[float, ...]:
    """Positive shares summing to 100 or to 1 -> fractions summing to 1; else a one-line error.

    ``text`` is what the user typed, quoted in the message (default: the shares themselves).
    """
    given = show_value(text) if text is not None else _shown(values)
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise InputError(f"{option} shares must be positive numbers, got {_shown(values)}")
    total = math.fsum(values)
    if not (
        abs(total - 100) <= 100 * SUM_TOLERANCE or abs(total - 1) <= SUM_TOLERANCE
    ):  # percentages or fractions, nothing in between
        raise InputError(
            f"{option} {given}: the shares sum to {total:.10g}; expected percentages that sum to "
            "100 (e.g. 50/50) or fractions that sum to 1 (e.g. 0.5/0.5)"
        )
    return tuple(float(v) / total for v in values)


def parse_split(text: str, *, option: str = "--split") -> tuple[float, ...]:
    """``"50/50"``, ``"34/33/33"``, ``"0.5,0.5"`` or ``"50:50"`` -> fractions summing to 1."""
    parts = [p for p in re.split(r"[/,:]", text) if p.strip()]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(
            f"{option} {show_value(text)}: expected shares separated by '/', e.g. 50/50 or 40/30/30"
        ) from None
    if len(values) < 2:
        raise InputError(
            f"{option} {show_value(text)}: expected at least two shares separated by '/', "
            "e.g. 50/50"
        )
    return check_shares(values, option=option, text=text)


def parse_named_split(
    text: str, *, option: str = "--split"
) -> tuple[float, ...] | dict[str, float]:
    """:func:`parse_split`, or shares by name: ``"control=0.5,treatment=0.5"`` -> a dict."""
    if "=" not in text:
        return parse_split(text, option=option)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    pairs = [p.partition("=") for p in parts]
    names = [name.strip() for name, _, _ in pairs]
    try:
        if any(not sep or not name for name, (_, sep, _) in zip(names, pairs, strict=True)):
            raise ValueError
        values = [float(value) for _, _, value in pairs]
    except ValueError:
        raise InputError(
            f"{option} {show_value(text)}: expected shares like 50/50, 0.5,0.5 or "
            "control=0.5,treatment=0.5"
        ) from None
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise InputError(f"{option} {show_value(text)}: names variant {show_value(twice)} twice")
    if len(values) < 2:
        raise InputError(
            f"{option} {show_value(text)}: expected at least two shares, "
            "e.g. control=0.5,treatment=0.5"
        )
    shares = check_shares(values, option=option, text=text)
    return dict(zip(names, shares, strict=True))


def normalise_split(split: Sequence[float], arms: int) -> tuple[float, ...]:
    """One share per arm, summing to 100 or 1 -> fractions summing to 1 (see the module)."""
    if len(split) != arms:
        raise InputError(
            f"--split has {len(split)} share(s) but the experiment has {arms} arms; "
            f"give one share per arm, e.g. {_example_split(arms)}"
        )
    return check_shares([float(s) for s in split])


def _example_split(arms: int) -> str:
    """Whole percentages for ``arms`` arms, e.g. 50/50 or 34/33/33."""
    base, extra = divmod(100, max(arms, 1))
    return "/".join(str(base + (1 if i < extra else 0)) for i in range(arms))
