"""Ingest CSV, CSV.gz and Parquet logs into the traffic store: whole, or not at all.

:func:`ingest_file` reads the whole file with DuckDB (never a Python loop over rows), casts and
validates it in an in-memory database (text into a staging table; Parquet through a view over
the file, read again by the insert), and only then attaches the store and inserts everything in
ONE transaction. A failure at any point leaves the store byte-identical, and a store file that
did not exist is not left behind.

Rules (also in ``abkit ingest --help``):

* **Formats.** The content decides, not the name: Parquet starts and ends with the magic bytes
  ``PAR1``, gzip starts with ``1f 8b``; anything else is read as delimited text, UTF-8. A file
  that starts with ``PAR1`` but does not end with it is a truncated Parquet file and is
  refused; so is a file whose name claims a format its bytes do not have (``.parquet``/``.pq``
  without ``PAR1``, ``.gz``/``.gzip`` without ``1f 8b``) and a zip archive. Parquet names and
  types its own columns, so ``header`` and ``delimiter`` do not apply to it. Quoted fields may
  hold the delimiter and quotes (``""``); a quoted line break inside line 1 is not supported
  (line 1 is sniffed).
* **Delimiter.** Without ``--delimiter`` the first of tab, ``::`` and ``,`` found in line 1 is
  used. A line 1 with none of them but a ``;`` or ``|`` is refused with a hint to pass
  ``--delimiter``: semicolon files usually come from locales where ``,`` is the decimal
  separator, so abkit wants that choice confirmed rather than guessed.
* **Header.** Without ``--header``/``--no-header``, line 1 is a header when none of its fields
  looks like a number or a date (``YYYY-MM-DD...``): every data row has a timestamp, every
  header has none. A file without a header is read in the preset's column order (see
  :mod:`abkit.data.presets`); its columns are called ``col1``, ``col2``, ... for ``--map``.
* **Rows.** "row N" in a message is the N-th data row, 1-based, not counting the header line.
  Byte offsets of a ``.gz`` file are offsets in its decompressed text. Values from the file
  are quoted in messages cut to 80 characters (with their full length).
* **Numbers.** Integer columns (``click``, ``conversion``, ``position``, ``impression_id``,
  ``slate_id``) take whole numbers only: ``0.5`` or ``1.5`` is refused, never rounded (``1.0``
  is 1). Text or Parquet floats alike.
* **Duplicates.** A row that is an exact copy of an earlier row (every column abkit stores,
  as parsed; columns it ignores, such as OBD's row number, are not compared) is counted and
  reported with the first such row (``duplicate_rows``, ``first_duplicate_row``). The copies
  are kept with a warning, since repeated events can be genuine; ``dedupe`` drops them
  (``duplicates_dropped``) and keeps the first of each. Row numbers in messages stay those of
  the file, and impression ids made from row numbers keep them (with gaps where rows were
  dropped).
* **Timestamps** are stored as naive UTC. ISO 8601 text with an offset (``+02:00``, ``Z``) is
  converted to UTC; text without one is taken as UTC. A ``ts`` column whose first value is a
  plain number is epoch time; ``--ts-unit auto`` reads it as milliseconds when every value is
  at least 1e11 in magnitude (1e11 ms is 1973-03-03) and as seconds when every value is below
  1e11 (1e11 s is the year 5138); a column with both is refused (pass ``--ts-unit``). Fractions
  are kept to the microsecond. Parquet timestamp columns are used as they are (with a time zone:
  converted to UTC). ``infinity`` is refused. Timestamps outside the plausible range (before
  :data:`PLAUSIBLE_TS_FROM`, 1990-01-01, or more than :data:`PLAUSIBLE_TS_AHEAD`, one day,
  after the time of the ingest) are stored but warned about, with their count and the first
  row: they usually mean a wrong unit, a placeholder (0001-01-01, 9999-12-31) or a clock error.
* **Variants.** A ``variant`` column (or ``--variant NAME`` for the whole file) records each
  unit's arm in ``assignments`` (assigned at its first timestamp in the file) and the
  experiment in ``experiments``. Rows with an empty variant (e.g. pre-experiment traffic) are
  stored but assign nothing. A unit in two variants is an error. Variants are ordered control
  first: ``--control NAME``; else a variant named control, random, A or baseline (that order,
  any case); else the control already recorded; else the first alphabetically. Then the others
  alphabetically. ``split`` stays NULL unless ``--split`` gives the designed shares
  (percentages summing to 100 or fractions summing to 1, see :mod:`abkit.stats.shares`).
* **Units.** Impression logs without a ``user_id`` column (the Open Bandit Dataset) make each
  impression its own randomisation unit: ``user_id`` is the impression id, and the dataset's
  ``unit`` is ``impression``.
* **Re-ingest.** The file's sha256 is recorded in ``ingests``; ingesting the same bytes into the
  same dataset and table again is refused (load it into another ``--dataset`` if intended).

The Open Bandit Dataset preset reads ``obd/{random,bts}/{campaign}/{campaign}.csv.gz``: the first,
unnamed column (a row number) is ignored; the policy comes from the folder name or ``--variant``;
both policies ingested into the default dataset ``obd-{campaign}`` become the variants ``random``
(control) and ``bts`` of the experiment ``obd``. ``item_context.csv.gz`` beside the log fills
``items`` with the item ids. The context columns go to ``impression_features`` (sparse: zeros
are left out): ``user_feature_*`` are categorical (one-hot, feature ``name=level``) and
``user-item_affinity_<item>`` numeric; impression-trained recommenders use them as context.
A context value that is not a number in a numeric column is refused like any other bad cell.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from abkit._util import invalid_utf8, show_value, unknown_choice
from abkit.data.presets import PRESETS, ColumnSpec, Preset, PresetName, detect_preset
from abkit.data.schema import EVENT_TYPES
from abkit.data.sql import quote_ident
from abkit.data.store import attach_store, check_writable, discard_if_new, utcnow
from abkit.errors import InputError, StoreError
from abkit.stats.shares import check_shares

if TYPE_CHECKING:
    import duckdb

    from abkit.data.store import Store

__all__ = ["PLAUSIBLE_TS_AHEAD", "PLAUSIBLE_TS_FROM", "IngestResult", "ingest_file"]

TsUnit = Literal["auto", "s", "ms"]

_HEAD_BYTES = 1 << 20
_AUTO_DELIMITERS = ("\t", "::", ",")
_SUSPECT_DELIMITERS = (";", "|")
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_EPOCH_MS_FROM = 1e11  # |x| >= 1e11: milliseconds (1e11 s is the year 5138)
_EPOCH_MS_LIMIT = 1e14  # 1e14 ms is the year 5138 again: beyond is not a plausible timestamp
_MAX_VARIANTS = 50
_CONTROL_NAMES = ("control", "random", "a", "baseline")
_NAIVE_FORMATS = (
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d",
)
# Zone-less ISO 8601 text (date, or date and time to 1-6 fraction digits): safe for a plain
# cast to TIMESTAMP, which would drop any offset or zone name (see _Plan._add_ts).
_NAIVE_ISO = r"\d{4}-\d\d-\d\d([ T]\d\d:\d\d:\d\d(\.\d{1,6})?)?"
_TS_HINT = "expected ISO 8601 such as 2024-01-31T12:00:00Z, or epoch seconds or milliseconds"
_STAGED = "memory.main.staged"
_PARQUET_SUFFIXES = (".parquet", ".pq")
_GZIP_SUFFIXES = (".gz", ".gzip")
# Timestamps outside [PLAUSIBLE_TS_FROM, now + PLAUSIBLE_TS_AHEAD] are warned about (not refused).
PLAUSIBLE_TS_FROM = datetime(1990, 1, 1)
PLAUSIBLE_TS_AHEAD = timedelta(days=1)
# Source types that hold only whole numbers: their integer columns need no fraction check.
_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER"}
    | {"UBIGINT", "UHUGEINT", "BOOLEAN"}
)
_STORE_ALIAS = "abkit_store"


@dataclass(frozen=True, kw_only=True)
class IngestResult:
    """What one ingest wrote.

    ``rows`` counts the rows written (the file's rows less ``duplicates_dropped``); ``users``
    counts the file's distinct randomisation units (impressions for a per-impression log);
    ``variants`` are the experiment's variants after this ingest, control first, and
    ``file_variants`` those seen in this file; ``duplicates_skipped`` is about *assignments*,
    not rows: it counts users the store had already assigned to the same variant (not recorded
    twice, e.g. when a second file of the same experiment is ingested). ``duplicate_rows``
    counts rows that are exact copies of an earlier row of the file, ``first_duplicate_row``
    is the first of them (1-based) and ``duplicates_dropped`` how many ``dedupe`` dropped (0
    without it). ``implausible_ts_rows`` counts timestamps outside the plausible range (see the
    module docstring), ``first_implausible_ts_row`` is the first; ``ts_format`` says how
    ``ts`` was read (``iso`` text, ``epoch_s`` / ``epoch_ms`` numbers, ``native`` Parquet
    timestamps); ``columns`` pairs each abkit column with the file column it came from;
    ``warnings`` are one-line messages about data that was stored but looks wrong.
    """

    dataset: str
    table: Literal["events", "impressions"]
    rows: int
    source: str
    sha256: str
    preset: PresetName
    unit: Literal["user", "impression"]
    experiment: str | None
    variants: tuple[str, ...]
    control: str | None
    file_variants: tuple[str, ...]
    users: int
    assignments_added: int
    duplicates_skipped: int
    items_added: int
    clicks: int | None
    ts_min: datetime | None
    ts_max: datetime | None
    ts_format: Literal["iso", "epoch_s", "epoch_ms", "native"]
    file_format: Literal["csv", "csv.gz", "parquet"]
    header: bool
    delimiter: str | None
    columns: tuple[tuple[str, str], ...]
    db: str
    duplicate_rows: int
    first_duplicate_row: int | None
    duplicates_dropped: int
    implausible_ts_rows: int
    first_implausible_ts_row: int | None
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["variants"] = list(self.variants)
        out["file_variants"] = list(self.file_variants)
        out["columns"] = dict(self.columns)
        out["warnings"] = list(self.warnings)
        return out


# -- reading the head of the file ------------------------------------------------------------


def _looks_like(magic: bytes) -> str:
    """What the first bytes of a file say it is, for messages about a wrong name."""
    if magic[:4] == b"PAR1":
        return "Parquet"
    if magic[:2] == b"\x1f\x8b":
        return "gzip-compressed"
    if magic[:4] == b"PK\x03\x04":
        return "a zip archive"
    if invalid_utf8(magic):
        return f"binary data starting with {magic[:4].hex(' ')}"
    return "text"


def _sniff_format(path: Path) -> Literal["csv", "csv.gz", "parquet"]:
    """The file's format from its bytes (see the module docstring), checked against its name."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        magic = fh.read(64)
        fh.seek(max(size - 4, 0))
        tail = fh.read(4)
    if not magic:
        raise InputError(f"{path}: the file is empty (expected a header line or data rows)")
    name = path.name.lower()
    kind = _looks_like(magic)
    if kind == "Parquet":
        if size < 12 or tail != b"PAR1":
            raise InputError(
                f"{path}: truncated or damaged Parquet file: it starts with the Parquet magic "
                f"bytes PAR1 but does not end with them ({size:,} bytes); copy or export it again"
            )
        file_format: Literal["csv", "csv.gz", "parquet"] = "parquet"
    elif kind == "gzip-compressed":
        file_format = "csv.gz"
    elif kind == "a zip archive":
        raise InputError(f"{path}: the file is a zip archive; unzip it and ingest the CSV inside")
    else:
        file_format = "csv"
    claimed: tuple[str, str, str] | None = None  # format, its name, its magic bytes
    if name.endswith(_PARQUET_SUFFIXES):
        claimed = ("parquet", "Parquet", "PAR1")
    elif name.endswith(_GZIP_SUFFIXES):
        claimed = ("csv.gz", "gzip", "1f 8b")
    if claimed is not None and claimed[0] != file_format:
        raise InputError(
            f"{path}: the name says {claimed[1]} but the content is {kind} (no {claimed[2]} "
            "magic bytes); rename the file or export it again"
        )
    return file_format


def _open_text_bytes(path: Path, gz: bool) -> Any:
    return gzip.open(path, "rb") if gz else path.open("rb")


def _read_head(path: Path, gz: bool) -> bytes:
    try:
        with _open_text_bytes(path, gz) as fh:
            return bytes(fh.read(_HEAD_BYTES))
    except EOFError:
        raise _truncated_gzip(path) from None
    except (OSError, zlib.error) as exc:
        raise InputError(f"{path}: not a readable gzip file ({exc})") from None


def _truncated_gzip(path: Path) -> InputError:
    return InputError(
        f"{path}: truncated gzip file (the compressed data ends early); copy or export it again"
    )


def _not_utf8(path: Path, offset: int, byte: int, line: int, header: bool | None) -> InputError:
    if line == 1 and header is not False:
        # Line 1 is read before the header is detected: a header, or row 1 of a headerless file.
        where = "in the header line" if header else "line 1"
    else:
        where = f"row {line - 1 if header else line}"
    return InputError(
        f"{path}: not UTF-8 text: byte 0x{byte:02x} at byte offset {offset} ({where}) "
        "cannot be decoded; re-save the file as UTF-8"
    )


def _find_bad_utf8(path: Path, gz: bool) -> tuple[int, int, int] | None:
    """(byte offset, byte, 1-based line) of the first byte that is not UTF-8, or None."""
    offset = 0
    lines = 1
    pending = b""
    with _open_text_bytes(path, gz) as fh:
        while True:
            chunk = fh.read(1 << 22)
            buf = pending + chunk
            if not buf:
                return None
            try:
                buf.decode("utf-8")
                good = len(buf)
            except UnicodeDecodeError as exc:
                if chunk and exc.reason == "unexpected end of data":
                    good = exc.start  # a character cut by the chunk boundary
                else:
                    line = lines + buf.count(b"\n", 0, exc.start)
                    return offset + exc.start, buf[exc.start], line
            lines += buf.count(b"\n", 0, good)
            offset += good
            pending = buf[good:]
            if not chunk:
                return None


def _first_line(path: Path, head: bytes, header: bool | None) -> str:
    if not head.strip():
        raise InputError(f"{path}: the file is empty (expected a header line or data rows)")
    end = head.find(b"\n")
    raw = head if end < 0 else head[:end]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc.start, raw[exc.start], 1, header=header) from None
    return text.lstrip("\ufeff").rstrip("\r")


