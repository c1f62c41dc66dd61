"""`abkit bench`: the structure of a run and the harness's arithmetic, never its timings.

The quick sizes are tiny, so no ratio here means anything and none is asserted. What is
asserted: every line interleaves abkit and its reference (abkit, reference, abkit, ...) at least
three times, each run in its own process with a positive time and a peak memory at least the
memory before the work; a side's time is the median of its runs and the minimum is reported
next to it; ratios are computed from the two measurements; targets are booleans (None for the
information line); abkit and each reference computed the same answer (conversions, NDCG, the
IPS estimate); a missing optional package skips its reference with the install line; the work
folder is removed; bad options get one-line errors; --markdown prints the README tables from
the JSON. The whole quick run is marked slow (about a minute of subprocesses).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import statistics
from pathlib import Path

import numpy as np
import pytest

from abkit.bench import WORKLOADS, run_bench
from abkit.bench.harness import Measurement, SkipTask, TaskFailed, combine, measure
from abkit.bench.lines import LINES, spec
from abkit.bench.markdown import markdown
from abkit.bench.runner import OPT_IN_WORKLOADS, evaluate, import_seconds, interleave
from abkit.cli.main import app
from abkit.errors import InputError

EXPECTED_LINES = [
    "simulate",
    "ingest-csv",
    "ingest-parquet",
    "compare-tea-pandas",
    "compare-tea-ibis",
    "compare-import",
    "compare-memory",
    "als-replay",
    "als-ndcg",
    "als-topk",
    "lstm",
    "offpolicy-numpy",
    "offpolicy-memory",
    "offpolicy-obp",
    "offpolicy-loop",
    "offpolicy-time",
]
# lines whose two sides must compute the same result (the check value)
CHECKED = {"ingest-csv", "ingest-parquet", "compare-tea-pandas", "compare-tea-ibis",
           "als-replay", "als-ndcg", "offpolicy-numpy", "offpolicy-obp"}  # fmt: skip
# the compare peers come with the test extra; without them those lines are skipped
HAS_PEERS = all(importlib.util.find_spec(m) is not None for m in ("tea_tasting", "ibis"))
PEER_LINES = {"compare-tea-pandas", "compare-tea-ibis"}


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


# -- the whole quick run (slow) ---------------------------------------------------------------


@pytest.mark.slow
def test_quick_run_has_every_line_measured_in_interleaved_runs(quick_json) -> None:
    report, _ = quick_json
    assert report["quick"] is True
    assert report["command"] == "abkit bench --quick"
    assert report["sizes"]["repeats"] >= 3
    names = [line["name"] for line in report["lines"]]
    assert names == EXPECTED_LINES
    for line in report["lines"]:
        if line["name"] == "lstm":
            continue  # its reference is skipped (torch hidden; see the skip test)
        if line["name"] in PEER_LINES and not HAS_PEERS:
            assert line["status"] == "skipped"
            assert line["message"].endswith('pip install "abkit-lift[bench]"')
            continue
        assert line["status"] == "ok", (line["name"], line["message"])
        a = line["abkit"]
        assert a["seconds"] > 0
        assert a["peak_rss_bytes"] >= a["setup_rss_bytes"] >= 0
        assert a["rate"] == pytest.approx(a["units"] / a["seconds"])
        low, high = line["load_1m"]
        assert 0 <= low <= high
        if line["direction"] == "info":
            assert line["holds"] is None
        else:
            assert isinstance(line["holds"], bool)
        if line["name"] == "simulate":
            assert line["rounds"] == 1
            assert len(a["samples"]) == 1
            continue
        assert line["rounds"] == report["sizes"]["repeats"]
        sides = [a] + ([line["reference"]] if line["reference"] else [])
        for side in sides:
            assert len(side["samples"]) == line["rounds"]
            assert side["seconds"] == pytest.approx(statistics.median(side["samples"]))
            assert side["min_seconds"] == pytest.approx(min(side["samples"]))
        if line["reference"]:  # abkit, reference, abkit, reference, ...: the starts alternate
            r = line["reference"]
            starts = sorted([(t, "a") for t in a["started"]] + [(t, "r") for t in r["started"]])
            assert [who for _, who in starts] == ["a", "r"] * line["rounds"]


@pytest.mark.slow
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
        if math.isfinite(declared.threshold):
            assert line["threshold"] == declared.threshold
        else:
            assert line["threshold"] is None
        assert line["direction"] == declared.direction
        assert (line["reference_name"] is None) == (declared.reference_name is None)
        for text in (line["description"], line["reference_name"] or ""):
            assert not re.search(r"[{}]", text), (line["name"], text)  # every field filled
        if not declared.check:
            assert line["agree"] is None, line["name"]


@pytest.mark.slow
def test_ratios_are_computed_from_the_medians_and_the_minima(quick_json) -> None:
    report, _ = quick_json
    for line in report["lines"]:
        if line["status"] != "ok":
            continue
        a, r = line["abkit"], line["reference"]
        if line["metric"] == "speedup":  # the median of the pairs' ratios
            ratios = [rs / s for s, rs in zip(a["samples"], r["samples"], strict=True)]
            assert line["value"] == pytest.approx(statistics.median(ratios))
            assert line["value_min"] == pytest.approx(r["min_seconds"] / a["min_seconds"])
        elif line["metric"] == "peak_gb":
            assert line["value"] == pytest.approx(a["peak_rss_bytes"] / 1e9)
        elif line["metric"] == "peak_ratio":
            assert line["value"] == pytest.approx(a["peak_rss_bytes"] / r["peak_rss_bytes"])
        elif line["metric"] == "seconds":
            assert line["value"] == pytest.approx(a["seconds"])
            assert line["value_min"] == pytest.approx(a["min_seconds"])
        elif line["metric"] == "abs_diff":
            assert line["value"] == pytest.approx(abs(a["check"] - r["check"]), abs=1e-15)
        if line["direction"] == "info":
            continue
        expected = (
            line["value"] >= line["threshold"]
            if line["direction"] == "at_least"
            else line["value"] <= line["threshold"]
        )
        assert line["holds"] is expected


@pytest.mark.slow
def test_abkit_and_references_agree_on_the_answer(quick_json) -> None:
    report, _ = quick_json
    by_name = {line["name"]: line for line in report["lines"]}
    for name in CHECKED - (set() if HAS_PEERS else PEER_LINES):
        assert by_name[name]["agree"] is True, name
    assert by_name["ingest-csv"]["abkit"]["check"] == by_name["ingest-csv"]["reference"]["check"]
    assert by_name["compare-tea-pandas"]["abkit"]["check"] > 0
    assert by_name["als-ndcg"]["value"] <= 1e-9
    # compare lines time whole processes; the import line reads -X importtime
    assert by_name["compare-tea-ibis"]["abkit"]["scope"] == "process"
    assert by_name["als-replay"]["abkit"]["scope"] == "region"
    assert by_name["compare-import"]["value"] > 0


@pytest.mark.slow
def test_subsampled_references_are_extrapolated_and_say_so(quick_json) -> None:
    report, _ = quick_json
    by_name = {line["name"]: line for line in report["lines"]}
    loop = by_name["offpolicy-loop"]["reference"]
    assert loop["extrapolation"] == pytest.approx(20_000 / 2_000)
    assert "extrapolated linearly" in loop["note"]
    obp = by_name["offpolicy-obp"]["reference"]
    assert obp["extrapolation"] > 1
    assert "extrapolated linearly" in obp["note"]


@pytest.mark.slow
def test_work_folder_is_removed(quick_json) -> None:
    _, work = quick_json
    assert list(work.iterdir()) == []


@pytest.mark.slow
def test_missing_torch_skips_the_reference_with_its_install_line(quick_json) -> None:
    report, _ = quick_json
    line = next(x for x in report["lines"] if x["name"] == "lstm")
    assert line["status"] == "skipped"
    assert line["abkit"]["seconds"] > 0  # abkit's side needs no torch
    assert line["reference"] is None
    assert line["value"] is None
    assert line["holds"] is None
    assert line["message"] == "torch is not installed: pip install torch==2.13.0"


@pytest.mark.slow
def test_markdown_tables_come_from_the_json(quick_json, tmp_path: Path, runner) -> None:
    report, _ = quick_json
    path = tmp_path / "run.json"
    path.write_text(json.dumps(report))
    result = runner.invoke(app, ["bench", "--markdown", str(path), "--markdown", str(path)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == markdown([report, report])
    rows = [r for r in result.stdout.splitlines() if r.startswith("| `")]
    assert [r.split("`")[1] for r in rows[: len(EXPECTED_LINES)]] == EXPECTED_LINES


# -- the harness, without timing anything ------------------------------------------------------


def _m(seconds: float, peak: int = 100, check: float | None = 1.0) -> Measurement:
    return Measurement(
        task="t",
        seconds=seconds,
        peak_rss_bytes=peak,
        setup_rss_bytes=10,
        units=4.0,
        check=check,
        extrapolation=1.0,
        note="",
    )


def test_combine_takes_the_median_the_minimum_and_the_largest_peak() -> None:
    runs = [_m(3.0, 50), _m(1.0, 70), _m(10.0, 60), _m(2.0, 40)]
    m = combine(runs, [0.0, 1.0, 2.0, 3.0])
    assert m.seconds == 2.5  # the median of four: the mean of the middle two
    assert m.min_seconds == 1.0
    assert m.samples == (3.0, 1.0, 10.0, 2.0)
    assert m.started == (0.0, 1.0, 2.0, 3.0)
    assert m.peak_rss_bytes == 70
    assert m.rate == pytest.approx(4.0 / 2.5)
    assert combine([_m(5.0)]).min_seconds == 5.0


def test_combine_names_runs_whose_check_differs() -> None:
    m = combine([_m(1.0, check=1.0), _m(1.0, check=1.0), _m(1.0, check=2.0)])
    assert m.check == 1.0
    assert "run(s) 3 gave another check value" in m.note


def test_interleave_alternates_the_sides_and_reads_the_load() -> None:
    """abkit, reference, abkit, reference, ...; a skipped side stops running and says why."""
    calls: list[str] = []
    ticks = iter(range(1000))
    loads = iter([1.0, 3.0, 2.0, 0.5, 4.0, 1.5, 2.5, 2.0])

    def side(name: str, seconds: float):
        def run() -> Measurement:
            calls.append(name)
            return _m(seconds)

        return name, run

    def skipped() -> Measurement:
        calls.append("missing")
        raise SkipTask("foo is not installed", "pip install foo")

    measured = interleave(
        [side("a", 1.0), side("r", 2.0), ("missing", skipped)],
        3,
        clock=lambda: float(next(ticks)),
        load=lambda: next(loads),
    )
    assert calls == ["a", "r", "missing", "a", "r", "a", "r"]
    assert measured.order == ("a", "r", "missing", "a", "r", "a", "r")
    a, r, missing = measured.outcomes
    assert a[0] is not None
    assert r[0] is not None
    assert a[0].samples == (1.0, 1.0, 1.0)
    assert a[0].started[0] < r[0].started[0] < a[0].started[1] < r[0].started[1]
    assert missing == (None, "foo is not installed: pip install foo", "skipped")
    assert measured.load_1m == (0.5, 4.0)  # 7 runs + the reading after the last
    assert measured.rounds == 3


def test_interleave_reports_a_failed_side() -> None:
    def failing() -> Measurement:
        raise TaskFailed("ref-x", "boom")

    measured = interleave([("a", lambda: _m(1.0)), ("ref-x", failing)], 3, load=lambda: None)
    assert measured.outcomes[1] == (None, "ref-x failed: boom", "failed")
    assert measured.load_1m is None


def test_import_seconds_sums_the_top_level_imports_after_start_up() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:        70 |         70 | encodings",
            "import time:        20 |         80 |   _startup_nested",
            "import time:        30 |        900 | site",
            "import time:       100 |        100 |   _nested",
            "import time:       200 |        300 | top_one",
            "import time:        50 |         50 |     deeper",
            "import time:       400 |       1000 | top_two",
            "something else",
        ]
    )
    assert import_seconds("", stderr) == (None, pytest.approx(1300e-6))


def test_peak_memory_is_the_task_process_own_peak() -> None:
    m = measure("selfcheck-allocate", {"mb": 200})
    assert m.peak_rss_bytes - m.setup_rss_bytes >= 190e6
    assert m.units == 200e6
    assert m.extrapolation == 1.0
    assert m.samples == (m.seconds,)
    assert m.min_seconds == m.seconds


@pytest.mark.parametrize(
    ("value", "threshold", "direction", "expected"),
    [
        (5.0, 5.0, "at_least", True),
        (4.99, 5.0, "at_least", False),
        (2.0, 2.0, "at_most", True),
        (2.01, 2.0, "at_most", False),
        (None, 1.0, "at_least", None),
        (math.nan, 1.0, "at_most", None),
        (80.0, math.nan, "info", None),
    ],
)
def test_evaluate(value, threshold, direction, expected) -> None:
    assert evaluate(value, threshold, direction) is expected


def test_declared_line_names_are_unique_and_found_by_name() -> None:
    names = [line.name for line in LINES]
    assert [n for n in names if not n.startswith("spark-")] == EXPECTED_LINES
    # the opt-in Spark lines (`--only spark`) are declared too, after compare's
    assert names[names.index("compare-memory") + 1 : names.index("als-replay")] == [
        "spark-compare-small",
        "spark-compare-large",
    ]
    assert {spec(n).workload for n in names if n.startswith("spark-")} == set(OPT_IN_WORKLOADS)
    assert len(names) == len(set(names))
    assert all(spec(name).name == name for name in names)
    with pytest.raises(KeyError, match="no bench line 'gpu'"):
        spec("gpu")


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
        (
            ["--markdown", "missing.json"],
            "--markdown missing.json: No such file or directory",
        ),
    ],
)
def test_bad_options_are_one_line_errors(runner, args, message) -> None:
    result = runner.invoke(app, ["bench", "--quick", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert " ".join(result.stderr.split()) == f"error: {message}"


def test_markdown_of_a_file_that_is_not_a_bench_run(runner, tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"lines": 3}')
    result = runner.invoke(app, ["bench", "--markdown", str(path)])
    assert result.exit_code == 2
    assert "not the JSON of `abkit bench --json`" in result.stderr


def test_library_rejects_bad_only_before_doing_anything(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape("expected one of: als, compare")):
        run_bench(quick=True, only=["gpu"], work_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- the references compute what abkit computes -------------------------------------------------


def _logged(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    actions = 20
    reward = (rng.random(n) < 0.05).astype(np.float64)
    pscore = np.full(n, 1.0 / actions)
    target = rng.dirichlet(np.ones(actions), size=n)[np.arange(n), rng.integers(0, actions, n)]
    return reward, pscore, target


def test_numpy_and_obp_references_equal_abkit_ips_point_estimate() -> None:
    from abkit.bench.ope import numpy_poisson_ips, obp_bootstrap_interval, obp_ipw_round_rewards
    from abkit.replay.offpolicy import estimate_policy_value

    reward, pscore, target = _logged(20_000)
    est = estimate_policy_value(reward, pscore, target, estimator="ips", ci="bootstrap", n_boot=200)
    numpy_est, low, high = numpy_poisson_ips(
        reward, pscore, target, n_boot=200, rng=np.random.default_rng(0)
    )
    assert numpy_est == pytest.approx(est.raw_value, rel=1e-12)
    obp_samples = obp_ipw_round_rewards(reward, pscore, target)
    assert float(obp_samples.mean()) == pytest.approx(est.raw_value, rel=1e-12)
    # the intervals are of the same sampling law (Poisson vs multinomial bootstrap): close,
    # within a few Monte-Carlo errors of the percentile at 200 resamples
    obp = obp_bootstrap_interval(obp_samples, n_bootstrap_samples=200, random_state=0)
    se = est.se or 0.0
    assert abs(low - obp["95.0% CI (lower)"]) < 0.5 * se * 4
    assert abs(high - obp["95.0% CI (upper)"]) < 0.5 * se * 4
    assert est.ci_low is not None
    assert est.ci_high is not None
    assert abs(low - est.ci_low) < 2 * se
    assert abs(high - est.ci_high) < 2 * se


def test_obp_round_rewards_clip_like_obp() -> None:
    from abkit.bench.ope import obp_ipw_round_rewards

    reward = np.array([1.0, 1.0, 0.0])
    pscore = np.array([0.1, 0.5, 0.1])
    target = np.array([0.9, 0.5, 0.9])
    np.testing.assert_allclose(obp_ipw_round_rewards(reward, pscore, target), [9.0, 1.0, 0.0])
    np.testing.assert_allclose(
        obp_ipw_round_rewards(reward, pscore, target, lambda_=5.0), [5.0, 1.0, 0.0]
    )


def test_obp_bootstrap_is_obp_resampling_with_replacement() -> None:
    """OBP's loop: each resample is RandomState(seed).choice(samples, n) in sequence."""
    from abkit.bench.ope import obp_bootstrap_interval

    samples = np.arange(10.0)
    out = obp_bootstrap_interval(samples, n_bootstrap_samples=50, random_state=4)
    rs = np.random.RandomState(4)
    means = [rs.choice(samples, size=10).mean() for _ in range(50)]
    assert out["mean"] == pytest.approx(np.mean(means))
    assert out["95.0% CI (lower)"] == pytest.approx(np.percentile(means, 2.5))
    assert out["95.0% CI (upper)"] == pytest.approx(np.percentile(means, 97.5))


