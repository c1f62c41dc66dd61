"""Chunked writes of simulated traffic (the simulator's SQL lives here).

Each chunk's numpy arrays become one pyarrow table (zero-copy for the numeric columns),
registered with DuckDB and appended with ``INSERT ... SELECT``; integer ids are cast to
VARCHAR inside DuckDB, so no Python string is built per row.

Chunks go to a private staging store first; :func:`copy_dataset` then moves the finished
dataset into the user's store in one transaction (see :func:`abkit.simulate.simulate` for why).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from abkit.data.sql import quote_ident
from abkit.data.store import utcnow
from abkit.simulate.generate import EVENT_KINDS, Chunk
from abkit.simulate.world import World

if TYPE_CHECKING:
    import duckdb

# Tables a simulated dataset fills, in the order they are copied.
DATASET_TABLES = ("datasets", "items", "experiments", "assignments", "events", "impressions",
                  "truth")  # fmt: skip
_STAGE = "abkit_simulate_stage"
_VIEW = "abkit_simulate_chunk"  # the registered arrow table, dropped after each insert
_EPOCH = datetime(1970, 1, 1)


def _epoch_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


class SimulationWriter:
    """Writes one simulated dataset through an open connection (inside a transaction)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, world: World) -> None:
        self.con = con
        self.world = world
        self.config = world.config
        self.start_us = _epoch_us(self.config.start)
        self.slots = self.config.slots

    def _insert(self, table: str, select: str, data: object, params: list[object]) -> None:
        view = quote_ident(_VIEW)
        self.con.register(_VIEW, data)
        try:
            self.con.execute(
                f"INSERT INTO {quote_ident(table)} SELECT {select} FROM {view}", params
            )
        finally:
            self.con.unregister(_VIEW)

    def _timestamps(self, offsets: np.ndarray) -> object:
        import pyarrow as pa

        return pa.array(self.start_us + offsets.astype(np.int64), type=pa.timestamp("us"))

    def write_dataset(self) -> None:
        params = json.dumps({"generator": "abkit.simulate", **self.config.to_dict()})
        self.con.execute(
            "INSERT INTO datasets VALUES (?, 'simulate', 'user', ?, ?)",
            [self.config.dataset, params, _utcnow()],
        )

    def write_items(self) -> None:
        import pyarrow as pa

        world = self.world
        names = pa.array(world.category_names)
        data = pa.table({
            "item": pa.array(np.arange(world.n_items)),
            "category": pa.DictionaryArray.from_arrays(pa.array(world.item_category), names),
            "price": pa.array(world.item_price),
        })  # fmt: skip
        self._insert(
            "items",
            "?, CAST(item AS VARCHAR), CAST(category AS VARCHAR), price",
            data,
            [self.config.dataset],
        )

    def write_chunk(self, chunk: Chunk, slate_offset: int) -> None:
        """Append a chunk's events, impressions and assignments.

        ``slate_id = slate_offset + chunk slate number`` and ``impression_id = slate_id · slots
        + position - 1``, so both are unique within the dataset and deterministic.
        """
        import pyarrow as pa

        dataset = self.config.dataset
        kinds = pa.array(EVENT_KINDS)
        events = pa.table({
            "user": pa.array(chunk.ev_user),
            "session": pa.array(chunk.ev_session),
            "item": pa.array(chunk.ev_item),
            "kind": pa.DictionaryArray.from_arrays(pa.array(chunk.ev_kind), kinds),
            "ts": self._timestamps(chunk.ev_ts),
            "value": pa.array(chunk.ev_value, mask=np.isnan(chunk.ev_value)),
        })  # fmt: skip
        self._insert(
            "events",
            "?, CAST(user AS VARCHAR), CAST(user AS VARCHAR) || '-' || CAST(session AS VARCHAR), "
            "CAST(item AS VARCHAR), CAST(kind AS VARCHAR), ts, value",
            events,
            [dataset],
        )
        arms = pa.array(self.config.arms)
        slate = slate_offset + chunk.im_slate
        impressions = pa.table({
            "slate": pa.array(slate),
            "impression": pa.array(slate * self.slots + chunk.im_position - 1),
            "user": pa.array(chunk.im_user),
            "session": pa.array(chunk.im_session),
            "ts": self._timestamps(chunk.im_ts),
            "arm": pa.DictionaryArray.from_arrays(pa.array(chunk.im_arm), arms),
            "item": pa.array(chunk.im_item),
            "position": pa.array(chunk.im_position),
            "propensity": pa.array(chunk.im_propensity),
            "click": pa.array(chunk.im_click),
        })  # fmt: skip
        self._insert(
            "impressions",
            "?, impression, slate, CAST(user AS VARCHAR), "
            "CAST(user AS VARCHAR) || '-' || CAST(session AS VARCHAR), ts, CAST(arm AS VARCHAR), "
            "CAST(item AS VARCHAR), position, propensity, click, NULL, NULL",
            impressions,
            [dataset],
        )
        assignments = pa.table({
            "user": pa.array(chunk.as_user),
            "arm": pa.DictionaryArray.from_arrays(pa.array(chunk.as_arm), arms),
            "ts": self._timestamps(chunk.as_ts),
        })  # fmt: skip
        self._insert(
            "assignments",
            "?, ?, CAST(user AS VARCHAR), CAST(arm AS VARCHAR), ts",
            assignments,
            [dataset, self.config.experiment],
        )

    def write_experiment(self) -> None:
        """The experiment row; ``end_ts`` is the exclusive end of the window."""
        c = self.config
        self.con.execute(
            "INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                c.dataset,
                c.experiment,
                list(c.arms),
                list(c.split),
                c.arms[0],
                c.experiment_start,
                c.experiment_end,
            ],
        )

    def write_truth(self, rows: list[tuple[str | None, str, float]]) -> None:
        """``rows`` of (variant or None, metric, value) for this dataset's experiment."""
        c = self.config
        self.con.executemany(
            "INSERT INTO truth VALUES (?, ?, ?, ?, ?)",
            [[c.dataset, c.experiment, variant, metric, value] for variant, metric, value in rows],
        )


def copy_dataset(con: duckdb.DuckDBPyConnection, stage: Path) -> None:
    """Copy every row of the staging store ``stage`` into ``con``'s database.

    Run inside the caller's transaction; the staging store holds exactly one dataset.
    """
    con.execute(f"ATTACH ? AS {quote_ident(_STAGE)} (READ_ONLY)", [str(stage)])
    try:
        for table in DATASET_TABLES:
            con.execute(
                f"INSERT INTO {quote_ident(table)} "
                f"SELECT * FROM {quote_ident(_STAGE)}.{quote_ident(table)}"
            )
    finally:
        con.execute(f"DETACH {quote_ident(_STAGE)}")


def _utcnow() -> datetime:

    return utcnow()
