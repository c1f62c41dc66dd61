"""Write the small sample files the README's examples read (``experiments/examples/``).

The files are committed, so a reader can open them and run the README top to bottom; this
script is how they were made (from abkit's simulator, seeded), and re-running it gives the same
rows::

    python experiments/examples/make_examples.py            # rewrites the files beside it

What each file is, and the README command that reads it:

* ``orders.csv``: a plain A/B export (arms A and B, designed 50/50): user_id, variant,
  event_type, ts, item_id, value (``--control A --split 50/50``);
* ``export.csv.gz``: the same kind of log under other column names (customer, arm, created_at
  in epoch milliseconds: ``--map user_id=customer --map ts=created_at --ts-unit ms``);
* ``export.csv``: a log without a header line, value and timestamp swapped (``--no-header
  --map ts=col6 --map value=col5``);
* ``events.parquet``: interaction events without arms;
* ``carousel.parquet``: logged carousel impressions: item, position, propensity, click
  (``--preset impressions``);
* ``policy.csv``: an outside policy's action probabilities over the bundled Open Bandit cut's
  80 items x 3 slots (``replay --policy-file``);
* ``scores.csv``: a classifier's held-out scores and labels (``models check-accuracy``).
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path

import duckdb
import numpy as np

from abkit.simulate import SimulationConfig, simulate

HERE = Path(__file__).resolve().parent
OBD_CUT = HERE.parents[1] / "tests" / "fixtures" / "obd"


def _store(folder: Path, *, users: int, seed: int, arms: tuple[str, ...]) -> Path:
    db = folder / f"sim-{seed}.duckdb"
    simulate(SimulationConfig(users=users, items=200, days=7, pre_days=3, arms=arms, seed=seed), db)
    return db


def _experiment_events(con: duckdb.DuckDBPyConnection) -> str:
    """Events in the experiment window with each user's arm, as SQL: each user's first view
    and every click, add-to-cart and purchase (views dominate a raw log; they are left out to
    keep the files small, and every assigned user keeps one row)."""
    return """
        SELECT e.user_id, a.variant, e.session_id, e.item_id, e.event_type, e.ts, e.value
        FROM events e
        JOIN assignments a USING (dataset, user_id)
        JOIN experiments x USING (dataset, experiment)
        WHERE e.ts >= x.start_ts AND e.ts < x.end_ts
        QUALIFY e.event_type <> 'view'
            OR row_number() OVER (PARTITION BY e.user_id ORDER BY e.ts, e.item_id) = 1
        ORDER BY e.ts, e.user_id, e.event_type"""


def write_examples(out: Path = HERE) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ab = _store(folder, users=1500, seed=11, arms=("A", "B"))
        with duckdb.connect(str(ab), read_only=True) as con:
            rows = f"SELECT * FROM ({_experiment_events(con)})"
            con.execute(
                f"COPY (SELECT user_id, variant, event_type, "
                f"strftime(ts, '%Y-%m-%dT%H:%M:%SZ') AS ts, item_id, "
                f"round(value, 2) AS value FROM ({rows})) TO ? (HEADER, DELIMITER ',')",
                [str(out / "orders.csv")],
            )
            # epoch milliseconds, other names: a second shop's export
            con.execute(
                f"COPY (SELECT 'c' || user_id AS customer, variant AS arm, event_type, "
                f"epoch_ms(ts) AS created_at, item_id, round(value, 2) AS value FROM ({rows}) "
                f"WHERE hash(user_id) % 3 = 0) TO ? (HEADER, DELIMITER ',')",
                [str(folder / "export.csv")],
            )
            # no header: user_id, session_id, item_id, event_type, value, ts, variant
            con.execute(
                f"COPY (SELECT user_id, session_id, item_id, event_type, round(value, 2), "
                f"strftime(ts, '%Y-%m-%d %H:%M:%S'), variant FROM ({rows}) "
                f"WHERE hash(user_id) % 3 = 1) TO ? (HEADER false, DELIMITER ',')",
                [str(out / "export.csv")],
            )
            con.execute(
                "COPY (SELECT user_id, session_id, item_id, event_type, ts, value FROM events "
                "WHERE hash(user_id) % 5 = 0 ORDER BY ts, user_id, event_type) "
                "TO ? (FORMAT parquet)",
                [str(out / "events.parquet")],
            )
            con.execute(
                "COPY (SELECT impression_id, slate_id, user_id, ts, item_id, position, "
                "propensity, click FROM impressions WHERE variant = 'B' AND hash(user_id) % 3 = 0 "
                "ORDER BY impression_id) TO ? (FORMAT parquet)",
                [str(out / "carousel.parquet")],
            )
        with (
            open(folder / "export.csv", "rb") as src,
            gzip.GzipFile(out / "export.csv.gz", "wb", mtime=0) as dst,
        ):
            shutil.copyfileobj(src, dst)
    # an outside policy over the bundled Open Bandit cut: how often Bernoulli TS showed each
    # item in each slot (the README's OBD section builds the same from the full sample)
    bts = OBD_CUT / "bts" / "all" / "all.csv.gz"
    duckdb.execute(
        "COPY (SELECT item_id AS item, position, "
        "count(*) / sum(count(*)) OVER (PARTITION BY position) AS probability "
        "FROM read_csv(?) GROUP BY item_id, position ORDER BY position, item) "
        "TO ? (HEADER, DELIMITER ',')",
        [str(bts), str(out / "policy.csv")],
    )
    # a classifier's scores: informative, but no better than the base rate at p >= 0.5
    rng = np.random.default_rng(5)
    label = (rng.random(4000) < 0.07).astype(int)
    logit = -2.6 + 0.9 * label + rng.normal(0.0, 0.8, label.size)
    score = 1.0 / (1.0 + np.exp(-logit))
    with open(out / "scores.csv", "w", encoding="utf-8") as f:
        f.write("score,label\n")
        f.writelines(f"{s:.6f},{y}\n" for s, y in zip(score, label, strict=True))


if __name__ == "__main__":
    write_examples()
    for path in sorted(HERE.iterdir()):
        if path.suffix != ".py":
            print(f"{path.relative_to(HERE.parents[1])}: {path.stat().st_size:,} bytes")
