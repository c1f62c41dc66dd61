"""Options shared by every command, declared once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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

WaitOption = Annotated[
    float,
    typer.Option(
        "--wait",
        metavar="SECONDS",
        help="When another process has the store open, retry for up to this many seconds "
        "(checked before the work starts) instead of failing at once.",
    ),
]


@contextmanager
def offer_wait(wait: float) -> Iterator[None]:
    """A command with ``--wait``: a lock error without it suggests the option."""
    from abkit.errors import StoreLockedError

    try:
        yield
    except StoreLockedError as exc:
        if wait > 0 or not exc.holder:
            raise
        raise StoreLockedError(
            f"{exc.path}: the database is locked by {exc.holder}; pass --wait SECONDS to wait "
            "for it, or another --db",
            path=exc.path,
            holder=exc.holder,
        ) from None
