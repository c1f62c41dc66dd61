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
