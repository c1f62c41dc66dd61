"""The quick layer (`python -m pytest -m "not slow"`, under 3 minutes on 2 idle cores) still
runs every command at least once: each command of the CLI appears as an invocation in a test
that is not marked ``slow``.

An invocation is a list, tuple or call whose string arguments start with the command's words
(``runner.invoke(app, ["runs", "delete", ...])``, ``_run("compare", "--db", ...)``). The
search is static (it reads the tests with ``ast``), so it cannot be fooled by a test that was
skipped, only by one that names a command without running it, which review catches.
"""

from __future__ import annotations

import ast
from pathlib import Path

from abkit.cli.main import app

TESTS = Path(__file__).resolve().parent


def _commands() -> list[tuple[str, ...]]:
    """Every leaf command, as its words (``("runs", "delete")``)."""
    import typer

    out: list[tuple[str, ...]] = []

    def walk(command, path: tuple[str, ...]) -> None:
        if hasattr(command, "list_commands"):
            ctx = typer.Context(command)
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), (*path, name))
        else:
            out.append(path)

    walk(typer.main.get_command(app), ())
    return out


def _is_slow(node: ast.AST) -> bool:
    """A ``pytest.mark.slow`` among a decorator list or a ``pytestmark`` value."""
    return "mark.slow" in ast.unparse(node)


def _invocations(tree: ast.Module) -> set[tuple[str, ...]]:
    """The leading string arguments of every list, tuple and call in the module's quick code:
    its tests not marked slow, and its helpers and fixtures."""
    if any(
        isinstance(n, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in n.targets)
        and _is_slow(n.value)
        for n in tree.body
    ):
        return set()
    found: set[tuple[str, ...]] = set()
    for top in tree.body:
        if isinstance(top, ast.FunctionDef | ast.ClassDef) and any(
            _is_slow(d) for d in top.decorator_list
        ):
            continue
        for node in ast.walk(top):
            items = (
                node.elts
                if isinstance(node, ast.List | ast.Tuple)
                else node.args
                if isinstance(node, ast.Call)
                else []
            )
            words = []
            for item in items:
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    words.append(item.value)
                elif words or not (isinstance(item, ast.Name) and item.id == "app"):
                    break
            if words:
                found.add(tuple(words))
    return found


def _covered(command: tuple[str, ...], invoked: set[tuple[str, ...]]) -> bool:
    # `abkit runs` is `abkit runs list`: a group's list is its default
    forms = {command} | ({command[:-1]} if command[-1] == "list" else set())
    return any(call[: len(form)] == form for call in invoked for form in forms)


def test_every_command_runs_in_the_quick_layer() -> None:
    invoked: set[tuple[str, ...]] = set()
    for path in TESTS.rglob("test_*.py"):
        invoked |= _invocations(ast.parse(path.read_text(encoding="utf-8")))
    commands = _commands()
    assert len(commands) >= 20
    missing = [" ".join(c) for c in commands if not _covered(c, invoked)]
    assert missing == []


def test_the_search_sees_slow_tests_as_slow() -> None:
    source = """
import pytest
def test_a(runner):
    runner.invoke(app, ["compare", "--db", "x"])
@pytest.mark.slow
def test_b(runner):
    runner.invoke(app, ["runs", "delete", "r"])
"""
    invoked = _invocations(ast.parse(source))
    assert _covered(("compare",), invoked)
    assert not _covered(("runs", "delete"), invoked)
    slow_module = "import pytest\npytestmark = [pytest.mark.slow]\n" + source
    assert not _covered(("compare",), _invocations(ast.parse(slow_module)))