def _describe_delimiter(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else f"'{delimiter}'"


def _normalise_delimiter(delimiter: str | None) -> str | None:
    if delimiter is None:
        return None
    delimiter = _DELIMITER_NAMES.get(delimiter.lower(), delimiter)
    if not delimiter or len(delimiter.encode()) > 4 or "\n" in delimiter or '"' in delimiter:
        raise InputError(f"--delimiter {delimiter!r}: expected 1 to 4 characters, or 'tab'")
    return delimiter


def _choose_delimiter(path: Path, line: str, given: str | None) -> str:
    if given is not None and given in line:
        return given
    if given is None:
        for candidate in _AUTO_DELIMITERS:
            if candidate in line:
                return candidate
    others = [d for d in (*_AUTO_DELIMITERS, *_SUSPECT_DELIMITERS) if d != given and d in line]
    if others:
        expected = _describe_delimiter(given) if given else "',', tab or '::'"
        suggestion = others[0] if given else next(d for d in others if d in _SUSPECT_DELIMITERS)
        flag = "tab" if suggestion == "\t" else suggestion
        raise InputError(
            f"{path}: line 1 has no {expected} separator; the delimiter looks like "
            f"{_describe_delimiter(suggestion)}: pass --delimiter '{flag}'"
        )
    return given or ","  # a single column: the missing-column check explains the rest


def _split_line(line: str, delimiter: str) -> list[str]:
    if len(delimiter) == 1:
        return next(csv.reader([line], delimiter=delimiter, quotechar='"'), [])
    return line.split(delimiter)


def _looks_like_data(field: str) -> bool:
    text = field.strip().strip('"')
    return bool(_NUMBER.match(text) or _DATE.match(text))


# -- resolving columns -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Source:
    path: Path
    file_format: Literal["csv", "csv.gz", "parquet"]
    header: bool
    delimiter: str | None
    columns: tuple[str, ...]
    types: Mapping[str, str]  # file column -> DuckDB type name


def _header_names(path: Path, fields: list[str]) -> tuple[str, ...]:
    names = [f.strip() or f"col{i + 1}" for i, f in enumerate(fields)]
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen:
            raise InputError(f"{path}: the header names column {show_value(name)} twice")
        seen.add(name.lower())
    return tuple(names)


def _column_list(columns: Sequence[str], limit: int = 20) -> str:
    """The file's column names for a message: each cut, at most ``limit`` of them."""
    if not columns:
        return "(none)"
    shown = ", ".join(show_value(c, quote=False) for c in columns[:limit])
    return shown + (f", ... ({len(columns):,} columns)" if len(columns) > limit else "")


def _resolve_preset(path: Path, preset: str, source: _Source, mapping: Mapping[str, str]) -> Preset:
    if preset == "auto":
        return detect_preset(
            source.columns, header=source.header, delimiter=source.delimiter, mapped=list(mapping)
        )
    if preset not in PRESETS:
        raise InputError(unknown_choice("--preset", preset, [*PRESETS, "auto"]))
    return PRESETS[preset]


def _resolve_columns(
    source: _Source, preset: Preset, mapping: Mapping[str, str], *, constant_variant: bool
) -> dict[str, str]:
    """abkit column -> file column, for every column the file provides."""
    path = source.path
    for target, file_column in mapping.items():
        if target not in preset.names:
            raise InputError(
                f"--map {target}={file_column}: "
                + unknown_choice(f"{preset.name} column", target, preset.names)
            )
    found = _column_list(source.columns)
    resolved: dict[str, str] = {}
    for spec in preset.columns:
        if spec.name not in mapping:
            continue
        wanted = mapping[spec.name]
        match = next((c for c in source.columns if c == wanted), None)
        if match is None:
            match = next((c for c in source.columns if c.lower() == wanted.lower()), None)
        if match is None:  # Parquet names keep their spaces; --map values are stripped
            match = next(
                (c for c in source.columns if c.strip().lower() == wanted.strip().lower()),
                None,
            )
        if match is None:
            raise InputError(
                f"{path}: column {show_value(wanted)} (from --map {spec.name}="
                f"{show_value(wanted, quote=False)}) not found; "
                f"found: {found}"
            )
        resolved[spec.name] = match
    # A column the user mapped is theirs: no other field takes it by its place (no header)
    # or its name (session_id<-col2 while --map variant=col2 stored the arm as the session).
    claimed = set(resolved.values())
    for spec in preset.columns:
        if spec.name in mapping:
            continue
        match = None
        if not source.header:
            if spec.name in preset.layout:
                index = preset.layout.index(spec.name)
                if index < len(source.columns):
                    match = source.columns[index]
        else:  # the first column of its names that the user did not map elsewhere
            match = next((c for c in source.columns if spec.matches(c) and c not in claimed), None)
        if match is not None and match not in claimed:
            resolved[spec.name] = match
    for spec in preset.columns:
        if spec.required and spec.name not in resolved:
            if source.header:
                raise InputError(
                    f"{path}: missing required column '{spec.name}' (found: {found}); "
                    f"name it with --map {spec.name}=COLUMN"
                )
            raise InputError(
                f"{path}: missing required column '{spec.name}': without a header the columns "
                f"are read in the order {', '.join(preset.layout)}, but the file has "
                f"{len(source.columns)}"
            )
    if constant_variant and "variant" in resolved:
        raise InputError(
            f"{path}: the file has a variant column ({show_value(resolved['variant'])}); "
            "drop --variant or map the column away"
        )
    return resolved


# -- staging: one SQL pass casts the file, one aggregate pass validates it --------------------

_SQL_TYPES = {
    "event_value": "DOUBLE",
    "amount": "DOUBLE",
    "propensity": "DOUBLE",
    "integer": "BIGINT",
    "position": "BIGINT",
    "flag": "BIGINT",
}
# Messages for a value that is not a whole number where one is needed (also out of range).
_WHOLE_KINDS: dict[str, Callable[[str, str], str]] = {
    "flag": lambda where, value: f"{where}: expected 0 or 1, found {value}",
    "position": lambda where, value: (
        f"{where}: position {value} is not a slot number (expected 1, 2, ...)"
    ),
    "integer": lambda where, value: f"{where}: expected a whole number, found {value}",
}
_PARSE_AS = {
    "event_value": "a number",
    "amount": "a number",
    "propensity": "a number",
    "integer": "an integer",
    "position": "an integer",
    "flag": "0 or 1",
}


@dataclass(frozen=True)
class _Check:
    """A row-level rule: rows where ``condition`` holds are bad; ``message(row)`` says why."""

    condition: str
    params: tuple[Any, ...]
    message: Callable[[int], str]


class _Plan:
    """The staging SELECT (typed columns plus parse-failure flags) and the row checks."""

    def __init__(
        self,
        source: _Source,
        resolved: Mapping[str, str],
        specs: Sequence[ColumnSpec],
        constants: Mapping[str, str],
        ts_format: Literal["iso", "epoch", "native"],
        ts_unit: TsUnit,
        raw: Callable[[str, int], str],
    ) -> None:
        self.source = source
        self.resolved = resolved
        self.ts_format = ts_format
        self.ts_unit = ts_unit
        self.raw = raw
        self.select: list[str] = []
        self.params: list[Any] = []
        self.checks: list[_Check] = []
        self.staged: set[str] = set()
        # The staged columns that hold the file's values (ts as _ts_num for epoch numbers):
        # what "an exact duplicate row" compares.
        self.values: list[str] = []
        for spec in specs:
            if spec.name in resolved:
                self._add(spec, resolved[spec.name])
        for name, value in constants.items():
            self.select.append(f"CAST(? AS VARCHAR) AS {quote_ident(name)}")
            self.params.append(value)
            self.staged.add(name)

    def _where(self, file_column: str, row: int) -> str:
        return f"{self.source.path}: row {row + 1}, column {show_value(file_column)}"

    def _check(self, condition: str, message: Callable[[int], str], *params: Any) -> None:
        self.checks.append(_Check(condition, params, message))

    def _add(self, spec: ColumnSpec, file_column: str) -> None:
        q = quote_ident(file_column)
        name = quote_ident(spec.name)
        source_type = self.source.types[file_column].upper()
        self.staged.add(spec.name)

        def where(row: int) -> str:
            return self._where(file_column, row)

        def raw(row: int) -> str:
            return self.raw(file_column, row)

        bad: str | None = None
        if spec.kind != "ts":
            self.values.append(spec.name)
        if spec.kind == "id":
            self.select.append(
                f"{q if source_type == 'VARCHAR' else f'CAST({q} AS VARCHAR)'} AS {name}"
            )
        elif spec.kind == "event_type":
            # Normalise case and spaces only where needed: lower(trim()) on every row costs.
            text = q if source_type == "VARCHAR" else f"CAST({q} AS VARCHAR)"
            canonical = ", ".join("?" for _ in EVENT_TYPES)
            self.select.append(
                f"CASE WHEN {text} IN ({canonical}) THEN {text} ELSE lower(trim({text})) END "
                f"AS {name}"
            )
            self.params.extend(EVENT_TYPES)
        elif spec.kind == "ts":
            self._add_ts(q, where, raw)
            return  # ts is required; its one check tells empty from unparseable
        else:
            sql_type = _SQL_TYPES[spec.kind]
            if source_type == sql_type:
                self.select.append(f"{q} AS {name}")
            else:
                bad = quote_ident(f"_bad_{spec.name}")
                cast = f"TRY_CAST({q} AS {sql_type})"
                self.select.append(f"{cast} AS {name}")
                unusable = f"{cast} IS NULL"
                if sql_type == "BIGINT" and source_type not in _INTEGER_TYPES:
                    # A cast to BIGINT rounds (0.5 -> 1 from text, 0 from a double): a whole
                    # number is one that reads the same as a double. One flag for both.
                    unusable += f" OR TRY_CAST({q} AS DOUBLE) <> {cast}"
                self.select.append(f"({q} IS NOT NULL AND ({unusable})) AS {bad}")
                self._check(bad, lambda row: self._unusable(spec, where(row), raw(row)))
        if spec.required or spec.name == "impression_id":  # an id column has no empty ids
            empty = f"{name} IS NULL" if bad is None else f"{name} IS NULL AND NOT {bad}"
            if spec.kind == "id":  # Parquet text can be '' (a CSV reads an empty cell as NULL)
                empty = f"({name} IS NULL OR {name} = '')"
            expected = spec.expected or "an impression id"
            self._check(empty, lambda row: f"{where(row)}: empty (expected {expected})")
        self._add_rules(spec, name, where, raw)

    @staticmethod
    def _unusable(spec: ColumnSpec, where: str, text: str) -> str:
        """Why a flagged numeric cell is unusable: a fraction in an integer column, or text."""
        try:
            number = float(text.strip())
        except ValueError:
            number = math.nan
        if spec.kind in _WHOLE_KINDS and math.isfinite(number) and not number.is_integer():
            return _WHOLE_KINDS[spec.kind](where, show_value(text, quote=False))
        return f"{where}: cannot parse {show_value(text)} as {_PARSE_AS[spec.kind]}"

    def _add_rules(
        self, spec: ColumnSpec, name: str, where: Callable[[int], str], raw: Callable[[int], str]
    ) -> None:
        kind = spec.kind

        def num(row: int) -> str:  # a number as the file wrote it, cut if absurdly long
            return show_value(raw(row), quote=False)

        if kind == "event_type":
            self._check(
                f"{name} NOT IN ({', '.join('?' for _ in EVENT_TYPES)})",
                lambda row: f"{where(row)}: " + unknown_choice("event type", raw(row), EVENT_TYPES),
                *EVENT_TYPES,
            )
        if kind in ("event_value", "amount", "propensity"):
            self._check(
                f"NOT isfinite({name})",
                lambda row: f"{where(row)}: {show_value(raw(row))} is not a finite number",
            )
        if kind == "event_value" and "event_type" in self.resolved:
            self._check(
                f"{name} < 0 AND event_type = 'purchase'",
                lambda row: (
                    f"{where(row)}: purchase value {num(row)} is negative (expected revenue >= 0)"
                ),
            )
        elif kind == "amount":
            self._check(
                f"{name} < 0",
                lambda row: f"{where(row)}: value {num(row)} is negative (expected revenue >= 0)",
            )
        elif kind == "propensity":
            self._check(
                f"NOT ({name} > 0 AND {name} <= 1)",
                lambda row: f"{where(row)}: propensity {num(row)} is outside (0, 1]",
            )
        elif kind == "position":
            self._check(
                f"NOT ({name} BETWEEN 1 AND 2147483647)",
                lambda row: _WHOLE_KINDS["position"](where(row), num(row)),
            )
        elif kind == "flag":
            self._check(
                f"{name} NOT IN (0, 1)",
                lambda row: _WHOLE_KINDS["flag"](where(row), num(row)),
            )

    def _add_ts(self, q: str, where: Callable[[int], str], raw: Callable[[int], str]) -> None:
        self.values.append("_ts_num" if self.ts_format == "epoch" else "ts")
        if self.ts_format == "native":
            self.select.append(f"CAST({q} AS TIMESTAMP) AS ts")
            value = "ts"
        elif self.ts_format == "iso":
            # A cast to TIMESTAMP is the fastest parse but silently drops an offset or a zone
            # name ('12:00+02:00', '12:00 Europe/Paris' both read as 12:00), so it only gets
            # text that is zone-less by construction (_NAIVE_ISO: digits and separators only).
            # Everything else is cast to TIMESTAMPTZ, which honours offsets and zone names and
            # returns UTC (the session zone). try_strptime over _NAIVE_FORMATS is the fallback
            # where both give NULL: a failed try_strptime costs ~1 us a row in DuckDB 2.0 (x5
            # formats for text with an offset), so it is kept off the common path. Measured on
            # 2M bench rows: 0.3-0.5 s instead of 1.5-2.5 s. The result equals the former
            # coalesce(try_strptime, TIMESTAMPTZ) on every input (checked on ~400k generated
            # strings: valid, invalid, offsets, zone names, 0-10 fraction digits, spaces).
            formats = ", ".join(f"'{f}'" for f in _NAIVE_FORMATS)
            self.select.append(
                f"coalesce(CASE WHEN regexp_full_match({q}, '{_NAIVE_ISO}') "
                f"THEN TRY_CAST({q} AS TIMESTAMP) "
                f"ELSE CAST(TRY_CAST({q} AS TIMESTAMPTZ) AS TIMESTAMP) END, "
                f"try_strptime({q}, [{formats}])) AS ts"
            )
            value = "ts"
        else:
            self.select.append(f"TRY_CAST({q} AS DECIMAL(38, 6)) AS _ts_num")
            value = "_ts_num"
            limit = _EPOCH_MS_FROM if self.ts_unit == "s" else _EPOCH_MS_LIMIT
            unit = "seconds" if self.ts_unit == "s" else "milliseconds"
            self._check(
                f"abs(_ts_num) >= {limit:.0f}",
                lambda row: (
                    f"{where(row)}: epoch value {show_value(raw(row), quote=False)} is out of "
                    f"range (expected {unit} below {limit:.0e})"
                ),
            )

        # No per-row flag: a NULL is either an empty cell or text that did not parse, and the
        # (rare) failing row is read again to tell which.
        epoch_given = self.ts_format == "epoch" and self.ts_unit != "auto"

        def message(row: int) -> str:
            text = raw(row)
            if text == "":
                return f"{where(row)}: empty (expected a timestamp)"
            if epoch_given:  # --ts-unit s|ms reads numbers only
                return (
                    f"{where(row)}: cannot parse {show_value(text)} as epoch "
                    f"{'seconds' if self.ts_unit == 's' else 'milliseconds'} (--ts-unit "
                    f"{self.ts_unit} expects numbers; drop it for ISO 8601 text)"
                )
            return f"{where(row)}: cannot parse {show_value(text)} as a timestamp ({_TS_HINT})"

        self._check(f"{value} IS NULL", message)


@dataclass(frozen=True, kw_only=True)
class _Staged:
    """The file, cast and validated in the in-memory database, ready to be written."""

    source: _Source
    preset: Preset
    resolved: Mapping[str, str]
    staged: frozenset[str]
    rows: int
    users: int
    clicks: int | None
    ts_sql: str
    ts_format: Literal["iso", "epoch_s", "epoch_ms", "native"]
    ts_min: datetime | None
    ts_max: datetime | None
    variant_ts_min: datetime | None
    variant_ts_max: datetime | None
    file_variants: tuple[str, ...]
    unit: Literal["user", "impression"]
    has_items: bool
    duplicates: _Duplicates
    duplicates_dropped: int
    implausible_ts_rows: int
    first_implausible_ts_row: int | None
    warnings: tuple[str, ...]
    # (size, mtime) of the file when ``_STAGED`` is a view over it, else None: the insert
    # reads the file again, so it must be the file that was validated.
    file_stamp: tuple[int, int] | None = None


@dataclass(frozen=True)
class _Duplicates:
    """Rows that are exact copies of an earlier row: how many, the first (0-based) and the
    row it copies."""

    count: int = 0
    first: int | None = None
    original: int | None = None


def _file_stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


_FORMAT_NAMES = {"csv": "CSV", "csv.gz": "gzip-compressed CSV", "parquet": "Parquet"}


def _translate_read_error(
    path: Path,
    exc: Exception,
    source: _Source | None,
    file_format: Literal["csv", "csv.gz", "parquet"] | None = None,
) -> InputError:
    text = str(exc)
    header = source.header if source is not None else None
    fmt = source.file_format if source is not None else (file_format or "csv")
    if fmt != "parquet" and any(w in text.lower() for w in ("unicode", "utf-8", "utf8")):
        bad = _find_bad_utf8(path, gz=fmt == "csv.gz")
        if bad is not None:
            return _not_utf8(path, *bad, header=header)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    fields = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if line and fields:
        number = int(line.group(1))
        row = number - 1 if header else number
        return InputError(
            f"{path}: row {row} has {fields.group(2)} fields, expected {fields.group(1)} "
            "like line 1"
        )
    if fmt == "csv.gz" and "end of gzip stream" in text.lower():
        return _truncated_gzip(path)
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), text)
    # DuckDB's message may quote the file's content: cut like any value from the file.
    detail = show_value(first, 200, quote=False)
    return InputError(f"{path}: cannot read the file as {_FORMAT_NAMES[fmt]} ({detail})")


