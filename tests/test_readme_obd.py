"""The README section "Does personalisation convert 20% better? (the Open Bandit sample)": its
commands are run as written (on ../shared/data/obd, the full sample the section is computed
on) and every number of its tables is compared with their output, parsed from README.md, so
README and code cannot disagree. Skipped only when the sample is absent.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from abkit.cli.main import app
from tests.conftest import OBD_SAMPLE, REPO

TITLE = "## Does personalisation convert 20% better? (the Open Bandit sample)"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not OBD_SAMPLE.exists(), reason="the OBD sample ../shared/data/obd"),
]


def section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(TITLE)
    return text[start : text.index("\n## ", start + len(TITLE))]


def pct(x: float) -> str:
    return f"{100 * x:+.1f}%"


def _commands(block: str) -> list[tuple[str, str]]:
    """("abkit", line) and ("python", code) steps of the section's bash block, in order; the
    nested for-loop over campaigns and policies is expanded."""
    steps: list[tuple[str, str]] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        loop = re.match(r"for (\w+) in ([\w ]+); do for (\w+) in ([\w ]+); do$", line)
        if loop:
            body = lines[i + 1].strip()
            assert lines[i + 2].strip() == "done; done"
            for a in loop.group(2).split():
                for b in loop.group(4).split():
                    steps.append(
                        (
                            "abkit",
                            body.replace(f"${loop.group(1)}", a).replace(f"${loop.group(3)}", b),
                        )
                    )
            i += 3
            continue
        if line.startswith("python - <<'EOF'"):
            end = lines.index("EOF", i)
            steps.append(("python", "\n".join(lines[i + 1 : end])))
            i = end + 1
            continue
        if line.startswith("abkit "):
            steps.append(("abkit", line))
        i += 1
    return steps


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the section's commands in a fresh folder; the JSON output of each compare and
    replay, keyed by its command line."""
    import os

    text = section()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block is not None
    folder = tmp_path_factory.mktemp("readme-obd")
    sample = str(OBD_SAMPLE)
    runner = CliRunner()
    out: dict[str, Any] = {}
    here = Path.cwd()
    os.chdir(folder)
    try:
        for kind, step in _commands(block.group(1)):
            step = step.replace("../shared/data/obd", sample)
            if kind == "python":
                exec(compile(step, "README.md", "exec"), {})  # the section's own snippet
                continue
            args = shlex.split(step)[1:]
            wants_json = args[0] in ("compare", "replay")
            result = runner.invoke(app, args + (["--json"] if wants_json else []))
            assert result.exit_code == 0, (step, result.output)
            if wants_json:
                out[step.replace(sample, "../shared/data/obd")] = json.loads(result.stdout)
    finally:
        os.chdir(here)
    return out


def _find(outputs: dict[str, Any], *needles: str) -> Any:
    found = [v for k, v in outputs.items() if all(n in k for n in needles)]
    assert len(found) == 1, needles
    return found[0]


def _rows(text: str, first_cell: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith(f"| {first_cell}")
    ]


def test_ab_route_per_campaign_with_holm(outputs: dict[str, Any]) -> None:
    report = _find(outputs, "compare", "--datasets")
    text = section()
    assert report["correction"] == "holm"
    assert len(report["family"]) == 3
    for r in report["reports"]:
        campaign = r["dataset"].removeprefix("obd-")
        (row,) = _rows(text, f"{campaign} |")
        clicks = {a["name"]: a["conversions"] for a in r["arms"]}
        (c,) = r["comparisons"]
        lift = f"{pct(c['lift'])} [{pct(c['lift_ci'][0])}, {pct(c['lift_ci'][1])}]"
        expected = [
            campaign,
            str(clicks["random"]),
            str(clicks["bts"]),
            lift,
            f"{c['p_value']:.3f}",
            f"{c['p_adjusted']:.3f}",
            c["claim"]["verdict"],
        ]
        assert row == expected


@pytest.mark.parametrize(
    ("route", "needle"), [("b1", "uniform-late logistic-late"), ("b2", "uniform-all bts-on-random")]
)
def test_offpolicy_routes(outputs: dict[str, Any], route: str, needle: str) -> None:
    result = _find(outputs, "compare", needle)
    rows = _rows(section(), f"{route}:")
    assert {row[1] for row in rows} == {"ips", "dr"}
    by_estimator = {o["estimator"]: o for o in result["offpolicy"]}
    for row in rows:
        o = by_estimator[row[1]]
        assert row[2:] == [
            f"{o['value_b']:.4f}",
            f"{o['value_a']:.4f}",
            f"{pct(o['relative_difference'])} [{pct(o['relative_ci_low'])}, "
            f"{pct(o['relative_ci_high'])}]",
            f"{o['claim']['p_value_above']:.3f}",
            o["claim"]["verdict"],
        ]


def test_trained_model_prose_numbers(outputs: dict[str, Any]) -> None:
    run = _find(outputs, "replay", "--model logistic")
    text = " ".join(section().split())
    match = re.search(
        r"holds (\d+) clicks to learn from.*? in only (\d+) of the ([\d,]+) later", text
    )
    assert match is not None
    assert run["params"]["train_on"] == "impressions"
    assert run["split"].startswith("temporal:")
    assert int(match.group(1)) == run["train_interactions"]
    assert int(match.group(2)) == run["estimates"]["ips"]["diagnostics"]["nonzero"]
    assert int(match.group(3).replace(",", "")) == run["rounds"]


def test_answer_prose_numbers(outputs: dict[str, Any]) -> None:
    text = " ".join(section().split())
    match = re.search(
        r"\(([+-][\d.]+%) in the All campaign's A/B test, ([+-][\d.]+%) \(IPS\) to "
        r"([+-][\d.]+%) \(DR\) off-policy for BTS\)",
        text,
    )
    assert match is not None
    ab = _find(outputs, "compare", "--datasets")
    (everything,) = [r for r in ab["reports"] if r["dataset"] == "obd-all"]
    bts = {o["estimator"]: o for o in _find(outputs, "compare", "bts-on-random")["offpolicy"]}
    assert match.groups() == (
        pct(everything["comparisons"][0]["lift"]),
        pct(bts["ips"]["relative_difference"]),
        pct(bts["dr"]["relative_difference"]),
    )
