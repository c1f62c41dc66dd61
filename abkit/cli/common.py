"""Options shared by every command, declared once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from abkit._util import RELATIVE_METAVAR, parse_relative, show_value
from abkit.cli import render
from abkit.errors import InputError, StoreLockedError

try:  # recent typer vendors click as typer._click
    from typer._click.types import ParamType
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import ParamType  # type: ignore[no-redef]

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

YesOption = Annotated[
    bool,
    typer.Option(
        "--yes",
        "-y",
        help="Do not ask for confirmation (needed without a terminal, e.g. in scripts).",
    ),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Only show what would be deleted; delete nothing.")
]


def stdin_is_tty() -> bool:
    """Whether a person can answer a prompt (tests replace this)."""
    import sys

    return sys.stdin is not None and sys.stdin.isatty()


def confirm_deletion(question: str, *, yes: bool) -> None:
    """Ask ``question`` on stderr unless ``yes``; without a terminal, refuse with one line
    (exit 2) saying to pass --yes. A "no" ends the command with exit code 1, deleting
    nothing."""
    if yes:
        return

    if not stdin_is_tty():
        raise InputError(
            "not deleting without confirmation: there is no terminal to ask on; "
            "pass --yes to delete"
        )
    if not typer.confirm(question, default=False, err=True):
        render.note("nothing deleted")
        raise typer.Exit(1)


def reject_group_options(ctx: typer.Context, group: str) -> None:
    """Refuse options given before a subcommand (``abkit runs --db X delete RUN``): they
    belong to the listing, and the subcommand would silently use its own default store."""

    given = [
        param.opts[0]
        for param in ctx.command.params
        if param.name
        and getattr(ctx.get_parameter_source(param.name), "name", None) == "COMMANDLINE"
    ]
    if given:
        raise InputError(
            f"{', '.join(given)}: put options after the subcommand, e.g. "
            f"`abkit {group} {ctx.invoked_subcommand} ... {given[0]} ...`"
        )


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


# -- relative options: --claim, --mde, --max-drop, --lift ------------------------------------


class RelativeType(ParamType):
    """A relative option typed the way people type it: ``0.2`` or ``20%`` (both +20%).

    The rule is :func:`abkit._util.parse_relative`'s, the same for every relative option and
    spec key: a bare number is a fraction in (-1, 1), a value with ``%`` is divided by 100 and
    may be any size (``150%``), so ``--claim 20`` is refused with "did you mean 0.2 (+20%)?"
    instead of being read as +2000%. With ``absolute_option`` (the parameter name of a
    ``--absolute`` flag, which must be eager so that it is known first), a set flag makes the
    value a difference in the metric's own units: bare numbers as they are, ``%`` refused.

    A bad value is refused while the options are parsed, before any work, as one line through
    the CLI's error boundary (an :class:`InputError` naming the option and the value as typed).
    """

    name = "relative"

    def __init__(
        self, noun: str = "lift", *, signed: bool = True, absolute_option: str | None = None
    ) -> None:
        self.noun = noun
        self.signed = signed
        self.absolute_option = absolute_option

    def get_metavar(self, param: Any, ctx: Any = None) -> str:
        return RELATIVE_METAVAR

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        absolute = bool(
            self.absolute_option and ctx is not None and ctx.params.get(self.absolute_option)
        )
        flag_name = f"--{self.absolute_option.replace('_', '-')}" if self.absolute_option else ""
        try:
            return parse_relative(
                value,
                noun=self.noun,
                signed=self.signed,
                absolute=absolute,
                absolute_hint=f" (or leave out {flag_name} for a relative {str(value).strip()})",
            )
        except InputError as exc:
            option = param.opts[0] if param is not None and param.opts else "value"
            raise InputError(f"{option} {show_value(value, quote=False)}: {exc}") from None


def relative_option(
    help: str,
    *,
    noun: str = "lift",
    signed: bool = True,
    absolute_option: str | None = None,
    show_default: bool = False,
) -> Any:
    """A ``typer.Option`` read by :class:`RelativeType`, its metavar ``FRACTION|PCT%``."""
    return typer.Option(
        click_type=RelativeType(noun, signed=signed, absolute_option=absolute_option),
        metavar=RELATIVE_METAVAR,
        help=help,
        show_default=show_default,
    )


#: the rule of :class:`RelativeType` in words, for the options' help
RELATIVE_RULE = (
    "A bare number is a fraction in (-1, 1); with % any size (+100% or more needs the % form, "
    "e.g. 150%)."
)


# library parameter -> its command-line flag, where the flag is not ``--`` + the name with
# ``_`` as ``-``. The one place that translates what the library says (``alpha must be ...``)
# into what the command line says (``--alpha must be ...``); see abkit.errors.
FLAGS: dict[str, str] = {
    "metrics": "--metric",
    "ks": "--k",
    "params": "--param",
    "estimators": "--estimator",
    "mapping": "--map",
    "n_per_arm": "--n",
    "target_power": "--power",
    "n_resamples": "--bootstrap",
}


def flag(parameter: str) -> str:
    """The command-line flag of a library parameter."""
    return FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


# -- where the aggregation runs (`--engine spark`, abkit.data.engines) ---------------------------

EventOption = Annotated[
    str | None,
    typer.Option(
        help="Event type that counts: purchase by default (click for impression logs).",
        show_default=False,
    ),
]

MetricOption = Annotated[
    list[str] | None,
    typer.Option(
        "--metric",
        "-m",
        help="conversion (share of units with >= 1 --event), mean (value per unit, Welch) "
        "or ratio (delta method, see --ratio). Repeat for several; default conversion.",
        show_default=False,
    ),
]

RatioOption = Annotated[
    str,
    typer.Option(
        help="Which ratio metric: clicks_per_impression, revenue_per_order, orders_per_session."
    ),
]

EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="duckdb (the store, default) or spark (Apache Spark over --source; needs "
        'pip install "abkit-lift[spark]" and Java 17+).',
    ),
]
SourceOption = Annotated[
    str | None,
    typer.Option(
        "--source",
        help="With --engine spark: a folder written by `abkit export` (a path or a "
        "Hadoop-compatible URI such as s3a://bucket/abkit) or catalog:DB (abkit tables in a "
        "Spark catalog database).",
        show_default=False,
    ),
]
SparkMasterOption = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        help="Spark master URL (default local[*]); Spark Connect is used when $SPARK_REMOTE "
        "is set.",
        show_default=False,
    ),
]
