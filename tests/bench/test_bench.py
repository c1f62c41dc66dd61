"""`abkit bench`: the structure of a --quick run, never its timings.

The quick sizes are tiny, so no ratio here means anything and none is asserted. What is
asserted: every line is measured in its own process with a positive time and a peak memory at
least the memory before the work; ratios are computed from the two measurements; targets are
booleans; abkit and each reference computed the same answer (conversions, NDCG, top items);
a missing optional package skips its reference with the install line; the work folder is
removed; bad options get one-line errors.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from abkit.bench import WORKLOADS, run_bench
from abkit.bench.harness import measure
from abkit.bench.lines import LINES, spec
from abkit.bench.runner import OPT_IN_WORKLOADS, evaluate
from abkit.cli.main import app
from abkit.errors import InputError

EXPECTED_LINES = [
    "simulate",
    "ingest-csv",
    "ingest-parquet",
    "compare-pandas",
    "compare-duckdb",
    "compare-memory",
    "als-ranking",
    "als-ndcg",
    "als-gemm",
    "lstm",
    "offpolicy",
    "offpolicy-time",
]
# lines whose two sides must compute the same result (the check value)
CHECKED = {"ingest-csv", "ingest-parquet", "compare-pandas", "compare-duckdb", "als-ranking",
           "als-ndcg"}  # fmt: skip


@pytest.fixture(scope="module")
def quick_json(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One full `abkit bench --quick --json` run shared by the tests, on a machine where torch
    looks missing (``$ABKIT_BENCH_HIDE_MODULES``), so the skip path is exercised too; the
    ONNX-vs-torch agreement is tested directly below."""
    from typer.testing import CliRunner

    work = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ABKIT_BENCH_HIDE_MODULES", "torch")
        result = CliRunner().invoke(app, ["bench", "--quick", "--json", "--db-dir", str(work)])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), work


def test_quick_run_has_every_line_measured(quick_json) -> None:
    report, _ = quick_json
    assert report["quick"] is True
    assert report["command"] == "abkit bench --quick"
    names = [line["name"] for line in report["lines"]]
    assert names == EXPECTED_LINES
    for line in report["lines"]:
        if line["name"] == "lstm":
            continue  # its reference is skipped (torch hidden; see the skip test)
        assert line["status"] == "ok", (line["name"], line["message"])
        a = line["abkit"]
        assert a["seconds"] > 0
        assert a["peak_rss_bytes"] >= a["setup_rss_bytes"] > 0
        assert a["rate"] == pytest.approx(a["units"] / a["seconds"])
        assert isinstance(line["holds"], bool)


def test_every_declared_line_is_reported_once_as_declared(quick_json) -> None:
    """abkit.bench.lines.LINES is the report's table: a --quick run of every workload produces
    each declared line once, in the table's order, with the declared metric and target."""
    report, _ = quick_json
    produced = [line["name"] for line in report["lines"]]
    by_default = [d for d in LINES if d.workload not in OPT_IN_WORKLOADS]
    assert produced == [declared.name for declared in by_default]
    for line, declared in zip(report["lines"], by_default, strict=True):
        assert line["workload"] == declared.workload
        assert line["metric"] == declared.metric
        assert line["target"] == declared.target
        assert line["threshold"] == declared.threshold
        assert line["direction"] == declared.direction
        assert (line["reference_name"] is None) == (declared.reference_name is None)
        for text in (line["description"], line["reference_name"] or ""):
            assert not re.search(r"[{}]", text), (line["name"], text)  # every field filled
        if not declared.check:
            assert line["agree"] is None, line["name"]


def test_declared_line_names_are_unique_and_found_by_name() -> None:
    names = [line.name for line in LINES]
    assert len(names) == len(set(names))
    assert all(spec(name).name == name for name in names)
    with pytest.raises(KeyError, match="no bench line 'gpu'"):
        spec("gpu")


def test_ratios_are_computed_from_the_two_measurements(quick_json) -> None:
    report, _ = quick_json
    for line in report["lines"]:
        if line["status"] != "ok":
            continue
        a, r = line["abkit"], line["reference"]
        if line["metric"] == "speedup":
            assert line["value"] == pytest.approx(r["seconds"] / a["seconds"])
        elif line["metric"] == "fraction":
            assert line["value"] == pytest.approx(a["rate"] / r["rate"])
        elif line["metric"] == "peak_gb":
            assert line["value"] == pytest.approx(a["peak_rss_bytes"] / 1e9)
        elif line["metric"] == "seconds":
            assert line["value"] == pytest.approx(a["seconds"])
        elif line["metric"] == "abs_diff":
            assert line["value"] == pytest.approx(abs(a["check"] - r["check"]), abs=1e-15)
        expected = (
            line["value"] >= line["threshold"]
            if line["direction"] == "at_least"
            else line["value"] <= line["threshold"]
        )
        assert line["holds"] is expected


