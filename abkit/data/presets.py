"""The column layouts that ``abkit ingest`` understands: two target tables, four presets.

A preset says which table a file fills (``events`` or ``impressions``), which abkit columns it
has (with their kind, whether they are required, and a few accepted aliases), the column order
of a file without a header, and constants (MovieLens rows are all ``rating`` events).

Column matching, for a file with a header: ``--map COLUMN=FILE_COLUMN`` first; else a file column
whose name equals the abkit column or one of its aliases, ignoring case. Without a header the file
columns are called ``col1``, ``col2``, ... and take the preset's :attr:`Preset.layout` in order
(``--map`` still overrides single columns, e.g. ``--map ts=col7``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ColumnKind = Literal[
    "id",  # any text; numbers in Parquet become text
    "event_type",  # one of schema.EVENT_TYPES (case-insensitive, stored lower-case)
    "ts",  # ISO 8601 text, epoch seconds / milliseconds, or a Parquet timestamp
    "event_value",  # a finite number; negative only refused on purchase rows
    "amount",  # revenue: a finite number >= 0
    "integer",  # a whole number
    "position",  # a slot number >= 1
    "propensity",  # a probability in (0, 1]
    "flag",  # 0 or 1
]
PresetName = Literal["events", "impressions", "obd", "movielens"]


@dataclass(frozen=True, kw_only=True)
class ColumnSpec:
    """One abkit column a file may provide."""

    name: str
    kind: ColumnKind
    required: bool = False
    aliases: tuple[str, ...] = ()
    expected: str = ""  # what a value should be, for messages about empty cells

    def matches(self, file_column: str) -> bool:
        wanted = {self.name.lower(), *(a.lower() for a in self.aliases)}
        return file_column.strip().lower() in wanted


@dataclass(frozen=True, kw_only=True)
class Preset:
    """A file layout: the target table, its columns, the headerless order and constants."""

    name: PresetName
    table: Literal["events", "impressions"]
    columns: tuple[ColumnSpec, ...]
    layout: tuple[str, ...]
    constants: tuple[tuple[str, str], ...] = ()
    description: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)


_USER = ColumnSpec(
    name="user_id", kind="id", required=True, aliases=("userid", "user"), expected="a user id"
)
_SESSION = ColumnSpec(name="session_id", kind="id", aliases=("sessionid", "session"))
_ITEM = ColumnSpec(name="item_id", kind="id", aliases=("itemid", "item"), expected="an item id")
_TS = ColumnSpec(
    name="ts", kind="ts", required=True, aliases=("timestamp", "time"), expected="a timestamp"
)
_VARIANT = ColumnSpec(name="variant", kind="id", aliases=("arm",))

EVENTS = Preset(
    name="events",
    table="events",
    columns=(
        _USER,
        _SESSION,
        _ITEM,
        ColumnSpec(
            name="event_type",
            kind="event_type",
            required=True,
            aliases=("event",),
            expected="an event type",
        ),
        _TS,
        ColumnSpec(name="value", kind="event_value", aliases=("revenue",)),
        _VARIANT,
    ),
    # The order of the events table (what `COPY events TO ... (HEADER false)` writes, less
    # `dataset`), then the variant.
    layout=("user_id", "session_id", "item_id", "event_type", "ts", "value", "variant"),
    description="interaction logs: user_id, event_type, ts [, session_id, item_id, value, variant]",
)

_IMPRESSION_COLUMNS = (
    ColumnSpec(name="impression_id", kind="integer"),
    ColumnSpec(name="slate_id", kind="integer"),
    ColumnSpec(name="user_id", kind="id", aliases=("userid", "user")),
    _SESSION,
    _TS,
    ColumnSpec(name="variant", kind="id", aliases=("arm", "policy")),
    ColumnSpec(
        name="item_id", kind="id", required=True, aliases=("itemid", "item"), expected="an item id"
    ),
    ColumnSpec(
        name="position",
        kind="position",
        required=True,
        aliases=("slot", "pos"),
        expected="a slot number",
    ),
    ColumnSpec(
        name="propensity",
        kind="propensity",
        required=True,
        aliases=("propensity_score", "pscore"),
        expected="a propensity",
    ),
    ColumnSpec(name="click", kind="flag", required=True, aliases=("clicked",), expected="0 or 1"),
    ColumnSpec(name="conversion", kind="flag"),
    ColumnSpec(name="value", kind="amount", aliases=("revenue",)),
)

IMPRESSIONS = Preset(
    name="impressions",
    table="impressions",
    columns=_IMPRESSION_COLUMNS,
    layout=(
        "impression_id",
        "slate_id",
        "user_id",
        "session_id",
        "ts",
        "variant",
        "item_id",
        "position",
        "propensity",
        "click",
        "conversion",
        "value",
    ),
    description="recommendation impressions: ts, item_id, position, propensity, click [, ...]",
)

OBD = Preset(
    name="obd",
    table="impressions",
    columns=_IMPRESSION_COLUMNS,
    layout=(),  # OBD files always have a header
    description="Open Bandit Dataset logs (obd/{random,bts}/{campaign}/{campaign}.csv.gz)",
)

MOVIELENS = Preset(
    name="movielens",
    table="events",
    columns=(
        ColumnSpec(
            name="user_id",
            kind="id",
            required=True,
            aliases=("userid", "user"),
            expected="a user id",
        ),
        ColumnSpec(
            name="item_id",
            kind="id",
            required=True,
            aliases=("movieid", "itemid", "item"),
            expected="an item id",
        ),
        ColumnSpec(
            name="value",
            kind="event_value",
            required=True,
            aliases=("rating",),
            expected="a rating",
        ),
        _TS,
        _VARIANT,
    ),
    layout=("user_id", "item_id", "value", "ts"),
    constants=(("event_type", "rating"),),
    description="MovieLens ratings: user item rating timestamp (tab, '::' or comma separated)",
)

PRESETS: dict[str, Preset] = {p.name: p for p in (EVENTS, IMPRESSIONS, OBD, MOVIELENS)}


def detect_preset(
    columns: Sequence[str], *, header: bool, delimiter: str | None, mapped: Sequence[str] = ()
) -> Preset:
    """Pick a preset from what the file looks like (the rule ``--preset auto`` follows).

    With a header: a ``propensity_score`` and a ``position`` column mean the Open Bandit
    Dataset; ``propensity``, ``position`` and ``click`` (by name, alias or ``--map``) mean
    impressions; a ``rating`` or ``movieId`` column without ``event_type`` means MovieLens;
    anything else is an events file. Without a header: a tab or ``::`` separator, or exactly
    four columns, means MovieLens (``user item rating timestamp``), else events.
    """
    if not header:
        if delimiter in ("\t", "::") or len(columns) == 4:
            return MOVIELENS
        return EVENTS
    names = {c.strip().lower() for c in columns}
    if {"propensity_score", "position"} <= names:
        return OBD
    present = {spec.name for spec in IMPRESSIONS.columns if any(spec.matches(c) for c in columns)}
    present |= set(mapped)
    if {"propensity", "position", "click"} <= present:
        return IMPRESSIONS
    if names & {"rating", "movieid"} and "event_type" not in names and "event_type" not in mapped:
        return MOVIELENS
    return EVENTS
