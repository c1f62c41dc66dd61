"""Options shared by every command, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: ``ctx.meta`` key where every ``--json`` option records its value, for the error boundary
#: in :mod:`abkit.cli.main` (click shares ``meta`` between a group and its subcommands)
JSON_META_KEY = "abkit.json"


def _remember_json(ctx: typer.Context, value: bool) -> bool:
    ctx.meta[JSON_META_KEY] = value
    return value


DbOption = Annotated[
    Path,
    typer.Option(
        "--db",
        envvar="ABKIT_DB",
        help="The DuckDB store (default ./abkit.duckdb, or $ABKIT_DB).",
        show_default=False,
    ),
]
DEFAULT_DB = Path("abkit.duckdb")

DatasetOption = Annotated[
    str | None,
    typer.Option("--dataset", "-d", help="Dataset inside the store (default: the only one)."),
]

# eager: processed before the other options, so an error in one of them still knows --json
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print machine-readable JSON on stdout instead of a report (errors too).",
        callback=_remember_json,
        is_eager=True,
    ),
]
