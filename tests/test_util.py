"""abkit._util: the one helper that shows user values in one-line messages."""

from __future__ import annotations

import pytest

from abkit._util import show_value, unknown_choice


@pytest.mark.parametrize(
    ("value", "kwargs", "shown"),
    [
        ("abc", {}, "'abc'"),
        ("it's", {}, '"it\'s"'),
        ("a\nb", {}, "'a\\nb'"),  # a line break never splits the message
        ("0.5", {"quote": False}, "0.5"),
        ("a\tb", {"quote": False}, "'a\\tb'"),  # needs escaping: quoted after all
        ("x" * 80, {}, "'" + "x" * 80 + "'"),
        ("x" * 81, {}, "'" + "x" * 80 + "'... (81 characters)"),
        ("y" * 65_536, {"limit": 10}, "'yyyyyyyyyy'... (65,536 characters)"),
        ("1" * 100, {"quote": False}, "1" * 80 + "... (100 characters)"),
        (12345, {}, "12345"),
    ],
)
def test_show_value(value, kwargs, shown) -> None:
    assert show_value(value, **kwargs) == shown


def test_unknown_choice_cuts_the_name_and_skips_the_hint_for_huge_names() -> None:
    message = unknown_choice("event type", "v" * 65_536, ["view", "click"])
    assert message == (
        f"unknown event type '{'v' * 80}'... (65,536 characters); expected one of: click, view"
    )
    assert unknown_choice("event type", "veiw", ["view"]) == (
        "unknown event type 'veiw' (did you mean 'view'?); expected one of: view"
    )