def test_numpy_poisson_replicates_follow_the_poisson_bootstrap_law() -> None:
    """Its replicates' spread matches the ratio estimator's delta-method SE (what a Poisson
    bootstrap of a mean estimates), so the reference is a real bootstrap, not a shortcut."""
    from abkit.bench.ope import numpy_poisson_ips

    reward, pscore, target = _logged(20_000, seed=5)
    terms = target / pscore * reward
    mean, low, high = numpy_poisson_ips(
        reward, pscore, target, n_boot=2000, rng=np.random.default_rng(1)
    )
    se = terms.std() / math.sqrt(terms.size)
    assert (high - low) / (2 * 1.959964) == pytest.approx(se, rel=0.1)
    assert low < mean < high


def test_peer_programs_run_by_path_import_nothing_of_abkit() -> None:
    source = Path(__file__).resolve().parents[2] / "abkit" / "bench" / "peers.py"
    text = source.read_text()
    assert not re.search(r"^\s*(from|import)\s+abkit", text, re.MULTILINE)


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


def test_speedup_is_the_median_of_the_pairs_ratios() -> None:
    """Pairs ran back to back: (abkit 1 s, reference 3 s) under a light load, (4, 12) under
    a heavy one, (2, 7): ratios 3, 3, 3.5, median 3, where the ratio of the medians (7 / 2)
    mixes runs of different loads."""
    from abkit.bench.runner import speedup

    abkit = combine([_m(1.0), _m(4.0), _m(2.0)])
    reference = combine([_m(3.0), _m(12.0), _m(7.0)])
    assert speedup(abkit, reference) == pytest.approx(3.0)
    assert reference.seconds / abkit.seconds == pytest.approx(3.5)
    single = combine([_m(2.0)])
    assert speedup(single, combine([_m(3.0)])) == pytest.approx(1.5)
