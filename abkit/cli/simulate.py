"""`abkit simulate`: write synthetic traffic with planted, known effects into a store."""

from __future__ import annotations

from typing import Annotated

import typer

from abkit.cli import render
from abkit.cli.common import (
    DEFAULT_DB,
    RELATIVE_RULE,
    DbOption,
    JsonOption,
    WaitOption,
    offer_wait,
    relative_option,
)
from abkit.simulate import SimulationConfig
from abkit.simulate import simulate as run_simulation
from abkit.stats.shares import parse_split

__all__ = ["parse_arms", "parse_split", "simulate"]


def parse_arms(text: str) -> tuple[str, ...]:
    """``"control,treatment"`` -> ``("control", "treatment")``."""
    return tuple(part.strip() for part in text.split(","))


def simulate(
    users: Annotated[
        int, typer.Option(help="Users in the experiment (all visit in its window).")
    ] = 20_000,
    items: Annotated[int, typer.Option(help="Catalogue size.")] = 1_000,
    days: Annotated[int, typer.Option(help="Length of the experiment window in days.")] = 14,
    pre_days: Annotated[
        int, typer.Option(help="Days of pre-experiment traffic before it (for CUPED).")
    ] = 7,
    arms: Annotated[
        str, typer.Option(help="Comma-separated arm names; the first is control.")
    ] = "control,treatment",
    split: Annotated[
        str | None,
        typer.Option(
            help="Designed shares, percentages summing to 100 (50/50) or fractions summing "
            "to 1 (0.5,0.5) [default: equal shares]."
        ),
    ] = None,
    lift: Annotated[
        float,
        relative_option(
            "Planted true relative lift in user conversion of each non-control arm: 0.2 or 20% "
            "for +20%. " + RELATIVE_RULE,
            show_default=True,
        ),
    ] = 0.2,
    srm: Annotated[
        float,
        typer.Option(
            help="Plant a sample-ratio mismatch: fraction of non-control users whose records "
            "are lost."
        ),
    ] = 0.0,
    slots: Annotated[int, typer.Option(help="Carousel size (positions per slate).")] = 4,
    base_conversion: Annotated[
        float, typer.Option(help="Mean true conversion probability of a control user.")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 0,
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Name of the new dataset in the store.")
    ] = "sim",
    experiment: Annotated[
        str, typer.Option(help="Name of the simulated A/B experiment.")
    ] = "carousel",
    db: DbOption = DEFAULT_DB,
    wait: WaitOption = 0.0,
    json: JsonOption = False,
) -> None:
    """Simulate e-commerce traffic with a carousel A/B test and a planted, known truth.

    Users with tastes browse items in sessions (with sequential structure), click a carousel
    whose logging policy differs by arm (logged with exact propensities), add to cart and
    buy. The true conversion rate of each arm and the true CTR of each policy are stored in
    the file (see `abkit info`).
    """

    arm_names = parse_arms(arms)
    shares = parse_split(split) if split is not None else (1 / len(arm_names),) * len(arm_names)
    config = SimulationConfig(
        users=users,
        items=items,
        days=days,
        pre_days=pre_days,
        arms=arm_names,
        split=shares,
        lift=lift,
        srm=srm,
        slots=slots,
        base_conversion=base_conversion,
        seed=seed,
        dataset=dataset,
        experiment=experiment,
    )
    with offer_wait(wait), render.phases() as phases:
        phases.start("Simulating users", config.users)
        done = 0

        def on_progress(users_done: int, _total: int) -> None:
            nonlocal done
            phases.advance(users_done - done)
            done = users_done

        summary = run_simulation(
            config, db, on_progress=on_progress, on_phase=phases.start, wait=wait
        )
    if json:
        render.print_json(summary.to_dict())
        return

    render.simulation_summary(summary)
    render.note(f"next: abkit info --db {summary.db}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("simulate")(simulate)
