"""``abkit run SPEC``, ``abkit baseline save RUN`` and ``abkit gate``: experiment specs, committed
baselines and the CI gate on metric regressions.

Each command parses its options, calls one library function of :mod:`abkit.experiments`
(:func:`~abkit.experiments.runner.run_experiment`,
:func:`~abkit.experiments.baseline.baseline_from_run`, :func:`~abkit.experiments.gate.gate_spec`
/ :func:`~abkit.experiments.gate.gate_run`) and renders the result. ``abkit gate`` exits 0 when
every gate holds, 1 when one fails (a significant regression beyond its margin) and 2 on a usage
or data error (through the app's error boundary).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from abkit._util import unknown_choice
from abkit.cli import render
from abkit.cli.common import DEFAULT_DB, DbOption, JsonOption, relative_option
from abkit.cli.plot import PlotOption, check_plot, write_plot
from abkit.errors import InputError, SpecError
from abkit.experiments import baseline as baselines
from abkit.experiments.baseline import load_baseline
from abkit.experiments.gate import default_checks, gate_run, gate_spec
from abkit.experiments.runner import run_experiment
from abkit.experiments.spec import GateCheck, load_spec
from abkit.report.figures import gate_mermaid, plot_gate

if TYPE_CHECKING:
    from abkit.experiments.gate import GateReport
    from abkit.experiments.spec import MarginType

SUMMARY_ENV_VAR = "GITHUB_STEP_SUMMARY"


def _progress() -> Any:

    return render.progress


def run(
    spec: Annotated[Path, typer.Argument(help="Experiment spec, e.g. experiments/ci.toml.")],
    db: DbOption = DEFAULT_DB,
    save_baseline: Annotated[
        bool,
        typer.Option(
            "--save-baseline",
            help="Also write the \\[gate] candidate's run as the spec's baseline file "
            "(its gated metrics only).",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Run an experiment spec: replay every model and compare them, paired by user.

    The dataset is simulated first when the store lacks it and the spec says how.
    Runs stay in the store, named SPEC_NAME/LABEL, for `abkit compare` and `abkit gate`.
    """

    parsed = load_spec(spec)
    if save_baseline and parsed.gate is None:
        raise SpecError(f"{spec}: --save-baseline needs a [gate] table naming the baseline file")
    result = run_experiment(parsed, db, progress=_progress())
    saved = None
    if save_baseline and parsed.gate is not None:
        saved = _save(
            db,
            result.run_id(parsed.gate.candidate),
            parsed.gate.baseline,
            [c.metric for c in parsed.gate.checks],
            6,
        )
    if json:
        payload = result.to_dict()
        if saved is not None:
            payload["baseline"] = {"path": str(saved[0]), "bytes": saved[1]}
        render.print_json(payload)
        return
    render.experiment_run(result)
    if saved is not None:
        render.baseline_saved(*saved)


def _save(db: Path, run_id: str, out: Path, metrics: list[str] | None, decimals: int) -> Any:
    baseline = baselines.baseline_of_stored_run(db, run_id, metrics=metrics, decimals=decimals)
    size = baselines.save_baseline(baseline, out)
    return out, size, baseline


def baseline_save(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id (or unique run name).")],
    db: DbOption = DEFAULT_DB,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The baseline JSON file to write (overwritten).")
    ] = Path("baseline.json"),
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            help="Keep only this metric (repeat); default every per-user metric of the run. "
            "Fewer metrics, smaller file.",
            show_default=False,
        ),
    ] = None,
    decimals: Annotated[
        int, typer.Option(help="Decimals kept per user value (6 is far below any margin).")
    ] = 6,
    json: JsonOption = False,
) -> None:
    """Save a ranking run's per-user metrics as a small baseline JSON file to commit."""

    path, size, baseline = _save(db, run_id, out, metric, decimals)
    if json:
        render.print_json({"path": str(path), "bytes": size, **baseline.to_dict()})
        return
    render.baseline_saved(path, size, baseline)


