"""The one place identifiers are quoted. Values always travel as bound parameters."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """Quote a SQL identifier for DuckDB, doubling embedded double quotes.

    Every table or column name that reaches SQL text goes through here; values never do
    (they are passed as ``?`` parameters).
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"invalid SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'
