"""The ``abkit`` command: the app, its command groups, and the one error boundary.

Each command module (one per command group) registers its commands with ``register(app)``;
:data:`COMMANDS` says which module holds which command, and a module is imported only when one
of its commands runs. Library code raises :class:`abkit.errors.AbkitError`, and
:class:`_AbkitGroup` turns it into one line on stderr and an exit code (0 ok, 1 a verdict
failed, 2 usage or data error, 130 interrupted).
"""

from __future__ import annotations

import functools
import signal
import sys
import warnings
from collections.abc import Sequence
from importlib import import_module
from typing import Annotated, Any, NoReturn

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from abkit import __version__
from abkit.cli import render
from abkit.cli.common import JSON_META_KEY, flag
from abkit.errors import AbkitError, AbkitWarning

# Set by the SIGINT handler of :func:`main`: DuckDB turns Ctrl-C during a query into
# RuntimeError("Query interrupted"), which must exit 130 like any KeyboardInterrupt.
_interrupted = False

try:  # recent typer vendors click as typer._click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import UsageError  # type: ignore[no-redef]

# command -> (the module whose ``register(app)`` adds it, the line ``abkit --help`` shows).
# Modules are imported only when their command runs (or shows its own help), so ``abkit
# --help`` and each command import only what they need; tests/cli/test_main.py pins every
# line here to the command's own docstring.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "abkit.cli.demo",
        "Simulate a shop's traffic and walk through replay, compare and gate on it.",
    ),
    "simulate": (
        "abkit.cli.simulate",
        "Simulate e-commerce traffic with a carousel A/B test and a planted, known truth.",
    ),
    "ingest": (
        "abkit.cli.ingest",
        "Load a CSV, CSV.gz or Parquet log into the store, whole or not at all.",
    ),
    "export": (
        "abkit.cli.ingest",
        "Write a store (or one dataset) as Parquet, one folder per table, for Spark.",
    ),
    "info": (
        "abkit.cli.info",
        "Show the datasets in a store: tables, row counts, time range, arms, planted truth.",
    ),
    "datasets": (
        "abkit.cli.datasets",
        "List the datasets of a store or drop one (`abkit datasets drop NAME`).",
    ),
    "compare": (
        "abkit.cli.compare",
        "Compare A/B arms: effects with intervals, the SRM check, and an honest claim verdict.",
    ),
    "sql": (
        "abkit.cli.sql",
        "Print the SQL a warehouse runs to produce the sufficient statistics of `abkit compare`.",
    ),
    "power": (
        "abkit.cli.power",
        "Sample size per arm, minimum detectable effect, or power, before running a test.",
    ),
    "replay": (
        "abkit.cli.replay",
        "Replay a recommender offline: ranking metrics per user, optional off-policy estimates.",
    ),
    "runs": (
        "abkit.cli.replay",
        "List the stored replay runs (oldest first); `abkit runs delete RUN...` deletes.",
    ),
    "models": (
        "abkit.cli.models",
        "List the installed recommenders; `abkit models import` brings your own ONNX model, "
        "`abkit models check-accuracy` checks an accuracy claim.",
    ),
    "train": ("abkit.cli.replay", "Train a model on a store's training split (needs torch)."),
    "run": (
        "abkit.cli.gate",
        "Run an experiment spec: replay every model and compare them, paired by user.",
    ),
    "baseline": (
        "abkit.cli.gate",
        "Save a replay run as a baseline JSON file for `abkit gate`.",
    ),
    "gate": (
        "abkit.cli.gate",
        "Fail CI on a significant metric regression (exit 0 pass, 1 fail, 2 error).",
    ),
    "report": (
        "abkit.cli.report",
        "Write an HTML (or Markdown) report: arms, lift, days, power, models, gates, with charts.",
    ),
    "bench": (
        "abkit.cli.bench",
        "Measure abkit's hot paths against the references users would otherwise pick.",
    ),
}

# what every command's own typer app shares with the top-level one
_APP_SETTINGS: dict[str, Any] = {
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": "markdown",
    "context_settings": {"help_option_names": ["-h", "--help"]},
}


@functools.cache
def _module_commands(module: str) -> dict[str, Any]:
    """The click commands a command module registers, built on first use."""
    sub = typer.Typer(**_APP_SETTINGS)
    import_module(module).register(sub)
    return dict(typer.main.get_group(sub).commands)


def load_command(name: str) -> Any:
    """The real click command ``name`` (importing its module)."""
    return _module_commands(COMMANDS[name][0])[name]


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
            with warnings.catch_warnings():
                warnings.simplefilter("always", AbkitWarning)
                warnings.showwarning = _warning_printer(warnings.showwarning)
                return super().invoke(ctx)
        except AbkitError as exc:
            if _interrupted:  # e.g. a write that failed because Ctrl-C stopped its query
                self._fail_interrupted(ctx, args)
            self._fail(ctx, args, exc.render(flag), type(exc).__name__, exc.exit_code)
        except OSError as exc:
            # a file the user named cannot be read or written (permissions, missing folder,
            # full disk): one line, as for any bad input
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            self._fail(ctx, args, f"{where}{exc.strerror or exc}", type(exc).__name__, 2)
        except UsageError as exc:
            # typer prints its own usage message on stderr (and exits 2); add the JSON
            if json_requested(ctx, args):
                render.error_json(exc.format_message(), kind="UsageError", exit_code=exc.exit_code)
            raise
        except Exception as exc:
            if _interrupted:
                self._fail_interrupted(ctx, args)
            duckdb = sys.modules.get("duckdb")
            if duckdb is None or not isinstance(exc, duckdb.Error):
                raise
            # DuckDB refused something abkit did not anticipate; one line, no traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._fail(ctx, args, f"database error: {first}", "DatabaseError", 2)
        except KeyboardInterrupt:
            self._fail_interrupted(ctx, args)

    @staticmethod
    def _fail(ctx: Any, args: Sequence[str], message: str, kind: str, exit_code: int) -> NoReturn:
        if json_requested(ctx, args):
            render.error_json(message, kind=kind, exit_code=exit_code)
        render.error(message)
        raise typer.Exit(exit_code) from None

    def _fail_interrupted(self, ctx: Any, args: Sequence[str]) -> NoReturn:
        self._fail(ctx, args, "interrupted; nothing was written", "Interrupted", 130)

    def list_commands(self, ctx: Any) -> list[str]:
        # the order of the workflow, not alphabetical
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:
            # `abkit --help` lists every command: show its line without importing its module
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name][1], rich_markup_mode="markdown")
        return load_command(cmd_name)

    _listing = False

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=_AbkitGroup,
    name="abkit",
    help=(
        "Check recommender uplift claims rigorously from logged e-commerce traffic.\n\n"
        "Start with `abkit demo`. Every command that reads or writes a store takes --db (default "
        "./abkit.duckdb or $ABKIT_DB; sql has no default)."
    ),
    no_args_is_help=True,
    **_APP_SETTINGS,
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


def _warning_printer(fallback: Any) -> Any:
    """A ``warnings.showwarning`` that prints abkit's own warnings as one ``warning:`` line
    and hands any other warning to ``fallback``."""

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(category, type) and issubclass(category, AbkitWarning):
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
