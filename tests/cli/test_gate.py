"""The CLI of runs comparison and gating: `abkit compare RUN_A RUN_B`, `abkit baseline save`,
`abkit gate`, `abkit run` — exit codes, JSON, JUnit, Markdown, the GitHub step summary, and
(slow) real replays of the committed CI experiment with a planted regression."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from abkit.cli.main import app
from tests._fake_runs import add_run, correlated_users
from tests.conftest import REPO, file_digest

CI_SPEC = REPO / "experiments" / "ci.toml"
CI_BASELINE = REPO / "experiments" / "ci.baseline.json"


@pytest.fixture
def fake_db(db_path: Path) -> Path:
    base, cand = correlated_users(1, 800)
    worse = np.clip(base * 0.8, 0, 1)
    metrics = lambda v: {"ndcg@10": v, "hit_rate@10": (v > 0.25) * 1.0}  # noqa: E731
    add_run(db_path, "base", user_metrics=metrics(base), params={"factors": 16}, name="als16")
    add_run(db_path, "same", user_metrics=metrics(cand), params={"factors": 16})
    add_run(db_path, "worse", user_metrics=metrics(worse), params={"factors": 2})
    return db_path


def _save(runner: CliRunner, db: Path, out: Path, *extra: str) -> None:
    result = runner.invoke(
        app, ["baseline", "save", "base", "--db", str(db), "--out", str(out), *extra]
    )
    assert result.exit_code == 0, result.stderr
    assert f"wrote {out}" in result.stdout


def _gate(runner: CliRunner, db: Path, baseline: Path, run: str, *extra: str) -> Result:
    """``abkit gate --db DB --baseline FILE --run RUN EXTRA...``."""
    return runner.invoke(
        app, ["gate", "--db", str(db), "--baseline", str(baseline), "--run", run, *extra]
    )


def test_gate_exit_codes_and_outputs(
    runner: CliRunner, fake_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = tmp_path / "b.json"
    _save(runner, fake_db, baseline)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    ok = _gate(runner, fake_db, baseline, "same")
    assert ok.exit_code == 0, ok.stderr
    assert "gate b: PASSED" in ok.stdout
    assert "Decided by: paired t test at one-sided alpha 0.05" in ok.stdout

    junit = tmp_path / "gate.xml"
    markdown = tmp_path / "gate.md"
    bad = _gate(
        runner, fake_db, baseline, "worse", "--max-drop", "0.05", "--junit", str(junit),
        "--markdown", str(markdown), "--json",
    )  # fmt: skip
    assert bad.exit_code == 1, bad.stderr
    payload = json.loads(bad.stdout)
    assert payload["passed"] is False
    assert payload["failed"] == ["hit_rate@10", "ndcg@10"]
    assert payload["parameter_changes"] == "Model parameters changed: factors 16 -> 2"
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "2"
    assert markdown.read_text().startswith("### abkit gate `b`: FAILED: hit_rate@10, ndcg@10")
    # the step summary is appended to, once per gate run, never replaced
    text = summary.read_text()
    assert text.startswith("earlier step\n### abkit gate `b`: passed")
    assert text.count("### abkit gate") == 2


def test_gate_margin_and_metric_options(runner: CliRunner, fake_db: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "b.json"
    _save(runner, fake_db, baseline, "--metric", "ndcg@10")
    # a 25% allowed drop tolerates the 20% drop of "worse"
    wide = _gate(runner, fake_db, baseline, "worse", "--max-drop", "0.25")
    assert wide.exit_code == 0, wide.stdout
    absolute = _gate(
        runner, fake_db, baseline, "worse", "--max-drop", "0.01", "--absolute", "--test",
        "bootstrap", "--json",
    )  # fmt: skip
    assert absolute.exit_code == 1
    gate = json.loads(absolute.stdout)["gates"][0]
    assert gate["gate"] == "ndcg@10 may not drop by more than 0.01 (absolute)"
    assert gate["test"].startswith("paired bootstrap percentile test, 2000 resamples")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gate"], "abkit gate needs a SPEC, or both --baseline FILE and --run RUN"),
        (["gate", "--baseline", "{b}", "--run", "nope"], "unknown run 'nope'"),
        (
            ["gate", "--baseline", "{b}", "--run", "same", "--metric", "mrr@10"],
            "unknown baseline metric 'mrr@10'",
        ),
        (
            ["gate", "--baseline", "{b}", "--run", "same", "--max-drop", "2"],
            "--max-drop 2: a relative drop is a fraction; did you mean 0.02 (2%)? Write 0.02 or 2%",
        ),
        (
            ["gate", "--baseline", "{b}", "--run", "same", "--max-drop", "150%"],
            "--max-drop: gate hit_rate@10: a relative drop is a fraction below 1 (0.01 = 1%), "
            "got 1.5",
        ),
        (
            ["gate", "--baseline", "{b}", "--run", "same", "--test", "z"],
            "--test: unknown test 'z'; expected one of: bootstrap, t",
        ),
        (["gate", "--baseline", "{b}", "--run", "other-data"], "mismatched data fingerprint"),
        (
            ["gate", "--baseline", "missing.json", "--run", "same"],
            "missing.json: baseline file not found",
        ),
        (["gate", "{spec}"], "missing baseline: [gate] baseline"),
        (["baseline", "save", "nope"], "unknown run 'nope'"),
        (["compare", "base", "other-data"], "were replayed on different data"),
    ],
)
def test_usage_and_data_errors_exit_2(
    runner: CliRunner, fake_db: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    baseline = tmp_path / "b.json"
    _save(runner, fake_db, baseline)
    base, _ = correlated_users(1, 800)
    add_run(fake_db, "other-data", user_metrics={"ndcg@10": base}, fingerprint="0" * 32)
    spec = tmp_path / "s.toml"
    spec.write_text(CI_SPEC.read_text().replace('"ci.baseline.json"', '"nothing.json"'))
    before = file_digest(fake_db)
    argv = [a.format(b=baseline, spec=spec) for a in args] + ["--db", str(fake_db)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert file_digest(fake_db) == before


@pytest.mark.parametrize("command", ["gate", "run"])
def test_a_binary_file_given_as_the_spec(
    runner: CliRunner, fake_db: Path, tmp_path: Path, command: str
) -> None:
    """Used to end in a UnicodeDecodeError traceback."""
    spec = tmp_path / "some.bin"
    spec.write_bytes(bytes(range(256)) * 4)
    before = file_digest(fake_db)
    result = runner.invoke(app, [command, str(spec), "--db", str(fake_db)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {spec}: not a TOML spec (not UTF-8 text: byte 128 is 0x80); give an "
        "experiment spec such as experiments/ci.toml\n"
    )
    assert file_digest(fake_db) == before


def test_users_mismatch_says_which_ids_differ(
    runner: CliRunner, fake_db: Path, tmp_path: Path
) -> None:
    """Same count, other users: the message used to read "800 users ..., not the baseline's
    800 users". With the baseline's source run in the store it names the ids."""
    baseline = tmp_path / "b.json"
    _save(runner, fake_db, baseline)
    base, _ = correlated_users(1, 800)
    ids = [f"u{i:05d}" for i in range(3, 803)]
    add_run(fake_db, "shifted", user_metrics={"ndcg@10": base}, user_ids=ids)
    before = file_digest(fake_db)
    result = _gate(runner, fake_db, baseline, "shifted", "--metric", "ndcg@10")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {baseline}: run shifted scored 800 users on ndcg@10, the baseline 800: "
        "3 only in the run (e.g. u00800, u00801, u00802), 3 only in the baseline (e.g. "
        "u00000, u00001, u00002); they cannot be paired\n"
    )
    assert file_digest(fake_db) == before


