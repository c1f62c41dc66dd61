"""The one --split parser (abkit.stats.shares): percentages or fractions, never rescaled."""

from __future__ import annotations

import pytest

from abkit.errors import InputError
from abkit.stats import shares, srm

SUMS = "expected percentages that sum to 100 (e.g. 50/50) or fractions that sum to 1 (e.g. 0.5/0.5)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50/50", (0.5, 0.5)),
        ("0.5,0.5", (0.5, 0.5)),
        ("0.5/0.5", (0.5, 0.5)),
        ("50:50", (0.5, 0.5)),
        (" 20 / 30 / 50 ", (0.2, 0.3, 0.5)),
        ("34/33/33", (0.34, 0.33, 0.33)),
        ("33.33/33.33/33.34", (0.3333, 0.3333, 0.3334)),
        ("0.3333333/0.3333333/0.3333334", (0.3333333, 0.3333333, 0.3333334)),
    ],
)
def test_accepted_forms_give_fractions(text, expected) -> None:
    assert shares.parse_split(text) == pytest.approx(expected)
    assert sum(shares.parse_split(text)) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("text", "total"),
    [
        ("50/40", "90"),
        ("1/1", "2"),
        ("60/60", "120"),
        ("0.5,0.6", "1.1"),
        ("99.9/0.099", "99.999"),
    ],
)
def test_shares_that_sum_to_neither_100_nor_1_are_refused(text, total) -> None:
    with pytest.raises(InputError) as info:
        shares.parse_split(text)
    assert str(info.value) == f"--split {text!r}: the shares sum to {total}; {SUMS}"


def test_the_tolerance_is_relative() -> None:
    assert shares.parse_split("50.00005/50") == pytest.approx((0.5, 0.5), abs=1e-6)
    assert shares.parse_split("0.5000005/0.5") == pytest.approx((0.5, 0.5), abs=1e-6)
    with pytest.raises(InputError, match=r"sum to 100\.0002"):
        shares.parse_split("50.0002/50")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("control=0.5,treatment=0.5", {"control": 0.5, "treatment": 0.5}),
        ("A=60, B=40", {"A": 0.6, "B": 0.4}),
        ("50/50", (0.5, 0.5)),
    ],
)
def test_named_form(text, expected) -> None:
    assert shares.parse_named_split(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "A=0.5,B",
            "--split 'A=0.5,B': expected shares like 50/50, 0.5,0.5 or control=0.5,treatment=0.5",
        ),
        (
            "A=x,B=1",
            "--split 'A=x,B=1': expected shares like 50/50, 0.5,0.5 or control=0.5,treatment=0.5",
        ),
        ("A=50,A=50", "--split 'A=50,A=50': names variant 'A' twice"),
        ("A=100", "--split 'A=100': expected at least two shares, e.g. control=0.5,treatment=0.5"),
        ("A=50,B=40", f"--split 'A=50,B=40': the shares sum to 90; {SUMS}"),
        ("A=0,B=1", "--split shares must be positive numbers, got 0/1"),
    ],
)
def test_named_form_refusals(text, message) -> None:
    with pytest.raises(InputError) as info:
        shares.parse_named_split(text)
    assert str(info.value) == message


def test_normalise_split_no_longer_rescales() -> None:
    assert shares.normalise_split((50, 50), 2) == (0.5, 0.5)
    assert shares.normalise_split((0.2, 0.8), 2) == pytest.approx((0.2, 0.8))
    with pytest.raises(InputError, match=r"--split 1/1: the shares sum to 2; "):
        shares.normalise_split((1, 1), 2)  # once silently halves


def test_srm_uses_the_same_functions() -> None:
    assert srm.parse_split is shares.parse_split
    assert srm.normalise_split is shares.normalise_split
    with pytest.raises(InputError, match="the shares sum to 90"):
        srm.srm_check(["a", "b"], [500, 400], (50, 40))  # once: a false sample-ratio alarm


@pytest.mark.parametrize(("arms", "example"), [(2, "50/50"), (3, "34/33/33"), (4, "25/25/25/25")])
def test_wrong_number_of_shares_suggests_whole_percentages(arms, example) -> None:
    with pytest.raises(InputError) as info:
        shares.normalise_split((0.5, 0.5) if arms != 2 else (1.0,), arms)
    assert str(info.value).endswith(f"give one share per arm, e.g. {example}")
    assert shares.parse_split(example)  # the example is itself accepted
