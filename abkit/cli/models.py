"""CLI commands: ``models`` (``models list``), ``models import`` and
``models check-accuracy``.

Each command parses its options, calls one library function
(:func:`abkit.plugins.available_recommenders`, :func:`abkit.replay.byom.import_model`,
:func:`abkit.replay.accuracy.check_scores_file` or
:func:`abkit.replay.accuracy.check_model_accuracy`) and renders the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import typer

from abkit.cli import render
from abkit.cli.common import (
    DEFAULT_DB,
    DatasetOption,
    DbOption,
    JsonOption,
    reject_group_options,
)
from abkit.cli.replay import SplitOption
from abkit.errors import InputError
from abkit.plugins import available_recommenders
from abkit.replay.accuracy import AccuracyReport, check_model_accuracy, check_scores_file
from abkit.replay.byom import import_model

MODELS_HELP = (
    "List the installed recommenders; `abkit models import` brings your own ONNX model, "
    "`abkit models check-accuracy` checks an accuracy claim."
)


def models_group(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List the installed recommenders; `abkit models import` brings your own ONNX model."""
    if ctx.invoked_subcommand is None:
        models_command(json_output=json_output)
        return
    reject_group_options(ctx, "models")


def models_command(json_output: JsonOption = False) -> None:
    """List the installed recommenders, their status and the extra a missing one needs."""

    infos = available_recommenders()
    if json_output:
        render.print_json({"models": [i.to_dict() for i in infos]})
        return
    rows = [
        [
            i.name,
            i.summary,
            i.extra or "-",
            i.install or (i.training_install if i.training_missing else None) or "",
            i.description,
        ]
        for i in infos
    ]
    render.console.print(
        render.table(
            "recommenders (entry-point group abkit.recommenders)",
            ["model", "status", "extra", "install", "about"],
            rows,
            justify_numbers=False,
        )
    )


