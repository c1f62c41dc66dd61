"""``abkit sql``: print the aggregation query of ``abkit compare`` for a warehouse."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from abkit.cli import render
from abkit.cli.common import (
    DatasetOption,
    EventOption,
    JsonOption,
    MetricOption,
    RatioOption,
)
from abkit.compare.warehouse import aggregation_sql


def sql(
    dialect: Annotated[
        str, typer.Option(help="duckdb, spark, bigquery, snowflake or trino.")
    ] = "duckdb",
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="Read the experiment's design (unit, window) from this store; without it, "
            "give --dataset, --experiment and the window.",
            show_default=False,
        ),
    ] = None,
    dataset: DatasetOption = None,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment inside the dataset.", show_default=False)
    ] = None,
    metric: MetricOption = None,
    event: EventOption = None,
    ratio: RatioOption = "clicks_per_impression",
    cuped: Annotated[
        bool, typer.Option("--cuped", help="Add the pre-period covariate sums (CUPED).")
    ] = False,
    unit: Annotated[
        str, typer.Option(help="Without --db: user, or impression (one unit per impression).")
    ] = "user",
    start: Annotated[
        datetime | None,
        typer.Option(help="Without --db: the experiment's start (UTC).", show_default=False),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option(
            help="Without --db: the experiment's end, exclusive (UTC).", show_default=False
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Print the SQL a warehouse runs to produce the sufficient statistics of `abkit compare`.

    The query reads the tables of the abkit schema (see `abkit export`) and returns one row per
    metric and arm with the columns metric, arm, units, y_sum, y_sum_sq, d_sum, d_sum_sq,
    yd_sum, x_sum, x_sum_sq, xy_sum, row_y_sum_sq, value_rows, x_rows. Save its result as CSV,
    Parquet or JSON and run `abkit compare --aggregates FILE` for the inference. It is the
    query DuckDB runs for `abkit compare`, compiled to the dialect by sqlglot (needs
    pip install "abkit-lift[sql]").
    """
    text = aggregation_sql(
        dialect,
        db=db,
        dataset=dataset,
        experiment=experiment,
        metrics=tuple(metric or ("conversion",)),
        event=event,
        ratio=ratio,
        cuped=cuped,
        unit=unit,
        start=start,
        end=end,
    )
    if json:
        render.print_json({"dialect": dialect, "sql": text})
    else:
        typer.echo(text + ";")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("sql")(sql)
