"""`abkit ingest FILE`: load a CSV / CSV.gz / Parquet log (library: abkit.data.ingest)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from abkit.cli import render
from abkit.cli.common import DEFAULT_DB, DbOption, JsonOption, WaitOption, offer_wait
from abkit.data.ingest import ingest_file
from abkit.data.parquet import FORMAT_NAME, export_store, ingest_export
from abkit.errors import InputError
from abkit.stats.shares import parse_named_split

if TYPE_CHECKING:
    from abkit.data.ingest import IngestResult

_HELP = "\n\n".join(
    [
        "Load a CSV, CSV.gz or Parquet log into the store, whole or not at all.",
        "Interaction logs (user_id, event_type, ts [, session_id, item_id, value]) go to "
        "`events`; recommendation impressions (ts, item_id, position, propensity, click ...) "
        "to `impressions`. A `variant` column (or --variant) also records each user's A/B "
        "arm, so a plain export of `user_id, variant, event_type, ts[, item_id, value]` is "
        "enough for an A/B analysis.",
        "Timestamps: ISO 8601 (converted to UTC; no offset means UTC) or epoch numbers: "
        "milliseconds when every value is >= 1e11, seconds when every value is below (else "
        "pass --ts-unit). Row numbers in messages count data rows from 1, not the header "
        "line. Ingesting the same file into the same dataset twice is refused. Integer "
        "columns (click, conversion, position) take whole numbers only. Exact duplicate rows "
        "are kept with a warning (--dedupe drops them); timestamps before 1990 or more than a "
        "day ahead are stored with a warning.",
        "`--format abkit-parquet` reads a folder written by `abkit export` back (every "
        "dataset, or only --dataset), table by table, whole or not at all.",
        "Examples: `abkit ingest events.csv --map user_id=customer --map ts=created_at`; "
        "`abkit ingest obd/random/all/all.csv.gz` then `abkit ingest obd/bts/all/all.csv.gz` "
        "(two variants of one experiment); `abkit ingest ratings.dat --preset movielens`.",
    ]
)


def _parse_map(items: list[str] | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items or []:
        target, sep, column = item.partition("=")
        if not sep or not target.strip() or not column.strip():
            raise InputError(
                f"--map {item!r}: expected ABKIT_COLUMN=FILE_COLUMN, e.g. user_id=customer"
            )
        target = target.strip()
        if target in mapping:
            raise InputError(
                f"--map {target}: given twice ({mapping[target]} and {column.strip()})"
            )
        mapping[target] = column.strip()
    return mapping


def ingest(
    file: Annotated[
        Path,
        typer.Argument(
            help="The CSV, CSV.gz or Parquet file to load (a folder with --format abkit-parquet).",
            show_default=False,
        ),
    ],
    db: DbOption = DEFAULT_DB,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Dataset to load into (default: from the file name; OBD: obd-CAMPAIGN).",
        ),
    ] = None,
    preset: Annotated[
        Literal["auto", "events", "impressions", "obd", "movielens"],
        typer.Option(
            help="File layout: events, impressions, obd (Open Bandit Dataset), movielens "
            "(user item rating timestamp), or auto to detect it from the columns."
        ),
    ] = "auto",
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="ABKIT_COLUMN=FILE_COLUMN, repeatable: e.g. --map user_id=customer. "
            "Without a header the file columns are col1, col2, ...",
            show_default=False,
        ),
    ] = None,
    header: Annotated[
        bool | None,
        typer.Option(
            "--header/--no-header",
            help="Whether line 1 names the columns (default: detect; a line with no number "
            "or date is a header). Without one, columns follow the preset's order.",
            show_default=False,
        ),
    ] = None,
    delimiter: Annotated[
        str | None,
        typer.Option(
            help="Field separator (default: tab, '::' or ',' as found in line 1); 'tab' for a tab.",
        ),
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option(
            help="Put every row of the file in this A/B variant (OBD: random or bts, "
            "default from the path)."
        ),
    ] = None,
    control: Annotated[
        str | None,
        typer.Option(
            help="The control variant (default: one named control, random, A or baseline, "
            "else the first alphabetically)."
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="Designed traffic shares, control first then alphabetical: percentages "
            "summing to 100 (50/50) or fractions summing to 1 (0.5,0.5); or by name "
            "(A=0.5,B=0.5). Default: unknown.",
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            help="Experiment the variants belong to (default: the dataset's only one, "
            "else the dataset name; OBD: obd)."
        ),
    ] = None,
    ts_unit: Annotated[
        Literal["auto", "s", "ms"],
        typer.Option(
            "--ts-unit",
            help="Unit of numeric timestamps: s or ms (auto: ms when every value >= 1e11).",
        ),
    ] = "auto",
    dedupe: Annotated[
        bool,
        typer.Option(
            "--dedupe",
            help="Drop rows that are exact copies of an earlier row (default: keep them, they "
            "may be genuine, and warn with their count and the first one).",
        ),
    ] = False,
    format_: Annotated[
        Literal["log", "abkit-parquet"],
        typer.Option(
            "--format",
            help="log (a CSV, CSV.gz or Parquet log file) or abkit-parquet (a folder written "
            "by `abkit export`).",
        ),
    ] = "log",
    wait: WaitOption = 0.0,
    json: JsonOption = False,
) -> None:
    """Load a CSV, CSV.gz or Parquet log into the store, whole or not at all."""

    if format_ == FORMAT_NAME:
        loaded = ingest_export(file, db, dataset=dataset, wait=wait)
        _print_rows(loaded, f"Ingested {loaded.source} into {loaded.db}", json=json)
        return
    mapping = _parse_map(map_)
    shares = parse_named_split(split) if split is not None else None
    with offer_wait(wait), render.progress(f"Ingesting {file.name}", total=3) as advance:
        result = ingest_file(
            file,
            db,
            dataset=dataset,
            preset=preset,
            mapping=mapping,
            header=header,
            delimiter=delimiter,
            variant=variant,
            control=control,
            split=shares,
            experiment=experiment,
            ts_unit=ts_unit,
            dedupe=dedupe,
            on_step=lambda _phase: advance(),
            wait=wait,
        )
    for message in result.warnings:
        render.warning(message)
    if json:
        render.print_json(result.to_dict())
    else:
        _summary(result)


def _minutes(ts: datetime | None) -> str:
    # isoformat, not %Y: the year 1 is 0001 (a placeholder timestamp should look like one)
    return "-" if ts is None else ts.isoformat(sep=" ", timespec="minutes")


def _summary(result: IngestResult) -> None:

    unit = "impressions (one unit each)" if result.unit == "impression" else "users"
    rows: list[tuple[str, object]] = [
        ("dataset", result.dataset),
        ("table", result.table),
        ("rows", result.rows),
        (unit, result.users),
    ]
    if result.duplicate_rows:
        what = "dropped (--dedupe)" if result.duplicates_dropped else "kept"
        rows.append(
            (
                "exact duplicate rows",
                f"{result.duplicate_rows:,}, {what}; the first is row {result.first_duplicate_row}",
            )
        )
    if result.implausible_ts_rows:
        rows.append(
            (
                "implausible timestamps",
                f"{result.implausible_ts_rows:,}; the first is row "
                f"{result.first_implausible_ts_row}",
            )
        )
    if result.clicks is not None:
        rows.append(("clicks", result.clicks))
    if result.ts_min is not None:
        rows.append(
            (
                "time range (UTC)",
                f"{_minutes(result.ts_min)} .. {_minutes(result.ts_max)}",
            )
        )
    if result.experiment is not None:
        rows.append(("experiment", result.experiment))
        rows.append(("variants (control first)", ", ".join(result.variants)))
        rows.append(("assignments added", result.assignments_added))
        if result.duplicates_skipped:
            rows.append(("assignments already recorded", result.duplicates_skipped))
    if result.items_added:
        rows.append(("items added", result.items_added))
    rows.append(("columns", ", ".join(f"{a}<-{f}" for a, f in result.columns)))
    render.console.print(
        render.table(
            f"Ingested {result.source} into {result.db}", ["", "value"], rows, justify_numbers=False
        )
    )


def export(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="The folder to write (must not exist, or be empty).",
            show_default=False,
        ),
    ],
    db: DbOption = DEFAULT_DB,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Export only this dataset (default: all)."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Write a store (or one dataset) as Parquet, one folder per table, for Spark.

    Each table of the abkit schema becomes DIR/TABLE/dataset=NAME/part-0.parquet (run tables
    and abkit_meta one file each). `abkit compare --engine spark --source DIR` and
    `abkit ingest DIR --format abkit-parquet` read it.
    """
    result = export_store(db, out, dataset=dataset)
    _print_rows(result, f"Exported {', '.join(result.datasets)} to {result.out}", json=json)


def _print_rows(result: Any, title: str, *, json: bool) -> None:
    """An export or its ingest: the JSON, or a table of the rows per table."""
    if json:
        render.print_json(result.to_dict())
    else:
        render.console.print(
            render.table(title, ["table", "rows"], [[t, n] for t, n in result.rows.items()])
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("ingest", help=_HELP)(ingest)
    app.command("export")(export)
