"""`abkit demo`: the README's main command, a guided tour on simulated traffic.

Each step calls the same library function and renderer as the matching command, so the demo
shows exactly what a user would see running the commands one by one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from abkit.cli.common import DEFAULT_DB, DbOption

DEMO_DATASET = "demo"


def demo(
    db: DbOption = DEFAULT_DB,
    users: Annotated[
        int, typer.Option(help="Simulated users (more users, narrower intervals, longer run).")
    ] = 20_000,
    lift: Annotated[
        float, typer.Option(help="The true relative conversion lift planted in the treatment arm.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the simulation (same seed, same report).")] = 1,
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="Simulate again even if the store already holds the demo."),
    ] = False,
) -> None:
    """Simulate a shop's traffic and walk through replay, compare and gate on it."""
    from abkit.cli import render

    render.heading("abkit demo", "a guided tour on simulated traffic with a known, planted lift")
    _step_simulate(db, users=users, lift=lift, seed=seed, fresh=fresh)
    _step_compare(db, claim=0.2)
    render.console.print()
    render.note("Run `abkit --help` to see every command; `abkit COMMAND --help` for details.")


def _step_simulate(db: Path, *, users: int, lift: float, seed: int, fresh: bool) -> None:
    from abkit.cli import render
    from abkit.data.info import store_info
    from abkit.data.store import open_store
    from abkit.simulate import SimulationConfig, simulate

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
            if existing and fresh:
                store.drop_dataset(DEMO_DATASET)
                existing = False
    if existing:
        render.note(f"{db} already holds the demo dataset; reusing it (--fresh simulates again).")
    else:
        with render.progress("simulating", total=users) as advance:
            last = [0]

            def on_progress(done: int, total: int) -> None:
                advance(done - last[0])
                last[0] = done

            summary = simulate(config, db, on_progress=on_progress)
        render.simulation_summary(summary)
    render.store_info(store_info(db, dataset=DEMO_DATASET))


def _step_compare(db: Path, *, claim: float) -> None:
    from abkit.analysis import compare_arms
    from abkit.cli import render
    from abkit.cli.stats import render_arm_report

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
    render.note(
        "The carousel's own metric, clicks per impression (users randomised, so the "
        "delta method, not a per-impression test):"
    )
    render_arm_report(report)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
