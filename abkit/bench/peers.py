"""The compare peers of ``abkit bench``, as programs a user would write: run by path.

``python peers.py NAME PARAMS_JSON`` runs one peer and prints one JSON line ``{"check": ...}``
(the sum of the two arms' conversion rates, which abkit's compare must match). The bench
times the whole process, as it times ``abkit compare --json``: interpreter start, imports,
reading the store, the analysis. This file is run by its path, never imported by abkit, so a
peer's process pays for its own imports only (and none of abkit's).

Both peers analyse the same units abkit's compare does: every user assigned in the
experiment, converted when they purchased at least once in the experiment window
``[start, end)``, through tea-tasting's ``Experiment(conversion=Mean("converted"))`` (its
Welch t-test on the per-user 0/1 values; tea-tasting aggregates counts, sums and sums of
squares, then runs scipy on them):

* ``tea-pandas``: the per-user rows read from the DuckDB store into a pandas frame;
* ``tea-ibis``: the same rows as an Ibis table over the DuckDB store, so tea-tasting's
  aggregates run inside DuckDB and only a handful of numbers come back.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

PER_USER_SQL = """
    WITH buyers AS (
        SELECT DISTINCT user_id FROM events
        WHERE dataset = $dataset AND event_type = 'purchase' AND ts >= $start AND ts < $end
    )
    SELECT a.variant, CAST(b.user_id IS NOT NULL AS INTEGER) AS converted
    FROM assignments a LEFT JOIN buyers b USING (user_id)
    WHERE a.dataset = $dataset AND a.experiment = $experiment
"""


def _analyze(data: Any, control: str) -> float:
    import tea_tasting as tt

    experiment = tt.Experiment(conversion=tt.Mean("converted"))
    result = experiment.analyze(data, control=control)
    conversion = result["conversion"]
    return float(conversion.control + conversion.treatment)


def tea_pandas(params: dict[str, Any]) -> float:
    """tea-tasting on a pandas frame of per-user rows queried from the store."""
    import duckdb

    con = duckdb.connect(params["db"], read_only=True)
    bind = {k: params[k] for k in ("dataset", "experiment", "start", "end")}
    frame = con.execute(PER_USER_SQL, bind).df()
    con.close()
    return _analyze(frame, params["control"])


def tea_ibis(params: dict[str, Any]) -> float:
    """tea-tasting on an Ibis table over the store (the aggregates run in DuckDB)."""
    import ibis

    con = ibis.duckdb.connect(params["db"], read_only=True)
    events = con.table("events")
    assignments = con.table("assignments")
    start, end = ibis.timestamp(params["start"]), ibis.timestamp(params["end"])
    buyers = (
        events.filter(
            events.dataset == params["dataset"],
            events.event_type == "purchase",
            events.ts >= start,
            events.ts < end,
        )
        .select("user_id")
        .distinct()
        .mutate(bought=ibis.literal(1))
    )
    units = assignments.filter(
        assignments.dataset == params["dataset"],
        assignments.experiment == params["experiment"],
    )
    joined = units.left_join(buyers, "user_id")
    per_user = joined.select(
        variant=joined.variant, converted=joined.bought.fill_null(0).cast("int32")
    )
    check = _analyze(per_user, params["control"])
    con.disconnect()
    return check


PEERS: dict[str, Callable[[dict[str, Any]], float]] = {
    "tea-pandas": tea_pandas,
    "tea-ibis": tea_ibis,
}


def main(argv: list[str]) -> int:
    name, params = argv[0], json.loads(argv[1])
    print(json.dumps({"check": PEERS[name](params)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