@pytest.mark.parametrize("option", ["--junit", "--markdown"])
def test_an_output_that_is_a_directory_is_refused_before_the_replay(
    runner: CliRunner, tmp_path: Path, option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked before anything runs: the store is not even created."""
    import abkit.experiments.gate

    def no_replay(*args: object, **kwargs: object) -> None:
        raise AssertionError("replayed before checking the output paths")

    monkeypatch.setattr(abkit.experiments.gate, "replay_model", no_replay)
    db = tmp_path / "ci.duckdb"
    result = runner.invoke(app, ["gate", str(CI_SPEC), "--db", str(db), option, str(tmp_path)])
    assert result.exit_code == 2
    assert (
        result.stderr == f"error: {option} {tmp_path}: is a directory, expected a file to write\n"
    )
    assert not db.exists()
    missing = tmp_path / "no" / "such.xml"
    result = runner.invoke(app, ["gate", str(CI_SPEC), "--db", str(db), option, str(missing)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {option} {missing}: folder {missing.parent} does not exist\n"


def test_a_step_summary_that_is_a_directory_is_refused(
    runner: CliRunner, fake_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = tmp_path / "b.json"
    _save(runner, fake_db, baseline)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))
    result = _gate(runner, fake_db, baseline, "same")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: $GITHUB_STEP_SUMMARY {tmp_path}: is a directory, expected a file to write\n"
    )


def test_compare_runs_from_the_command_line(runner: CliRunner, fake_db: Path) -> None:
    result = runner.invoke(app, ["compare", "als16", "same", "worse", "--db", str(fake_db)])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Paired comparison on the same 800 test users" in out
    assert "ndcg@10: worse" in out
    assert "McNemar p" in out
    assert "x narrower than unpaired (Welch) ones" in out
    as_json = runner.invoke(
        app,
        [
            "compare",
            "als16",
            "worse",
            "--db",
            str(fake_db),
            "--json",
            "--correction",
            "bh",
            "--metric",
            "ndcg@10",
        ],
    )
    payload = json.loads(as_json.stdout)
    assert payload["correction"] == "bh"
    [row] = payload["comparisons"]
    assert row["relative_difference"] == pytest.approx(-0.2, abs=0.01)
    assert row["candidate_run"] == "worse"


def test_compare_without_runs_still_compares_ab_arms(runner: CliRunner, fake_db: Path) -> None:
    """No run ids: the A/B path of the statistics issue, not the replay-run path."""
    result = runner.invoke(app, ["compare", "--db", str(fake_db)])
    assert result.exit_code == 2
    assert "holds no dataset" in result.stderr or "no experiment" in result.stderr


def test_offpolicy_compare_with_claim(runner: CliRunner, db_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 4000
    action = rng.integers(0, 4, n)
    reward = (rng.random(n) < np.array([0.04, 0.05, 0.06, 0.12])[action]).astype(float)
    ids = np.arange(n)
    add_run(
        db_path,
        "rand",
        kind="offpolicy",
        model="random",
        rounds={"impression_id": ids, "weight": np.ones(n), "reward": reward},
    )
    add_run(
        db_path,
        "pers",
        kind="offpolicy",
        model="als",
        rounds={"impression_id": ids, "weight": (action == 3) * 4.0, "reward": reward},
    )
    result = runner.invoke(app, ["compare", "rand", "pers", "--claim", "0.2", "--db", str(db_path)])
    assert result.exit_code == 0, result.stderr
    assert "Off-policy comparison on the same 4,000 logged rounds" in result.stdout
    assert "claim: als beats random by at least 20%: SUPPORTED" in result.stdout


# -- real replays (the committed CI experiment) ---------------------------------------------


@pytest.fixture(scope="module")
def ci_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CI experiment's simulated shop with its runs (als, popularity): ~10 s."""
    db = tmp_path_factory.mktemp("ci") / "ci.duckdb"
    result = CliRunner().invoke(app, ["run", str(CI_SPEC), "--db", str(db), "--json"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload["runs"]) == {"als", "popularity"}
    assert payload["comparison"]["reference"].startswith("popularity-")
    return db


@pytest.fixture
def ci_db(ci_store: Path, tmp_path: Path) -> Path:
    """A private copy of the CI store, for a test that adds runs to it."""
    return Path(shutil.copy(ci_store, tmp_path / "ci.duckdb"))


def _variant(tmp_path: Path, **params: int) -> Path:
    """The CI spec with other candidate parameters, gated against the committed baseline."""
    text = CI_SPEC.read_text().replace('"ci.baseline.json"', json.dumps(str(CI_BASELINE)))
    line = 'params = { factors = 16, iterations = 10, seed = 1, device = "cpu" }'
    assert text.count(line) == 1
    values = {"factors": 16, "iterations": 10, "seed": 1, **params}
    inner = ", ".join(f"{k} = {v}" for k, v in values.items())
    path = tmp_path / "variant.toml"
    path.write_text(text.replace(line, f'params = {{ {inner}, device = "cpu" }}'))
    return path


@pytest.mark.slow
def test_ci_gate_passes_on_the_unchanged_model(runner: CliRunner, ci_db: Path) -> None:
    """What .ci/run does; it also proves the committed baseline matches today's simulator."""
    result = runner.invoke(app, ["gate", str(CI_SPEC), "--db", str(ci_db)])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "gate ci: PASSED" in result.stdout
    assert "Model parameters as in the baseline" in result.stdout


@pytest.mark.slow
def test_ci_gate_fails_on_a_planted_regression(
    runner: CliRunner, ci_db: Path, tmp_path: Path
) -> None:
    """ALS with 2 factors instead of 16: NDCG@10 drops ~20%, beyond the 5% margin: exit 1."""
    junit = tmp_path / "junit.xml"
    result = runner.invoke(
        app,
        [
            "gate",
            str(_variant(tmp_path, factors=2)),
            "--db",
            str(ci_db),
            "--junit",
            str(junit),
        ],
    )
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "gate ci: FAILED on ndcg@10" in result.stdout
    assert "ndcg@10 dropped by" in result.stdout
    assert "Model parameters changed: factors 16 -> 2" in result.stdout
    failures = [
        c for c in ET.parse(junit).getroot().iter("testcase") if c.find("failure") is not None
    ]
    assert failures
    assert (failures[0].get("name") or "").startswith("ndcg@10 may not drop")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
def test_ci_gate_passes_another_seed_of_the_unchanged_model(
    runner: CliRunner, ci_db: Path, tmp_path: Path, seed: int
) -> None:
    db = str(ci_db)
    from abkit.data.store import open_store

    # the gate's candidate is stored as ci/als and replaces the run of that name (a spec's
    # SPEC/LABEL is its latest replay); keep the seed-1 run under another name to pair with
    with open_store(db, write=True) as store:
        store.con.execute("UPDATE runs SET name = 'ci/als seed 1' WHERE name = 'ci/als'")
    result = runner.invoke(app, ["gate", str(_variant(tmp_path, seed=seed)), "--db", db, "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    payload = json.loads(result.stdout)
    assert payload["parameter_changes"] == f"Model parameters changed: seed 1 -> {seed}"
    for gate in payload["gates"]:
        assert abs(gate["change"]) < 0.03  # seed-to-seed variation, well inside the 5% margin
    # the two ALS runs, paired by user: far narrower intervals than unpaired on the same runs
    from abkit.compare.runs import compare_runs
    from abkit.data.store import open_store

    with open_store(db) as store:
        row = store.con.execute("SELECT run_id FROM runs WHERE name = 'ci/als seed 1'").fetchone()
    assert row is not None
    runs = [row[0], payload["candidate"]["run_id"]]
    compared = compare_runs(db, runs, metrics=["ndcg@10", "hit_rate@10"], n_resamples=0)
    for comparison in compared.rows:
        r = comparison.result
        assert (r.ci_high - r.ci_low) < 0.7 * (r.unpaired_ci_high - r.unpaired_ci_low)


@pytest.mark.slow
def test_rerunning_the_spec_replaces_its_named_runs(runner: CliRunner, ci_db: Path) -> None:
    """`abkit run` and `abkit gate` store SPEC/LABEL runs and may be re-run: each re-run
    replaces the run of that name, so names stay unique and usable with `abkit compare`."""
    from abkit.replay.runs import list_runs

    before = {r.name: r.run_id for r in list_runs(ci_db)}
    assert sorted(before) == ["ci/als", "ci/popularity"]
    again = runner.invoke(app, ["run", str(CI_SPEC), "--db", str(ci_db), "--json"])
    assert again.exit_code == 0, again.stderr
    after = {r.name: r.run_id for r in list_runs(ci_db)}
    assert after == {
        f"ci/{label}": run_id for label, run_id in json.loads(again.stdout)["runs"].items()
    }
    assert set(after.values()).isdisjoint(before.values())
    gate = runner.invoke(app, ["gate", str(CI_SPEC), "--db", str(ci_db), "--json"])
    assert gate.exit_code == 0, gate.stderr
    names = [r.name for r in list_runs(ci_db)]
    assert sorted(names) == ["ci/als", "ci/popularity"]
    compared = runner.invoke(app, ["compare", "ci/popularity", "ci/als", "--db", str(ci_db)])
    assert compared.exit_code == 0, compared.stderr


@pytest.mark.slow
def test_ci_spec_refuses_other_data(runner: CliRunner, ci_db: Path, tmp_path: Path) -> None:
    """A store whose dataset was simulated with other settings, or a pinned fingerprint that
    the data do not have: exit 2 with the reason, never a gate verdict."""
    db = str(ci_db)
    other_seed = tmp_path / "seed.toml"
    other_seed.write_text(
        _variant(tmp_path).read_text().replace("pre_days = 28, seed = 3", "pre_days = 28, seed = 4")
    )
    result = runner.invoke(app, ["gate", str(other_seed), "--db", db])
    assert result.exit_code == 2
    assert "dataset 'ci' in" in result.stderr
    assert "is not the one [data.simulate] describes (seed 3 vs 4)" in result.stderr
    pinned = tmp_path / "pinned.toml"
    pinned.write_text(
        _variant(tmp_path)
        .read_text()
        .replace('split = "temporal"', 'split = "temporal"\nfingerprint = "0123abcd"')
    )
    before = file_digest(ci_db)
    result = runner.invoke(app, ["gate", str(pinned), "--db", db])
    assert result.exit_code == 2
    assert "mismatched data fingerprint: [data] fingerprint is 0123abcd" in result.stderr
    assert file_digest(ci_db) == before
    # `abkit run` checks the pinned fingerprint before storing its runs too
    result = runner.invoke(app, ["run", str(pinned), "--db", db])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: {pinned}: mismatched data fingerprint: [data] fingerprint is 0123abcd, but "
        "dataset 'ci' with split temporal:"
    )
    assert result.stderr.endswith("(nothing was stored)\n")
    assert file_digest(ci_db) == before


def _other_baseline(tmp_path: Path, **changes: object) -> Path:
    """The committed baseline with other content, saved properly (a valid digest), and the CI
    spec pointing at it."""
    import dataclasses

    from abkit.experiments.baseline import load_baseline, save_baseline

    committed = load_baseline(CI_BASELINE)
    run = {**committed.run, **changes.pop("run", {})}  # type: ignore[dict-item]
    save_baseline(dataclasses.replace(committed, run=run, **changes), tmp_path / "other.json")
    spec = tmp_path / "other.toml"
    spec.write_text(CI_SPEC.read_text().replace('"ci.baseline.json"', '"other.json"'))
    return spec


@pytest.mark.slow
def test_a_refused_gate_stores_nothing(runner: CliRunner, ci_db: Path, tmp_path: Path) -> None:
    """A baseline of other data, or of other users: the candidate is replayed, refused before
    it is stored (exit 2), and the store keeps its bytes."""
    from abkit.experiments.baseline import users_digest

    spec = _other_baseline(tmp_path, run={"fingerprint": "0" * 32})
    before = file_digest(ci_db)
    result = runner.invoke(app, ["gate", str(spec), "--db", str(ci_db)])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "mismatched data fingerprint: the baseline was saved from run" in result.stderr
    assert "on data 000000000000 (dataset ci" in result.stderr
    assert result.stderr.count("\n") == 1
    assert file_digest(ci_db) == before

    spec = _other_baseline(tmp_path, users_digest=users_digest(["nobody"]))
    result = runner.invoke(app, ["gate", str(spec), "--db", str(ci_db)])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "scored 1,900 users on ndcg@10, the baseline 1,900: as many, but other user ids" in (
        result.stderr
    )
    assert file_digest(ci_db) == before


@pytest.mark.slow
def test_a_refused_gate_leaves_no_new_store(runner: CliRunner, tmp_path: Path) -> None:
    """The CI case (a fresh --db): the store the gate simulated into is removed again."""
    spec = _other_baseline(tmp_path, run={"fingerprint": "0" * 32})
    db = tmp_path / "fresh" / "ci.duckdb"
    db.parent.mkdir()
    result = runner.invoke(app, ["gate", str(spec), "--db", str(db)])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "mismatched data fingerprint" in result.stderr
    assert sorted(db.parent.iterdir()) == []


@pytest.mark.slow
def test_an_edited_baseline_is_refused_before_the_replay(
    runner: CliRunner, ci_db: Path, tmp_path: Path
) -> None:
    document = json.loads(CI_BASELINE.read_text())
    entry = document["metrics"]["ndcg@10"]
    entry["values"] = [round(v * 1.2, 6) for v in entry["values"]]
    entry["mean"] = float(np.mean(entry["values"]))
    entry["sd"] = float(np.std(entry["values"], ddof=1))
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document, indent=2))
    before = file_digest(ci_db)
    result = runner.invoke(
        app, ["gate", str(CI_SPEC), "--db", str(ci_db), "--baseline", str(edited)]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {edited}: the file was edited after it was saved (its content_sha256 does not "
        "match); regenerate it with `abkit run SPEC --save-baseline` or "
        "`abkit baseline save RUN --out FILE`\n"
    )
    assert file_digest(ci_db) == before


def test_the_documented_workflow_uses_real_options(runner: CliRunner) -> None:
    """.ci/github-actions.yml: its gate step names the committed spec and only options
    that `abkit gate` has (a text check: PyYAML is not a dependency)."""
    text = (REPO / ".ci" / "github-actions.yml").read_text()
    step = text.split("run: >", 1)[1].split("\n\n", 1)[0]
    words = step.split()
    assert words[:3] == ["abkit", "gate", "experiments/ci.toml"]
    assert (REPO / words[2]).exists()
    help_text = runner.invoke(app, ["gate", "--help"]).stdout
    options = [w for w in words if w.startswith("--")]
    assert options == ["--db", "--junit", "--markdown"]
    for option in options:
        assert option in help_text
    assert "GITHUB_STEP_SUMMARY" in help_text