def _open_source(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    file_format: Literal["csv", "csv.gz", "parquet"],
    header: bool | None,
    delimiter: str | None,
) -> _Source:
    import duckdb

    if file_format == "parquet":
        try:
            relation = con.read_parquet(str(path))
        except duckdb.Error as exc:
            raise _translate_read_error(path, exc, None, "parquet") from None
        relation.create_view("source")
        types = {c: str(t) for c, t in zip(relation.columns, relation.types, strict=True)}
        return _Source(
            path=path,
            file_format=file_format,
            header=True,
            delimiter=None,
            columns=tuple(relation.columns),
            types=types,
        )
    gz = file_format == "csv.gz"
    line = _first_line(path, _read_head(path, gz), header)
    chosen = _choose_delimiter(path, line, delimiter)
    fields = _split_line(line, chosen)
    if header is None:
        header = not any(_looks_like_data(f) for f in fields if f.strip())
    names = (
        _header_names(path, fields) if header else tuple(f"col{i + 1}" for i in range(len(fields)))
    )
    source = _Source(
        path=path,
        file_format=file_format,
        header=header,
        delimiter=chosen,
        columns=names,
        types=dict.fromkeys(names, "VARCHAR"),
    )
    try:
        relation = con.read_csv(
            str(path),
            header=header,
            sep=chosen,
            columns=dict.fromkeys(names, "VARCHAR"),
            auto_detect=False,
            compression="gzip" if gz else "none",
            quotechar='"',
            escapechar='"',
        )
        relation.create_view("source")
    except duckdb.Error as exc:
        raise _translate_read_error(path, exc, source) from None
    return source


