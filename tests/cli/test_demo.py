"""`abkit demo`, the README's main command, end to end on a small simulated shop."""

from __future__ import annotations

import re

import pytest

from abkit.cli.main import app


@pytest.mark.slow
def test_demo_walks_through_every_step_and_reuses_its_store(runner, db_path) -> None:
    args = ["demo", "--db", str(db_path), "--users", "3000"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    out = " ".join(first.stdout.split())
    for step in range(1, 7):
        assert f"Step {step}." in out
    # the planted +20% is checked as a claim, honestly undecided at this size
    assert re.search(r"Claim lift >= \+20\.0% \(treatment\): (NOT DECIDED|SUPPORTED|REFUTED)", out)
    assert "SRM check passed" in out
    # the heading of the ratio comparison comes with its table, on stdout (demo > out.txt)
    heading = "The carousel's own metric, clicks per impression"
    assert out.index(heading) < out.index("clicks_per_impression")
    # replayed models, paired comparison, and both gate outcomes as CI would see them
    for model in ("demo/random", "demo/popularity", "demo/als"):
        assert model in out
    assert "Paired comparison on the same" in out
    assert "gate demo als-seed2: PASSED" in out
    assert "gate demo als-2-factors: FAILED on ndcg@10" in out
    # step 6: the report beside the store, every step drawn
    report = db_path.parent / "report.html"
    assert f"Report: {report.resolve()}" in out
    page = report.read_text(encoding="utf-8")
    assert page.count("<img ") >= 6
    assert "<script" not in page

    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "already holds the demo dataset; reusing it" in " ".join(second.stderr.split())
    assert "ambiguous" not in second.output


def test_demo_without_matplotlib_skips_the_report_with_the_install_line(
    tmp_path, monkeypatch, capsys
) -> None:
    import sys

    from abkit.cli.demo import _step_report

    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    _step_report(tmp_path / "demo.duckdb", [], [], claim=0.2)
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "report skipped: the demo's report needs the optional package 'matplotlib': "
        'pip install "abkit-lift[report]"'
    ) in err
    assert not (tmp_path / "report.html").exists()
