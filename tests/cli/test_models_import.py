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


def _external(model: Path, folder: Path, location: str = "weights.bin") -> Path:
    """``model`` saved as ``folder/model.onnx`` with its weights in ``folder/weights.bin``,
    then pointed at ``location`` (which need not exist)."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(
        onnx.load(str(model)),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    if location != "weights.bin":
        saved = onnx.load(str(path), load_external_data=False)
        for tensor in saved.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        onnx.save_model(saved, str(path))
    return path


def test_a_model_with_external_data_beside_it_imports_and_scores_as_the_one_file_model(
    runner: CliRunner, sim_db: Path, exported: dict, tmp_path: Path
) -> None:
    import numpy as np

    from abkit.plugins import create_recommender

    model = exported["keras"]
    items = items_file(tmp_path, model.items)
    path = _external(model.path, tmp_path / "models" / "keras")
    # the weights are in weights.bin, not in the graph
    assert (
        path.stat().st_size + (path.parent / "weights.bin").stat().st_size
        > (model.path.stat().st_size)
        > path.stat().st_size + 5_000
    )
    base = ["--items", str(items), "--db", str(sim_db), "--json"]
    result = runner.invoke(app, ["models", "import", str(path), "--out", "ext.onnx", *base])
    assert result.exit_code == 0, result.output
    one = runner.invoke(app, ["models", "import", str(model.path), "--out", "one.onnx", *base])
    assert one.exit_code == 0, one.output
    sidecar = json.loads(Path("ext.json").read_text())
    assert list(sidecar["imported"]["external_data"]) == ["weights.bin"]
    data, _split, _name = load_training_data(sim_db)
    users = np.arange(0, data.n_train_users, 7)
    scores = []
    for wrapped in ("ext.onnx", "one.onnx"):
        recommender = create_recommender("lstm", {"device": "cpu"})
        with pytest.warns(UserWarning, match="cannot rule out"):
            recommender.load(Path(wrapped), data)
        scores.append(recommender.score(data, users))
    np.testing.assert_array_equal(scores[0], scores[1])
    db = tmp_path / "copy.duckdb"
    db.write_bytes(sim_db.read_bytes())
    replayed = runner.invoke(
        app, ["replay", "--db", str(db), "--model", "lstm", "--model-path", "ext.onnx", "--json"]
    )
    assert replayed.exit_code == 0, replayed.output
    assert 0 <= json.loads(replayed.stdout)["metrics"]["ndcg@10"] <= 1


ONNX = "<onnx's own text>"

# (the external-data location the model names, the exact one-line message; {model}: the
# model file, {folder}: its folder)
EXTERNAL_REFUSALS = [
    (
        "../evil.bin",
        "error: {model}: tensor 'embedding.weight' keeps its data at '../evil.bin', outside "
        "the model's folder {folder}; abkit reads external data only from inside it",
    ),
    (
        "sub/../weights.bin",
        "error: {model}: tensor 'embedding.weight' keeps its data at 'sub/../weights.bin', "
        "outside the model's folder {folder}; abkit reads external data only from inside it",
    ),
    (
        "{evil}",
        "error: {model}: tensor 'embedding.weight' keeps its data at '{evil}', outside the "
        "model's folder {folder}; abkit reads external data only from inside it",
    ),
    (
        "link.bin",
        "error: {model}: tensor 'embedding.weight' keeps its data at 'link.bin', outside the "
        "model's folder {folder}; abkit reads external data only from inside it",
    ),
    (
        "missing.bin",
        "error: {model}: tensor 'embedding.weight' keeps its data in 'missing.bin', which is "
        "not in the model's folder {folder}",
    ),
    (
        "short.bin",
        f"error: {{model}}: cannot read its external data ({ONNX})",
    ),
]


@pytest.mark.parametrize(("location", "message"), EXTERNAL_REFUSALS)
def test_external_data_outside_the_model_folder_is_refused(
    runner: CliRunner,
    sim_db: Path,
    exported: dict,
    tmp_path: Path,
    location: str,
    message: str,
) -> None:
    import re

    from tests.conftest import file_digest

    model = exported["keras"]
    evil = tmp_path / "evil.bin"
    folder = tmp_path / "models"
    path = _external(model.path, folder, location.format(evil=evil))
    evil.write_bytes((folder / "weights.bin").read_bytes())  # what an escape would read
    (folder / "link.bin").symlink_to(evil)
    (folder / "short.bin").write_bytes((folder / "weights.bin").read_bytes()[:100])
    before = file_digest(sim_db)
    result = runner.invoke(
        app,
        [
            "models", "import", str(path), "--items", str(items_file(tmp_path, model.items)),
            "--out", "own.onnx", "--db", str(sim_db),
        ],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    expected = message.format(model=path, folder=folder, evil=evil)
    pattern = re.escape(expected).replace(re.escape(ONNX), r"[^\n]+")
    assert re.fullmatch(pattern, lines[0]), lines[0]
    assert not Path("own.onnx").exists()
    assert not Path("own.json").exists()
    assert file_digest(sim_db) == before
