"""CLI commands: ``replay``, ``runs`` (``runs list``, ``runs delete``) and ``train lstm``.

Each command parses its options, calls one library function (:func:`abkit.replay.runner.replay`,
:func:`abkit.replay.runs.list_runs`, :func:`abkit.replay.runs.delete_runs`,
:func:`abkit.replay.runner.train`) and renders
the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from abkit.cli import render
from abkit.cli.common import (
    DEFAULT_DB,
    DatasetOption,
    DbOption,
    DryRunOption,
    EngineOption,
    JsonOption,
    SourceOption,
    SparkMasterOption,
    WaitOption,
    YesOption,
    confirm_deletion,
    offer_wait,
    reject_group_options,
)
from abkit.cli.plot import PlotOption, check_plot, write_plot
from abkit.errors import InputError
from abkit.replay.lstm_contract import DEFAULTS as LSTM
from abkit.replay.lstm_contract import SEED_DEFAULTS as SEED
from abkit.replay.runner import replay, train
from abkit.replay.runs import delete_runs, list_runs

SplitOption = Annotated[
    str,
    typer.Option(
        "--split",
        help="temporal (cut-off at 80% of the time range), temporal:2024-01-10, temporal:0.3 "
        "(last 30% for test) or leave-last-out (ties in a user's last timestamp drawn with "
        "--seed, or leave-last-out:seed=N). Impression logs without events (OBD) are split "
        "by time on the impressions: the model learns from the earlier part, the estimates use "
        "the later part.",
    ),
]


def _params(values: list[str] | None) -> dict[str, str]:

    out: dict[str, str] = {}
    for value in values or []:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--param {value!r}: expected KEY=VALUE, e.g. factors=32")
        out[key.strip()] = raw.strip()
    return out


def replay_command(
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Recommender to replay (see `abkit models`)."),
    ] = None,
    db: DbOption = DEFAULT_DB,
    dataset: DatasetOption = None,
    k: Annotated[str, typer.Option("--k", help="Cut-offs K, comma-separated.")] = "10",
    split: SplitOption = "temporal",
    model_path: Annotated[
        Path | None,
        typer.Option(
            "--model-path", help="Load a fitted model (.onnx for lstm, .npz) instead of fitting."
        ),
    ] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option(
            "--policy-file",
            help="Evaluate an outside policy (instead of --model) from its action "
            "probabilities: .npz with action_dist rounds x items x positions (the Open Bandit "
            "Pipeline's layout; or that array alone in an .npy), or CSV/Parquet with round, "
            "item, position, probability "
            "(no round column: the same for every round). Off-policy: replay, ips, snips, dr "
            "unless --estimator says otherwise.",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Model parameter KEY=VALUE (repeatable)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="A name for the stored run (unique; see --replace)."),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Replace the stored run(s) of the same --name (deleted when the new run is "
            "stored); without it a taken name is refused before any work.",
        ),
    ] = False,
    estimator: Annotated[
        list[str] | None,
        typer.Option(
            "--estimator",
            help="Off-policy estimator(s) on the logged impressions: replay, ips, snips, dr "
            "(repeatable or comma-separated). Makes this an off-policy run.",
        ),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="How the model acts in a slot: topk (slot p shows its "
            "p-th item) or stochastic (draws from its distribution).",
        ),
    ] = "topk",
    temperature: Annotated[
        float, typer.Option("--temperature", help="Softmax temperature of stochastic policies.")
    ] = 1.0,
    variant: Annotated[
        str | None,
        typer.Option("--variant", help="Use only the impressions logged by this variant."),
    ] = None,
    reward: Annotated[
        str, typer.Option("--reward", help="Reward of a round: click, conversion or value.")
    ] = "click",
    ci: Annotated[
        str,
        typer.Option(
            "--ci",
            help="Interval method: normal (CLT / delta method) or bootstrap (Poisson bootstrap).",
        ),
    ] = "normal",
    device: Annotated[
        str,
        typer.Option("--device", help="auto, cpu or cuda (falls back to the CPU with a warning)."),
    ] = "auto",
    keep_seen: Annotated[
        bool, typer.Option("--keep-seen", help="Allow items from the user's training history.")
    ] = False,
    sampled: Annotated[
        int | None,
        typer.Option(
            "--sampled",
            help="Rank among N sampled items instead of the whole "
            "catalogue (does not preserve model order; off by default).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed for sampling, bootstrap and leave-last-out ties.")
    ] = 0,
    engine: EngineOption = "duckdb",
    source: SourceOption = None,
    spark_master: SparkMasterOption = None,
    runs_out: Annotated[
        Path | None,
        typer.Option(
            "--runs-out",
            help="Write the run as Parquet files into this folder (e.g. the --source export "
            "folder: TABLE/run-ID.parquet) instead of into --db.",
            show_default=False,
        ),
    ] = None,
    wait: WaitOption = 0.0,
    json_output: JsonOption = False,
    plot: PlotOption = None,
) -> None:
    """Replay a recommender offline: ranking metrics per user, optional off-policy estimates.

    The run (parameters, split, data fingerprint, per-user values) is stored in the database;
    list runs with `abkit runs`. With --engine spark the split is read from --source by
    Spark, the model is fitted (or loaded) on the driver and users are scored in Spark
    partitions; the run is still stored in --db.
    """

    check_plot(plot)
    estimators = ",".join(estimator) if estimator else ""
    progress = None if json_output else render.progress
    with offer_wait(wait):
        result = replay(
            db,
            model=model,
            policy_file=policy_file,
            dataset=dataset,
            split=split,
            ks=k,
            params=_params(param),
            model_path=model_path,
            name=name,
            estimators=estimators,
            policy=policy,
            temperature=temperature,
            device=device,
            exclude_seen=not keep_seen,
            sampled=sampled,
            variant=variant,
            reward=reward,
            ci=ci,
            seed=seed,
            progress=progress,
            replace=replace,
            wait=wait,
            engine=engine,
            source=source,
            spark_master=spark_master,
            runs_out=runs_out,
        )
    for message in result.warnings:
        render.warning(message)
    if json_output:
        render.print_json(result.to_dict())
    else:
        _render_result(result)
    write_plot(result, plot)


def _render_result(result: Any) -> None:

    render.say(
        "run ",
        (result.run_id, "bold"),
        f"  model {result.model}  dataset {result.dataset}  split {result.split}  "
        f"device {result.device}",
    )
    render.console.print(
        f"{result.users:,} users evaluated ({result.cold_users:,} cold test users skipped), "
        f"{result.n_items:,} items, {result.train_interactions:,} training interactions"
    )
    if result.metrics:
        names: list[str] = []
        values: dict[tuple[str, int], float] = {}
        for metric in result.metrics:
            base, _, k = metric.name.partition("@")
            if base not in names:
                names.append(base)
            values[(base, int(k))] = metric.value
        rows = [[base, *[values.get((base, k)) for k in result.ks]] for base in names]
        render.console.print(
            render.table(
                "ranking metrics (mean over users)", ["metric", *[f"@{k}" for k in result.ks]], rows
            )
        )
    if result.estimates:
        rows = []
        # the status column holds a word and a note number; each distinct reason is printed
        # once under the table (the estimators usually share it), so a row stays one line
        notes: list[str] = []

        def noted(word: str, text: str) -> str:
            if text not in notes:
                notes.append(text)
            return f"{word} [{notes.index(text) + 1}]"

        for est in result.estimates:
            ci = (
                "-"
                if est.ci_low is None
                else f"{render.fmt(est.ci_low)} .. {render.fmt(est.ci_high)}"
            )
            if est.refused:
                status = noted("refused", est.refused)
            elif est.flags:
                status = noted("warning", "; ".join(est.flags))
            else:
                status = "ok"
            if est.clipped:  # one line under the table, like the other notes
                side = "below" if est.raw_value < est.value else "above"
                note = noted(
                    "clipped",
                    f"{est.estimator}'s own value {render.fmt(est.raw_value)} lies {side} the "
                    f"reward's range; shown clipped to {est.value:g}, like its interval "
                    "(value_unclipped in --json)",
                )
                status = note if status == "ok" else f"{status}, {note}"
            rows.append([est.estimator, est.value, ci, est.ess, est.diagnostics.max_weight, status])
        render.console.print(
            render.table(
                f"off-policy estimates of the {result.policy} policy ({result.rounds:,} rounds)",
                [
                    "estimator",
                    "value",
                    f"{round(100 * result.estimates[0].level)}% CI",
                    "ESS",
                    "max weight",
                    "status",
                ],
                rows,
            )
        )
        for i, text in enumerate(notes, 1):
            render.line(f"[{i}] {text}")


def runs_command(
    db: DbOption = DEFAULT_DB,
    dataset: DatasetOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the stored replay runs (oldest first)."""

    records = list_runs(db, dataset=dataset)
    if json_output:
        render.print_json({"runs": [r.to_dict() for r in records]})
        return
    if not records:
        render.note("no replay runs yet; create one with `abkit replay --model NAME`")
        return
    rows = []
    for r in records:
        metrics = r.summary.get("metrics", {})
        first_k = r.ks[0] if r.ks else 10
        rows.append(
            [
                r.run_id,
                r.name,
                r.model,
                r.kind,
                _short_split(r.split),
                r.users,
                metrics.get(f"ndcg@{first_k}"),
            ]
        )
    columns = ["run", "name", "model", "kind", "split", "users", "ndcg@K"]
    title = "replay runs (oldest first; `--json` for everything)"
    splits = {row[4] for row in rows}
    if len(splits) == 1:  # one split for all: in the title, so that a row fits 80 columns
        title = f"replay runs (oldest first, all on split {splits.pop()}; `--json` for everything)"
        columns.remove("split")
        rows = [row[:4] + row[5:] for row in rows]
    render.console.print(render.table(title, columns, rows, whole=(0, 2)))


