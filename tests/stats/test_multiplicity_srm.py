"""Multiple-testing corrections against statsmodels, and the SRM check for any number of arms."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from abkit.errors import InputError
from abkit.stats import multiplicity, srm

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STATSMODELS_NAMES = {
    "bonferroni": "bonferroni",
    "holm": "holm",
    "hochberg": "simes-hochberg",
    "bh": "fdr_bh",
    "by": "fdr_by",
}


@pytest.mark.slow  # a property search against statsmodels
@SETTINGS
@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), st.sampled_from(list(STATSMODELS_NAMES))
)
def test_adjustments_match_statsmodels(pvalues, method) -> None:
    from statsmodels.stats.multitest import multipletests

    reject, adjusted, _, _ = multipletests(pvalues, alpha=0.05, method=STATSMODELS_NAMES[method])
    ours = multiplicity.adjust(pvalues, method)
    assert list(ours) == pytest.approx(list(adjusted), abs=1e-12)
    assert list(multiplicity.reject(pvalues, method, 0.05)) == list(reject)


def test_none_and_empty() -> None:
    assert list(multiplicity.adjust([0.2, 0.01], "none")) == [0.2, 0.01]
    assert multiplicity.adjust([], "holm").size == 0


@pytest.mark.parametrize(
    ("pvalues", "method", "message"),
    [
        ([0.1], "holmes", "unknown correction 'holmes' (did you mean 'holm'?); expected one of: bh, bonferroni, by, hochberg, holm, none"),  # noqa: E501
        ([0.1, 1.2], "holm", "p-values must be numbers in [0, 1]"),
        ([0.1, math.nan], "bh", "p-values must be numbers in [0, 1]"),
    ],
)  # fmt: skip
def test_invalid_multiplicity_inputs(pvalues, method, message) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        multiplicity.adjust(pvalues, method)


@SETTINGS
@given(st.lists(st.integers(1, 100_000), min_size=2, max_size=6), st.data())
def test_srm_matches_scipy_for_any_number_of_arms(counts, data) -> None:
    weights = data.draw(st.lists(st.integers(1, 9), min_size=len(counts), max_size=len(counts)))
    shares = [w / sum(weights) for w in weights]  # fractions that sum to 1
    result = srm.srm_check([f"arm{i}" for i in range(len(counts))], counts, shares)
    expected = np.array(shares) / sum(shares) * sum(counts)
    ref = stats.chisquare(counts, expected)
    assert result.chi2 == pytest.approx(ref.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert result.df == len(counts) - 1
    assert result.ok == (result.p_value > 0.001)  # a mismatch is p <= alpha


def test_srm_three_arms_and_note() -> None:
    result = srm.srm_check(["a", "b", "c"], [3400, 3300, 3300], srm.parse_split("34/33/33"))
    assert result.ok
    assert result.checked
    bad = srm.srm_check(["a", "b"], [600, 400], (0.5, 0.5))
    assert not bad.ok
    assert bad.note.startswith("sample ratio mismatch: the units per arm (a 600, b 400)")


def test_srm_mismatch_is_p_at_or_below_alpha() -> None:
    # One convention everywhere: "significant" / "mismatch" means p <= alpha.
    p = srm.srm_check(["a", "b"], [600, 400], (50, 50)).p_value
    assert not srm.srm_check(["a", "b"], [600, 400], (50, 50), alpha=p).ok
    assert srm.srm_check(["a", "b"], [600, 400], (50, 50), alpha=p * 0.999).ok


@pytest.mark.parametrize("split", [(1.0,), None])
def test_srm_with_one_arm_is_skipped_and_says_why(split) -> None:
    # It once computed chi2 = 0, p = NaN and reported "mismatch p = nan" (ok=False).
    result = srm.srm_check(["only"], [1234], split)
    assert not result.checked
    assert result.ok is None  # not checked is neither a pass nor a mismatch
    assert result.to_dict()["ok"] is None
    assert result.note == "the experiment has 1 arm(s); a sample ratio check needs at least two"


def test_srm_without_design_checks_an_assumed_equal_split() -> None:
    """No designed split: equal shares, as tea-tasting and GrowthBook assume, and said so."""
    bad = srm.srm_check(["a", "b"], [600, 400], None)
    assert bad.checked
    assert bad.split_assumed
    assert bad.ok is False
    assert bad.split == (0.5, 0.5)
    assert bad.p_value == pytest.approx(stats.chisquare([600, 400]).pvalue)
    assert bad.note.startswith(
        "sample ratio mismatch: the units per arm (a 600, b 400) do not fit the assumed equal "
        "split 50/50 (no designed split is known; pass --split to give it) (chi2 = 40, p = "
    )
    fine = srm.srm_check(["a", "b", "c"], [330, 340, 330], None)
    assert fine.ok is True
    assert fine.split_assumed
    assert fine.note == (
        "no designed split is known; checked against an assumed equal split "
        "33.3333/33.3333/33.3333 (pass --split to check against another)"
    )
    given = srm.srm_check(["a", "b"], [600, 400], (60, 40))
    assert given.ok is True
    assert not given.split_assumed
    assert given.note == ""


@pytest.mark.parametrize(
    ("text", "arms", "message"),
    [
        ("50", 2, "--split '50': expected at least two shares separated by '/', e.g. 50/50"),
        ("fifty/fifty", 2, "--split 'fifty/fifty': expected shares separated by '/', e.g. 50/50 or 40/30/30"),  # noqa: E501
        ("50/50", 3, "--split has 2 share(s) but the experiment has 3 arms; give one share per arm, e.g. 34/33/33"),  # noqa: E501
        ("50/0", 2, "--split shares must be positive numbers, got 50/0"),
        ("50/40", 2, "--split '50/40': the shares sum to 90; expected percentages that sum to 100 (e.g. 50/50) or fractions that sum to 1 (e.g. 0.5/0.5)"),  # noqa: E501
        ("1/1", 2, "--split '1/1': the shares sum to 2; expected percentages"),
    ],
)  # fmt: skip
def test_invalid_splits(text, arms, message) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        srm.normalise_split(srm.parse_split(text), arms)
