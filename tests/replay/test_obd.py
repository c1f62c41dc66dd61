"""Off-policy estimates on the Open Bandit Dataset sample (../shared/data/obd, else the cut
shipped in tests/fixtures/obd; see tests/conftest.py).

REFERENCE.md: the Random logging policy is uniform (propensity 1/n_items per slot), so replay
and IPS of a uniform policy from the Random logs reproduce the logs' CTR; on the Bernoulli TS
logs of the Women's campaign a uniform policy has a largest weight above 20,000 and an
effective sample size of about 2 (1.3 in the fixture's 3,000 rows), so an estimator must
refuse.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from abkit.replay.runner import replay
from tests.conftest import OBD, OBD_ROWS, file_digest, obd_pinned


@pytest.fixture(scope="module")
def women(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from abkit.data.ingest import ingest_file

    db = tmp_path_factory.mktemp("obd") / "obd.duckdb"
    for policy in ("random", "bts"):
        ingest_file(OBD / policy / "women" / "women.csv.gz", db, preset="obd")
    return db


def _ctr(policy: str, campaign: str) -> float:
    return float(pd.read_csv(OBD / policy / campaign / f"{campaign}.csv.gz")["click"].mean())


def test_uniform_policy_on_random_logs_reproduces_the_random_ctr(women: Path) -> None:
    result = replay(
        women,
        model="random",
        estimators="replay,ips,snips",
        policy="stochastic",
        variant="random",
        write=False,
    )
    ctr = _ctr("random", "women")
    assert ctr == pytest.approx(obd_pinned(full=0.0046, fixture=0.006))
    for estimate in result.estimates:
        assert estimate.refused is None
        assert estimate.value == pytest.approx(ctr, rel=1e-9)
        assert estimate.ci_low < ctr < estimate.ci_high
        assert estimate.ess == pytest.approx(OBD_ROWS)  # every weight is exactly 1
        assert estimate.diagnostics.max_weight == pytest.approx(1.0)


def test_uniform_policy_on_bts_logs_is_refused(women: Path) -> None:
    before = file_digest(women)
    result = replay(
        women, model="random", estimators="replay,ips,snips,dr", policy="stochastic", variant="bts"
    )
    assert file_digest(women) != before  # the refusal is stored with the run
    for estimate in result.estimates:
        assert estimate.value is None
        assert estimate.ci_low is None
        assert estimate.diagnostics.max_weight > 20_000
        assert estimate.ess == pytest.approx(obd_pinned(full=2, fixture=1.25), abs=0.5)
    assert result.estimate("replay").refused.startswith("replay needs uniformly random logs")
    ess = obd_pinned(full="2.1 out of 10,000", fixture="1.3 out of 3,000")
    assert result.estimate("ips").refused == (
        f"the importance weights leave an effective sample size of {ess} rounds "
        "(largest weight 21,739); below 30, so a few rounds decide the estimate"
    )
    assert result.to_dict()["estimates"]["ips"]["value"] is None


def test_deterministic_policy_on_random_logs_matches_a_tenth_of_a_percent(women: Path) -> None:
    """A top-k policy on uniform logs keeps about 1/46 of the rounds (replay's matches)."""
    result = replay(
        women, model="random", estimators="replay,ips", policy="topk", variant="random", write=False
    )
    replayed = result.estimate("replay")
    assert replayed.diagnostics.nonzero == pytest.approx(OBD_ROWS / 46, rel=0.2)
    assert replayed.ess == pytest.approx(replayed.diagnostics.nonzero)


def test_all_campaign_random_logs(tmp_path: Path) -> None:
    from abkit.data.ingest import ingest_file

    db = tmp_path / "all.duckdb"
    ingest_file(OBD / "random" / "all" / "all.csv.gz", db, preset="obd")
    result = replay(db, model="random", estimators="ips", policy="stochastic", write=False)
    assert result.n_items == 80
    assert result.estimate("ips").value == pytest.approx(_ctr("random", "all"), rel=1e-9)


def test_no_matched_click_still_gives_an_honest_interval(tmp_path: Path) -> None:
    """Men's campaign, Bernoulli-TS logs, a top-k random policy: no matched round holds a
    click (298 rounds, ESS 33.6 in the full sample; 99 and 24.7 in the fixture). IPS and SNIPS
    are 0 with SE 0; the interval is [0, 1 - 0.025^(1/ESS)] (Clopper-Pearson with no success on
    the effective rounds), not [0, 0], and covers the campaign's click rate (about 0.005)."""
    from abkit.data.ingest import ingest_file

    db = tmp_path / "men.duckdb"
    for policy in ("random", "bts"):
        ingest_file(OBD / policy / "men" / "men.csv.gz", db, preset="obd")
    result = replay(
        db, model="random", estimators="ips,snips,dr", policy="topk", variant="bts",
        min_ess=20, write=False,
    )  # fmt: skip
    ctr = _ctr("random", "men")
    for estimate in result.estimates:
        assert estimate.refused is None
        assert estimate.diagnostics.nonzero == obd_pinned(full=298, fixture=99)
        assert estimate.ess == pytest.approx(obd_pinned(full=33.6, fixture=24.7), abs=0.05)
        assert estimate.ci_low == 0.0
        assert estimate.ci_high == pytest.approx(1 - 0.025 ** (1 / estimate.ess), rel=1e-9)
        assert estimate.ci_low < ctr < estimate.ci_high
    assert result.estimate("ips").value == result.estimate("snips").value == 0.0