CONTEXT_PREFIX = "ctx:"  # staged context columns (not compared by the duplicate check)
_CATEGORICAL_CONTEXT = "user_feature_"
_NUMERIC_CONTEXT = "user-item_affinity_"


def _context_columns(columns: Sequence[str]) -> list[str]:
    """The Open Bandit context columns of a file, in file order."""
    return [c for c in columns if c.startswith((_CATEGORICAL_CONTEXT, _NUMERIC_CONTEXT))]


def _insert_context(store: Store, staged: _Staged, dataset: str, offset: int) -> None:
    """Write the staged context columns to ``impression_features`` (module docstring)."""
    columns = _context_columns(staged.source.columns)
    if not columns:
        return
    impression_id = _impression_id_sql(staged)
    for column in columns:
        q = quote_ident(CONTEXT_PREFIX + column)
        params: list[Any] = [dataset]
        if column.startswith(_CATEGORICAL_CONTEXT):
            select = f"? || '=' || {q}, 1.0"
            where = f"{q} IS NOT NULL AND {q} <> ''"
            params.append(column)
        else:
            value = f"CAST({q} AS DOUBLE)"
            select = f"?, {value}"
            where = f"{q} IS NOT NULL AND {value} <> 0"
            params.append(column)
        if "impression_id" not in staged.staged:
            params.append(offset)
        try:
            store.con.execute(
                "INSERT INTO impression_features (dataset, feature, value, impression_id) "
                f"SELECT ?, {select}, {impression_id} FROM {_STAGED} WHERE {where}",
                params,
            )
        except _conversion_errors() as exc:
            raise InputError(
                f"{staged.source.path}: column {show_value(column)}: expected numbers "
                f"({str(exc).splitlines()[0]})"
            ) from None


def _conversion_errors() -> tuple[type[Exception], ...]:
    import duckdb

    return (duckdb.ConversionException, duckdb.InvalidInputException)


def _obd_policy(path: Path) -> str:
    for part in reversed(path.resolve().parts[:-1]):
        if part.lower() in ("random", "bts"):
            return part.lower()
    raise InputError(
        f"{path}: cannot tell the logging policy from the path (expected a folder named "
        "random or bts); pass --variant"
    )


