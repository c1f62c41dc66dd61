"""`abkit models check-accuracy --scores FILE`: the majority baseline, AUC [DeLong CI], log
loss, Brier score and calibration, checked against independent computations and pinned in
the printed report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from typer.testing import CliRunner

from abkit.cli import render
from abkit.cli.main import app


@pytest.fixture
def scores_file(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """7% positives; the model's probabilities rise with the label but stay below 0.5."""
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.07).astype(int)
    p = np.clip(0.07 + 0.1 * y + rng.normal(0, 0.05, y.size), 0, 1)
    path = tmp_path / "scores.csv"
    pd.DataFrame({"score": p, "label": y}).to_csv(path, index=False)
    return path, p, y


def test_json_against_independent_references(
    runner: CliRunner, scores_file: tuple[Path, np.ndarray, np.ndarray]
) -> None:
    path, p, y = scores_file
    result = runner.invoke(app, ["models", "check-accuracy", "--scores", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["majority_accuracy"] == pytest.approx(1 - y.mean())
    assert out["accuracy"] == pytest.approx(np.mean((p >= 0.5) == y))
    u = sps.mannwhitneyu(p[y == 1], p[y == 0]).statistic
    assert out["auc"]["auc"] == pytest.approx(u / (y.sum() * (1 - y).sum()))
    assert out["brier"] == pytest.approx(np.mean((p - y) ** 2))
    b, c = out["model_only_right"], out["majority_only_right"]
    assert (b, c) == (int(np.sum((p >= 0.5) & (y == 1))), int(np.sum((p >= 0.5) & (y == 0))))
    if b + c:
        assert out["p_value"] == pytest.approx(mcnemar([[0, b], [c, 0]], exact=True).pvalue / 2)
    assert sum(row["n"] for row in out["calibration"]) == y.size


def test_report_prints_majority_baseline_auc_ci_and_calibration(
    runner: CliRunner,
    scores_file: tuple[Path, np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, p, y = scores_file
    monkeypatch.setattr(render.console, "width", 200)
    out = json.loads(
        runner.invoke(app, ["models", "check-accuracy", "--scores", str(path), "--json"]).stdout
    )
    text = runner.invoke(app, ["models", "check-accuracy", "--scores", str(path)]).stdout
    fmt = render.fmt
    accuracy_row = next(line for line in text.splitlines() if "accuracy (p >= 0.5)" in line)
    cells = [cell.strip() for cell in accuracy_row.split("│")]
    assert cells[1:] == [
        fmt(out["accuracy"]),
        f"{fmt(out['accuracy_ci_low'])} .. {fmt(out['accuracy_ci_high'])}",
        fmt(1 - y.mean()),
        "always 'no' (the majority class)",
    ]
    auc = out["auc"]
    assert f"{fmt(auc['auc'])} │ {fmt(auc['ci_low'])} .. {fmt(auc['ci_high'])}" in text
    assert "does NOT beat the majority classifier significantly" in text
    first_bin = out["calibration"][0]
    label = f"{first_bin['low']:.2f}-{first_bin['high']:.2f}"
    row = next(line for line in text.splitlines() if line.strip().startswith(label))
    assert [cell.strip() for cell in row.split("│")][1:4] == [
        f"{first_bin['n']:,}",
        fmt(first_bin["mean_predicted"]),
        fmt(first_bin["observed"]),
    ]
    assert first_bin["n"] == int(np.sum(p < 0.1))


def test_exactly_one_source(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "check-accuracy"])
    assert result.exit_code == 2
    assert "give exactly one of --scores FILE or --model-path FILE" in result.stderr


def test_readme_numbers() -> None:
    """The README's accuracy check on the simulated shop (see "The article's model, checked"):
    the base rate, the majority accuracy, the model's accuracy and the McNemar p-values
    follow from the counts it quotes (recomputed here with scipy)."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## The article's model, checked")[1].split("\n## ")[0]

    def number(text: str) -> float:
        return float(text.replace(",", ""))

    n, positives = map(
        number, re.search(r"\(([\d,]+) pairs, ([\d,]+) positives\.\)", section).groups()
    )
    assert n == 14 * positives  # 13 sampled negatives per positive
    majority = 1 - positives / n
    assert f'| {majority:.4f}: always "no" (the majority class) |' in section
    text = section.replace("\n", " ")
    accuracy = re.search(r"\| accuracy \(p >= 0\.5\) \| (0\.\d{4}) \[", text).group(1)
    mcnemar = re.search(
        r"right where it is wrong ([\d,]+), wrong where it is right ([\d,]+); one-sided "
        r"p = (0\.\d+)",
        text,
    ).groups()
    longer = re.search(
        r"accuracy was (0\.\d{4}) and \"significantly\" above the base rate \(([\d,]+) "
        r"against ([\d,]+), p = (0\.\d+)\)",
        text,
    )
    runs = [(accuracy, *mcnemar)]
    quoted = [*runs, longer.groups()]
    assert len(quoted) == 2
    for accuracy, b, c, p in quoted:
        b, c = int(number(b)), int(number(c))
        assert f"{majority + (b - c) / n:.4f}" == accuracy
        assert render.fmt(sps.binomtest(b, b + c, 0.5, "greater").pvalue) == p
