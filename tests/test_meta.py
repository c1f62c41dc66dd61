"""Properties of the package as a whole: public API, help texts, import cost, names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import abkit
from abkit.cli.main import app

REPO = Path(__file__).resolve().parents[1]


def test_version_flag(runner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"abkit {abkit.__version__}"


def _commands():
    import typer.main

    from abkit.cli.main import COMMANDS, load_command

    group = typer.main.get_command(app)
    return group, {name: load_command(name) for name in COMMANDS}


def test_help_lines_equal_each_commands_own_help(runner) -> None:
    """`abkit --help` shows COMMANDS' lines without importing the command modules; each line
    must be the command's own short help."""
    from abkit.cli.main import COMMANDS

    _, commands = _commands()
    for name, command in commands.items():
        assert COMMANDS[name][1] == command.get_short_help_str(limit=200), name
    listing = " ".join(runner.invoke(app, ["--help"]).stdout.split())
    for name in COMMANDS:
        assert f" {name} " in listing, name


def test_each_command_imports_only_its_own_module() -> None:
    modules = _imported_modules("from abkit.cli.main import load_command; load_command('power')")
    assert "abkit.cli.power" in modules
    assert not {"abkit.cli.replay", "abkit.cli.gate", "abkit.cli.bench"} & modules


def test_every_command_and_option_has_help_text() -> None:
    _, commands = _commands()
    assert commands, "no commands registered"
    missing = []
    for name, command in commands.items():
        if not (command.help or "").strip():
            missing.append(f"{name}: no help")
        for param in command.params:
            if getattr(param, "param_type_name", "") == "option" and not (param.help or "").strip():
                missing.append(f"{name} {param.opts[0]}: no help")
    assert missing == []


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    _, commands = _commands()
    undocumented = [name for name in commands if f"abkit {name}" not in readme]
    assert undocumented == []


def _imported_modules(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": ""},
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


HEAVY = {
    "implicit",
    "onnxruntime",
    "onnx",
    "torch",
    "statsmodels",
    "pandas",
    "scipy",
    "duckdb",
    "matplotlib",
}


def test_help_does_not_import_heavy_packages() -> None:
    modules = _imported_modules("import abkit.cli.main")
    assert sorted(HEAVY & {m.split(".")[0] for m in modules}) == []


def test_recommenders_folder_does_not_shadow_microsofts_package(tmp_path) -> None:
    """Installed as abkit_recommenders; a top-level `recommenders` is not ours."""
    code = (
        "import importlib.util, abkit_recommenders;"
        "spec = importlib.util.find_spec('recommenders');"
        "print(abkit_recommenders.__name__, spec is None or 'abkit' not in (spec.origin or ''))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.split() == ["abkit_recommenders", "True"]


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (
            PermissionError(13, "Permission denied", "out.json"),
            "error: out.json: Permission denied",
        ),
        (
            duckdb.ConstraintException("Constraint Error: duplicate key\ndetail"),
            "error: database error: Constraint Error: duplicate key",
        ),
    ],
    ids=["oserror", "duckdb-error"],
)
def test_boundary_turns_file_and_database_errors_into_one_line(
    runner, monkeypatch, raised, message
) -> None:
    import abkit.cli.info

    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(abkit.cli.info, "store_info", fail)
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert "Traceback" not in result.output


def test_boundary_lets_real_bugs_through(runner, monkeypatch) -> None:
    import abkit.cli.info

    def fail(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(abkit.cli.info, "store_info", fail)
    result = runner.invoke(app, ["info"])
    assert isinstance(result.exception, ZeroDivisionError)


def test_compare_does_not_import_scipy_stats_optimize_or_pandas(tmp_path) -> None:
    """The default compare path (no --bayes, counts large enough for the z-test) needs only
    scipy.special: scipy.stats, scipy.optimize and pandas cost most of a second to import."""
    from tests._ab_store import build_store, day

    users = [
        (f"{arm[0]}{i}", arm, day(i % 9)) for arm in ("control", "treatment") for i in range(400)
    ]
    events = [
        (user, "purchase", day(9.5), 5.0 + i % 7, f"s{i}")
        for i, (user, _, _) in enumerate(users)
        if i % 3 == 0 or (i % 5 == 0 and user[0] == "t")
    ]
    db = build_store(tmp_path / "ab.duckdb", assignments=users, events=events)
    code = (
        "from abkit.cli.main import load_command; load_command('compare')\n"
        "from abkit.compare.arms import compare_arms\n"
        f"report = compare_arms({str(db)!r}, metrics=['conversion', 'mean'], claim=0.1)\n"
        "assert len(report.comparisons) == 2, report\n"
        "assert all(c.p_value < 1 for c in report.comparisons), report\n"
    )
    modules = _imported_modules(code)
    assert "abkit.cli.compare" in modules
    assert "scipy.special" in modules
    assert (
        sorted(
            m for m in modules if m.split(".")[:2] in (["scipy", "stats"], ["scipy", "optimize"])
        )
        == []
    )
    assert sorted(m for m in modules if m.split(".")[0] in ("pandas", "pyarrow")) == []


def test_compare_json_imports_only_what_it_uses(tmp_path) -> None:
    """``abkit compare --json`` as the console script runs it prints JSON without rich, and
    loads neither the run comparison, the Parquet exchange nor the aggregates-file reader
    (the bench's ``compare-import`` line)."""
    from tests._ab_store import build_store, day

    users = [
        (f"{arm[0]}{i}", arm, day(i % 9)) for arm in ("control", "treatment") for i in range(50)
    ]
    events = [(user, "purchase", day(9.5), 5.0, f"s{i}") for i, (user, _, _) in enumerate(users)]
    db = build_store(tmp_path / "ab.duckdb", assignments=users, events=events)
    code = (
        "import sys\nfrom abkit.cli.main import main\n"
        f"sys.argv = ['abkit', 'compare', '--db', {str(db)!r}, '--json']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
    )
    modules = _imported_modules(code)
    assert "abkit.compare.arms" in modules
    unused = {"abkit.compare.runs", "abkit.data.parquet", "abkit.data.aggregates_file"}
    assert sorted(unused & modules) == []
    assert sorted(m for m in modules if m.split(".")[0] == "rich") == []