def models_import_command(
    model: Annotated[
        Path,
        typer.Argument(
            metavar="MODEL.onnx",
            help="The ONNX model to import (its external-data files are read from its folder).",
        ),
    ],
    items: Annotated[
        Path,
        typer.Option(
            "--items",
            help="The model's item ids, one per line: line j (from 0) is column j of its "
            "scores. Must cover the dataset's catalogue.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Wrapped model file to write (.onnx); the sidecar .json beside it."
        ),
    ],
    db: DbOption = DEFAULT_DB,
    dataset: DatasetOption = None,
    history_input: Annotated[
        str | None,
        typer.Option("--history-input", help="Name of the history input (default: the only one)."),
    ] = None,
    history_dtype: Annotated[
        str | None,
        typer.Option(
            "--history-dtype",
            help="int32, int64 or float32; checked against the graph (default: its own).",
        ),
    ] = None,
    seq_len: Annotated[
        int | None,
        typer.Option(
            "--seq-len",
            help="History length (default: the graph's fixed length, else 20).",
        ),
    ] = None,
    padding: Annotated[
        str,
        typer.Option(
            "--padding",
            help="left (most recent item in the last column) or right (items first, then padding).",
        ),
    ] = "left",
    index_offset: Annotated[
        int,
        typer.Option(
            "--index-offset", help="The token of the item on line j of --items is j + OFFSET."
        ),
    ] = 1,
    pad_token: Annotated[
        int, typer.Option("--pad-token", help="The token of an empty history position.")
    ] = 0,
    logits_output: Annotated[
        str | None,
        typer.Option(
            "--logits-output",
            help="Name of the output of item scores [batch, items] (default: the only one).",
        ),
    ] = None,
    fingerprint: Annotated[
        str | None,
        typer.Option(
            "--fingerprint",
            help="The training split's fingerprint, when the model was trained on one of "
            "abkit's splits (`abkit train` prints it); without it replay warns.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Import your own ONNX model: check it, wrap it in abkit's contract, write the sidecar.

    The model maps a history of item tokens [batch, length] to item scores [batch, items]
    (logits or probabilities). abkit adds its input adapter (dtype, padding side, index
    offset), reorders the scores to the catalogue and adds its exclude and TopK head; the
    result replays with `abkit replay --model lstm --model-path OUT`.
    """

    result = import_model(
        db,
        model=model,
        items=items,
        out=out,
        dataset=dataset,
        history_input=history_input,
        history_dtype=history_dtype,
        seq_len=seq_len,
        padding=padding,
        index_offset=index_offset,
        pad_token=pad_token,
        logits_output=logits_output,
        fingerprint=fingerprint,
    )
    if json_output:
        render.print_json(result.to_dict())
        return
    layout = result.layout
    render.console.print(
        f"wrote {result.path} and {result.sidecar}: {result.n_items:,} catalogue items of "
        f"dataset {result.dataset} ({result.dropped_items:,} of the model's "
        f"{result.model_items:,} items not in it); history '{layout['history_input']}' "
        f"{layout['history_dtype']}[{layout['seq_len']}], {layout['padding']}-padded with "
        f"{layout['pad_token']}, items from {layout['index_offset']}; scores "
        f"'{result.logits_output}'"
    )
    if result.fingerprint is None:
        render.note(
            "no --fingerprint: replay will warn that abkit cannot rule out leakage from the "
            "test period"
        )


def check_accuracy_command(
    scores: Annotated[
        Path | None,
        typer.Option(
            "--scores",
            help="CSV or Parquet file with columns score (a probability) and label (0 or 1).",
        ),
    ] = None,
    model_path: Annotated[
        Path | None,
        typer.Option(
            "--model-path",
            help="A model of probabilities (`abkit train lstm --arch seed`), checked on "
            "held-out pairs of --db / --dataset.",
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
    dataset: DatasetOption = None,
    split: SplitOption = "temporal",
    negatives: Annotated[
        int | None,
        typer.Option(
            "--negatives",
            help="Sampled negatives per held-out positive (default: the model's training ratio).",
        ),
    ] = None,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Predict 1 when the probability is >= this.")
    ] = 0.5,
    bins: Annotated[int, typer.Option("--bins", help="Calibration bins (equal width).")] = 10,
    alpha: Annotated[
        float, typer.Option("--alpha", help="1 - confidence of the intervals; test level.")
    ] = 0.05,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the sampled negatives.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """Check an accuracy claim: accuracy beside the majority class, AUC, log loss, calibration.

    Reports the accuracy next to the majority classifier's (the base rate) with an exact
    McNemar test of whether the model beats it, the AUC with a DeLong interval, the log loss
    and Brier score beside the base-rate forecaster's, and a calibration table.
    """

    if (scores is None) == (model_path is None):
        raise InputError("give exactly one of --scores FILE or --model-path FILE")
    if scores is not None:
        report = check_scores_file(scores, threshold=threshold, bins=bins, alpha=alpha)
    else:
        report = check_model_accuracy(
            db,
            model_path=cast(Path, model_path),
            dataset=dataset,
            split=split,
            negatives=negatives,
            threshold=threshold,
            bins=bins,
            alpha=alpha,
            seed=seed,
        )
    if json_output:
        render.print_json(report.to_dict())
        return
    render_accuracy(report)


def render_accuracy(report: AccuracyReport) -> None:
    """The check as a few lines and a calibration table."""
    c = report.check
    level = round(100 * (1 - c.alpha))
    where = (
        f" ({report.users:,} users of dataset {report.dataset}, split {report.split}, "
        f"{report.negatives} sampled negatives per positive)"
        if report.dataset is not None
        else ""
    )
    render.console.print(
        f"{report.source}: {c.n:,} pairs{where}, {c.positives:,} positives "
        f"(base rate {render.fmt(c.base_rate)})"
    )
    majority = "yes" if c.majority_label == 1 else "no"
    verdict = (
        "beats the majority classifier significantly"
        if c.beats_majority
        else "does NOT beat the majority classifier significantly"
    )

    def ci(low: float, high: float) -> str:
        return f"{render.fmt(low)} .. {render.fmt(high)}"

    rows: list[list[Any]] = [
        [
            f"accuracy (p >= {c.threshold:g})",
            c.accuracy,
            ci(c.accuracy_ci_low, c.accuracy_ci_high),
            c.majority_accuracy,
            f"always '{majority}' (the majority class)",
        ],
        ["AUC (DeLong)", c.auc.auc, ci(c.auc.ci_low, c.auc.ci_high), 0.5, "chance"],
        ["log loss", c.log_loss, "", c.log_loss_base, "the base rate for every pair"],
        ["Brier score", c.brier, "", c.brier_base, "the base rate for every pair"],
        ["calibration error (ECE)", c.ece, "", None, ""],
    ]
    render.console.print(
        render.table(
            "the claim, checked",
            ["measure", "model", f"{level}% CI", "baseline", "baseline is"],
            rows,
        )
    )
    gain = c.accuracy - c.majority_accuracy
    render.console.print(
        f"accuracy {verdict} (difference {gain:+.4f}): right where the majority is wrong "
        f"{c.model_only_right:,}, wrong where it is right {c.majority_only_right:,} "
        f"(exact McNemar, one-sided p = {render.fmt(c.p_value)}, alpha {c.alpha:g})"
    )
    render.console.print(
        render.table(
            "calibration (observed rate per bin of predicted probability)",
            ["bin", "pairs", "mean predicted", "observed", f"{level}% CI"],
            [
                [
                    f"{b.low:.2f}-{b.high:.2f}",
                    b.n,
                    b.mean_predicted,
                    b.observed,
                    f"{render.fmt(b.observed_ci_low)} .. {render.fmt(b.observed_ci_high)}",
                ]
                for b in c.calibration
            ],
        )
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    models_app = typer.Typer(help=MODELS_HELP, invoke_without_command=True, no_args_is_help=False)
    models_app.callback()(models_group)
    models_app.command("list")(models_command)
    models_app.command("import")(models_import_command)
    models_app.command("check-accuracy")(check_accuracy_command)
    app.add_typer(models_app, name="models")
