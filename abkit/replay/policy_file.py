"""Outside policies given as action probabilities (``abkit replay --policy-file FILE``).

A policy file says, for every evaluated round and slot, how likely the policy is to show each
item: pi(a | round, slot). Two layouts are read:

* **OBP** (the Open Bandit Pipeline's ``action_dist``): an ``.npz`` (read with
  ``allow_pickle=False``) holding one 3-D float array ``action_dist`` of shape
  rounds x items x positions (or its only array). Axis 1 index k is the item whose id is
  ``k`` (OBP's item ids are 0 .. n-1), unless the file also holds a string array
  ``item_ids`` naming them; axis 2 index j is slot j + 1 (the logs' 1-based positions).
* **long**: a CSV or Parquet table with columns ``round, item, position, probability``, one row
  per (round, item, slot) with a nonzero probability (a missing row is probability 0). Without
  a ``round`` column the same distribution applies to every round (a context-free policy).
  ``position`` is the logs' slot number (1-based); ``item`` the item id.

Rounds are the evaluated impressions in impression-id order, numbered from 0 (for the Open
Bandit logs, the rows of the log file, as OBP numbers them): with ``--variant`` only that
variant's impressions, with a temporal split only the later ones. The file must match them:
refusals name the file and what was expected, for a wrong shape or number of rounds, an
unknown round or item, a probability outside [0, 1], a duplicate row, and probabilities that
do not sum to 1 (within 1e-6) over the items of a round and slot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from abkit._util import show_value
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
        magic = fh.read(4)
    if magic == b"PK\x03\x04":
        probs, shared, layout = _read_npz(file, where, item_ids, n_rounds), False, "obp"
    else:
        probs, shared = _read_long(file, where, item_ids, n_rounds, n_slots, magic == b"PAR1")
        layout = "long"
    if probs.shape[-1] < n_slots:
        raise InputError(
            f"{where}: probabilities for {probs.shape[-1]} position(s), but the logs have "
            f"{n_slots} slots"
        )
    _check_probabilities(probs, where, shared=shared, n_slots=n_slots)
    return PolicyFile(path=file, layout=layout, sha256=_sha256(file), probs=probs, shared=shared)


def _read_npz(file: Path, where: str, item_ids: np.ndarray, n_rounds: int) -> np.ndarray:
    import zipfile

    import numpy as np

    try:
        with np.load(file, allow_pickle=False) as npz:
            keys = list(npz.keys())
            key = "action_dist" if "action_dist" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise InputError(
                    f"{where}: expected an array named action_dist (found {', '.join(keys)})"
                )
            dist = np.asarray(npz[key], dtype=np.float64)
            names = np.asarray(npz["item_ids"]).astype(str) if "item_ids" in keys else None
    except ValueError as exc:
        if "pickle" in str(exc):
            raise InputError(
                f"{where}: the file holds Python objects; abkit reads plain arrays only"
            ) from None
        raise InputError(f"{where}: not a readable .npz file ({exc})") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{where}: not a readable .npz file ({exc})") from None
    if dist.ndim != 3:
        raise InputError(
            f"{where}: action_dist has shape {dist.shape}; expected rounds x items x positions"
        )
    if dist.shape[0] != n_rounds:
        raise InputError(
            f"{where}: action_dist has {dist.shape[0]:,} rounds, but {n_rounds:,} rounds are "
            "evaluated (check --variant and --split)"
        )
    if names is None:
        names = np.arange(dist.shape[1]).astype(str)
    elif names.shape != (dist.shape[1],):
        raise InputError(f"{where}: item_ids has {names.size} ids for {dist.shape[1]} items")
    columns = _catalogue_positions(names, item_ids, where)
    out = np.zeros((n_rounds, item_ids.size, dist.shape[2]))
    out[:, columns, :] = dist
    return out


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
        columns = [c.lower() for c in relation.columns]
        needed = {"item", "position", "probability"}
        if not needed <= set(columns):
            raise InputError(
                f"{where}: expected columns round, item, position, probability "
                f"(round optional); found {', '.join(relation.columns)}"
            )
        shared = "round" not in columns
        round_sql = "0" if shared else "CAST(round AS BIGINT)"
        rows = con.sql(
            f"SELECT {round_sql} AS round, CAST(item AS VARCHAR) AS item, "
            "CAST(position AS BIGINT) AS position, CAST(probability AS DOUBLE) AS probability "
            f"FROM {reader}",
            params=[str(file)],
        ).fetchnumpy()
    except duckdb.Error as exc:
        raise InputError(f"{where}: cannot read it ({str(exc).splitlines()[0]})") from None
    finally:
        con.close()
    rounds = np.asarray(rows["round"], dtype=np.int64)
    items = np.asarray(rows["item"], dtype=str)
    position = np.asarray(rows["position"], dtype=np.int64)
    prob = np.asarray(rows["probability"], dtype=np.float64)
    if rounds.size == 0:
        raise InputError(f"{where}: no rows")
    limit = 1 if shared else n_rounds
    bad = np.flatnonzero((rounds < 0) | (rounds >= limit))
    if bad.size:
        raise InputError(
            f"{where}: row {bad[0] + 1}: round {rounds[bad[0]]} is not an evaluated round "
            f"(0 .. {n_rounds - 1}; check --variant and --split)"
        )
    bad = np.flatnonzero((position < 1) | (position > n_slots))
    if bad.size:
        raise InputError(
            f"{where}: row {bad[0] + 1}: position {position[bad[0]]} is not a slot of the logs "
            f"(1 .. {n_slots})"
        )
    names, inverse = np.unique(items, return_inverse=True)
    item_pos = _catalogue_positions(names, item_ids, where)[inverse]
    shape = (limit, item_ids.size, n_slots)
    key = (rounds * item_ids.size + item_pos) * n_slots + (position - 1)
    uniq, counts = np.unique(key, return_counts=True)
    if np.any(counts > 1):
        first = int(np.flatnonzero(key == uniq[counts > 1][0])[1])
        raise InputError(f"{where}: row {first + 1} repeats a (round, item, position)")
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
