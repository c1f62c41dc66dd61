"""Golden test: the demo's store and the README's tour, every command with ``--json``.

Pinned before the package layout changed (issue 9) so that moving code cannot change what a
user sees: every JSON key and value, every exit code, every one-line error. Run ids, creation
times, durations and temporary paths are masked; floats are compared to a relative 1e-9 (DuckDB
sums in parallel, so the last bits of a float may differ from run to run).

Regenerate after an intended change of output (and say so in the commit)::

    ABKIT_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from abkit.cli.main import app

GOLDEN = Path(__file__).parent / "golden" / "tour.json"
REPO = Path(__file__).resolve().parents[1]
TS = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:?\d\d|Z)?( UTC)?")
RUN_ID = re.compile(r"\b[0-9a-f]{8,32}\b")
# "bytes": a baseline file names its store, whose temporary path varies in length
VOLATILE_KEYS = {
    "created_at",
    "elapsed_s",
    "seconds",
    "duration_s",
    "fit_seconds",
    "timings",
    "bytes",
}


def _mask(value: Any, tmp: str) -> Any:
    if isinstance(value, dict):
        return {k: ("<masked>" if k in VOLATILE_KEYS else _mask(v, tmp)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, tmp) for v in value]
    if isinstance(value, str):
        text = value.replace(tmp, "<TMP>").replace(str(REPO), "<REPO>")
        return RUN_ID.sub("<id>", TS.sub("<timestamp>", text))
    return value


def _tour(tmp_path: Path) -> dict[str, Any]:
    runner = CliRunner()
    db = str(tmp_path / "tour.duckdb")
    tmp = str(tmp_path)
    out: dict[str, Any] = {}

    def run(label: str, *args: str, as_json: bool = True) -> Any:
        result = runner.invoke(app, [*args])
        entry: dict[str, Any] = {"exit_code": result.exit_code}
        if as_json and result.exit_code in (0, 1):
            entry["json"] = _mask(json.loads(result.stdout), tmp)
        if result.exit_code not in (0, 1):
            entry["stderr"] = _mask(" ".join(result.stderr.split()), tmp)
        out[label] = entry
        return entry.get("json")

    run("demo", "demo", "--db", db, "--users", "3000", as_json=False)
    run("info", "info", "--db", db, "--json")
    run("compare-claim", "compare", "--db", db, "--claim", "0.2", "--json")
    run("compare-mean", "compare", "--db", db, "--metric", "mean", "--json")
    for ratio in ("clicks_per_impression", "revenue_per_order", "orders_per_session"):
        run(
            f"compare-{ratio}",
            "compare",
            "--db",
            db,
            "--metric",
            "ratio",
            "--ratio",
            ratio,
            "--json",
        )
    run(
        "compare-sequential-daily",
        "compare",
        "--db",
        db,
        "--sequential",
        "--looks",
        "daily",
        "--json",
    )
    run("compare-cuped-bayes", "compare", "--db", db, "--cuped", "--bayes", "--json")
    run(
        "compare-all-metrics",
        "compare",
        "--db",
        db,
        "--metric",
        "conversion",
        "--metric",
        "mean",
        "--metric",
        "ratio",
        "--correction",
        "bh",
        "--json",
    )
    run("power-n", "power", "--baseline", "0.05", "--mde", "0.2", "--json")
    run("power-mde", "power", "--baseline", "0.05", "--n", "10000", "--json")
    run("power-claim", "power", "--baseline", "0.05", "--mde", "0.3", "--claim", "0.1", "--json")
    run(
        "power-mean",
        "power",
        "--baseline",
        "10",
        "--sd",
        "4",
        "--metric",
        "mean",
        "--mde",
        "0.05",
        "--json",
    )
    run(
        "replay-popularity-ope",
        "replay",
        "--db",
        db,
        "--model",
        "popularity",
        "--estimator",
        "ips,snips,dr",
        "--name",
        "tour/pop-ope",
        "--json",
    )
    run(
        "replay-als-k",
        "replay",
        "--db",
        db,
        "--model",
        "als",
        "--k",
        "10,20",
        "--name",
        "tour/als",
        "--json",
    )
    run("runs", "runs", "--db", db, "--json")
    run("compare-runs", "compare", "demo/popularity", "demo/als", "--db", db, "--json")
    run(
        "compare-runs-bootstrap",
        "compare",
        "demo/random",
        "demo/popularity",
        "demo/als",
        "--db",
        db,
        "--correction",
        "bh",
        "--json",
    )
    baseline = str(tmp_path / "base.json")
    run("baseline-save", "baseline", "save", "demo/als", "--out", baseline, "--db", db, "--json")
    spec = REPO / "experiments" / "ci.toml"
    ci_db = str(tmp_path / "ci.duckdb")
    run("gate-ci", "gate", str(spec), "--db", ci_db, "--json")
    run("run-ci", "run", str(spec), "--db", ci_db, "--json")
    events = str(REPO / "tests" / "fixtures" / "events_ab.csv")
    run(
        "ingest-csv",
        "ingest",
        events,
        "--db",
        db,
        "--dataset",
        "shop",
        "--control",
        "control",
        "--json",
    )
    run("info-shop", "info", "--db", db, "--dataset", "shop", "--json")
    run("models", "models", "--json")
    # errors: exit code and the one line on stderr
    run("err-alpha", "compare", "--db", db, "--alpha", "2", "--json")
    run("err-metric", "compare", "--db", db, "--metric", "revenue", "--json")
    run("err-claim", "compare", "--db", db, "--claim", "-2", "--json")
    run("err-unknown-run", "compare", "demo/nope", "demo/als", "--db", db, "--json")
    run("err-power-alpha", "power", "--baseline", "0.05", "--mde", "0.2", "--alpha", "0", "--json")
    run("err-replay-model", "replay", "--db", db, "--model", "alss", "--json")
    run("err-reingest", "ingest", events, "--db", db, "--dataset", "shop", "--json")
    return out


@pytest.mark.slow
def test_tour_outputs_are_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the same outputs whether or not torch is installed: abkit asks find_spec whether torch
    # can be trained with (the demo then replays no LSTM, `models` says so)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else find_spec(name, *a),
    )
    got = _tour(tmp_path)
    if os.environ.get("ABKIT_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert set(got) == set(want)
    differences = [d for label in want for d in _differences(got[label], want[label], label)]
    assert differences == []


def _differences(got: Any, want: Any, path: str) -> list[str]:
    """Where two JSON values differ (floats to a relative 1e-9), as readable paths."""
    if isinstance(want, float) and isinstance(got, (int, float)):
        return (
            [] if got == pytest.approx(want, rel=1e-9, abs=1e-12) else [f"{path}: {got} != {want}"]
        )
    if type(got) is not type(want):
        return [f"{path}: {got!r:.80} != {want!r:.80}"]
    if isinstance(want, dict):
        keys = sorted(set(got) | set(want))
        out = [
            f"{path}.{k}: only in {'got' if k in got else 'golden'}"
            for k in keys
            if (k in got) != (k in want)
        ]
        return out + [
            d
            for k in keys
            if k in got and k in want
            for d in _differences(got[k], want[k], f"{path}.{k}")
        ]
    if isinstance(want, list):
        if len(got) != len(want):
            return [f"{path}: {len(got)} items != {len(want)}"]
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in _differences(g, w, f"{path}[{i}]")
        ]
    return [] if got == want else [f"{path}: {got!r:.80} != {want!r:.80}"]
