"""abkit.report: the charts of the frozen result objects. Every file is checked as a file of
its format (PNG magic bytes and size read back by matplotlib, SVG parsed as XML), not blank,
and its caption states the numbers of the result, as its JSON holds them."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from abkit.compare.arms import compare_arms
from abkit.compare.runs import compare_runs
from abkit.errors import InputError, MissingExtraError
from abkit.report import DPI, WIDTH_IN, chart_format, write_chart
from tests._ab_store import counts_store, hand_store
from tests._fake_runs import add_run, correlated_users

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"


def read_png(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC
    return imread(path)


def read_svg(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def pct(value: float) -> str:
    return f"{100 * value:+.1f}%"


def test_arm_forest_plot_png(tmp_path: Path) -> None:
    report = compare_arms(hand_store(tmp_path / "h.duckdb"), claim=0.2)
    chart = write_chart(report, tmp_path / "arms.png")
    image = read_png(tmp_path / "arms.png")
    assert image.shape[:2] == (chart.height_px, chart.width_px)
    assert chart.width_px == WIDTH_IN * DPI
    assert float(image[..., :3].var()) > 0
    (c,) = report.to_dict()["comparisons"]
    expected = f"lift {pct(c['lift'])}, 95% CI [{pct(c['lift_ci'][0])}, {pct(c['lift_ci'][1])}]"
    assert expected == "lift +100.0%, 95% CI [-46.4%, +712.5%]"
    assert expected in chart.caption
    assert "adjusted p = 0.329: not significant at alpha 0.05" in chart.caption
    assert "the claim +20.0% is not decided" in chart.caption


def test_arm_forest_plot_svg_carries_title_and_caption(tmp_path: Path) -> None:
    db = counts_store(tmp_path / "c.duckdb", units=10_000, conversions=(500, 650))
    report = compare_arms(db, claim=0.1)
    chart = write_chart(report, tmp_path / "arms.svg")
    root = read_svg(tmp_path / "arms.svg")
    assert root.get("width") == f"{WIDTH_IN * 72:g}pt"
    assert root.find(f"{SVG}title").text == chart.title
    assert root.find(f"{SVG}desc").text == chart.caption
    assert root.findall(f".//{SVG}path")
    (c,) = report.comparisons
    assert c.claim is not None
    shown = re.search(r"lift (\S+), 95% CI \[(\S+), (\S+)\]", chart.caption)
    assert shown is not None
    assert shown.groups() == (pct(c.lift), pct(c.lift_ci_lower), pct(c.lift_ci_upper))
    assert f"the claim +10.0% is {c.claim.verdict}." in chart.caption


def test_run_comparison_plot(tmp_path: Path) -> None:
    db = tmp_path / "runs.duckdb"
    base, cand = correlated_users(1, 400, shift=0.05)
    add_run(db, "run-a", user_metrics={"ndcg@10": base}, name="als64")
    add_run(db, "run-b", user_metrics={"ndcg@10": cand}, name="als128")
    result = compare_runs(db, ["run-a", "run-b"], n_resamples=0)
    chart = write_chart(result, tmp_path / "runs.png")
    assert float(read_png(chart.path)[..., :3].var()) > 0
    row = result.to_dict()["comparisons"][0]
    assert (
        f"relative {pct(row['relative_difference'])}, 95% CI "
        f"[{pct(row['relative_ci_low'])}, {pct(row['relative_ci_high'])}]"
    ) in chart.caption
    assert "on the same 400 test users" in chart.caption


@pytest.mark.parametrize("name", ["chart.jpg", "chart", "chart.png.txt"])
def test_another_extension_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match=r"^plot .*extension picks the chart's format"):
        chart_format(tmp_path / name)
    assert chart_format("a.SVG") == "svg"


def test_missing_matplotlib_names_the_install_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = compare_arms(hand_store(tmp_path / "h.duckdb"))
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingExtraError) as caught:
        write_chart(report, tmp_path / "arms.png")
    assert 'pip install "abkit-lift[report]"' in str(caught.value)
    assert not (tmp_path / "arms.png").exists()


def test_importing_the_report_package_does_not_import_matplotlib() -> None:
    code = (
        "import abkit.report, abkit.cli.compare, abkit.cli.replay, sys; "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_offpolicy_run_comparison_plot_draws_the_claim(tmp_path: Path) -> None:
    db = tmp_path / "op.duckdb"
    rng = np.random.default_rng(5)
    n = 3000
    action = rng.integers(0, 4, n)
    reward = (rng.random(n) < np.array([0.05, 0.06, 0.07, 0.12])[action]).astype(float)
    ids = np.arange(n)
    rounds = {"impression_id": ids, "reward": reward}
    add_run(db, "random", kind="offpolicy", rounds={**rounds, "weight": np.ones(n)})
    add_run(db, "best", kind="offpolicy", rounds={**rounds, "weight": (action == 3) * 4.0})
    result = compare_runs(db, ["random", "best"], claim=0.2)
    chart = write_chart(result, tmp_path / "op.svg")
    root = read_svg(chart.path)
    assert root.find(f"{SVG}desc").text == chart.caption
    for row in result.to_dict()["offpolicy"]:
        assert (
            f"{row['estimator']}, best vs random: relative {pct(row['relative_difference'])}"
            in chart.caption.replace(
                f"{row['value_b']:.4g} vs {row['value_a']:.4g} per round, ", ""
            )
        )
        assert f"the claim +20.0% is {row['claim']['verdict']}" in chart.caption
    assert root.findall(f".//{SVG}path")
