"""abkit.data.store: checking a store can be written before the work, waiting for its lock,
and removing the temporary files of killed processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import abkit.data.store as store_module
from abkit.data.store import check_writable, open_store, remove_stale_temp_files
from abkit.errors import AbkitWarning, InputError, StoreLockedError
from tests.conftest import ReleaseOnFirstRetry, file_digest, holding_write_lock


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_check_writable_keeps_the_bytes_and_creates_no_file(db_path: Path) -> None:
    open_store(db_path, write=True).close()
    before = file_digest(db_path)
    assert check_writable(db_path) == db_path
    assert file_digest(db_path) == before
    missing = db_path.with_name("new.duckdb")
    assert check_writable(missing) == missing  # a new store is fine: the write creates it
    assert not missing.exists()


def test_check_writable_names_the_holder_and_leaves_the_file(db_path: Path) -> None:
    open_store(db_path, write=True).close()
    before = file_digest(db_path)
    with (
        holding_write_lock(db_path, read_only=True) as pid,
        pytest.raises(StoreLockedError) as info,
    ):
        check_writable(db_path)
    message = str(info.value)
    assert message.startswith(f"{db_path}: the database is locked by process {pid} (")
    assert "\n" not in message
    assert info.value.holder.startswith(f"process {pid}")
    assert file_digest(db_path) == before


def test_wait_retries_until_the_holder_lets_go(db_path, monkeypatch) -> None:
    open_store(db_path, write=True).close()
    with holding_write_lock(db_path) as pid:
        import signal

        clock = ReleaseOnFirstRetry(lambda: os.kill(pid, signal.SIGKILL))
        monkeypatch.setattr(store_module, "time", clock)
        waiting = rf"locked by process {pid}.*waiting up to 60 s"
        with (
            pytest.warns(AbkitWarning, match=waiting),
            open_store(db_path, write=True, wait=60) as store,
        ):
            store.con.execute("INSERT INTO abkit_meta VALUES ('k', 'v')")
    assert clock.sleeps >= 1


def test_wait_gives_up_at_the_deadline_with_the_lock_message(db_path: Path) -> None:
    open_store(db_path, write=True).close()
    before = file_digest(db_path)
    with (
        holding_write_lock(db_path) as pid,
        pytest.warns(AbkitWarning),
        pytest.raises(StoreLockedError) as info,
    ):
        check_writable(db_path, wait=0.3)
    assert str(info.value) == (
        f"{db_path}: the database is still locked by {info.value.holder} after waiting 0.3 s; "
        "try again when it has finished or pass another db"
    )
    assert info.value.holder.startswith(f"process {pid}")
    assert file_digest(db_path) == before


@pytest.mark.parametrize("wait", [-1.0, float("nan")])
def test_wait_must_be_a_number_of_seconds(db_path: Path, wait: float) -> None:
    with pytest.raises(InputError, match="--wait must be a number of seconds >= 0"):
        check_writable(db_path, wait=wait)


def test_stale_temp_files_of_dead_processes_are_removed_and_named(db_path: Path) -> None:
    folder = db_path.parent
    dead = _dead_pid()
    stale = [folder / f".{db_path.name}.simulate-{dead}.tmp{end}" for end in ("", ".wal")]
    live = folder / f".{db_path.name}.simulate-{os.getpid()}.tmp"  # this process is alive
    other = folder / f".other.duckdb.simulate-{dead}.tmp"  # another store's file
    for path in (*stale, live, other):
        path.write_bytes(b"x" * 1000)
    with pytest.warns(AbkitWarning) as caught:
        open_store(db_path, write=True).close()
    (message,) = [str(w.message) for w in caught]
    assert message == (
        f"{folder}: removed temporary files left by a killed abkit process (0.0 MB): "
        f"{stale[0].name}, {stale[1].name}"
    )
    assert not any(p.exists() for p in stale)
    assert live.exists()
    assert other.exists()
    # The caller's own PID is stale for it when it has not created its file yet.
    assert remove_stale_temp_files(db_path, include_pid=os.getpid(), warn=False) == [live]
