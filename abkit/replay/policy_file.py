"""Outside policies given as action probabilities (``abkit replay --policy-file FILE``).

A policy file says, for every evaluated round and slot, how likely the policy is to show each
item: pi(a | round, slot). Two layouts are read:

* **OBP** (the Open Bandit Pipeline's ``action_dist``): an ``.npz`` (read with
  ``allow_pickle=False``) holding a 3-D array of real numbers named ``action_dist``, of shape
  rounds x items x positions, or that array alone in an ``.npy`` file (``numpy.save``; also
  read with ``allow_pickle=False``). Axis 1 index k is the item whose id is ``k`` (OBP's item
  ids are 0 .. n-1), so axis 1 must have one entry per item of the dataset's catalogue,
  unless the ``.npz`` also holds an array ``item_ids`` naming the entries (then the items it
  leaves out have probability 0); axis 2 index j is slot j + 1 (the logs' 1-based positions).
* **long**: a CSV or Parquet table with columns ``round, item, position, probability``, one row
  per (round, item, slot) with a nonzero probability (a missing row is probability 0). Without
  a ``round`` column the same distribution applies to every round (a context-free policy).
  ``position`` is the logs' slot number (1-based); ``item`` the item id.

Rounds are the evaluated impressions in impression-id order, numbered from 0 (for the Open
Bandit logs, the rows of the log file, as OBP numbers them): with ``--variant`` only that
variant's impressions, with a temporal split only the later ones. The file must match them:
refusals name the file and what was expected, for a wrong shape or number of rounds, an
unknown round or item, a probability outside [0, 1] (or NaN, or empty), a duplicate row, and
probabilities that do not sum to 1 (within 1e-6) over the items of a round and slot. A row of
the long layout is named by its place in the file: ``line N`` of a CSV (the header is line 1),
``row N`` of a Parquet file.

The format is told by the file's first bytes, not its name: ``\x93NUMPY`` an ``.npy`` file,
``PK`` a zip (``.npz``), ``PAR1`` Parquet, anything else CSV (gzip- or zstd-compressed CSV
included). A pickle (first byte ``\x80``) is refused, as is an array of strings, complex
numbers or Python objects, and binary content that is none of these; no message quotes the
file's bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from abkit._util import invalid_utf8, show_value
from abkit.errors import InputError, param

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SUM_TOLERANCE", "PolicyFile", "read_policy_file"]

SUM_TOLERANCE = 1e-6


@dataclass(frozen=True, kw_only=True, eq=False)
class PolicyFile:
    """A read and checked policy file: ``probs[round, item, slot - 1]`` over the catalogue
    (``shared``: one ``(items, slots)`` distribution for every round)."""

    path: Path
    layout: str  # "obp" | "long"
    sha256: str
    probs: np.ndarray  # (rounds, n_items, n_slots), or (n_items, n_slots) when shared
    shared: bool

    def target(self, rounds: np.ndarray, item_idx: np.ndarray, position: np.ndarray) -> np.ndarray:
        """pi(a_i | round_i, slot_i) for each logged round."""
        if self.shared:
            return self.probs[item_idx, position - 1]
        return self.probs[rounds, item_idx, position - 1]

    def expected(
        self, rounds: np.ndarray, position: np.ndarray, table: np.ndarray, chunk: int = 4096
    ) -> np.ndarray:
        """E_pi[table[a, slot]] for each round: sum_a pi(a | round, slot) table[a, slot]."""
        import numpy as np

        if self.shared:
            per_slot = self.probs.T @ table  # (slots, n_positions + 1)
            return per_slot[position - 1, position]
        out = np.empty(rounds.size)
        for start in range(0, rounds.size, chunk):
            stop = min(start + chunk, rounds.size)
            r, p = rounds[start:stop], position[start:stop]
            out[start:stop] = (self.probs[r, :, p - 1] @ table)[np.arange(stop - start), p]
        return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_policy_file(
    path: str | Path, *, item_ids: np.ndarray, n_rounds: int, n_slots: int
) -> PolicyFile:
    """Read ``path`` (layouts in the module docstring) against the catalogue ``item_ids``,
    the ``n_rounds`` evaluated rounds and the logs' ``n_slots`` slots; check it."""
    file = Path(path)
    where = f"{param('policy_file')} {file}"
    if not file.is_file():
        raise InputError(f"{where}: no such file")
    with file.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    shape = (n_rounds, len(item_ids), n_slots)
    if head.startswith(_NPY_MAGIC):
        probs = _read_array(file, where, item_ids, shape, npz=False)
        shared, layout = False, "obp"
    elif head[:4] in _ZIP_MAGIC:
        probs = _read_array(file, where, item_ids, shape, npz=True)
        shared, layout = False, "obp"
    elif head.startswith(_PICKLE_MAGIC):
        raise InputError(
            f"{where}: abkit does not load pickles (loading one can run arbitrary code); "
            f"save the array with {_SAVE_HINT}"
        )
    else:
        parquet = head.startswith(b"PAR1")
        if not parquet and _looks_binary(head):
            raise InputError(
                f"{where}: binary content that abkit does not read as a policy; expected an "
                ".npz or .npy file (action_dist), a Parquet file or a UTF-8 CSV"
            )
        probs, shared = _read_long(file, where, item_ids, n_rounds, n_slots, parquet)
        layout = "long"
    if probs.shape[-1] < n_slots:
        raise InputError(
            f"{where}: probabilities for {probs.shape[-1]} position(s), but the logs have "
            f"{n_slots} slots"
        )
    _check_probabilities(probs, where, shared=shared, n_slots=n_slots)
    return PolicyFile(path=file, layout=layout, sha256=_sha256(file), probs=probs, shared=shared)


