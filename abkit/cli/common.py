"""Options shared by every command, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout instead of a report.")
]
