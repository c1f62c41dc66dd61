"""The aggregation SQL for other engines: ONE definition (DuckDB's, in
:mod:`abkit.data.aggregate`) compiled with sqlglot for Spark and the warehouses.

DuckDB executes the queries of :mod:`abkit.data.aggregate` as written, with bound ``?``
parameters, and never imports sqlglot. Another engine gets the same text with the parameter
values written in as literals (:func:`inline_params`; the values come from the store's own
design or the command line, and every one is rendered by sqlglot as a quoted literal, never
pasted as text) and transpiled to its dialect (:func:`compile_sql`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from abkit._util import unknown_choice
from abkit.errors import InputError, MissingExtraError, param

#: dialects ``abkit sql --dialect`` writes (sqlglot's names)
DIALECTS = ("duckdb", "spark", "bigquery", "snowflake", "trino")


def _sqlglot() -> Any:
    try:
        import sqlglot
    except ImportError:
        raise MissingExtraError("sqlglot", "sql", "translating SQL to other engines") from None
    return sqlglot


def _literal(value: Any) -> str:
    """``value`` as a DuckDB literal, built by sqlglot (strings quoted and escaped)."""
    sqlglot = _sqlglot()
    exp = sqlglot.exp
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        text = exp.Literal.string(value.isoformat(sep=" ")).sql(dialect="duckdb")
        return f"CAST({text} AS TIMESTAMP)"
    if isinstance(value, date):
        return f"CAST({exp.Literal.string(value.isoformat()).sql(dialect='duckdb')} AS DATE)"
    if isinstance(value, int | float):
        return str(exp.Literal.number(value).sql(dialect="duckdb"))
    if isinstance(value, str):
        return str(exp.Literal.string(value).sql(dialect="duckdb"))
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def inline_params(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> str:
    """The DuckDB query ``sql`` with each ``?`` placeholder (or ``$name`` when ``params`` is a
    mapping) replaced by its value's literal. Placeholders are found by sqlglot's tokenizer,
    so a ``?`` or ``$`` inside a string literal is left alone."""
    sqlglot = _sqlglot()
    from sqlglot.tokens import Tokenizer, TokenType

    del sqlglot
    tokens = Tokenizer(dialect="duckdb").tokenize(sql)
    if isinstance(params, Mapping):
        found = [t for t in tokens if t.token_type == TokenType.VAR and t.text.startswith("$")]
        values = [params[t.text[1:]] for t in found]
    else:
        found = [t for t in tokens if t.token_type == TokenType.PLACEHOLDER]
        if len(found) != len(params):
            raise ValueError(f"{len(found)} placeholders but {len(params)} parameters")
        values = list(params)
    out, last = [], 0
    for token, value in zip(found, values, strict=True):
        out.append(sql[last : token.start])
        out.append(_literal(value))
        last = token.end + 1
    out.append(sql[last:])
    return "".join(out)


@functools.lru_cache(maxsize=256)
def compile_sql(sql: str, dialect: str, *, pretty: bool = False) -> str:
    """Transpile one DuckDB statement (no placeholders left) to ``dialect``."""
    if dialect not in DIALECTS:
        raise InputError(f"{param('dialect')}: " + unknown_choice("dialect", dialect, DIALECTS))
    sqlglot = _sqlglot()
    out: list[str] = sqlglot.transpile(sql, read="duckdb", write=dialect, pretty=pretty)
    return ";\n".join(out)


def render_query(sql: str, params: Sequence[Any], dialect: str, *, pretty: bool = True) -> str:
    """The query with its values written in, in ``dialect``: what a warehouse runs."""
    return compile_sql(inline_params(sql, params), dialect, pretty=pretty)