def gate(
    spec: Annotated[
        Path | None,
        typer.Argument(
            help="Experiment spec with a \\[gate] table; its candidate model is replayed and "
            "compared with its baseline file.",
            show_default=False,
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
    baseline: Annotated[
        Path | None,
        typer.Option(help="Baseline JSON file (instead of the spec's).", show_default=False),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="Gate this stored run instead of replaying the candidate.",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            help="Without a spec: gate this metric (repeat); default every gateable metric of "
            "the baseline.",
            show_default=False,
        ),
    ] = None,
    max_drop: Annotated[
        float,
        relative_option(
            "Without a spec: the allowed drop, relative unless --absolute: 0.01 or 1%. A bare "
            "number is a fraction below 1. With --absolute a drop in the metric's own units "
            "(no %).",
            noun="drop",
            signed=False,
            absolute_option="absolute",
            show_default=True,
        ),
    ] = 0.01,
    absolute: Annotated[
        bool,
        # eager: known before --max-drop is read, wherever it stands on the command line
        typer.Option("--absolute", help="Without a spec: --max-drop is absolute.", is_eager=True),
    ] = False,
    alpha: Annotated[
        float, typer.Option(help="Without a spec: one-sided level of each gate.")
    ] = 0.05,
    test: Annotated[
        str, typer.Option(help="Without a spec: t (paired t test) or bootstrap.")
    ] = "t",
    junit: Annotated[
        Path | None,
        typer.Option(help="Also write JUnit XML to this file.", show_default=False),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(help="Also write the Markdown summary to this file.", show_default=False),
    ] = None,
    json: JsonOption = False,
    plot: PlotOption = None,
) -> None:
    """Fail CI on a significant metric regression (exit 0 pass, 1 fail, 2 error).

    A gate fails only when the data show a drop beyond its margin:
    the one-sided upper confidence bound of the change is below -margin.
    Noise alone never fails it; the report names the test that decided.
    The Markdown summary is appended to $GITHUB_STEP_SUMMARY when that is set,
    with the gate chart as a Mermaid block; --plot draws it as an image.
    """

    if spec is None and (baseline is None or run_id is None):
        raise InputError("abkit gate needs a SPEC, or both --baseline FILE and --run RUN")
    if test not in ("t", "bootstrap"):
        raise InputError("--test: " + unknown_choice("test", test, ("t", "bootstrap")))
    # before any work: a refusal after the replay would have stored its run for nothing
    check_plot(plot)
    for option, path in (("--junit", junit), ("--markdown", markdown)):
        if path is not None:
            _check_output(path, option)
    summary = os.environ.get(SUMMARY_ENV_VAR)
    if summary:
        _check_output(Path(summary), f"${SUMMARY_ENV_VAR}")
    report = _gate_report(
        spec,
        db,
        baseline=baseline,
        run_id=run_id,
        metric=metric,
        max_drop=max_drop,
        absolute=absolute,
        alpha=alpha,
        test=test,
    )
    _write_outputs(report, junit=junit, markdown=markdown)
    if json:
        render.print_json(report.to_dict())
    else:
        render.gate_report(report)
    write_plot(report, plot, plot_gate)
    raise typer.Exit(report.exit_code)


def _gate_report(
    spec: Path | None,
    db: Path,
    *,
    baseline: Path | None,
    run_id: str | None,
    metric: list[str] | None,
    max_drop: float,
    absolute: bool,
    alpha: float,
    test: str,
) -> GateReport:

    if spec is not None:
        parsed = load_spec(spec)
        if baseline is not None and parsed.gate is not None:
            from dataclasses import replace

            parsed = replace(parsed, gate=replace(parsed.gate, baseline=baseline))
        return gate_spec(parsed, db, run=run_id, progress=_progress())
    if baseline is None or run_id is None:
        raise InputError("abkit gate needs a SPEC, or both --baseline FILE and --run RUN")
    base = load_baseline(baseline)
    margin_type: MarginType = "absolute" if absolute else "relative"
    try:
        checks = (
            [GateCheck(metric=m, max_drop=max_drop, margin_type=margin_type) for m in metric]
            if metric
            else default_checks(base, max_drop=max_drop, margin_type=margin_type)
        )
    except InputError as exc:
        raise InputError(f"--max-drop: {exc}") from None
    return gate_run(
        db,
        baseline=base,
        run=run_id,
        checks=checks,
        alpha=alpha,
        test=test,  # type: ignore[arg-type]
        name=Path(baseline).stem,
    )


def _check_output(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written, without creating or changing it."""
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory, expected a file to write")
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"{option} {path}: folder {folder} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{option} {path}: cannot write (the file is not writable)")
    if not path.exists() and not os.access(folder, os.W_OK):
        raise InputError(f"{option} {path}: cannot write (folder {folder} is not writable)")


def _write_outputs(report: GateReport, *, junit: Path | None, markdown: Path | None) -> None:
    """JUnit and Markdown files, and the GitHub step summary (appended, never replaced)."""

    text = report.to_markdown()
    targets: list[tuple[Path, str, str]] = []
    if junit is not None:
        targets.append((junit, report.to_junit_xml(), "w"))
    if markdown is not None:
        targets.append((markdown, text, "w"))
    summary = os.environ.get(SUMMARY_ENV_VAR)
    if summary:
        targets.append((Path(summary), text + "\n" + gate_mermaid(report) + "\n", "a"))
    for path, content, mode in targets:
        try:
            with path.open(mode, encoding="utf-8") as handle:
                handle.write(content)
        except OSError as exc:
            raise InputError(f"{path}: cannot write ({exc.strerror})") from None


def register(app: typer.Typer) -> None:
    """Add ``run``, ``baseline save`` and ``gate`` to the app."""
    app.command("run")(run)
    baseline_app = typer.Typer(
        help="Save a replay run as a baseline JSON file for `abkit gate`.",
        no_args_is_help=True,
    )
    baseline_app.command("save")(baseline_save)
    app.add_typer(baseline_app, name="baseline")
    app.command("gate")(gate)