def _ts_format(
    con: duckdb.DuckDBPyConnection, source: _Source, column: str, ts_unit: TsUnit
) -> Literal["iso", "epoch", "native"]:
    source_type = source.types[column].upper()
    if source_type.startswith("TIMESTAMP") or source_type == "DATE":
        return "native"
    if source_type != "VARCHAR" or ts_unit != "auto":
        return "epoch"
    q = quote_ident(column)
    # fetchall, not fetchone: an unfinished result would block the next relation (DuckDB 2)
    rows = con.execute(f"SELECT {q} FROM source WHERE {q} IS NOT NULL LIMIT 1").fetchall()
    return "epoch" if rows and _NUMBER.match(str(rows[0][0]).strip()) else "iso"


def _epoch_sql(value: str, unit: Literal["s", "ms"]) -> str:
    scale = 1_000_000 if unit == "s" else 1_000
    return f"make_timestamp(CAST(round({value} * {scale}) AS BIGINT))"


def _stage(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    file_format: Literal["csv", "csv.gz", "parquet"],
    *,
    preset_name: str,
    mapping: Mapping[str, str],
    header: bool | None,
    delimiter: str | None,
    variant: str | None,
    ts_unit: TsUnit,
    dedupe: bool = False,
) -> _Staged:
    import duckdb

    source = _open_source(con, path, file_format, header, delimiter)
    preset = _resolve_preset(path, preset_name, source, mapping)
    if preset.name == "obd" and variant is None:
        variant = _obd_policy(path)
    resolved = _resolve_columns(source, preset, mapping, constant_variant=variant is not None)
    constants = dict(preset.constants)
    if variant is not None:
        constants["variant"] = variant

    def raw(file_column: str, row: int) -> str:
        q = quote_ident(file_column)
        value = con.execute(
            f"SELECT CAST({q} AS VARCHAR) FROM source LIMIT 1 OFFSET ?", [row]
        ).fetchone()
        return "" if value is None or value[0] is None else str(value[0])

    # Parquet is typed and columnar: validating through a view and inserting from the same view
    # reads the file twice but never copies it into memory (peak memory O(row group), not
    # O(file)); measured on 2M bench rows this is faster than the staging table. The row
    # number comes from the reader (file_row_number), as rowid does for the staging table.
    # Text is parsed once into the staging table instead: parsing it twice costs more.
    lazy = file_format == "parquet" and "file_row_number" not in (c.lower() for c in source.columns)
    stamp = _file_stamp(path) if lazy else None
    try:
        ts_format = _ts_format(con, source, resolved["ts"], ts_unit)
        plan = _Plan(source, resolved, preset.columns, constants, ts_format, ts_unit, raw)
        if preset.name == "obd":
            plan.select.extend(
                f"{quote_ident(column)} AS {quote_ident(CONTEXT_PREFIX + column)}"
                for column in _context_columns(source.columns)
            )
        if lazy:
            con.read_parquet(str(path), file_row_number=True).create_view("source_rows")
            # A relation binds its parameters, which CREATE VIEW cannot; it lands in
            # memory.main, i.e. _STAGED.
            con.sql(
                f"SELECT {', '.join(plan.select)}, file_row_number AS rowid FROM source_rows",
                params=plan.params or None,
            ).create_view(_STAGED.rsplit(".", 1)[1])
        else:
            con.execute(
                f"CREATE TABLE {_STAGED} AS SELECT {', '.join(plan.select)} FROM source",
                plan.params,
            )
        # With a view the file is read here: a damaged file fails here, as with the table.
        return _validate(
            con, source, preset, resolved, plan, ts_unit, dedupe=dedupe, lazy=lazy, file_stamp=stamp
        )
    except duckdb.Error as exc:
        raise _translate_read_error(path, exc, source) from None


def _summary_sql(plan: _Plan) -> dict[str, str]:
    """The aggregates that describe the staged rows (computed again after ``dedupe``)."""
    staged = plan.staged
    ts_value = "_ts_num" if plan.ts_format == "epoch" else "ts"
    has_variant = "variant" in staged
    epoch = plan.ts_format == "epoch"
    return {
        "rows": "count(*)",
        "ts_min": f"min({ts_value})",
        "ts_max": f"max({ts_value})",
        "variant_ts_min": f"min({ts_value}) FILTER (WHERE variant IS NOT NULL)"
        if has_variant
        else "NULL",
        "variant_ts_max": f"max({ts_value}) FILTER (WHERE variant IS NOT NULL)"
        if has_variant
        else "NULL",
        "variant_rows": "count(variant)" if has_variant else "0",
        "clicks": "sum(click)" if "click" in staged else "NULL",
        "ms_row": f"min(rowid) FILTER (WHERE abs(_ts_num) >= {_EPOCH_MS_FROM:.0f})"
        if epoch
        else "NULL",
        "s_row": f"min(rowid) FILTER (WHERE abs(_ts_num) < {_EPOCH_MS_FROM:.0f})"
        if epoch
        else "NULL",
        "duplicate_ids": "count(impression_id) - count(DISTINCT impression_id)"
        if "impression_id" in staged
        else "0",
    }


def _copies_sql(plan: _Plan) -> str:
    """(rowid, first) of every row that is an exact copy of an earlier row ``first``."""
    columns = ", ".join(quote_ident(c) for c in plan.values)
    return (
        f"SELECT rowid, first FROM (SELECT rowid, min(rowid) OVER (PARTITION BY {columns}) "
        f"AS first FROM {_STAGED}) WHERE rowid > first"
    )


def _find_duplicates(
    con: duckdb.DuckDBPyConnection, plan: _Plan, *, drop: bool, lazy: bool
) -> _Duplicates:
    """Exact copies of an earlier row; with ``drop``, ``_STAGED`` becomes a view without them.

    Row numbers stay those of the file: the view keeps the staged ``rowid``.
    """
    if not drop:
        found = _fetch_one(
            con.execute(
                f"SELECT count(*), min(rowid), arg_min(first, rowid) FROM ({_copies_sql(plan)})"
            )
        )
    else:
        con.execute(f"CREATE TABLE memory.main.dropped AS {_copies_sql(plan)}")
        found = _fetch_one(
            con.execute(
                "SELECT count(*), min(rowid), arg_min(first, rowid) FROM memory.main.dropped"
            )
        )
        if found[0]:
            con.execute(f"ALTER {'VIEW' if lazy else 'TABLE'} {_STAGED} RENAME TO staged_all")
            # A table's rowid is not a column: the view names it (the Parquet view has one).
            rowid = "" if lazy else ", rowid AS rowid"
            con.execute(
                f"CREATE VIEW {_STAGED} AS SELECT *{rowid} FROM memory.main.staged_all "
                "WHERE rowid NOT IN (SELECT rowid FROM memory.main.dropped)"
            )
    count = int(found[0])
    if not count:
        return _Duplicates()
    return _Duplicates(count=count, first=int(found[1]), original=int(found[2]))


def _implausible_ts(
    con: duckdb.DuckDBPyConnection, plan: _Plan, ts_sql: str, stats: Mapping[str, Any]
) -> tuple[int, int | None, str]:
    """(rows, first rowid, warning) for timestamps outside the plausible range; 0 when none.

    Only runs when the file's range already crosses a bound: no cost for a plausible file.
    ``infinity`` (which DuckDB parses) is refused here, as an unparseable timestamp.
    """
    low = PLAUSIBLE_TS_FROM
    high = datetime.now(timezone.utc).replace(tzinfo=None) + PLAUSIBLE_TS_AHEAD
    ts_min, ts_max = stats["ts_min"], stats["ts_max"]
    if not ((ts_min is not None and ts_min < low) or (ts_max is not None and ts_max > high)):
        return 0, None, ""
    count, first, infinite = _fetch_one(
        con.execute(
            f"SELECT count(*), min(rowid), min(rowid) FILTER (WHERE NOT isfinite({ts_sql})) "
            f"FROM {_STAGED} WHERE {ts_sql} < ? OR {ts_sql} > ? OR NOT isfinite({ts_sql})",
            [low, high],
        )
    )
    column = plan.resolved["ts"]
    if infinite is not None:
        raise InputError(
            f"{plan._where(column, int(infinite))}: cannot parse "
            f"{show_value(plan.raw(column, int(infinite)))} as a timestamp ({_TS_HINT})"
        )
    if not count:
        return 0, None, ""
    hint = " (is --ts-unit right?)" if plan.ts_format == "epoch" else ""
    warning = (
        f"{plan.source.path}: {int(count):,} row(s) have an implausible timestamp (before "
        f"{low:%Y-%m-%d} or more than {_days(PLAUSIBLE_TS_AHEAD)} in the future); the first is "
        f"row {int(first) + 1}, column {show_value(column)}: "
        f"{show_value(plan.raw(column, int(first)))}; they are stored as they are{hint}"
    )
    return int(count), int(first), warning


def _days(delta: timedelta) -> str:
    return f"{delta.days} day" + ("" if delta.days == 1 else "s")


