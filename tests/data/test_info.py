"""`abkit info` on ingested Open Bandit logs: impressions and clicks per logging policy."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from abkit.cli.main import app
from abkit.data.ingest import ingest_file
from tests.conftest import OBD, OBD_ROWS


@pytest.mark.parametrize("campaign", ["all", "men", "women"])
def test_info_shows_impressions_and_clicks_per_policy(runner, db_path, campaign) -> None:
    expected = {}
    for policy in ("random", "bts"):
        path = OBD / policy / campaign / f"{campaign}.csv.gz"
        ingest_file(path, db_path, preset="obd")
        expected[policy] = (len(pd.read_csv(path)), int(pd.read_csv(path)["click"].sum()))
    result = runner.invoke(app, ["info", "--db", str(db_path), "--json"])
    assert result.exit_code == 0, result.output
    (dataset,) = json.loads(result.stdout)["datasets"]
    assert dataset["unit"] == "impression"
    assert dataset["impressions"] == 2 * OBD_ROWS
    (experiment,) = dataset["experiments"]
    assert experiment["control"] == "random"
    arms = {a["variant"]: (a["impressions"], a["clicks"]) for a in experiment["arms"]}
    assert arms == expected
    assert {v[0] for v in expected.values()} == {OBD_ROWS}

    human = runner.invoke(app, ["info", "--db", str(db_path)])
    assert "each impression is its own unit" in " ".join(human.stdout.split())
