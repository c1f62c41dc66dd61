"""`abkit demo`: the README's main command, a guided tour on simulated traffic.

Each step calls the same library function and renderer as the matching command, so the demo
shows exactly what a user would see running the commands one by one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from abkit.cli import render
from abkit.cli.common import DEFAULT_DB, RELATIVE_RULE, DbOption, relative_option
from abkit.cli.compare import render_arm_report
from abkit.cli.replay import demo_step
from abkit.compare.arms import compare_arms
from abkit.compare.runs import compare_runs
from abkit.data.info import store_info
from abkit.data.store import open_store
from abkit.errors import MissingExtraError
from abkit.experiments.baseline import baseline_of_stored_run
from abkit.experiments.gate import GateReport, gate_run
from abkit.experiments.spec import GateCheck
from abkit.replay.runner import replay
from abkit.report.build import build_report
from abkit.report.charts import require_matplotlib
from abkit.report.document import write_report
from abkit.simulate import SimulationConfig, simulate

DEMO_DATASET = "demo"


def demo(
    db: DbOption = DEFAULT_DB,
    users: Annotated[
        int, typer.Option(help="Simulated users (more users, narrower intervals, longer run).")
    ] = 20_000,
    lift: Annotated[
        float,
        relative_option(
            "The true relative conversion lift planted in the treatment arm: 0.2 or 20% for "
            "+20%. " + RELATIVE_RULE,
            show_default=True,
        ),
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the simulation (same seed, same report).")] = 1,
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="Simulate again even if the store already holds the demo."),
    ] = False,
) -> None:
    """Simulate a shop's traffic and walk through replay, compare and gate on it."""

    render.heading("abkit demo", "a guided tour on simulated traffic with a known, planted lift")
    _step_simulate(db, users=users, lift=lift, seed=seed, fresh=fresh)
    _step_compare(db, claim=0.2)
    results = _step_replay(db)
    _step_compare_runs(db, results)
    gates = _step_gate(db, next(r.run_id for r in results if r.model == "als"))
    _step_report(db, results, gates, claim=0.2)
    render.console.print()
    render.note("Run `abkit --help` to see every command; `abkit COMMAND --help` for details.")


def _step_simulate(db: Path, *, users: int, lift: float, seed: int, fresh: bool) -> None:

    config = SimulationConfig(users=users, lift=lift, seed=seed, dataset=DEMO_DATASET)
    render.step(
        1,
        "Simulate a shop",
        f"{users:,} users over {config.pre_days} pre-experiment days and a {config.days}-day A/B "
        f"test: control sees a random carousel, treatment a personalised one. The true relative "
        f"conversion lift of treatment is planted at {lift:+.0%}, so every estimate below can be "
        f"checked against the truth.",
    )
    existing = False
    if db.exists():
        with open_store(db, write=True) as store:
            existing = store.has_dataset(DEMO_DATASET)
            if existing and not fresh and _stored_params(store) != _comparable(config.to_dict()):
                render.note(f"{db} holds a demo simulated with other settings; simulating again.")
                fresh = True
            if existing and fresh:
                store.drop_dataset(DEMO_DATASET)
                existing = False
            elif existing:
                store.drop_runs(DEMO_DATASET, name_prefix="demo/")  # this tour's earlier runs
    if existing:
        render.note(f"{db} already holds the demo dataset; reusing it (--fresh simulates again).")
    else:
        with render.phases() as phases:
            phases.start("simulating", users)
            last = [0]

            def on_progress(done: int, total: int) -> None:
                phases.advance(done - last[0])
                last[0] = done

            summary = simulate(config, db, on_progress=on_progress, on_phase=phases.start)
        render.simulation_summary(summary)
    render.store_info(store_info(db, dataset=DEMO_DATASET), selected=True)


def _comparable(params: dict[str, Any]) -> dict[str, Any]:
    """Simulation parameters as JSON would give them back (tuples become lists)."""
    import json

    return {
        k: v for k, v in json.loads(json.dumps(params, default=str)).items() if k != "generator"
    }