def _validate(
    con: duckdb.DuckDBPyConnection,
    source: _Source,
    preset: Preset,
    resolved: Mapping[str, str],
    plan: _Plan,
    ts_unit: TsUnit,
    *,
    dedupe: bool = False,
    lazy: bool = False,
    file_stamp: tuple[int, int] | None = None,
) -> _Staged:
    """Run every row check in one aggregate pass and collect what the write needs.

    The same pass counts distinct rows by a hash of every value column (by the impression ids
    when there are some); only when that count is below the row count are the exact copies
    looked for (and, with ``dedupe``, dropped). The pass reads every column, so that when
    ``_STAGED`` is a view over the file (``lazy``) a damaged file is reported here as
    unreadable rather than later as a failed write.
    """
    path = source.path
    staged = plan.staged
    has_variant = "variant" in staged
    unit: Literal["user", "impression"] = "user" if "user_id" in staged else "impression"
    aggregates = [f"min(rowid) FILTER (WHERE {c.condition})" for c in plan.checks]
    params = [p for c in plan.checks for p in c.params]
    extra = _summary_sql(plan)
    columns = [quote_ident(c) for c in plan.values]
    # Rows with distinct impression ids (never empty) are distinct: no row hash needed, but a
    # view over the file must still be read whole.
    ids = "impression_id" in staged
    if not ids:
        distinct = f"count(DISTINCT hash({', '.join(columns)}))"
    else:
        distinct = " + ".join(f"count({c})" for c in columns) if lazy else "NULL"
    query = f"SELECT {', '.join([*aggregates, *extra.values(), distinct])} FROM {_STAGED}"
    values = _fetch_one(con.execute(query, params))
    failures = [(row, i) for i, row in enumerate(values[: len(plan.checks)]) if row is not None]
    if failures:
        row, index = min(failures)
        raise InputError(plan.checks[index].message(int(row)))
    stats = dict(zip(extra, values[len(plan.checks) : -1], strict=True))
    if stats["rows"] == 0:
        raise InputError(f"{path}: no data rows (only a header line)")
    warnings: list[str] = []
    duplicates = _Duplicates()
    # Equal hashes (or ids): copies, or (rarely) a hash collision; the search is exact.
    if (stats["duplicate_ids"] > 0) if ids else (values[-1] < stats["rows"]):
        duplicates = _find_duplicates(con, plan, drop=dedupe, lazy=lazy)
    dropped = duplicates.count if dedupe else 0
    if dropped:
        stats = dict(
            zip(
                extra,
                _fetch_one(con.execute(f"SELECT {', '.join(extra.values())} FROM {_STAGED}")),
                strict=True,
            )
        )
    elif duplicates.count:
        warnings.append(
            f"{path}: {duplicates.count:,} row(s) are exact copies of an earlier row (the first: "
            f"row {_row(duplicates.first)}, a copy of row {_row(duplicates.original)}); they are "
            "kept, as repeated events can be genuine: pass --dedupe to drop them"
        )
    if stats["duplicate_ids"]:
        row_id = _fetch_one(
            con.execute(
                f"SELECT rowid, impression_id FROM (SELECT rowid, impression_id, row_number() OVER "
                f"(PARTITION BY impression_id ORDER BY rowid) AS n FROM {_STAGED}) WHERE n = 2 "
                "ORDER BY rowid LIMIT 1"
            )
        )
        hint = (
            f" (the file has {duplicates.count:,} exact duplicate row(s): --dedupe drops them)"
            if duplicates.count and not dropped
            else ""
        )
        raise InputError(
            f"{plan._where(resolved['impression_id'], int(row_id[0]))}: impression id "
            f"{row_id[1]} appears twice{hint}"
        )
    ts_format: Literal["iso", "epoch_s", "epoch_ms", "native"]
    if plan.ts_format == "epoch":
        unit_chosen: Literal["s", "ms"]
        if ts_unit == "auto":
            if stats["ms_row"] is not None and stats["s_row"] is not None:
                first, second = sorted((int(stats["ms_row"]), int(stats["s_row"])))
                column = resolved["ts"]
                raise InputError(
                    f"{path}: column {show_value(column)} mixes epoch seconds and milliseconds "
                    f"(row {first + 1}: {show_value(plan.raw(column, first), quote=False)}, "
                    f"row {second + 1}: {show_value(plan.raw(column, second), quote=False)}); "
                    "pass --ts-unit s or --ts-unit ms"
                )
            unit_chosen = "ms" if stats["ms_row"] is not None else "s"
        else:
            unit_chosen = ts_unit
        ts_sql = _epoch_sql("_ts_num", unit_chosen)
        ts_format = "epoch_s" if unit_chosen == "s" else "epoch_ms"
        bounds = [stats[k] for k in ("ts_min", "ts_max", "variant_ts_min", "variant_ts_max")]
        converted = _fetch_one(
            con.execute(
                "SELECT "
                + ", ".join(_epoch_sql("CAST(? AS DECIMAL(38, 6))", unit_chosen) for _ in bounds),
                bounds,
            )
        )
        for key, value in zip(
            ("ts_min", "ts_max", "variant_ts_min", "variant_ts_max"), converted, strict=True
        ):
            stats[key] = value
    else:
        ts_sql = "ts"
        ts_format = plan.ts_format
    implausible, first_implausible, ts_warning = _implausible_ts(con, plan, ts_sql, stats)
    if ts_warning:
        warnings.append(ts_warning)
    file_variants: tuple[str, ...] = ()
    users: int | None = int(stats["rows"]) if unit == "impression" else None
    if has_variant and stats["variant_rows"]:
        rows = con.execute(
            f"SELECT variant FROM {_STAGED} WHERE variant IS NOT NULL GROUP BY variant "
            f"ORDER BY variant LIMIT {_MAX_VARIANTS + 1}"
        ).fetchall()
        if len(rows) > _MAX_VARIANTS:
            column = resolved.get("variant", "variant")
            raise InputError(
                f"{path}: column {show_value(column)} has more than {_MAX_VARIANTS} distinct "
                "variants; "
                "is it really the A/B arm? Name the arm column with --map variant=COLUMN"
            )
        file_variants = tuple(r[0] for r in rows)
        if unit == "user":
            assigned = _stage_assignments(con, plan, ts_sql)
            if stats["variant_rows"] == stats["rows"]:
                users = assigned  # every row has a variant: one assignment per user
    if users is None:
        users = _count(con.execute(f"SELECT count(DISTINCT user_id) FROM {_STAGED}"))
    return _Staged(
        source=source,
        preset=preset,
        resolved=resolved,
        staged=frozenset(staged),
        rows=int(stats["rows"]),
        users=users,
        clicks=None if stats["clicks"] is None else int(stats["clicks"]),
        ts_sql=ts_sql,
        ts_format=ts_format,
        ts_min=stats["ts_min"],
        ts_max=stats["ts_max"],
        variant_ts_min=stats["variant_ts_min"],
        variant_ts_max=stats["variant_ts_max"],
        file_variants=file_variants,
        unit=unit,
        has_items=_stage_items(con, path) if preset.name == "obd" else False,
        duplicates=duplicates,
        duplicates_dropped=dropped,
        implausible_ts_rows=implausible,
        first_implausible_ts_row=first_implausible,
        warnings=tuple(warnings),
        file_stamp=file_stamp,
    )


def _row(rowid: int | None) -> int | None:
    """A staged rowid as the 1-based data row number of messages."""
    return None if rowid is None else rowid + 1


def _stage_assignments(con: duckdb.DuckDBPyConnection, plan: _Plan, ts_sql: str) -> int:
    """One row per user: their variant and first timestamp; a user in two variants is refused.

    Returns the number of users with a variant."""
    con.execute(
        f"CREATE TABLE memory.main.file_assign AS SELECT user_id, min(variant) AS variant, "
        f"max(variant) AS other, min({ts_sql}) AS assigned_at FROM {_STAGED} "
        "WHERE variant IS NOT NULL GROUP BY user_id"
    )
    conflict = con.execute(
        f"""
        WITH first AS (
            SELECT user_id, arg_min(variant, rowid) AS v0, min(rowid) AS r0 FROM {_STAGED}
            WHERE variant IS NOT NULL
              AND user_id IN (SELECT user_id FROM memory.main.file_assign WHERE variant <> other)
            GROUP BY user_id)
        SELECT s.rowid, s.user_id, s.variant, f.v0, f.r0
        FROM {_STAGED} s JOIN first f ON s.user_id = f.user_id
        WHERE s.variant <> f.v0 ORDER BY s.rowid LIMIT 1
        """
    ).fetchone()
    if conflict is not None:
        row, user, second, first, first_row = conflict
        raise InputError(
            f"{plan.source.path}: row {row + 1}: user {show_value(user)} is in variant "
            f"{show_value(second)}, but row {first_row + 1} put them in {show_value(first)} "
            "(a user must stay in one variant)"
        )
    return _count(con.execute("SELECT count(*) FROM memory.main.file_assign"))


def _stage_items(con: duckdb.DuckDBPyConnection, path: Path) -> bool:
    """Item ids from the OBD ``item_context.csv.gz`` beside the log, when there is one."""
    import duckdb

    items_path = path.parent / "item_context.csv.gz"
    if not items_path.exists():
        return False
    try:
        relation = con.read_csv(str(items_path), header=True)
        if "item_id" not in relation.columns:
            raise InputError(
                f"{items_path}: missing required column 'item_id' "
                f"(found: {', '.join(relation.columns)})"
            )
        relation.create_view("item_source")
        con.execute(
            "CREATE TABLE memory.main.staged_items AS SELECT DISTINCT "
            "CAST(item_id AS VARCHAR) AS item_id FROM item_source WHERE item_id IS NOT NULL"
        )
    except duckdb.Error as exc:
        raise _translate_read_error(items_path, exc, None) from None
    return True


