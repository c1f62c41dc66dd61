"""``abkit report``: the HTML and Markdown reports, built from the same result objects as the
commands' ``--json``, checked as a person would look at them (headless Chromium)."""

from __future__ import annotations

import base64
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from abkit.compare.arms import compare_arms
from abkit.compare.runs import compare_runs
from abkit.experiments.baseline import baseline_of_stored_run
from abkit.experiments.gate import gate_run
from abkit.experiments.spec import GateCheck
from abkit.replay.runner import replay
from abkit.report.build import build_report
from abkit.report.document import write_html, write_markdown, write_report
from abkit.stats.power import power
from abkit.stats.proportions import wilson_interval
from tests.report._chromium import render

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:+.{digits}f}%"


@pytest.fixture(scope="module")
def store(sim_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared simulated store, copied, with two replayed runs."""
    db = tmp_path_factory.mktemp("report") / "r.duckdb"
    shutil.copy(sim_db, db)
    for model in ("random", "popularity"):
        replay(db, model=model, dataset="sim", ks=(10,), name=f"t/{model}")
    return db


@pytest.fixture(scope="module")
def report(store: Path):
    baseline = baseline_of_stored_run(store, "t/random")
    gate = gate_run(
        store,
        baseline=baseline,
        run="t/popularity",
        checks=[GateCheck(metric="ndcg@10", max_drop=0.05)],
        name="pop-vs-random",
    )
    return build_report(
        store, dataset="sim", runs=["t/random", "t/popularity"], claim=0.2, gates=[gate]
    )


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.tags: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        found = dict(attrs)
        if tag == "img":
            self.images.append(found)
        for key in ("src", "href"):
            if found.get(key):
                self.links.append(str(found[key]))


def test_sections_hold_the_same_results_as_json(store: Path, report) -> None:
    # the same library calls as `abkit compare --claim 0.2 --json`, `--looks daily`,
    # `abkit compare RUN RUN --json`: same JSON, nothing recomputed differently
    assert report.arms.to_dict() == compare_arms(store, dataset="sim", claim=0.2).to_dict()
    daily = compare_arms(store, dataset="sim", claim=0.2, looks="daily")
    assert report.daily.to_dict() == daily.to_dict()
    runs = compare_runs(store, ["t/random", "t/popularity"])
    assert report.run_comparison.to_dict() == runs.to_dict()
    # each arm's own interval: Wilson, as scipy-free reference statsmodels computes it
    from statsmodels.stats.proportion import proportion_confint

    for rate, arm in zip(report.rates, report.arms.arms, strict=True):
        low, high = proportion_confint(arm.conversions, arm.units, alpha=0.05, method="wilson")
        assert (rate.ci_low, rate.ci_high) == pytest.approx((low, high), rel=1e-12)
        assert (rate.ci_low, rate.ci_high) == pytest.approx(
            tuple(float(v) for v in wilson_interval(arm.conversions, arm.units)), rel=1e-12
        )
    # the power curve is `abkit power --baseline P --mde L` point by point
    control = next(a for a in report.arms.arms if a.name == report.arms.control)
    for point in report.power.points:
        again = power(baseline=control.rate, mde=point.mde_relative, alpha=0.05)
        assert point.n_per_arm == again.n_per_arm
    # the units the power line marks are this experiment's smallest arm
    assert report.power.units_per_arm == min(report.arms.srm.observed)


def test_html_is_self_contained_and_captions_state_the_json_numbers(tmp_path: Path, report) -> None:
    written = write_html(report, tmp_path / "report.html")
    text = written.path.read_text(encoding="utf-8")
    parser = _Images()
    parser.feed(text)
    assert "script" not in parser.tags
    assert all(link.startswith(("data:", "#")) for link in parser.links), parser.links
    assert "Content-Security-Policy" in text
    assert '<meta name="viewport"' in text
    assert "@media print" in text
    assert len(parser.images) == len(written.charts) >= 6
    for img, chart in zip(parser.images, written.charts, strict=True):
        src = str(img["src"])
        assert src.startswith("data:image/svg+xml;base64,")
        svg = ET.fromstring(base64.b64decode(src.split(",", 1)[1]))
        assert svg.find("{http://www.w3.org/2000/svg}desc").text == chart.caption
        assert img["alt"] == chart.caption
    assert written.sections == (
        "experiment",
        "lift",
        "over-time",
        "power",
        "models",
        "gates",
    )
    captions = " ".join(c.caption for c in written.charts)
    arms = report.arms.to_dict()
    (c,) = arms["comparisons"]
    assert f"lift {pct(c['lift'])}, 95% CI [{pct(c['lift_ci'][0])}, {pct(c['lift_ci'][1])}]" in (
        captions
    )
    srm = arms["srm"]
    assert f"chi2 = {srm['chi2']:.3g}" in captions
    last = report.daily.to_dict()["looks"][-1]["comparisons"][0]
    shown = f"lift {pct(last['lift'])}, confidence sequence [{pct(last['lift_cs_lower'])}"
    assert shown in captions
    (gate,) = report.gates[0].to_dict()["gates"]
    assert f"change {pct(gate['change'], 2)}, upper bound {pct(gate['upper_bound'], 2)}" in captions
    for point in report.power.points:
        assert f"{pct(point.mde_relative)}: {point.n_per_arm:,}" in captions
    # the per-user distribution states each run's mean of the stored values
    for values in report.user_values:
        assert f"{values.run.label}: mean {float(np.mean(values.values)):.4g}" in captions


def test_markdown_links_png_images_beside_it(tmp_path: Path, report) -> None:
    written = write_markdown(report, tmp_path / "pr.md")
    text = written.path.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(written.charts) >= 6
    for link in links:
        image = tmp_path / link
        assert image.read_bytes()[:8] == PNG_MAGIC
        assert image.parent.name == "pr_files"
    assert "| comparison | lift |" in text


def test_report_format_from_extension_or_option(tmp_path: Path, report) -> None:
    assert write_report(report, tmp_path / "a.md").format == "md"
    assert write_report(report, tmp_path / "a.txt", "html").format == "html"


def _blank(pixels: np.ndarray) -> bool:
    """A region is blank when nearly every pixel has one colour."""
    flat = pixels[..., :3].reshape(-1, 3)
    _, counts = np.unique(flat, axis=0, return_counts=True)
    return counts.max() > 0.995 * len(flat)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 390])
def test_report_renders_in_headless_chromium(tmp_path: Path, report, width: int) -> None:
    from matplotlib.image import imread

    page = write_html(report, tmp_path / "report.html").path
    shown = render(page, tmp_path, width=width)
    assert shown.console == []  # no error, no blocked request, nothing
    assert shown.requests == []  # nothing from the network
    shot = imread(shown.screenshot)
    assert len(shown.images) >= 6
    for image in shown.images:
        assert image["w"] > 0, image["alt"][:80]  # decoded and drawn
        assert image["h"] > 0, image["alt"][:80]
        assert image["width"] >= min(500, width - 60)  # readable width, phone included
        x, y = round(image["x"]), round(image["y"])
        box = shot[y : y + round(image["height"]), x : x + min(round(image["width"]), width - x)]
        assert box.size, image["alt"][:80]
        assert not _blank(box), image["alt"][:80]


@pytest.mark.browser
def test_the_browser_check_sees_requests_console_errors_and_blank_charts(tmp_path: Path) -> None:
    """The checks above can fail: a page with a remote image, a console error and an
    image that draws nothing is caught on all three counts."""
    blank = base64.b64encode(
        b'<svg xmlns="http://www.w3.org/2000/svg" width="600" height="200"/>'
    ).decode()
    page = tmp_path / "bad.html"
    page.write_text(
        f'<!DOCTYPE html><html><body><img src="data:image/svg+xml;base64,{blank}">'
        '<img src="http://192.0.2.1/chart.png" width="600" height="200">'
        '<script>console.error("boom")</script></body></html>'
    )
    shown = render(page, tmp_path, width=800)
    assert shown.requests == ["http://192.0.2.1/chart.png"]
    assert any('"boom"' in line for line in shown.console)
    from matplotlib.image import imread

    shot = imread(shown.screenshot)
    first = shown.images[0]
    x, y = round(first["x"]), round(first["y"])
    assert _blank(shot[y : y + round(first["height"]), x : x + round(first["width"])])


def test_offpolicy_runs_show_estimates_weights_and_ess(tmp_path: Path) -> None:
    from abkit.data.ingest import ingest_file
    from tests.conftest import OBD

    db = tmp_path / "obd.duckdb"
    ingest_file(OBD / "random" / "women" / "women.csv.gz", db, preset="obd")
    for policy in ("stochastic", "topk"):
        replay(db, model="random", estimators="ips,snips", policy=policy, name=f"o/{policy}")
    report = build_report(db, runs=["o/stochastic", "o/topk"])
    # one logging policy only: no A/B arms to compare, said rather than failed
    assert report.arms is None
    assert [what for what, _ in report.skipped] == ["experiment"]
    written = write_html(report, tmp_path / "o.html")
    assert written.sections == ("models", "offpolicy")
    (estimates,) = [c for c in written.charts if c.title.startswith("Off-policy estimates")]
    weights = [c for c in written.charts if c.title.startswith("Importance weights")]
    assert len(weights) == 2
    for run in report.runs:
        for name, e in run.to_dict()["estimates"].items():
            assert (
                f"{run.label}: {name}: {e['value']:.4g}, 95% CI [{e['ci'][0]:.4g}, "
                f"{e['ci'][1]:.4g}], ESS {e['ess']:,.0f}"
            ) in estimates.caption
    for chart, sample in zip(weights, report.weights, strict=True):
        ess = sample.run.to_dict()["estimates"]["ips"]["diagnostics"]["ess"]
        assert f"effective sample size {ess:,.0f} of {sample.weights.size:,}" in chart.caption
        assert f"max {float(sample.weights.max()):.4g}" in chart.caption


def test_the_readme_chart_is_a_chart_of_the_numbers_the_readme_states() -> None:
    from PIL import Image

    repo = Path(__file__).resolve().parents[2]
    image = repo / "tests" / "golden" / "readme-lift.png"
    assert image.read_bytes()[:8] == PNG_MAGIC
    with Image.open(image) as png:
        caption = png.info["Description"]
        assert png.size == (800, 394)
    readme = (repo / "README.md").read_text()
    assert "](tests/golden/readme-lift.png)" in readme
    stated = re.search(r"lift (\+\S+), 95% CI \[(\S+), (\S+)\]", caption)
    assert stated is not None
    assert f"lift {stated[1]}, 95% CI [{stated[2]}, {stated[3]}]" in readme


@pytest.mark.slow
def test_a_spec_adds_its_gate_as_abkit_gate_reports_it(tmp_path: Path) -> None:
    from abkit.experiments.gate import gate_spec
    from abkit.experiments.spec import load_spec

    spec = Path(__file__).resolve().parents[2] / "experiments" / "ci.toml"
    db = tmp_path / "ci.duckdb"
    report = build_report(db, spec=spec)  # simulates the spec's dataset, replays its candidate
    (gate,) = report.gates
    again = gate_spec(load_spec(spec), db, run=gate.candidate["run_id"])
    assert gate.to_dict() == again.to_dict()
    assert report.arms is not None  # the spec's dataset, simulated by the gate, is the report's
    assert report.arms.dataset == load_spec(spec).data.dataset
    written = write_html(report, tmp_path / "ci.html")
    assert written.sections[-1] == "gates"
