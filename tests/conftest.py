"""Shared fixtures. Tests never touch ./abkit.duckdb: each gets its own file under tmp_path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
OBD = SHARED / "data" / "obd"


@pytest.fixture(autouse=True)
def _no_default_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run every test in its own folder with $ABKIT_DB unset."""
    monkeypatch.delenv("ABKIT_DB", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.duckdb"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes, or None when it does not exist (for 'unchanged' checks)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