_SNIFF_BYTES = 4096
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")  # a member, an empty zip, spanned
_PICKLE_MAGIC = b"\x80"  # the PROTO opcode that starts every pickle of protocol 2 and later
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd")  # gzip, zstd: DuckDB reads them
_SAVE_HINT = "numpy.savez(FILE, action_dist=array)"
_MAX_NAMES = 5  # array names quoted in a message


def _looks_binary(head: bytes) -> bool:
    """Whether the first bytes of a file are not text (a NUL byte or invalid UTF-8); a
    compressed CSV is left to DuckDB."""
    if head.startswith(_COMPRESSED_MAGIC):
        return False
    return b"\x00" in head or invalid_utf8(head)


def _shown(text: str, limit: int = 200) -> str:
    """Text from a file (an array name, an error) made safe for a one-line message."""
    return show_value(text, limit, quote=False)


def _number(value: float) -> str:
    return "NaN" if value != value else f"{value:.6g}"


def _read_array(
    file: Path,
    where: str,
    item_ids: np.ndarray,
    shape: tuple[int, int, int],
    *,
    npz: bool,
) -> np.ndarray:
    """The OBP layout: ``action_dist`` from an ``.npz`` (with its optional ``item_ids``) or
    the array of an ``.npy`` file, checked against ``shape`` (rounds, catalogue items,
    slots) and laid over the catalogue."""
    import zipfile

    import numpy as np

    label = "action_dist" if npz else "the array"
    names = None
    try:
        if npz:
            with np.load(file, allow_pickle=False) as archive:
                keys = list(archive.keys())
                if not keys:
                    raise InputError(
                        f"{where}: the .npz file holds no arrays; expected one named "
                        f"action_dist; save it with {_SAVE_HINT}"
                    )
                if "action_dist" not in keys:
                    shown = ", ".join(_shown(k) for k in keys[:_MAX_NAMES])
                    if len(keys) > _MAX_NAMES:
                        shown += f" and {len(keys) - _MAX_NAMES} more"
                    raise InputError(
                        f"{where}: expected an array named action_dist; the file holds "
                        f"{shown}; save it with {_SAVE_HINT}"
                    )
                raw = archive["action_dist"]
                if "item_ids" in keys:
                    names = archive["item_ids"]
        else:
            raw = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, ValueError) and "pickle" in str(exc):
            raise InputError(
                f"{where}: the file holds Python objects; abkit reads plain arrays only"
            ) from None
        raise InputError(f"{where}: not a readable {_kind(npz)} ({_shown(str(exc))})") from None
    if not isinstance(raw, np.ndarray):  # a zip member that is not an .npy array
        raise InputError(f"{where}: action_dist is not a NumPy array; save it with {_SAVE_HINT}")
    if raw.dtype.kind not in "biuf":
        raise InputError(
            f"{where}: {label} has dtype {raw.dtype}; expected real probabilities (float)"
        )
    n_rounds, n_items = shape[:2]
    if raw.ndim != 3:
        raise InputError(
            f"{where}: {label} has shape {raw.shape}; expected rounds x items x positions {shape}"
        )
    if raw.shape[0] != n_rounds:
        raise InputError(
            f"{where}: {label} has {raw.shape[0]:,} rounds, but {n_rounds:,} rounds are "
            "evaluated (check --variant and --split)"
        )
    if names is None and raw.shape[1] != n_items:
        hint = "; an .npz for some of them names them in an item_ids array" if npz else ""
        raise InputError(
            f"{where}: {label} has shape {raw.shape}, expected {shape} (rounds x items x "
            f"positions, the catalogue's {n_items:,} items{hint})"
        )
    dist = np.asarray(raw, dtype=np.float64)
    bad = ~np.isfinite(dist) | (dist < 0) | (dist > 1)
    if bad.any():
        at = tuple(int(v) for v in np.argwhere(bad)[0])
        raise InputError(
            f"{where}: {label}[{', '.join(map(str, at))}] is {_number(float(dist[at]))}; "
            "every probability must lie in [0, 1]"
        )
    if names is None:
        names = np.arange(dist.shape[1]).astype(str)
    else:
        if not isinstance(names, np.ndarray) or names.dtype.kind not in "iuUS":
            found = f"has dtype {names.dtype}" if isinstance(names, np.ndarray) else "is no array"
            raise InputError(f"{where}: item_ids {found}; expected item ids (strings or integers)")
        try:
            names = names.astype(str)
        except UnicodeError:
            raise InputError(f"{where}: item_ids holds bytes that are not ASCII text") from None
        if names.shape != (dist.shape[1],):
            raise InputError(f"{where}: item_ids has {names.size} ids for {dist.shape[1]} items")
    columns = _catalogue_positions(names, item_ids, where)
    out = np.zeros((n_rounds, item_ids.size, dist.shape[2]))
    out[:, columns, :] = dist
    return out


