"""`abkit models`: a model that replays without torch but needs it to train says so."""

from __future__ import annotations

import importlib.util
import json
from importlib.machinery import ModuleSpec

import pytest
from typer.testing import CliRunner

from abkit.cli import render
from abkit.cli.main import app

TORCH_LINE = 'pip install torch==2.13.0 "abkit-lift[train]"'


def _torch(monkeypatch: pytest.MonkeyPatch, *, installed: bool) -> None:
    """``find_spec("torch")`` answers as if torch were (not) installed; others are real."""
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        if name == "torch":
            return ModuleSpec("torch", None) if installed else None
        return real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def _models(runner: CliRunner) -> dict[str, dict]:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    return {m["name"]: m for m in json.loads(result.stdout)["models"]}


def test_lstm_without_torch_is_inference_only(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    _torch(monkeypatch, installed=False)
    lstm = _models(runner)["lstm"]
    assert lstm["status"] == "ok"  # it replays a trained file
    assert lstm["install"] is None
    assert lstm["training_missing"] == ["torch"]
    assert lstm["training_install"] == TORCH_LINE
    monkeypatch.setattr(render.console, "width", 250)
    table = runner.invoke(app, ["models"])
    assert table.exit_code == 0
    row = next(line for line in table.stdout.splitlines() if line.startswith(" lstm "))
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[1:4] == ["inference ready; training needs torch", "onnx", TORCH_LINE]


def test_lstm_with_torch_is_ok(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    _torch(monkeypatch, installed=True)
    models = _models(runner)
    assert models["lstm"]["training_missing"] == []
    assert models["lstm"]["training_install"] is None
    monkeypatch.setattr(render.console, "width", 250)
    table = runner.invoke(app, ["models"])
    row = next(line for line in table.stdout.splitlines() if line.startswith(" lstm "))
    assert [cell.strip() for cell in row.split("│")][1:4] == ["ok", "onnx", ""]


def test_models_without_training_needs_are_unchanged(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    _torch(monkeypatch, installed=False)
    for name in ("als", "popularity", "random"):
        model = _models(runner)[name]
        assert (model["status"], model["training_missing"]) == ("ok", [])