def test_abkit_and_references_agree_on_the_answer(quick_json) -> None:
    report, _ = quick_json
    by_name = {line["name"]: line for line in report["lines"]}
    for name in CHECKED:
        assert by_name[name]["agree"] is True, name
    # the same 5,000-row file both ways, and the same conversions as pandas and DuckDB
    assert by_name["ingest-csv"]["abkit"]["check"] == by_name["ingest-csv"]["reference"]["check"]
    compare = by_name["compare-pandas"]
    assert compare["abkit"]["check"] == compare["reference"]["check"] > 0
    assert by_name["als-ndcg"]["value"] <= 1e-9


def test_offpolicy_reference_is_extrapolated_and_says_so(quick_json) -> None:
    report, _ = quick_json
    line = next(x for x in report["lines"] if x["name"] == "offpolicy")
    ref = line["reference"]
    assert ref["extrapolation"] == pytest.approx(20_000 / 2_000)
    assert "extrapolated linearly" in ref["note"]
    assert line["agree"] is None  # a subsample's estimate is not comparable


def test_work_folder_is_removed(quick_json) -> None:
    _, work = quick_json
    assert list(work.iterdir()) == []


def test_missing_torch_skips_the_reference_with_its_install_line(quick_json) -> None:
    report, _ = quick_json
    line = next(x for x in report["lines"] if x["name"] == "lstm")
    assert line["status"] == "skipped"
    assert line["abkit"]["seconds"] > 0  # abkit's side needs no torch
    assert line["reference"] is None
    assert line["value"] is None
    assert line["holds"] is None
    assert line["message"] == "torch is not installed: pip install torch==2.13.0"


def test_peak_memory_is_the_task_process_own_peak() -> None:
    m = measure("selfcheck-allocate", {"mb": 200})
    assert m.peak_rss_bytes - m.setup_rss_bytes >= 190e6
    assert m.units == 200e6
    assert m.extrapolation == 1.0


@pytest.mark.parametrize(
    ("value", "threshold", "direction", "expected"),
    [
        (5.0, 5.0, "at_least", True),
        (4.99, 5.0, "at_least", False),
        (2.0, 2.0, "at_most", True),
        (2.01, 2.0, "at_most", False),
        (None, 1.0, "at_least", None),
        (math.nan, 1.0, "at_most", None),
    ],
)
def test_evaluate(value, threshold, direction, expected) -> None:
    assert evaluate(value, threshold, direction) is expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--only", "comapre"],
            "--only: unknown workload 'comapre' (did you mean 'compare'?); expected one of: "
            + ", ".join(sorted(WORKLOADS)),
        ),
        (["--only", ","], "--only: give at least one workload name"),
        (["--scale", "0"], "--scale must be a positive number, got 0.0"),
        (["--scale", "nan"], "--scale must be a positive number, got nan"),
        (["--db-dir", "missing-folder"], "--db-dir missing-folder: not an existing folder"),
    ],
)
def test_bad_options_are_one_line_errors(runner, args, message) -> None:
    result = runner.invoke(app, ["bench", "--quick", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert " ".join(result.stderr.split()) == f"error: {message}"


def test_library_rejects_bad_only_before_doing_anything(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape("expected one of: als, compare")):
        run_bench(quick=True, only=["gpu"], work_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_onnx_graph_and_torch_module_rank_the_same_items() -> None:
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    from abkit.bench.lstm_model import onnx_model_bytes, random_weights, torch_next_item

    weights = random_weights(items=50, embedding=6, hidden=10, seed=3)
    rng = np.random.default_rng(0)
    history = rng.integers(0, 51, size=(32, 7)).astype(np.int64)
    exclude = np.where(rng.random((32, 50)) < 0.1, -np.inf, 0).astype(np.float32)
    session = ort.InferenceSession(onnx_model_bytes(weights, seq_len=7))
    (onnx_items,) = session.run(
        ["top_items"], {"history": history, "k": np.array([5]), "exclude": exclude}
    )
    rows, items = np.nonzero(np.isinf(exclude))
    with torch.inference_mode():
        torch_items = torch_next_item(weights)(
            torch.from_numpy(history), torch.from_numpy(rows), torch.from_numpy(items), 5
        ).numpy()
    np.testing.assert_array_equal(onnx_items, torch_items)