def _short_split(split: str) -> str:
    """A split as the runs table shows it: a cut-off time to the day (``temporal:2024-01-17``;
    the exact cut-off is in ``--json``), so that a row fits 80 columns."""
    kind, sep, rest = split.partition(":")
    if sep and len(rest) > 10 and rest[4:5] == "-" and rest[10:11] in ("T", " "):
        return f"{kind}:{rest[:10]}"
    return split


def runs_group(
    ctx: typer.Context,
    db: DbOption = DEFAULT_DB,
    dataset: DatasetOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the stored replay runs (oldest first); `abkit runs delete RUN...` deletes runs."""
    if ctx.invoked_subcommand is None:
        runs_command(db=db, dataset=dataset, json_output=json_output)
        return

    reject_group_options(ctx, "runs")


def runs_delete_command(
    runs: Annotated[
        list[str],
        typer.Argument(metavar="RUN...", help="Run ids (or unique run names) to delete."),
    ],
    db: DbOption = DEFAULT_DB,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    """Delete stored replay runs with their per-user values, estimates and rounds.

    All or nothing: an unknown or ambiguous run deletes none. Asks first unless --yes;
    without a terminal, --yes is required.
    """
    plan = delete_runs(db, runs, dry_run=True)
    if not dry_run:
        confirm_deletion(f"Delete {_runs_text(plan.runs)} from {db}?", yes=yes)
        plan = delete_runs(db, [r.run_id for r in plan.runs])
    if json_output:
        render.print_json(plan.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    render.line(
        f"{verb} {_runs_text(plan.runs)} "
        f"({plan.rows['run_user_metrics']:,} per-user values, "
        f"{plan.rows['run_rounds']:,} logged rounds)"
    )


def _runs_text(records: Any) -> str:
    names = ", ".join(f"{r.run_id} ({r.name})" if r.name else r.run_id for r in records)
    return f"{len(records)} run(s): {names}"


def train_lstm_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Model file to write (.onnx); the sidecar .json goes beside it."
        ),
    ],
    db: DbOption = DEFAULT_DB,
    dataset: DatasetOption = None,
    split: SplitOption = "temporal",
    arch: Annotated[
        str,
        typer.Option(
            "--arch",
            help="next-item (abkit's next-item model) or seed (the article's model: "
            "Embedding 64, two LSTM(128), dropout 0.5, a sigmoid head, trained on sampled "
            "pairs with binary cross-entropy).",
        ),
    ] = "next-item",
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs", help=f"Training epochs [default: {LSTM.epochs}; seed {SEED.epochs}]"
        ),
    ] = None,
    horizon: Annotated[
        int,
        typer.Option("--horizon", help="Future items each example learns to predict (next-item)."),
    ] = LSTM.horizon,
    samples_per_epoch: Annotated[
        int | None,
        typer.Option(
            "--samples-per-epoch",
            help=f"Training examples drawn per epoch [default: {LSTM.samples_per_epoch}; seed "
            f"{SEED.samples_per_epoch} positives]",
        ),
    ] = None,
    seq_len: Annotated[
        int | None,
        typer.Option(
            "--seq-len",
            help=f"Items of history per input [default: {LSTM.seq_len}; seed {SEED.seq_len}]",
        ),
    ] = None,
    hidden: Annotated[
        int | None,
        typer.Option(
            "--hidden", help=f"LSTM hidden units [default: {LSTM.hidden}; seed {SEED.hidden}]"
        ),
    ] = None,
    embedding: Annotated[
        int | None,
        typer.Option(
            "--embedding",
            help=f"Item embedding size [default: {LSTM.embedding}; seed {SEED.embedding}]",
        ),
    ] = None,
    negatives: Annotated[
        int,
        typer.Option("--negatives", help="Sampled negative items per observed next item (seed)."),
    ] = SEED.negatives,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    exporter: Annotated[
        str,
        typer.Option("--exporter", help="weights (fast, exact) or dynamo (torch.onnx; next-item)."),
    ] = "weights",
    json_output: JsonOption = False,
) -> None:
    """Train an LSTM on the training split (needs torch) and export it to ONNX.

    Use the file with `abkit replay --model lstm --model-path FILE`; replay needs no torch.
    `--arch seed` trains the article's model; check its accuracy claim with
    `abkit models check-accuracy --model-path FILE`.
    """

    progress = None if json_output else render.progress
    result = train(
        db,
        out=out,
        dataset=dataset,
        split=split,
        arch=arch,
        seq_len=seq_len,
        embedding=embedding,
        hidden=hidden,
        epochs=epochs,
        horizon=horizon,
        samples_per_epoch=samples_per_epoch,
        negatives=negatives,
        seed=seed,
        exporter=exporter,
        progress=progress,
    )
    if json_output:
        render.print_json(result.to_dict())
        return
    render.console.print(
        f"wrote {result.path} and {result.sidecar}: arch {result.arch}, "
        f"{result.examples:,} training examples, "
        f"{result.epochs} epochs, final loss {render.fmt(result.final_loss)}, "
        f"split {result.split}, fingerprint {result.fingerprint[:12]}"
    )


def demo_step(
    db: Path,
    *,
    dataset: str,
    step: int,
    ks: tuple[int, ...] = (10,),
    lstm_model: Path | None = None,
) -> list[Any]:
    """The demo's replay step: random, popularity and ALS (and the LSTM when torch is installed
    or ``lstm_model`` is given) replayed on ``dataset``, stored as runs ``demo/NAME``, shown
    as one table. Returns the :class:`~abkit.replay.runner.ReplayResult` of each model."""
    import importlib.util

    models = ["random", "popularity", "als"]
    if lstm_model is not None or importlib.util.find_spec("torch") is not None:
        models.append("lstm")
    render.step(
        step,
        "Replay recommenders offline",
        "`abkit replay --model NAME`: each model is fitted on the events before a temporal "
        "cut-off (80% of the time range) and ranks the whole catalogue for every user; the "
        "items each user discovered after the cut-off are the relevant ones. Per-user values "
        "are stored with each run, so models can be compared pairwise.",
    )
    if "lstm" not in models:
        render.note(
            'The LSTM needs torch to train (pip install torch==2.13.0 "abkit-lift[train]") '
            "or a trained file (abkit replay --model lstm --model-path FILE)."
        )
    results = []
    for name in models:
        path = lstm_model if name == "lstm" else None
        results.append(
            replay(
                db,
                model=name,
                dataset=dataset,
                ks=ks,
                model_path=path,
                name=f"demo/{name}",
                progress=render.progress,
                replace=True,  # the demo owns its demo/ names
            )
        )
    k = ks[0]
    metrics = ("ndcg", "hit_rate", "recall", "mrr", "coverage")
    rows = [[r.name, *[r.metric(f"{m}@{k}") for m in metrics]] for r in results]
    render.console.print(
        render.table(
            f"{results[0].users:,} test users, split {results[0].split}, K = {k}",
            ["run", *metrics],
            rows,
        )
    )
    return results


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("replay")(replay_command)
    runs_app = typer.Typer(
        help="List the stored replay runs (oldest first); `abkit runs delete RUN...` deletes.",
        invoke_without_command=True,
        no_args_is_help=False,
    )
    runs_app.callback()(runs_group)
    runs_app.command("list")(runs_command)
    runs_app.command("delete")(runs_delete_command)
    app.add_typer(runs_app, name="runs")
    train_app = typer.Typer(
        help="Train a model on a store's training split (needs torch).",
        no_args_is_help=True,
    )
    train_app.command("lstm")(train_lstm_command)
    app.add_typer(train_app, name="train")
