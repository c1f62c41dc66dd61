"""``abkit power``: sample size per arm, minimum detectable effect, or power, before a test.

The command parses its options, calls :func:`abkit.stats.power.power` and renders the frozen
:class:`~abkit.stats.results.PowerResult`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer

from abkit.cli import render
from abkit.cli.common import RELATIVE_RULE, JsonOption, relative_option
from abkit.cli.render import diff_text as _diff
from abkit.cli.render import lift_text as _lift
from abkit.stats.power import power

if TYPE_CHECKING:
    from abkit.stats.results import PowerResult


def power_command(
    baseline: Annotated[
        float,
        typer.Option(
            help="The control's conversion rate (e.g. 0.05), or its mean with --metric mean.",
            show_default=False,
        ),
    ],
    mde: Annotated[
        float | None,
        relative_option(
            "Minimum detectable effect, relative unless --absolute: 0.2 or 20% for +20%. "
            + RELATIVE_RULE
            + " With --absolute a difference in the metric's own units (no %). Give it to get "
            "the sample size; with --n to get the power.",
            noun="effect",
            absolute_option="absolute",
        ),
    ] = None,
    absolute: Annotated[
        bool,
        # eager: known before --mde is read, wherever it stands on the command line
        typer.Option("--absolute", help="Read --mde as an absolute difference.", is_eager=True),
    ] = False,
    n: Annotated[
        int | None,
        typer.Option(
            "--n",
            help="Units per arm: give it to get the MDE (or, with --mde, the power).",
            show_default=False,
        ),
    ] = None,
    target_power: Annotated[
        float, typer.Option("--power", help="Target power when solving for n or the MDE.")
    ] = 0.8,
    alpha: Annotated[float, typer.Option(help="Significance level (two-sided).")] = 0.05,
    arms: Annotated[
        int,
        typer.Option(
            help="Arms including the control; alpha is split over arms - 1 comparisons (not for "
            "--claim, which is checked per comparison at alpha, as compare --claim does)."
        ),
    ] = 2,
    metric: Annotated[str, typer.Option(help="conversion or mean.")] = "conversion",
    sd: Annotated[
        float | None,
        typer.Option(
            help="Per-unit standard deviation (needed for --metric mean).", show_default=False
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="Formula for conversion: pooled (default), unpooled, cohen-h, pooled-cc.",
            show_default=False,
        ),
    ] = None,
    claim: Annotated[
        float | None,
        relative_option(
            "Units needed to show the lift exceeds this (0.1 or 10%) when the true lift is "
            "--mde. " + RELATIVE_RULE
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Sample size per arm, minimum detectable effect, or power, before running a test."""

    result = power(
        baseline=baseline,
        metric=metric,  # type: ignore[arg-type]
        mde=mde,
        relative=not absolute,
        n_per_arm=n,
        target_power=target_power,
        alpha=alpha,
        arms=arms,
        sd=sd,
        method=method,  # type: ignore[arg-type]
        claim=claim,
    )
    if json:
        render.print_json(result.to_dict())
        return
    render_power(result)


def render_power(r: PowerResult) -> None:

    metric = "conversion" if r.metric == "conversion" else "mean"

    def level(value: float) -> str:
        return render.pct(value, 2) if metric == "conversion" else render.fmt(value)

    effect = (
        f"{_lift(r.mde_relative)} ({level(r.baseline)} -> {level(r.target)}, "
        f"{_diff(metric, r.mde_absolute)})"
    )
    alpha_text = f"alpha {r.alpha:g} ({'two' if r.sides == 2 else 'one'}-sided)"
    if r.claim is not None:
        render.line(
            f"To show the lift exceeds {_lift(r.claim)} when the true lift is "
            f"{_lift(r.mde_relative)} ({level(r.baseline)} -> {level(r.target)}), with "
            f"{100 * r.power:g}% power at {alpha_text}:",
            style="bold",
        )
    elif r.solved_for == "n":
        render.line(
            f"To detect {effect} with {100 * r.power:.3g}% power at {alpha_text}:", style="bold"
        )
    elif r.solved_for == "mde":
        render.line(
            f"With {r.n_per_arm:,} units per arm, {100 * r.power:g}% power at {alpha_text}, "
            f"the minimum detectable effect is {effect}.",
            style="bold",
        )
    else:
        render.line(
            f"With {r.n_per_arm:,} units per arm the power to detect {effect} at {alpha_text} "
            f"is {100 * r.power:.1f}%.",
            style="bold",
        )
    if r.solved_for == "n":
        render.line(
            f"  {r.n_per_arm:,} units per arm, {r.total_units:,} in total over {r.arms} arms."
        )
    render.line(f"  Method: {r.method_description}.")
    if r.n_by_method:
        rows = [
            [m + (" (abkit default)" if m == "pooled" else ""), math.ceil(v - 1e-9), round(v, 1)]
            for m, v in r.n_by_method
        ]
        render.console.print(
            render.table("Units per arm by formula", ["formula", "units", "exact"], rows)
        )
    for note in r.notes:
        render.line(f"  Note: {note}.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("power")(power_command)
