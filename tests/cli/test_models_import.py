"""`abkit models import`: a torch-exported model unlike abkit's imports and replays, with the
leakage warning; a refusal is one line naming the mismatch, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from abkit.cli.main import app
from abkit.replay.runner import load_training_data
from tests._byom_models import export_models, items_file


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, sim_db: Path) -> dict:
    data, _split, _name = load_training_data(sim_db)
    return export_models(tmp_path_factory.mktemp("byom-cli"), data)


def test_import_then_replay_warns_about_leakage(
    runner: CliRunner, sim_db: Path, exported: dict, tmp_path: Path
) -> None:
    model = exported["right"]
    items = items_file(tmp_path, model.items)
    args = ["models", "import", str(model.path), "--items", str(items), "--out", "own.onnx"]
    options = ["--db", str(sim_db), "--padding", "right", "--history-dtype", "int32"]
    result = runner.invoke(app, [*args, *options, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["history_input"] == "seq"
    assert (report["padding"], report["history_dtype"], report["fingerprint"]) == (
        "right",
        "int32",
        None,
    )
    db = tmp_path / "copy.duckdb"  # the replay stores a run; sim_db is shared read-only
    db.write_bytes(sim_db.read_bytes())
    replayed = runner.invoke(
        app,
        ["replay", "--db", str(db), "--model", "lstm", "--model-path", "own.onnx", "--json"],
    )
    assert replayed.exit_code == 0, replayed.output
    run = json.loads(replayed.stdout)
    assert 0 <= run["metrics"]["ndcg@10"] <= 1
    assert any("cannot rule out" in w for w in run["warnings"])


def test_refusal_is_one_line_and_writes_nothing(
    runner: CliRunner, sim_db: Path, exported: dict, tmp_path: Path
) -> None:
    model = exported["right"]
    items = items_file(tmp_path, model.items)
    result = runner.invoke(
        app,
        [
            "models",
            "import",
            str(model.path),
            "--items",
            str(items),
            "--out",
            "own.onnx",
            "--db",
            str(sim_db),
            "--history-dtype",
            "int64",
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "--history-dtype int64, but the graph's history input is seq int32" in result.stderr
    assert not Path("own.onnx").exists()
