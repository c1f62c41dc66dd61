"""`--plot FILE.png|.svg` on `abkit compare` and `abkit replay`: the chart next to unchanged
JSON, its caption's numbers equal to the JSON's, one-line errors (exit 2, nothing done) for
another extension or a missing matplotlib."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from abkit.cli.main import app
from tests._ab_store import hand_store
from tests._fake_runs import add_run, correlated_users
from tests.conftest import file_digest
from tests.replay.helpers import structured_events, write_store

SVG = "{http://www.w3.org/2000/svg}"


def png_caption(path: Path) -> tuple[str, np.ndarray]:
    from matplotlib.image import imread
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        caption = image.info["Description"]
    return caption, imread(path)


def pct(value: float) -> str:
    return f"{100 * value:+.1f}%"


def test_compare_arms_plot_png_with_json(runner: CliRunner, tmp_path: Path) -> None:
    db = hand_store(tmp_path / "h.duckdb")
    out = tmp_path / "lift.png"
    args = ["compare", "--db", str(db), "--claim", "0.2", "--json", "--plot", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    (c,) = json.loads(result.stdout)["comparisons"]
    caption, image = png_caption(out)
    assert image.shape[:2] == (394, 800)
    assert float(image[..., :3].var()) > 0
    lift = f"lift {pct(c['lift'])}, 95% CI [{pct(c['lift_ci'][0])}, {pct(c['lift_ci'][1])}]"
    assert lift in caption
    assert f"the claim +20.0% is {c['claim']['verdict']}" in caption
    assert f"chart: wrote {out}" in result.stderr


def test_compare_runs_plot_svg(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "runs.duckdb"
    base, cand = correlated_users(1, 300, shift=0.05)
    add_run(db, "run-a", user_metrics={"ndcg@10": base}, name="a")
    add_run(db, "run-b", user_metrics={"ndcg@10": cand}, name="b")
    out = tmp_path / "runs.svg"
    result = runner.invoke(
        app, ["compare", "a", "b", "--db", str(db), "--json", "--plot", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)["comparisons"]
    root = ET.parse(out).getroot()
    caption = root.find(f"{SVG}desc").text
    assert root.findall(f".//{SVG}path")
    assert (
        f"relative {pct(row['relative_difference'])}, 95% CI "
        f"[{pct(row['relative_ci_low'])}, {pct(row['relative_ci_high'])}]"
    ) in caption


def test_replay_plot(runner: CliRunner, tmp_path: Path) -> None:
    db = write_store(tmp_path / "r.duckdb", events=structured_events(n_users=120, seed=3))
    out = tmp_path / "replay.png"
    args = ["replay", "--db", str(db), "--model", "popularity", "--k", "10,20", "--json"]
    result = runner.invoke(app, [*args, "--plot", str(out)])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    caption, image = png_caption(out)
    assert image.shape[1] == 800
    assert float(image[..., :3].var()) > 0
    for name, value in payload["metrics"].items():
        assert f"{name} {value:.4g}" in caption


@pytest.mark.parametrize("command", ["compare", "replay"])
def test_another_extension_is_one_line_naming_plot(
    runner: CliRunner, tmp_path: Path, command: str
) -> None:
    db = write_store(tmp_path / "r.duckdb", events=structured_events(n_users=40, seed=1))
    before = file_digest(db)
    args = [command, "--db", str(db), "--plot", str(tmp_path / "chart.jpg")]
    if command == "replay":
        args += ["--model", "popularity"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: --plot ")
    assert "extension picks the chart's format, .png or .svg; got .jpg" in lines[0]
    assert file_digest(db) == before  # nothing replayed or stored
    assert not (tmp_path / "chart.jpg").exists()


@pytest.mark.parametrize("command", ["compare", "replay"])
def test_missing_matplotlib_exits_2_with_the_install_line(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    db = write_store(tmp_path / "r.duckdb", events=structured_events(n_users=40, seed=1))
    before = file_digest(db)
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    args = [command, "--db", str(db), "--plot", str(tmp_path / "chart.png")]
    if command == "replay":
        args += ["--model", "popularity"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --plot needs the optional package 'matplotlib': pip install \"abkit-lift[report]\""
    )
    assert file_digest(db) == before
    assert not (tmp_path / "chart.png").exists()


def _gate_store(db: Path) -> Path:
    base, _ = correlated_users(1, 800)
    worse = np.clip(base * 0.8, 0, 1)
    metrics = lambda v: {"ndcg@10": v, "hit_rate@10": (v > 0.25) * 1.0}  # noqa: E731
    add_run(db, "base", user_metrics=metrics(base), params={"factors": 16}, name="als16")
    add_run(db, "worse", user_metrics=metrics(worse), params={"factors": 2})
    return db


def test_gate_plot_and_the_step_summary_chart(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _gate_store(tmp_path / "g.duckdb")
    baseline = tmp_path / "b.json"
    saved = runner.invoke(app, ["baseline", "save", "base", "--db", str(db), "-o", str(baseline)])
    assert saved.exit_code == 0, saved.stderr
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = tmp_path / "gate.png"
    args = ["gate", "--db", str(db), "--baseline", str(baseline), "--run", "worse"]
    result = runner.invoke(app, [*args, "--max-drop", "0.05", "--json", "--plot", str(out)])
    assert result.exit_code == 1, result.stderr
    gates = json.loads(result.stdout)["gates"]
    caption, image = png_caption(out)
    assert image.shape[1] == 800
    assert float(image[..., :3].var()) > 0
    for g in gates:
        assert (
            f"{g['metric']}: change {100 * g['change']:+.2f}%, upper bound "
            f"{100 * g['upper_bound']:+.2f}%"
        ) in caption
        assert f"allowed {100 * g['limit']:+.2f}%" in caption
    assert caption.count(": FAIL.") + caption.count(": FAIL;") == 2
    # the summary: the Markdown table, then the same numbers as a Mermaid chart
    text = summary.read_text()
    assert text.startswith("### abkit gate `b`: FAILED")
    block = text[text.index("```mermaid") :]
    bars = block.split("bar [", 1)[1].split("]", 1)[0]
    assert [float(v) for v in bars.split(", ")] == pytest.approx(
        [100 * g["change"] for g in gates], rel=1e-3
    )
    lines = [line.split("[", 1)[1].rstrip("]") for line in block.splitlines() if "line [" in line]
    assert [float(v) for v in lines[1].split(", ")] == pytest.approx([-5.0, -5.0])


def test_gate_plot_with_another_extension_exits_2_before_the_gate(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["gate", "--baseline", "b.json", "--run", "x", "--plot", str(tmp_path / "g.gif")]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --plot ")
    assert "got .gif" in result.stderr


def test_report_command_html_and_json(runner: CliRunner, tmp_path: Path) -> None:
    db = hand_store(tmp_path / "h.duckdb")
    out = tmp_path / "r.html"
    result = runner.invoke(
        app, ["report", "--db", str(db), "--claim", "0.2", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    compared = runner.invoke(app, ["compare", "--db", str(db), "--claim", "0.2", "--json"])
    # the report's arms are exactly what `abkit compare --json` prints
    assert payload["results"]["arms"] == json.loads(compared.stdout)
    assert payload["format"] == "html"
    assert payload["sections"][:2] == ["experiment", "lift"]
    assert out.read_text().count("<img ") == len(payload["charts"])
    lift = next(c for c in payload["charts"] if c["title"].startswith("Relative lift"))
    (c,) = payload["results"]["arms"]["comparisons"]
    assert f"lift {pct(c['lift'])}, 95% CI [{pct(c['lift_ci'][0])}" in lift["caption"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "r.pdf"], "error: --out r.pdf: the extension picks the format, .html or .md"),
        (["--format", "pdf"], "error: --format must be html or md, got pdf"),
    ],
)
def test_report_usage_errors(
    runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    db = hand_store(tmp_path / "h.duckdb")
    result = runner.invoke(app, ["report", "--db", str(db), *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(message)


def test_report_without_matplotlib_exits_2(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = hand_store(tmp_path / "h.duckdb")
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: abkit report needs the optional package 'matplotlib': "
        'pip install "abkit-lift[report]"'
    )
    assert not out.exists()
