"""`abkit report`: user-supplied names (dataset, arms, runs) cannot inject markup into the
Markdown report; `--runs` splits at commas only (a run name may hold spaces); every refusal
is one line with exit 2, the store byte-identical and no report written."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from abkit.cli.main import app
from tests._ab_store import build_store, day
from tests._fake_runs import add_run, correlated_users
from tests.conftest import file_digest

DATASET = "<script>alert(1)</script>"
CONTROL = "c|[x](javascript:alert(1))`code` & *b*"
TREATMENT = '"><img src=x onerror=alert(2)>'
EVIL_RUN = '"><img src=y onerror=alert(3)>'
MY_RUN = "my run"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An A/B dataset and two replay runs, every name a payload (or a space)."""
    db = tmp_path_factory.mktemp("hostile") / "h.duckdb"
    assignments = [(f"c{i}", CONTROL, day(0.1 * i)) for i in range(40)]
    assignments += [(f"t{i}", TREATMENT, day(0.1 * i)) for i in range(40)]
    events = [(f"c{i}", "purchase", day(2), 1.0, None) for i in range(0, 40, 4)]
    events += [(f"t{i}", "purchase", day(2), 1.0, None) for i in range(0, 40, 3)]
    build_store(
        db,
        dataset=DATASET,
        arms=(CONTROL, TREATMENT),
        control=CONTROL,
        assignments=assignments,
        events=events,
    )
    base, cand = correlated_users(2, 200, shift=0.05)
    add_run(db, "run-a", user_metrics={"ndcg@10": base}, name=MY_RUN, dataset=DATASET)
    add_run(db, "run-b", user_metrics={"ndcg@10": cand}, name=EVIL_RUN, dataset=DATASET)
    return db


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_markdown_report_escapes_every_name(runner: CliRunner, store: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    args = ["report", "--db", str(store), "--dataset", DATASET, "--out", str(out)]
    result = runner.invoke(app, [*args, "--runs", f"{MY_RUN},{EVIL_RUN}", "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["sections"][:2] == ["experiment", "lift"]
    assert "models" in written["sections"]
    text = out.read_text(encoding="utf-8")
    assert "<script" not in text
    assert "<img" not in text
    assert '"><' not in text
    assert not re.search(r"(?<!\\)\]\(javascript", text)  # no link: the `]` is escaped
    # the names are there, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in text
    assert "&quot;&gt;&lt;img src=y onerror=alert(3)&gt;" in text
    assert "c\\|\\[x\\](javascript:alert(1))\\`code\\` &amp; \\*b\\*" in text
    # rendered as GitHub would (CommonMark and tables): no tag but the report's own, the
    # names shown as they are
    page = MarkdownIt("commonmark").enable("table").render(text)
    parsed = _Tags()
    parsed.feed(page)
    tags = {tag for tag, _ in parsed.tags}
    assert tags <= {"h1", "h2", "p", "img", "table", "thead", "tbody", "tr", "th", "td"}, tags
    images = [attrs for tag, attrs in parsed.tags if tag == "img"]
    assert [i["src"] for i in images] == [
        f"r_files/{c['path'].split('/')[-1]}" for c in (written["charts"])
    ]
    assert not any(attrs.get("href") for _, attrs in parsed.tags)
    shown = "".join(parsed.text)
    for name in (DATASET, CONTROL, TREATMENT, EVIL_RUN, MY_RUN):
        assert name in shown
    alts = " ".join(str(i["alt"]) for i in images)
    assert DATASET in alts
    assert TREATMENT in alts
    # a name's `|` does not add a table cell: every row of the arms table has the header's
    lines = text.splitlines()
    start = lines.index("| arm | users | expected | designed share |")
    rows = lines[start + 2 : start + 4]
    assert [len(re.findall(r"(?<!\\)\|", row)) for row in rows] == [5, 5], rows


@pytest.mark.parametrize(
    "runs",
    [
        [f"{MY_RUN},{EVIL_RUN}"],
        [f" {MY_RUN} , {EVIL_RUN} "],
        [MY_RUN, EVIL_RUN],
        [MY_RUN, "run-b"],
    ],
)
def test_runs_split_at_commas_only(
    runner: CliRunner, store: Path, tmp_path: Path, runs: list[str]
) -> None:
    out = tmp_path / "r.md"
    args = ["report", "--db", str(store), "--dataset", DATASET, "--out", str(out), "--json"]
    result = runner.invoke(app, [*args, *(w for r in runs for w in ("--runs", r))])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)["results"]["runs"]
    assert [(r["run_id"], r["name"]) for r in shown] == [("run-a", MY_RUN), ("run-b", EVIL_RUN)]


# (arguments after `report --db DB --out OUT`, the exact one-line message)
REFUSALS = [
    (["--runs", "my"], "error: unknown run 'my'; list the runs with `abkit runs`"),
    (
        ["--runs", "my run,,run-b"],
        "error: --runs has an empty run name in 'my run,,run-b'",
    ),
    (["--runs", "my run", "--runs", ","], "error: --runs has an empty run name in 'my run', ','"),
    (
        ["--runs", "my run,nope"],
        "error: unknown run 'nope'; list the runs with `abkit runs`",
    ),
    (
        ["--dataset", "nope"],
        "error: {db}: unknown dataset 'nope'; expected one of: " + DATASET,
    ),
    (
        ["--format", "pdf"],
        "error: --format must be html or md, got pdf",
    ),
]


@pytest.mark.parametrize(("args", "message"), REFUSALS)
def test_report_refusals_are_one_line_and_change_nothing(
    runner: CliRunner, store: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "r.md"
    before = file_digest(store)
    result = runner.invoke(app, ["report", "--db", str(store), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [message.format(db=store)]
    assert file_digest(store) == before
    assert not out.exists()
