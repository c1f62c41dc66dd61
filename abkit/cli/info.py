"""`abkit info`: what a store holds."""

from __future__ import annotations

import typer

from abkit.cli import render
from abkit.cli.common import (
    DEFAULT_DB,
    DatasetOption,
    DbOption,
    EngineOption,
    JsonOption,
    SourceOption,
    SparkMasterOption,
)
from abkit.data.info import store_info


def info(
    db: DbOption = DEFAULT_DB,
    dataset: DatasetOption = None,
    engine: EngineOption = "duckdb",
    source: SourceOption = None,
    spark_master: SparkMasterOption = None,
    json: JsonOption = False,
) -> None:
    """Show the datasets in a store: tables, row counts, time range, arms, planted truth."""

    result = store_info(
        db, dataset=dataset, engine=engine, source=source, spark_master=spark_master
    )
    if json:
        render.print_json(result.to_dict())
    else:
        render.store_info(result, selected=dataset is not None)


def register(app: typer.Typer) -> None:
    app.command("info")(info)
