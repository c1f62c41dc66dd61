"""``abkit datasets``: list the datasets of a store (as `abkit info`) and drop one."""

from __future__ import annotations

from typing import Annotated

import typer

from abkit.cli import render
from abkit.cli.common import (
    DEFAULT_DB,
    DatasetOption,
    DbOption,
    DryRunOption,
    JsonOption,
    YesOption,
    confirm_deletion,
    reject_group_options,
)
from abkit.cli.info import info
from abkit.data.datasets import drop_dataset


def list_command(
    db: DbOption = DEFAULT_DB, dataset: DatasetOption = None, json_output: JsonOption = False
) -> None:
    """Show the datasets in a store (the same report as `abkit info`)."""

    info(db=db, dataset=dataset, json=json_output)


def drop_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The dataset to delete.")],
    db: DbOption = DEFAULT_DB,
    with_runs: Annotated[
        bool,
        typer.Option(
            "--with-runs",
            help="Also delete the replay runs of the dataset (otherwise they block the drop).",
        ),
    ] = False,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    """Delete a dataset: its events, impressions, assignments, experiments, items, truth
    and ingest records, in one transaction.

    Refused while replay runs of the dataset exist (the message names them): delete them
    with `abkit runs delete RUN...` first, or pass --with-runs. Asks first unless --yes;
    without a terminal, --yes is required.
    """
    plan = drop_dataset(db, name, with_runs=with_runs, dry_run=True)
    if not dry_run:
        runs = f" and its {len(plan.runs)} replay run(s)" if plan.runs else ""
        confirm_deletion(f"Drop dataset '{plan.dataset}'{runs} from {db}?", yes=yes)
        plan = drop_dataset(db, plan.dataset, with_runs=with_runs)
    if json_output:
        render.print_json(plan.to_dict())
        return
    verb = "would drop" if dry_run else "dropped"
    counts = ", ".join(
        f"{n:,} {table}"
        for table, n in plan.rows.items()
        if n and table not in ("runs", "datasets")
    )
    runs = f" and {len(plan.runs)} replay run(s)" if plan.runs else ""
    render.line(f"{verb} dataset {plan.dataset}{runs} ({counts})")


def datasets_group(
    ctx: typer.Context,
    db: DbOption = DEFAULT_DB,
    json_output: JsonOption = False,
) -> None:
    """List the datasets of a store (`abkit datasets list`, as `abkit info`) or drop one
    (`abkit datasets drop NAME`)."""
    if ctx.invoked_subcommand is None:
        list_command(db=db, json_output=json_output)
        return

    reject_group_options(ctx, "datasets")


def register(app: typer.Typer) -> None:
    datasets_app = typer.Typer(
        help="List the datasets of a store or drop one (`abkit datasets drop NAME`).",
        invoke_without_command=True,
        no_args_is_help=False,
    )
    datasets_app.callback()(datasets_group)
    datasets_app.command("list")(list_command)
    datasets_app.command("drop")(drop_command)
    app.add_typer(datasets_app, name="datasets")
