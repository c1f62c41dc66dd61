"""The README's benchmark tables are `abkit bench --markdown` of the saved runs, verbatim.

The three full runs that accepted this version are committed in ``tests/bench/runs/``; the
README shows their tables between the ``bench-tables`` markers, so no number there can be
typed in or left behind by a later run.
"""

from __future__ import annotations

from pathlib import Path

from abkit.bench.markdown import load_reports, markdown

ROOT = Path(__file__).resolve().parents[2]
RUNS = sorted((Path(__file__).parent / "runs").glob("run*.json"))


def test_readme_tables_are_the_saved_runs_markdown() -> None:
    assert len(RUNS) >= 3  # the acceptance is three full runs in a row
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- bench-tables:start -->\n") + len("<!-- bench-tables:start -->\n")
    end = readme.index("<!-- bench-tables:end -->")
    assert readme[start:end].strip() == markdown(load_reports(RUNS)).strip()


def test_saved_runs_are_full_runs_of_every_default_line() -> None:
    for report in load_reports(RUNS):
        assert report["quick"] is False
        assert report["scale"] == 1
        names = [line["name"] for line in report["lines"]]
        assert len(names) == len(set(names))
        assert all(line["status"] == "ok" for line in report["lines"]), names
