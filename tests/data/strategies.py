"""Hypothesis strategies shared by the ingest property tests."""

from __future__ import annotations

from hypothesis import strategies as st


def event_value(draw: st.DrawFn, event_type: str) -> float | None:
    """An event's value: none, or any finite float (never negative for a purchase)."""
    value = draw(
        st.none() | st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
    )
    return abs(value) if value is not None and event_type == "purchase" else value