def _stored_params(store: Any) -> dict[str, Any]:
    import json

    row = store.con.execute(
        "SELECT params FROM datasets WHERE dataset = ?", [DEMO_DATASET]
    ).fetchone()
    return _comparable(json.loads(row[0])) if row and row[0] else {}


def _step_compare(db: Path, *, claim: float) -> None:

    render.step(
        2,
        "Compare the A/B arms, and check the claim",
        f"`abkit compare --claim {claim}`: is the conversion lift of treatment real, and does "
        f"the data support the vendor's claim of {claim:+.0%}? Sample-ratio mismatch is "
        "checked first; the lift interval accounts for the control's uncertainty (Koopman).",
    )
    report = compare_arms(db, dataset=DEMO_DATASET, claim=claim)
    render_arm_report(report)
    render.console.print()
    report = compare_arms(db, dataset=DEMO_DATASET, metrics="ratio", claim=claim)
    render.line(  # a heading of the report on stdout, with the table it introduces
        "The carousel's own metric, clicks per impression (users randomised, so the "
        "delta method, not a per-impression test):",
        style="dim",
    )
    render_arm_report(report)


def _step_replay(db: Path) -> list[Any]:

    return demo_step(db, dataset=DEMO_DATASET, step=3)


def _step_compare_runs(db: Path, results: list[Any]) -> None:

    names = [r.name for r in results if r.model != "random"]
    run_ids = [r.run_id for r in results if r.model != "random"]
    render.step(
        4,
        "Compare the models offline, paired by user",
        f"`abkit compare {' '.join(names)}`: every user was scored by every model, so the "
        "differences are paired per user (narrower intervals than comparing two averages). "
        "With thousands of users everything is 'significant': read the effect and its interval.",
    )
    render.run_comparison(
        compare_runs(db, run_ids, metrics=["ndcg@10", "hit_rate@10"], correction="holm")
    )


def _step_gate(db: Path, als_run_id: str) -> list[GateReport]:

    render.step(
        5,
        "Gate a model change as CI would",
        "`abkit gate`: the ALS run is the stored baseline; a candidate fails only when it is "
        "significantly worse by more than the margin (here NDCG@10 may not drop by more than "
        "5%, one-sided paired test at alpha 0.05). First ALS retrained with another seed, "
        "then a deliberately degraded ALS with 2 factors.",
    )
    baseline = baseline_of_stored_run(db, als_run_id)
    checks = [GateCheck(metric="ndcg@10", max_drop=0.05)]
    reports = []
    for label, params in (("als-seed2", {"seed": 2}), ("als-2-factors", {"factors": 2})):
        run = replay(
            db,
            model="als",
            dataset=DEMO_DATASET,
            ks=(10,),
            params=params,
            name=f"demo/{label}",
            progress=render.progress,
            replace=True,  # the demo owns its demo/ names
        )
        report = gate_run(
            db, baseline=baseline, run=run.run_id, checks=checks, name=f"demo {label}"
        )
        render.gate_report(report)
        render.console.print(f"  exit code in CI: {0 if report.passed else 1}", style="bold")
        reports.append(report)
    return reports


def _step_report(db: Path, results: list[Any], gates: list[GateReport], *, claim: float) -> None:

    out = db.parent / "report.html"
    runs = [r.run_id for r in results if r.model != "random"]
    names = ",".join(r.name for r in results if r.model != "random")
    render.step(
        6,
        "Write the report",
        f"`abkit report --claim {claim} --runs {names}`: the steps above as one HTML file, "
        "charts beside the numbers, readable offline, on a phone and on paper.",
    )
    try:
        require_matplotlib("the demo's report")
    except MissingExtraError as exc:
        render.note(f"report skipped: {exc}")
        return
    report = build_report(db, dataset=DEMO_DATASET, runs=runs, claim=claim, gates=gates)
    written = write_report(report, out)
    render.console.print(
        f"Report: {written.path.resolve()} ({len(written.charts)} charts)", style="bold"
    )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
