"""Everything the user named prints literally: dataset, arm, experiment, run, spec and file
names that look like rich markup (``[/b]ctrl``, ``ranker [v1]``) or emoji codes (``:cat:``)
are shown as typed, in tables, titles, headings, warnings and the error line."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from abkit.cli import render
from abkit.cli.main import app

SMALL = ["--users", "300", "--items", "40", "--days", "3", "--pre-days", "1", "--seed", "0"]
CONTROL, OLD, NEW = "[/b]ctrl", "ranker [v1]", "[new] ranker"
DATASET, EXPERIMENT = "[/bold]x", ":cat: [b]exp"


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide stdout, so that table cells hold whole names on one line."""
    monkeypatch.setattr(render.console, "width", 250)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def db(runner: CliRunner, tmp_path: Path) -> Path:
    """A store whose path, dataset, experiment and arms all look like markup."""
    path = tmp_path / "[b]store [x].duckdb"  # no "/": that would be a folder
    args = ["simulate", *SMALL, "--db", str(path), "--dataset", DATASET, "--experiment",
            EXPERIMENT, "--arms", f"{CONTROL},{OLD},{NEW}"]  # fmt: skip
    out = ok(runner.invoke(app, args))
    assert f"Simulated dataset {DATASET} (experiment {EXPERIMENT}) into {path}" in out
    for arm in (CONTROL, OLD, NEW):
        assert f" {arm} " in out
    return path


def test_info_shows_names_as_typed(runner: CliRunner, db: Path) -> None:
    out = ok(runner.invoke(app, ["info", "--db", str(db)]))
    assert out.startswith(f"{db}  schema v")
    assert f"dataset {DATASET} (simulate; unit of analysis: user)" in out
    assert f"\nexperiment {EXPERIMENT}  " in out
    assert f" {CONTROL} (control) " in out
    assert f" {OLD} " in out
    assert f" {NEW} " in out


def test_compare_tells_arms_apart(runner: CliRunner, db: Path) -> None:
    result = runner.invoke(app, ["compare", "--db", str(db), "--claim", "0.2"])
    out = ok(result)
    assert f"A/B comparison: dataset {DATASET}, experiment {EXPERIMENT}\n" in out
    assert f" {CONTROL} (control) " in out
    assert f"\n{OLD} vs {CONTROL}\n" in out
    assert f"\n{NEW} vs {CONTROL}\n" in out
    assert f"Claim lift >= +20.0% ({NEW}): " in out
    # small counts: the warnings name the arms, on stderr
    assert f"warning: {OLD} vs {CONTROL} (conversion): small counts" in result.stderr


def test_replay_runs_and_run_comparison(runner: CliRunner, db: Path) -> None:
    first = ok(runner.invoke(app, ["replay", "--db", str(db), "--model", "popularity",
                                   "--name", OLD]))  # fmt: skip
    assert f"dataset {DATASET}  split " in first
    ok(runner.invoke(app, ["replay", "--db", str(db), "--model", "random", "--name", NEW]))
    runs = ok(runner.invoke(app, ["runs", "--db", str(db)]))
    assert f" {OLD} " in runs
    assert f" {NEW} " in runs
    compared = ok(runner.invoke(app, ["compare", OLD, NEW, "--db", str(db)]))
    assert f"\nndcg@10: {NEW} " in compared
    assert f" vs {OLD} " in compared
    deleted = ok(runner.invoke(app, ["runs", "delete", OLD, "--db", str(db), "--yes"]))
    assert deleted.startswith("deleted 1 run(s): ")
    assert f"({OLD}) (" in deleted  # as typed: no markup escape shown
    dropped = ok(
        runner.invoke(
            app, ["datasets", "drop", DATASET, "--db", str(db), "--dry-run", "--with-runs"]
        )
    )
    assert dropped.startswith(f"would drop dataset {DATASET} and 1 replay run(s) (")


def test_gate_named_after_a_markup_baseline_file(
    runner: CliRunner, db: Path, tmp_path: Path
) -> None:
    ok(runner.invoke(app, ["replay", "--db", str(db), "--model", "popularity", "--name", OLD]))
    baseline = tmp_path / "[b]base.json"
    saved = ok(runner.invoke(app, ["baseline", "save", OLD, "--db", str(db), "-o", str(baseline)]))
    assert saved.startswith(f"wrote {baseline} (")
    out = ok(runner.invoke(app, ["gate", "--baseline", str(baseline), "--run", OLD,
                                 "--db", str(db)]))  # fmt: skip
    assert out.startswith("gate [b]base: PASSED (")
    assert f"candidate {OLD} (run popularity-" in out


