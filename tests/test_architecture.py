"""The package's import graph, read with ``ast`` (imports inside functions included).

The rules (README, Development):

* no import circles among abkit's and the plug-ins' modules;
* data flows one way: each package imports only the layers listed for it in ``ALLOWED``
  (``stats`` knows no SQL, ``data`` knows no statistics beyond the sufficient-statistics type,
  nothing below the CLI imports the CLI, the plug-ins see only the plug-in protocol and the
  LSTM contract);
* no module imports an underscore name of another package;
* abkit's own modules are imported at module top, never inside a function, except the few
  edges in ``DEFERRED``: modules that ``abkit compare`` would otherwise import without using
  them (the bench's ``compare-import`` line holds that path to 0.35 s).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"abkit": REPO / "abkit", "abkit_recommenders": REPO / "recommenders"}
OWN = tuple(ROOTS)

# package -> the packages (or modules) it may import; "abkit" is the root package itself
# (its __version__), "*" anything but the CLI
ALLOWED: dict[str, set[str]] = {
    "abkit": set(),
    "abkit.errors": set(),
    "abkit._util": {"abkit.errors"},
    "abkit.stats": {"abkit.errors", "abkit._util"},
    "abkit.data": {"abkit", "abkit.errors", "abkit._util", "abkit.stats.sufficient"},
    "abkit.simulate": {"abkit.errors", "abkit._util", "abkit.data"},
    "abkit.plugins": {"abkit.errors", "abkit._util"},
    "abkit.replay": {
        "abkit",
        "abkit.errors",
        "abkit._util",
        "abkit.data",
        "abkit.stats",
        "abkit.plugins",
        "abkit_recommenders.train_lstm",  # `abkit train lstm`: the trainer's public API
        "abkit_recommenders.lstm_import",  # `abkit models import`: wrapping your own model
        "abkit_recommenders.train_seed",  # `abkit train lstm --arch seed`: the article's model
    },
    "abkit_recommenders": {
        "abkit.errors",
        "abkit._util",
        "abkit.plugins",
        "abkit.replay.lstm_contract",
    },
    "abkit.compare": {"abkit.errors", "abkit._util", "abkit.data", "abkit.stats"},
    "abkit.experiments": {
        "abkit",
        "abkit.errors",
        "abkit._util",
        "abkit.data",
        "abkit.stats",
        "abkit.replay",
        "abkit.compare",
        "abkit.simulate",
        "abkit.plugins",
    },
    "abkit.report": {
        "abkit",  # the version in the report's footer
        "abkit.errors",
        "abkit._util",
        "abkit.stats",
        "abkit.data",  # the run records the report shows
        "abkit.compare",
        "abkit.replay",
        "abkit.experiments",  # `abkit report --spec`: the gate's report
    },
    "abkit.bench": {"*"},
    "abkit.gpu_check": {"*"},
    "abkit.cli": {"*", "abkit.cli"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for package, root in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


@functools.cache  # parsed once per module for every test below (ast.walk is the cost)
def _imports(module: str, path: Path) -> list[tuple[str, list[str], bool]]:
    """(imported module, names, inside a function) for each import of abkit's own code."""
    tree = ast.parse(path.read_text())
    in_function: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function |= {id(n) for n in ast.walk(fn) if n is not fn}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OWN:
                    found.append((alias.name, [], id(node) in in_function))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = (
                    module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                )
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            if base.split(".")[0] not in OWN:
                continue
            names = [a.name for a in node.names]
            # `from abkit.experiments import baseline` imports the module abkit.experiments.baseline
            submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
            found.append(
                (base, [n for n in names if f"{base}.{n}" not in MODULES], id(node) in in_function)
            )
            found += [(m, [], id(node) in in_function) for m in submodules]
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        graph[module] = {
            target
            for target, _, _ in _imports(module, path)
            if target in MODULES and target != module
        }
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _layer(module: str) -> str:
    """The most specific key of ALLOWED that contains ``module``."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in ALLOWED:
            return key
    raise AssertionError(f"{module} belongs to no layer of ALLOWED")


def _allowed(importer: str, target: str) -> bool:
    own = _layer(importer)
    if _layer(target) == own or target.startswith(own + "."):
        return True
    rules = ALLOWED[own]
    if "*" in rules and not target.startswith("abkit.cli"):
        return True
    return any(target == rule or target.startswith(rule + ".") for rule in rules)


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions() -> None:
    graph = _graph()
    assert "abkit.replay.lstm_contract" in graph["abkit_recommenders.lstm"]
    assert len(graph) == len(MODULES) > 60


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_every_import_respects_the_layers() -> None:
    wrong = [
        f"{importer} -> {target}"
        for importer, targets in _graph().items()
        for target in sorted(targets)
        if not _allowed(importer, target)
    ]
    assert wrong == []


def test_no_underscore_name_of_another_package_is_imported() -> None:
    wrong = []
    for module, path in MODULES.items():
        for target, names, _ in _imports(module, path):
            if _layer(target) == _layer(module) or target == "abkit._util":
                continue
            wrong += [
                f"{module} imports {target}.{n}"
                for n in names
                if n.startswith("_") and not n.startswith("__")
            ]
    assert wrong == []


#: (importer, imported) pairs imported inside a function, each off the default compare path
DEFERRED = {
    ("abkit.compare.arms", "abkit.data.aggregates_file"),  # compare --aggregates only
    ("abkit.cli.compare", "abkit.compare.runs"),  # comparing replay runs, not arms
    ("abkit.data.engines", "abkit.data.parquet"),  # --engine spark only
}


def test_own_modules_are_imported_at_module_top() -> None:
    inside = [
        f"{module} imports {target} inside a function"
        for module, path in MODULES.items()
        for target, _, in_function in _imports(module, path)
        if in_function and (module, target) not in DEFERRED
    ]
    assert inside == []


def test_deferred_imports_are_still_deferred() -> None:
    """Each allowed exception is still an import inside a function (a stale entry fails)."""
    found = {
        (module, target)
        for module, path in MODULES.items()
        for target, _, in_function in _imports(module, path)
        if in_function
    }
    assert found >= DEFERRED


# -- size: a function a newcomer can read ----------------------------------------------------

MAX_LINES, MAX_PARAMETERS = 120, 12
# The functions over those lines today, each with its (lines, parameters) ceiling: issue 22
# splits them into small steps with value objects. Until then none may grow, none may join
# the list, and an entry that falls within the limits must leave it (a stale entry fails).
# typer commands in abkit/cli/ declare one parameter per option, as typer requires: only
# their length counts.
OVERSIZED: dict[str, tuple[int, int]] = {
    "abkit/cli/compare.py:compare": (215, 25),
    "abkit/cli/ingest.py:ingest": (135, 16),
    "abkit/cli/replay.py:replay_command": (157, 27),
    "abkit/compare/arms.py:compare_arms": (221, 22),
    "abkit/compare/arms.py:_defaults": (98, 15),
    "abkit/data/ingest.py:_validate": (162, 9),
    "abkit/data/ingest.py:ingest_file": (97, 15),
    "abkit/experiments/gate.py:evaluate_gates": (85, 13),
    "abkit/replay/byom.py:import_model": (102, 13),
    "abkit/replay/offpolicy.py:estimate_policy_value": (190, 13),
    "abkit/replay/runner.py:replay": (387, 33),
    "abkit/replay/runner.py:_offpolicy": (72, 13),
    "abkit/replay/runner.py:train": (84, 15),
    "abkit/simulate/generate.py:generate_chunk": (180, 4),
    "abkit/stats/means.py:compare_estimates": (87, 19),
    "abkit/stats/power.py:power": (182, 12),
    "recommenders/lstm_import.py:check_model": (133, 11),
    "recommenders/lstm_import.py:wrap_model": (121, 7),
    "recommenders/train_lstm.py:train_lstm": (103, 13),
    "recommenders/train_seed.py:train_seed": (129, 13),
}


def _function_sizes() -> dict[str, tuple[int, int]]:
    """(lines, parameters) of every function over a limit; ``self``/``cls`` do not count, a
    typer command's options do not count."""
    out = {}
    for path in MODULES.values():
        name = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            a = node.args
            params = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
            params += (a.vararg is not None) + (a.kwarg is not None)
            params -= bool(a.args) and a.args[0].arg in ("self", "cls")
            lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            counted = 0 if name.startswith("abkit/cli/") else params
            if lines > MAX_LINES or counted > MAX_PARAMETERS:
                out[f"{name}:{node.name}"] = (lines, params)
    return out


def test_no_function_grows_past_the_size_limits() -> None:
    sizes = _function_sizes()
    new = sorted(set(sizes) - set(OVERSIZED))
    assert new == [], f"over {MAX_LINES} lines or {MAX_PARAMETERS} parameters: split them"
    grown = [
        f"{name}: {sizes[name]} > {ceiling}"
        for name, ceiling in OVERSIZED.items()
        if name in sizes and (sizes[name][0] > ceiling[0] or sizes[name][1] > ceiling[1])
    ]
    assert grown == []
    stale = sorted(set(OVERSIZED) - set(sizes))
    assert stale == [], "within the limits now: remove from OVERSIZED"