# -- writing ---------------------------------------------------------------------------------


def _attach_store(con: duckdb.DuckDBPyConnection, db_path: Path, wait: float) -> Store:
    """Attach the store file to the staging connection, checked as :func:`open_store` does."""

    return attach_store(con, db_path, _STORE_ALIAS, wait=wait)


def _choose_control(variants: set[str], explicit: str | None, recorded: str | None) -> str:
    if explicit is not None:
        if explicit not in variants:
            raise InputError("--control: " + unknown_choice("variant", explicit, variants))
        return explicit
    for name in _CONTROL_NAMES:
        for candidate in sorted(variants):
            if candidate.lower() == name:
                return candidate
    if recorded is not None and recorded in variants:
        return recorded
    return sorted(variants)[0]


def _resolve_split(
    split: Sequence[float] | Mapping[str, float] | None,
    variants: Sequence[str],
    recorded: tuple[list[str], list[float] | None] | None,
) -> list[float] | None:
    if split is None:
        if recorded is not None and recorded[1] is not None and set(recorded[0]) == set(variants):
            shares = dict(zip(recorded[0], recorded[1], strict=True))
            return [shares[v] for v in variants]
        return None
    if isinstance(split, Mapping):
        if set(split) != set(variants):
            raise InputError(
                f"--split names {', '.join(sorted(split))}, but the experiment's variants are "
                f"{', '.join(variants)}"
            )
        values = [float(split[v]) for v in variants]
    else:
        values = [float(v) for v in split]
        if len(values) != len(variants):
            raise InputError(
                f"--split has {len(values)} shares, but the experiment has {len(variants)} "
                f"variants ({', '.join(variants)}, in that order)"
            )
    return list(check_shares(values))  # percentages or fractions, as on the command line


def _write(
    store: Store,
    staged: _Staged,
    *,
    dataset: str,
    sha256: str,
    experiment: str | None,
    control: str | None,
    split: Sequence[float] | Mapping[str, float] | None,
) -> IngestResult:

    con = store.con
    path = staged.source.path
    table = staged.preset.table
    with store.transaction():
        # Every check first: nothing is written until all of them pass.
        done = con.execute(
            "SELECT source_path, ingested_at FROM ingests "
            "WHERE dataset = ? AND sha256 = ? AND table_name = ?",
            [dataset, sha256, table],
        ).fetchone()
        if done is not None:
            raise InputError(
                f"{path}: already ingested into dataset '{dataset}' (table {table}) on "
                f"{done[1]:%Y-%m-%d %H:%M:%S} UTC from {done[0]}; nothing was written "
                "(use another --dataset to load it twice)"
            )
        known = con.execute(
            "SELECT source, unit FROM datasets WHERE dataset = ?", [dataset]
        ).fetchone()
        if known is not None and known[0] != "ingest":
            raise InputError(
                f"dataset '{dataset}' in {store.path} was written by `abkit {known[0]}`; "
                "ingest into another --dataset"
            )
        if known is not None and known[1] != staged.unit:
            raise InputError(
                f"{path}: dataset '{dataset}' counts one unit per {known[1]}, but this file's "
                f"unit is the {staged.unit}; ingest it into another --dataset"
            )
        exp_name, variants, chosen_control, split_values = _plan_experiment(
            store, staged, dataset=dataset, experiment=experiment, control=control, split=split
        )
        duplicates = 0
        if exp_name is not None and staged.unit == "user":
            duplicates = _check_store_assignments(store, staged, dataset, exp_name)
        offset = 0
        if table == "impressions":
            offset = _impression_offset(store, staged, dataset)

        # Then the writes.
        if known is None:
            store.add_dataset(
                dataset,
                source="ingest",
                unit=staged.unit,
                params=json.dumps({"preset": staged.preset.name}),
            )
        _insert_rows(store, staged, dataset, offset)
        added = 0
        if exp_name is not None:
            added = _insert_assignments(store, staged, dataset, exp_name, offset)
            _upsert_experiment(
                store, staged, dataset, exp_name, variants, chosen_control, split_values
            )
        items = 0
        if staged.has_items:
            items = _count(
                con.execute(
                    "INSERT INTO items (dataset, item_id) SELECT ?, s.item_id "
                    "FROM memory.main.staged_items s WHERE NOT EXISTS (SELECT 1 FROM items i "
                    "WHERE i.dataset = ? AND i.item_id = s.item_id)",
                    [dataset, dataset],
                )
            )
        con.execute(
            "INSERT INTO ingests VALUES (?, ?, ?, ?, ?, ?)",
            [dataset, str(path.resolve()), sha256, table, staged.rows, utcnow()],
        )
        # Parquet was read again by the inserts: it must still be the file that was validated.
        if staged.file_stamp is not None and _file_stamp(path) != staged.file_stamp:
            raise InputError(f"{path}: the file changed while it was ingested; nothing was written")
    return IngestResult(
        dataset=dataset,
        table=table,
        rows=staged.rows,
        source=str(path),
        sha256=sha256,
        preset=staged.preset.name,
        unit=staged.unit,
        experiment=exp_name,
        variants=tuple(variants),
        control=chosen_control,
        file_variants=staged.file_variants,
        users=staged.users,
        assignments_added=added,
        duplicates_skipped=duplicates,
        items_added=items,
        clicks=staged.clicks,
        ts_min=staged.ts_min,
        ts_max=staged.ts_max,
        ts_format=staged.ts_format,
        file_format=staged.source.file_format,
        header=staged.source.header,
        delimiter=staged.source.delimiter,
        columns=tuple(staged.resolved.items()),
        db=str(store.path),
        duplicate_rows=staged.duplicates.count,
        first_duplicate_row=_row(staged.duplicates.first),
        duplicates_dropped=staged.duplicates_dropped,
        implausible_ts_rows=staged.implausible_ts_rows,
        first_implausible_ts_row=_row(staged.first_implausible_ts_row),
        warnings=staged.warnings,
    )


