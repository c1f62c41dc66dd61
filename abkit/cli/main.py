"""The ``abkit`` command: the app, its command groups, and the one error boundary.

Each command module registers its commands on the app; library code raises
:class:`abkit.errors.AbkitError`, and :class:`_AbkitGroup` turns it into one line on stderr and
an exit code (0 ok, 1 a verdict failed, 2 usage or data error, 130 interrupted).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import import_module
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from abkit import __version__
from abkit.cli.common import JSON_META_KEY
from abkit.errors import AbkitError

try:  # recent typer vendors click as typer._click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import UsageError  # type: ignore[no-redef]

# Command modules, each with a ``register(app)``; imported at start-up, so they keep
# their heavy imports inside the command functions.
COMMAND_MODULES = (
    "abkit.cli.demo",
    "abkit.cli.simulate",
    "abkit.cli.ingest",
    "abkit.cli.info",
    "abkit.cli.stats",
    "abkit.cli.replay",
    "abkit.cli.gate",
    "abkit.cli.bench",
)


def json_requested(ctx: Any, args: Sequence[str] = ()) -> bool:
    """Whether the command being run was given ``--json``.

    Every ``--json`` option (:data:`abkit.cli.common.JsonOption`) is eager and records its
    parsed value in ``ctx.meta``, which click shares between a group and its subcommands. When
    parsing failed before options were processed (an unknown option), the raw ``args`` decide:
    a ``--json`` token before ``--``.
    """
    if JSON_META_KEY in ctx.meta:
        return bool(ctx.meta[JSON_META_KEY])
    words = list(args)
    if "--" in words:
        words = words[: words.index("--")]
    return "--json" in words


class _AbkitGroup(TyperGroup):
    """The error boundary: every command runs inside :meth:`invoke`.

    An error becomes one line on stderr (``error: ...``, cut to
    :data:`abkit.cli.render.ERROR_LIMIT` characters) and an exit code; with ``--json`` stdout
    also gets ``{"error": {"message", "kind", "exit_code"}}`` so a script reading stdout
    always gets JSON.
    """

    def invoke(self, ctx: Any) -> Any:
        args = list(ctx.args)  # the subcommand's words, before the group consumes them
        try:
            return super().invoke(ctx)
        except AbkitError as exc:
            self._fail(ctx, args, str(exc), type(exc).__name__, exc.exit_code)
        except OSError as exc:
            # a file the user named cannot be read or written (permissions, missing folder,
            # full disk): one line, as for any bad input
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            self._fail(ctx, args, f"{where}{exc.strerror or exc}", type(exc).__name__, 2)
        except UsageError as exc:
            # typer prints its own usage message on stderr (and exits 2); add the JSON
            if json_requested(ctx, args):
                from abkit.cli import render

                render.error_json(exc.format_message(), kind="UsageError", exit_code=exc.exit_code)
            raise
        except Exception as exc:
            duckdb = sys.modules.get("duckdb")
            if duckdb is None or not isinstance(exc, duckdb.Error):
                raise
            # DuckDB refused something abkit did not anticipate; one line, no traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._fail(ctx, args, f"database error: {first}", "DatabaseError", 2)
        except KeyboardInterrupt:
            self._fail(ctx, args, "interrupted; nothing was written", "Interrupted", 130)

    @staticmethod
    def _fail(ctx: Any, args: Sequence[str], message: str, kind: str, exit_code: int) -> NoReturn:
        from abkit.cli import render

        if json_requested(ctx, args):
            render.error_json(message, kind=kind, exit_code=exit_code)
        render.error(message)
        raise typer.Exit(exit_code) from None

    def list_commands(self, ctx: Any) -> list[str]:
        # Keep the order in which commands were registered (the order of the workflow).
        return list(self.commands)


app = typer.Typer(
    cls=_AbkitGroup,
    name="abkit",
    help=(
        "Check recommender uplift claims rigorously from logged e-commerce traffic.\n\n"
        "Start with `abkit demo`. Every command takes --db (default ./abkit.duckdb or $ABKIT_DB)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"abkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Check recommender uplift claims rigorously from logged e-commerce traffic."""


for _module in COMMAND_MODULES:
    import_module(_module).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