def test_run_spec_with_markup_names(runner: CliRunner, tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'name = "[/b]spec :cat:"\n'
        '[data]\ndataset = "[/bold]ds"\n'
        "simulate = { users = 300, items = 40, days = 3, pre_days = 1, seed = 3 }\n"
        '[models."[new] pop"]\nmodel = "popularity"\n'
        '[models."pop [v1]"]\nmodel = "popularity"\nparams = { smoothing = 2.0 }\n'
        '[evaluation]\nmetrics = ["ndcg@10"]\n'
        '[compare]\nreference = "pop [v1]"\n'
    )
    out = ok(runner.invoke(app, ["run", str(spec), "--db", str(tmp_path / "s.duckdb")]))
    assert out.startswith(f"Experiment [/b]spec :cat: ({spec})\n")
    assert "Simulated dataset '[/bold]ds' from" in out
    assert "\n  [new] pop: run popularity-" in out
    assert "ndcg@10: [/b]spec :cat:/[new] pop " in out


def test_ingest_summary_after_commit(runner: CliRunner, tmp_path: Path) -> None:
    """The summary is printed after the data is committed: it must not fail on the names."""
    log = tmp_path / "[b]log :cat:.csv"
    log.write_text(
        "user_id,variant,event_type,ts\n"
        f'u1,{CONTROL},view,2024-03-01T10:00:00Z\nu2,"{NEW}",purchase,2024-03-01T11:00:00Z\n'
    )
    db = tmp_path / "i.duckdb"
    args = ["ingest", str(log), "--db", str(db), "--dataset", DATASET, "--control", CONTROL]
    out = ok(runner.invoke(app, args))
    assert f"Ingested {log} into" in out  # the title wraps at the table's width
    assert f" dataset                  │ {DATASET} " in out
    assert f" {CONTROL}, {NEW} " in out
    info = ok(runner.invoke(app, ["info", "--db", str(db)]))
    assert f" {CONTROL} (control) " in info


def test_error_line_is_literal(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", "--db", "[/b]none :cat:.duckdb"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: [/b]none :cat:.duckdb: no such database; create one with `abkit simulate` or "
        "`abkit ingest`\n"
    )


def test_progress_description_is_literal(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the progress bar shows the file name as typed."""
    buffer = io.StringIO()
    terminal = Console(file=buffer, force_terminal=True, width=100, markup=False, emoji=False)
    monkeypatch.setattr(render, "err_console", terminal)
    with render.progress("Ingesting [/b]x :cat:.csv", total=2) as advance:
        advance()
    assert "Ingesting [/b]x :cat:.csv" in buffer.getvalue()


def test_say_and_messages_never_read_markup(capsys: pytest.CaptureFixture[str]) -> None:
    render.say(("[/b]bold", "bold"), " [red]plain[/red] :cat:")
    render.warning("[/b]w")
    render.note("[dim]n[/]")
    render.line("[/x]")
    out, err = capsys.readouterr()
    assert out == "[/b]bold [red]plain[/red] :cat:\n[/x]\n"
    assert err == "warning: [/b]w\n[dim]n[/]\n"


def test_run_comparison_wording_for_unbounded_and_negative_lifts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from types import SimpleNamespace as NS

    def row(candidate: str, low: float, high: float, supported: float) -> NS:
        result = NS(value_a=0.01, value_b=0.012, relative_difference=0.2,
                    relative_ci_low=low, relative_ci_high=high, difference=0.002,
                    ci_low=-0.001, ci_high=0.005)  # fmt: skip
        claim = NS(max_supported_lift=supported, claim=0.2, verdict="not decided",
                   p_value_above=0.6)  # fmt: skip
        return NS(estimator="ips", candidate=candidate, reference="ref", result=result,
                  p_adjusted=0.3, claim=claim)  # fmt: skip

    result = NS(reference=NS(label="ref", run_id="r1"), confidence=0.95, kind="offpolicy",
                rows=[], correction="none", paired_rounds=100, paired_units=50, notes=(),
                offpolicy=[row("wide", -math.inf, math.inf, -math.inf),
                           row("low", -0.284, 0.9, -0.284)])  # fmt: skip
    render.run_comparison(result)
    out = capsys.readouterr().out
    assert "  relative +20.0% undefined (control near 0)   difference +0.002" in out
    assert "-inf" not in out
    assert "  relative +20.0% [-28.4%, +90.0%]   difference +0.002" in out
    assert "(no lift above -28.4% is supported; p = 0.600 for H0: lift <= +20%)" in out
    assert "support a lift of at least -" not in out


def test_a_phase_of_unknown_length_shows_no_count() -> None:
    from rich.progress import Progress

    from abkit.cli.render import _Count, _Remaining

    bar = Progress()
    bar.add_task("ranking", total=15, completed=3)
    bar.add_task("writing", total=None)
    known, unknown = bar.tasks
    assert _Count().render(known).plain.strip() == "3/15"
    assert _Count().render(unknown).plain == ""
    assert _Remaining().render(unknown).plain == ""
