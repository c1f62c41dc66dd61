"""The ``abkit`` command: the app, its command groups, and the one error boundary.

Each command module registers its commands on the app; library code raises
:class:`abkit.errors.AbkitError`, and :class:`_AbkitGroup` turns it into one line on stderr and
an exit code (0 ok, 1 a verdict failed, 2 usage or data error, 130 interrupted).
"""

from __future__ import annotations

import signal
import sys
import warnings
from importlib import import_module
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from abkit import __version__
from abkit.errors import AbkitError, AbkitWarning

# Set by the SIGINT handler of :func:`main`: DuckDB turns Ctrl-C during a query into
# RuntimeError("Query interrupted"), which must exit 130 like any KeyboardInterrupt.
_interrupted = False

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


class _AbkitGroup(TyperGroup):
    """The error boundary: every command runs inside :meth:`invoke`."""

    def invoke(self, ctx: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", AbkitWarning)
                warnings.showwarning = _warning_printer(warnings.showwarning)
                return super().invoke(ctx)
        except AbkitError as exc:
            if _interrupted:  # e.g. a write that failed because Ctrl-C stopped its query
                return self._interrupted()
            from abkit.cli import render

            render.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            # a file the user named cannot be read or written (permissions, missing folder,
            # full disk): one line, as for any bad input
            from abkit.cli import render

            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            render.error(f"{where}{exc.strerror or exc}")
            raise typer.Exit(2) from None
        except Exception as exc:
            if _interrupted:
                return self._interrupted()
            duckdb = sys.modules.get("duckdb")
            if duckdb is None or not isinstance(exc, duckdb.Error):
                raise
            # DuckDB refused something abkit did not anticipate; one line, no traceback
            from abkit.cli import render

            render.error(f"database error: {str(exc).strip().splitlines()[0]}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            return self._interrupted()

    @staticmethod
    def _interrupted() -> None:
        from abkit.cli import render

        render.error("interrupted; nothing was written")
        raise typer.Exit(130) from None

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


def _warning_printer(fallback: Any) -> Any:
    """A ``warnings.showwarning`` that prints abkit's own warnings as one ``warning:`` line
    and hands any other warning to ``fallback``."""

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(category, type) and issubclass(category, AbkitWarning):
            from abkit.cli import render

            render.warning(str(message))
            return
        fallback(message, category, *args, **kwargs)

    return show


def _on_sigint(signum: int, frame: Any) -> None:
    global _interrupted
    _interrupted = True
    signal.default_int_handler(signum, frame)


def main() -> None:
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
    app()


if __name__ == "__main__":
    main()