def _kind(npz: bool) -> str:
    return ".npz file" if npz else ".npy file"


def _catalogue_positions(names: np.ndarray, item_ids: np.ndarray, where: str) -> np.ndarray:
    """Index in the catalogue of each of ``names``; refuses an unknown or repeated item."""
    import numpy as np

    catalogue = np.asarray(item_ids, dtype=str)
    pos = np.clip(np.searchsorted(catalogue, names), 0, max(catalogue.size - 1, 0))
    unknown = np.flatnonzero(catalogue[pos] != names) if catalogue.size else np.arange(names.size)
    if unknown.size:
        raise InputError(
            f"{where}: item {show_value(str(names[unknown[0]]))} is not in the dataset's "
            f"catalogue ({catalogue.size} items)"
        )
    uniq, counts = np.unique(names, return_counts=True)
    if np.any(counts > 1):
        raise InputError(f"{where}: item {show_value(str(uniq[counts > 1][0]))} appears twice")
    return pos


def _read_long(
    file: Path, where: str, item_ids: np.ndarray, n_rounds: int, n_slots: int, parquet: bool
) -> tuple[np.ndarray, bool]:
    import duckdb
    import numpy as np

    con = duckdb.connect()
    try:
        reader = "read_parquet(?)" if parquet else "read_csv(?, header = true)"
        relation = con.sql(f"SELECT * FROM {reader}", params=[str(file)])
        spelled = {c.lower(): c for c in relation.columns}  # the file's own spelling
        needed = {"item", "position", "probability"}
        if not needed <= set(spelled):
            raise InputError(
                f"{where}: expected columns round, item, position, probability "
                f"(round optional); found {', '.join(_shown(c) for c in relation.columns)}"
            )
        shared = "round" not in spelled
        round_sql = "0" if shared else "CAST(round AS BIGINT)"
        rows = con.sql(
            f"SELECT {round_sql} AS round, CAST(item AS VARCHAR) AS item, "
            "CAST(position AS BIGINT) AS position, CAST(probability AS DOUBLE) AS probability "
            f"FROM {reader}",
            params=[str(file)],
        ).fetchnumpy()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{where}: cannot read it ({_shown(first)})") from None
    finally:
        con.close()

    def at(i: int) -> str:  # a data row's place in the file (the CSV header is line 1)
        return f"row {i + 1}" if parquet else f"line {i + 2}"

    for column in ("round", "item", "position", "probability"):
        if column in rows:
            empty = np.flatnonzero(np.ma.getmaskarray(rows[column]))
            if empty.size:
                raise InputError(
                    f"{where}: {at(int(empty[0]))}, column {spelled.get(column, column)} is empty"
                    + (" (missing or NaN)" if column == "probability" else "")
                )
    rounds = np.asarray(rows["round"], dtype=np.int64)
    items = np.asarray(rows["item"], dtype=str)
    position = np.asarray(rows["position"], dtype=np.int64)
    prob = np.asarray(rows["probability"], dtype=np.float64)
    if rounds.size == 0:
        raise InputError(f"{where}: no rows")
    bad = np.flatnonzero(~np.isfinite(prob) | (prob < 0) | (prob > 1))
    if bad.size:
        raise InputError(
            f"{where}: {at(int(bad[0]))}, column {spelled['probability']} is "
            f"{_number(float(prob[bad[0]]))}; every probability must lie in [0, 1]"
        )
    limit = 1 if shared else n_rounds
    bad = np.flatnonzero((rounds < 0) | (rounds >= limit))
    if bad.size:
        raise InputError(
            f"{where}: {at(int(bad[0]))}: round {rounds[bad[0]]} is not an evaluated round "
            f"(0 .. {n_rounds - 1}; check --variant and --split)"
        )
    bad = np.flatnonzero((position < 1) | (position > n_slots))
    if bad.size:
        raise InputError(
            f"{where}: {at(int(bad[0]))}: position {position[bad[0]]} is not a slot of the "
            f"logs (1 .. {n_slots})"
        )
    names, inverse = np.unique(items, return_inverse=True)
    item_pos = _catalogue_positions(names, item_ids, where)[inverse]
    shape = (limit, item_ids.size, n_slots)
    key = (rounds * item_ids.size + item_pos) * n_slots + (position - 1)
    uniq, counts = np.unique(key, return_counts=True)
    if np.any(counts > 1):
        repeat = int(np.flatnonzero(key == uniq[counts > 1][0])[1])
        raise InputError(f"{where}: {at(repeat)} repeats a (round, item, position)")
    probs = np.zeros(shape)
    probs.reshape(-1)[key] = prob
    if not shared:
        present = np.zeros(n_rounds, dtype=bool)
        present[rounds] = True
        if not present.all():
            missing = int(np.flatnonzero(~present)[0])
            raise InputError(f"{where}: round {missing} has no probabilities")
    return (probs[0] if shared else probs), shared


def _check_probabilities(probs: np.ndarray, where: str, *, shared: bool, n_slots: int) -> None:
    import numpy as np

    if not np.all(np.isfinite(probs)) or np.any((probs < 0) | (probs > 1)):
        raise InputError(f"{where}: every probability must lie in [0, 1]")
    used = probs[..., :n_slots]
    sums = used.sum(axis=-2)  # over items: (rounds, slots) or (slots,)
    off = np.abs(sums - 1) > SUM_TOLERANCE
    if off.any():
        if shared:
            slot = int(np.flatnonzero(off)[0])
            raise InputError(
                f"{where}: the probabilities of position {slot + 1} sum to "
                f"{float(sums[slot]):.6g}, expected 1"
            )
        r, slot = (int(v) for v in np.argwhere(off)[0])
        raise InputError(
            f"{where}: the probabilities of round {r}, position {slot + 1} sum to "
            f"{float(sums[r, slot]):.6g}, expected 1"
        )