def _fetch_one(cursor: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    row = cursor.fetchone()
    if row is None:  # aggregates and INSERT always return one row
        raise RuntimeError("DuckDB returned no row")
    return tuple(row)


def _count(cursor: duckdb.DuckDBPyConnection) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row is not None else 0


def _plan_experiment(
    store: Store,
    staged: _Staged,
    *,
    dataset: str,
    experiment: str | None,
    control: str | None,
    split: Sequence[float] | Mapping[str, float] | None,
) -> tuple[str | None, list[str], str | None, list[float] | None]:
    if not staged.file_variants:
        if experiment is not None or control is not None or split is not None:
            raise InputError(
                f"{staged.source.path}: --experiment, --control and --split need a variant "
                "column or --variant"
            )
        return None, [], None, None
    con = store.con
    name = experiment
    if name is None and staged.preset.name == "obd":
        name = "obd"
    if name is None:
        existing = [
            r[0]
            for r in con.execute(
                "SELECT experiment FROM experiments WHERE dataset = ? ORDER BY 1", [dataset]
            ).fetchall()
        ]
        if len(existing) > 1:
            raise InputError(
                f"dataset '{dataset}' has experiments {', '.join(existing)}; "
                "choose one with --experiment"
            )
        name = existing[0] if existing else dataset
    row = con.execute(
        "SELECT variants, split, control FROM experiments WHERE dataset = ? AND experiment = ?",
        [dataset, name],
    ).fetchone()
    all_variants = set(staged.file_variants) | set(row[0] if row else [])
    chosen = _choose_control(all_variants, control, row[2] if row else None)
    ordered = [chosen, *sorted(v for v in all_variants if v != chosen)]
    recorded = (list(row[0]), list(row[1]) if row[1] is not None else None) if row else None
    return name, ordered, chosen, _resolve_split(split, ordered, recorded)


def _check_store_assignments(store: Store, staged: _Staged, dataset: str, experiment: str) -> int:
    """Refuse users the store already put in another variant; count those already recorded."""
    con = store.con
    conflict = con.execute(
        "SELECT f.user_id, f.variant, a.variant FROM memory.main.file_assign f "
        "JOIN assignments a ON a.user_id = f.user_id "
        "WHERE a.dataset = ? AND a.experiment = ? AND a.variant <> f.variant LIMIT 1",
        [dataset, experiment],
    ).fetchone()
    if conflict is not None:
        user, variant, recorded = conflict
        first = con.execute(
            f"SELECT min(rowid) FROM {_STAGED} WHERE user_id = ? AND variant IS NOT NULL", [user]
        ).fetchone()
        row = int(first[0]) + 1 if first is not None and first[0] is not None else 0
        raise InputError(
            f"{staged.source.path}: row {row}: user {show_value(user)} is in variant "
            f"{show_value(variant)}, but experiment {show_value(experiment)} of dataset "
            f"{show_value(dataset)} already has them in {show_value(recorded)}"
        )
    return _count(
        con.execute(
            "SELECT count(*) FROM memory.main.file_assign f WHERE EXISTS (SELECT 1 FROM "
            "assignments a WHERE a.dataset = ? AND a.experiment = ? AND a.user_id = f.user_id)",
            [dataset, experiment],
        )
    )


def _impression_offset(store: Store, staged: _Staged, dataset: str) -> int:
    """The first free impression id of the dataset; file ids must not collide with stored ones."""
    con = store.con
    if "impression_id" in staged.staged:
        clash = con.execute(
            f"SELECT s.rowid, s.impression_id FROM {_STAGED} s WHERE s.impression_id IN "
            "(SELECT impression_id FROM impressions WHERE dataset = ?) ORDER BY s.rowid LIMIT 1",
            [dataset],
        ).fetchone()
        if clash is not None:
            column = staged.resolved["impression_id"]
            raise InputError(
                f"{staged.source.path}: row {clash[0] + 1}, column {show_value(column)}: "
                "impression id "
                f"{clash[1]} is already in dataset '{dataset}'"
            )
        return 0
    return _count(
        con.execute(
            "SELECT coalesce(max(impression_id) + 1, 0) FROM impressions WHERE dataset = ?",
            [dataset],
        )
    )


def _column(staged: _Staged, name: str, sql_type: str | None = None) -> str:
    if name not in staged.staged:
        return "NULL"
    return quote_ident(name) if sql_type is None else f"CAST({quote_ident(name)} AS {sql_type})"


def _impression_id_sql(staged: _Staged) -> str:
    if "impression_id" in staged.staged:
        return "impression_id"
    return "(CAST(? AS BIGINT) + rowid)"


def _insert_rows(store: Store, staged: _Staged, dataset: str, offset: int) -> None:
    con = store.con
    if staged.preset.table == "events":
        con.execute(
            "INSERT INTO events (dataset, user_id, session_id, item_id, event_type, ts, value) "
            f"SELECT ?, user_id, {_column(staged, 'session_id')}, {_column(staged, 'item_id')}, "
            f"event_type, {staged.ts_sql}, {_column(staged, 'value')} FROM {_STAGED}",
            [dataset],
        )
        return
    impression_id = _impression_id_sql(staged)
    params: list[Any] = [dataset]
    if "impression_id" not in staged.staged:
        params.append(offset)
    user = "user_id" if "user_id" in staged.staged else f"CAST({impression_id} AS VARCHAR)"
    if "impression_id" not in staged.staged and "user_id" not in staged.staged:
        params.append(offset)
    con.execute(
        "INSERT INTO impressions (dataset, impression_id, slate_id, user_id, session_id, ts, "
        "variant, item_id, position, propensity, click, conversion, value) "
        f"SELECT ?, {impression_id}, {_column(staged, 'slate_id')}, {user}, "
        f"{_column(staged, 'session_id')}, {staged.ts_sql}, {_column(staged, 'variant')}, "
        f"item_id, CAST(position AS INTEGER), propensity, CAST(click AS TINYINT), "
        f"{_column(staged, 'conversion', 'TINYINT')}, {_column(staged, 'value')} FROM {_STAGED}",
        params,
    )
    _insert_context(store, staged, dataset, offset)


def _insert_assignments(
    store: Store, staged: _Staged, dataset: str, experiment: str, offset: int
) -> int:
    con = store.con
    if staged.unit == "user":
        return _count(
            con.execute(
                "INSERT INTO assignments (dataset, experiment, user_id, variant, assigned_at) "
                "SELECT ?, ?, f.user_id, f.variant, f.assigned_at FROM memory.main.file_assign f "
                "WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.dataset = ? AND "
                "a.experiment = ? AND a.user_id = f.user_id)",
                [dataset, experiment, dataset, experiment],
            )
        )
    # One unit per impression: its id is the unit's id, assigned when it was shown.
    impression_id = _impression_id_sql(staged)
    params: list[Any] = [dataset, experiment]
    if "impression_id" not in staged.staged:
        params.append(offset)
    return _count(
        con.execute(
            "INSERT INTO assignments (dataset, experiment, user_id, variant, assigned_at) "
            f"SELECT ?, ?, CAST({impression_id} AS VARCHAR), variant, {staged.ts_sql} "
            f"FROM {_STAGED} WHERE variant IS NOT NULL",
            params,
        )
    )


def _upsert_experiment(
    store: Store,
    staged: _Staged,
    dataset: str,
    experiment: str,
    variants: list[str],
    control: str | None,
    split: list[float] | None,
) -> None:
    con = store.con
    row = con.execute(
        "SELECT start_ts, end_ts FROM experiments WHERE dataset = ? AND experiment = ?",
        [dataset, experiment],
    ).fetchone()
    start, end = staged.variant_ts_min, staged.variant_ts_max
    if end is not None:
        end += timedelta(microseconds=1)  # experiments.end_ts is exclusive (schema.py)
    if row is None:
        con.execute(
            "INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?)",
            [dataset, experiment, variants, split, control, start, end],
        )
        return
    start = min(t for t in (row[0], start) if t is not None) if (row[0] or start) else None
    end = max(t for t in (row[1], end) if t is not None) if (row[1] or end) else None
    con.execute(
        "UPDATE experiments SET variants = ?, split = ?, control = ?, start_ts = ?, end_ts = ? "
        "WHERE dataset = ? AND experiment = ?",
        [variants, split, control, start, end, dataset, experiment],
    )


# -- the entry point -------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _default_dataset(path: Path, preset: Preset) -> str:
    name = path.name
    for suffix in (".gz", ".parquet", ".pq", ".csv", ".tsv", ".dat", ".data", ".txt"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    if preset.name == "obd":
        campaign = next(
            (p for p in reversed(path.resolve().parts) if p.lower() in ("all", "men", "women")),
            None,
        )
        return f"obd-{campaign.lower()}" if campaign else "obd"
    return name or "ingest"


def ingest_file(
    path: str | Path,
    db: str | Path | None = None,
    *,
    dataset: str | None = None,
    preset: Literal["auto", "events", "impressions", "obd", "movielens"] = "auto",
    mapping: Mapping[str, str] | None = None,
    header: bool | None = None,
    delimiter: str | None = None,
    variant: str | None = None,
    control: str | None = None,
    split: Sequence[float] | Mapping[str, float] | None = None,
    experiment: str | None = None,
    ts_unit: TsUnit = "auto",
    dedupe: bool = False,
    on_step: Callable[[str], None] | None = None,
    wait: float = 0.0,
) -> IngestResult:
    """Load one CSV / CSV.gz / Parquet file into the store ``db`` in one transaction.

    ``preset`` chooses the layout (``auto`` picks it by :func:`abkit.data.presets.detect_preset`);
    ``mapping`` maps abkit columns to file columns (``{"user_id": "customer"}``); ``header``
    ``None`` detects a header line; ``delimiter`` ``None`` detects tab, ``::`` or comma;
    ``variant`` puts every row in that arm (the default for OBD comes from the path);
    ``control``, ``split`` and ``experiment`` describe the experiment the variants belong to;
    ``ts_unit`` forces epoch seconds or milliseconds; ``dedupe`` drops rows that are exact
    copies of an earlier row (without it they are kept and warned about; see
    :attr:`IngestResult.warnings`). ``on_step`` is told each phase
    (``read``, ``validate``, ``write``) for progress display. See the module docstring for the
    rules. Raises :class:`~abkit.errors.InputError` for a bad file or option and
    :class:`~abkit.errors.StoreError` for an unusable store; either way nothing is written.
    A store locked by another process is refused before the file is read; ``wait`` seconds
    retries the lock (then, and again for the write) instead of failing at once.
    """
    import duckdb

    file_path = Path(path)
    if not file_path.exists():
        raise InputError(f"{file_path}: no such file")
    if file_path.is_dir():
        raise InputError(f"{file_path}: is a directory, expected a CSV or Parquet file")
    if ts_unit not in ("auto", "s", "ms"):
        raise InputError(unknown_choice("--ts-unit", str(ts_unit), ["auto", "s", "ms"]))
    chosen_delimiter = _normalise_delimiter(delimiter)
    step = on_step or (lambda _phase: None)
    file_format = _sniff_format(file_path)
    db_path = check_writable(db, wait=wait)  # fail before the work, not after it

    with ThreadPoolExecutor(max_workers=1) as pool:
        # Hash the file while DuckDB parses it: both are I/O- and C-bound, neither holds the GIL.
        digest = pool.submit(_sha256, file_path)
        con = duckdb.connect(":memory:")
        with discard_if_new(db_path):  # a store created for this ingest: no file left
            try:
                con.execute("SET TimeZone = 'UTC'")
                step("read")
                staged = _stage(
                    con,
                    file_path,
                    file_format,
                    preset_name=preset,
                    mapping=dict(mapping or {}),
                    header=header,
                    delimiter=chosen_delimiter,
                    variant=variant,
                    ts_unit=ts_unit,
                    dedupe=dedupe,
                )
                step("validate")
                sha256 = digest.result()
                name = dataset or _default_dataset(file_path, staged.preset)
                step("write")
                store = _attach_store(con, db_path, wait)
                try:
                    return _write(
                        store,
                        staged,
                        dataset=name,
                        sha256=sha256,
                        experiment=experiment,
                        control=control,
                        split=split,
                    )
                except duckdb.Error as exc:
                    first = str(exc).strip().splitlines()[0]
                    raise StoreError(
                        f"{db_path}: writing failed ({first}); nothing was written"
                    ) from None
            finally:
                con.close()
