"""Read a file of predicted probabilities and labels (``abkit models check-accuracy
--scores FILE``): CSV (with a header; ``.csv``, ``.csv.gz``, ``.tsv``) or Parquet, columns
``score`` and ``label``, other columns ignored. Read by DuckDB; every bad row is refused
naming the file, the row (1-based, data rows) and the value."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from abkit.data.sql import quote_ident
from abkit.errors import InputError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["read_scores"]

_LABELS = {"0": 0, "1": 1, "false": 0, "true": 1, "0.0": 0, "1.0": 1}


def read_scores(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(scores float64, labels int64) from ``path``; see the module docstring."""
    import duckdb
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    name = path.name.lower()
    con = duckdb.connect()
    try:
        try:
            if name.endswith(".parquet"):
                relation = con.read_parquet(str(path))
            elif name.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
                relation = con.read_csv(str(path), header=True, all_varchar=True)
            else:
                raise InputError(f"{path}: expected a .csv, .csv.gz, .tsv or .parquet file")
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            raise InputError(f"{path}: cannot read it ({first[:200]})") from None
        columns = {c.lower(): c for c in relation.columns}
        missing = [c for c in ("score", "label") if c not in columns]
        if missing:
            raise InputError(
                f"{path}: missing column(s) {', '.join(missing)}; expected columns score and "
                f"label, found {', '.join(relation.columns)}"
            )
        relation.create_view("scores_source")
        score, label = quote_ident(columns["score"]), quote_ident(columns["label"])
        table = con.execute(
            f"SELECT CAST({score} AS VARCHAR) AS raw_score, "
            f"TRY_CAST(CAST({score} AS VARCHAR) AS DOUBLE) AS score, "
            f"lower(trim(CAST({label} AS VARCHAR))) AS label FROM scores_source"
        ).fetchnumpy()
    finally:
        con.close()
    raw = np.asarray(table["raw_score"], dtype=object)
    values = np.ma.filled(np.ma.asarray(table["score"], dtype=np.float64), np.nan)
    labels = np.asarray(table["label"], dtype=object)
    if values.size == 0:
        raise InputError(f"{path}: no rows")
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values > 1))
    if bad.size:
        row = int(bad[0])
        raise InputError(
            f"{path}, row {row + 1}: score {raw[row]!r:.40} is not a probability in [0, 1]"
        )
    codes = np.fromiter((_LABELS.get(str(v), -1) for v in labels), np.int64, labels.size)
    wrong = np.flatnonzero(codes < 0)
    if wrong.size:
        row = int(wrong[0])
        value = labels[row]
        raise InputError(
            f"{path}, row {row + 1}: label {value!r:.40} is not 0 or 1"
            if value is not None
            else f"{path}, row {row + 1}: label is empty"
        )
    return values, codes
