"""Fault injection: ``kill -9`` at random moments, Ctrl-C, and a concurrent reader.

Every writer (simulate, ingest, replay, gate) runs as a real subprocess
(``python -m abkit.cli.main``) on a copy of a tiny store, and is killed at a seeded random
moment of its run. Afterwards the store must open (abkit's own schema check), hold no partial
dataset or run, and the same command must then succeed (run in-process with the CLI runner: the
same code path, without paying the interpreter start-up once more).

Budget: ~35 subprocesses of ~1 s each: measured 32 s on the two cores while another engineer's
pytest ran, 61 s while a hypothesis suite held one core fully (load average 3-4).
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from abkit.cli.main import app
from abkit.data.schema import TABLES
from abkit.data.store import open_store
from tests.conftest import file_digest, holding_write_lock

pytestmark = pytest.mark.slow

SIM = ["--users", "300", "--items", "50", "--days", "3", "--pre-days", "1"]
KILLS = {"simulate": 5, "ingest": 5, "replay": 5, "gate": 5}  # kills of each command
SEED = 20240601
TIMEOUT = 120  # generous: a loaded machine is slow, not wrong

SPEC = """\
name = "faults"
[data]
dataset = "gated"
split = "temporal"
simulate = {{ users = 300, items = 50, days = 3, pre_days = 1, seed = 5 }}
[models.popularity]
model = "popularity"
[evaluation]
metrics = ["ndcg@10", "hit_rate@10"]
[compare]
reference = "popularity"
[gate]
candidate = "popularity"
baseline = "{baseline}"
[[gate.checks]]
metric = "ndcg@10"
max_relative_drop = 0.05
"""


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "abkit.cli.main", *args]


def command(name: str, db: Path, csv: Path, spec: Path, i: int) -> list[str]:
    if name == "simulate":
        return ["simulate", *SIM, "--dataset", f"k{i}", "--db", str(db), "--json"]
    if name == "ingest":
        return ["ingest", str(csv), "--dataset", f"k{i}", "--db", str(db), "--json"]
    if name == "replay":
        args = ["replay", "--model", "popularity", "--dataset", "base", "--name", f"k{i}"]
        return [*args, "--db", str(db), "--json"]
    return ["gate", str(spec), "--db", str(db), "--json"]


DATA_TABLES = ("events", "impressions", "assignments", "experiments", "items", "truth", "ingests")
RUN_TABLES = ("run_user_metrics", "run_estimates", "run_rounds")


def census(db: Path) -> dict[str, dict[str, int]]:
    """abkit's store check (schema, version), then the shape of every dataset and run.

    Returns ``{dataset: {table: rows}}`` and ``{"run:NAME": {"users": n, "rows": m}}``, and
    asserts there is no partial dataset or run: no rows of a dataset missing from
    ``datasets`` (and no dataset without rows), no rows of a run missing from ``runs``, and
    every run's per-user metrics complete (the same metrics for each of its users).
    """
    out: dict[str, dict[str, int]] = {}
    with open_store(db) as store:
        con = store.con
        names = [r[0] for r in con.execute("SELECT dataset FROM datasets").fetchall()]
        for table in (*DATA_TABLES, "runs"):
            orphans = con.execute(
                f"SELECT DISTINCT dataset FROM {table} "
                "WHERE dataset NOT IN (SELECT dataset FROM datasets)"
            ).fetchall()
            assert not orphans, f"{db}: {table} has rows of unknown datasets {orphans}"
        for name in names:
            out[name] = {
                table: con.execute(
                    f"SELECT count(*) FROM {table} WHERE dataset = ?",
                    [name],
                ).fetchone()[0]
                for table in DATA_TABLES
            }
            assert out[name]["events"] + out[name]["impressions"] > 0, f"{name} has no data"
        for table in RUN_TABLES:
            orphans = con.execute(
                f"SELECT DISTINCT run_id FROM {table} WHERE run_id NOT IN (SELECT run_id FROM runs)"
            ).fetchall()
            assert not orphans, f"{db}: {table} has rows of unknown runs {orphans}"
        runs = con.execute(
            "SELECT r.run_id, r.name, r.users, count(DISTINCT m.user_id), "
            "count(DISTINCT m.metric), count(m.user_id) "
            "FROM runs r LEFT JOIN run_user_metrics m USING (run_id) "
            "GROUP BY ALL ORDER BY r.run_id"
        ).fetchall()
        for run_id, name, users, scored, metrics, rows in runs:
            assert users > 0, run_id
            assert scored == users, run_id
            assert rows == users * metrics, run_id
            out[f"run:{name}:{run_id}"] = {"users": users, "rows": rows}
    return out


def content(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: equal content whatever the file's bytes."""
    with open_store(db) as store:
        return {t: store.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "store.duckdb")


@dataclass(frozen=True)
class Base:
    """A tiny store (datasets 'base' and 'gated', one gate run), its CSV export, a gate spec,
    and what one complete run of each command adds (from an unkilled run, also timed)."""

    store: Path
    csv: Path
    spec: Path
    census: dict[str, dict[str, int]]
    added: dict[str, dict[str, dict[str, int]]]
    duration: dict[str, float]

    def command(self, name: str, db: Path, i: int) -> list[str]:
        return command(name, db, self.csv, self.spec, i)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    from typer.testing import CliRunner

    from abkit.simulate import SimulationConfig, simulate

    folder = tmp_path_factory.mktemp("faults")
    store = folder / "base.duckdb"
    simulate(SimulationConfig(users=300, items=50, days=3, pre_days=1, dataset="base"), store)
    csv = folder / "events.csv"
    with open_store(store) as opened:
        opened.con.execute(
            "COPY (SELECT e.user_id, a.variant, e.event_type, e.ts, e.item_id, e.value "
            "FROM events e JOIN assignments a USING (dataset, user_id) "
            "WHERE e.dataset = 'base' ORDER BY ALL) TO '" + str(csv).replace("'", "''") + "' "
            "(HEADER)"
        )
    spec = folder / "faults.toml"
    spec.write_text(SPEC.format(baseline=folder / "faults.baseline.json"))
    done = CliRunner().invoke(app, ["run", str(spec), "--db", str(store), "--save-baseline"])
    assert done.exit_code == 0, done.output
    before = census(store)
    added: dict[str, dict[str, dict[str, int]]] = {}
    duration: dict[str, float] = {}
    for name in KILLS:  # one unkilled subprocess run of each: what it adds, how long it takes
        target = folder / f"once-{name}" / "store.duckdb"
        target.parent.mkdir()
        shutil.copy(store, target)
        started = time.monotonic()
        ran = subprocess.run(cli(*command(name, target, csv, spec, 0)), capture_output=True)
        duration[name] = time.monotonic() - started
        assert ran.returncode == 0, ran.stderr
        after = census(target)
        added[name] = {_shape(k): v for k, v in after.items() if k not in before}
    return Base(store, csv, spec, before, added, duration)


def _spec_runs(found: dict[str, dict[str, int]]) -> list[tuple[str, dict[str, int]]]:
    """The runs of the spec (``faults/LABEL``) by name, without their run ids: a gate
    replaces its candidate's run by a new one of the same name and shape."""
    return sorted(
        (key.split(":")[1], value) for key, value in found.items() if key.startswith("run:faults/")
    )


def _unchanged(
    found: dict[str, dict[str, int]], base: dict[str, dict[str, int]], name: str
) -> bool:
    """Everything the store held before is still there as it was; but a gate replaces its
    spec's candidate run (checked with :func:`_spec_runs`)."""
    keep = {k: v for k, v in base.items() if not (name == "gate" and k.startswith("run:faults/"))}
    return {k: v for k, v in found.items() if k in keep} == keep


def _shape(key: str) -> str:
    """A census key without what differs between two runs of one command (name, run id)."""
    return "run" if key.startswith("run:") else "dataset"


def test_kill_9_at_random_moments_leaves_a_consistent_store(base: Base, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    rng = random.Random(SEED)
    runner = CliRunner()
    kills = 0
    for name, wanted in KILLS.items():
        killed = 0
        # the window kill moments are drawn from: an unkilled run's time, shrunk to the time a
        # run that ended before its moment took (the machine's load varies during the suite)
        window = base.duration[name]
        for i in range(1, 5 * wanted + 1):  # a run that ends before its moment is not a kill
            if killed == wanted:
                break
            db = tmp_path / f"{name}-{i}" / "store.duckdb"
            db.parent.mkdir()
            shutil.copy(base.store, db)
            args = base.command(name, db, i)
            # A moment in the run (start-up included), drawn within the window.
            moment = rng.uniform(0.0, 0.9 * window)
            started = time.monotonic()
            proc = subprocess.Popen(cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                proc.wait(timeout=moment)
            except subprocess.TimeoutExpired:
                proc.kill()
                killed += 1
            else:
                window = min(window, time.monotonic() - started)
            proc.communicate(timeout=TIMEOUT)  # reaped: its PID is dead from here on
            where = f"{name} #{i} killed at {moment:.2f} s (rc {proc.returncode})"

            after = census(db)
            new = {k: v for k, v in after.items() if k not in base.census}
            assert _unchanged(after, base.census, name), where
            for key, shape in new.items():  # only whole datasets and runs were added
                assert shape == base.added[name][_shape(key)], f"{where}: partial {key}"
            committed = bool(new)
            stale = [f for f in leftovers(db.parent) if f.endswith((".tmp", ".tmp.wal"))]

            rerun = runner.invoke(app, args)
            # the data (or a run of that --name) is already there: refused, nothing added
            refused = committed and name in ("simulate", "ingest", "replay")
            assert rerun.exit_code == (2 if refused else 0), f"{where}: {rerun.output}"
            if stale:  # a killed simulate's staging files: removed, and said so
                assert "removed temporary files left by a killed abkit process" in rerun.stderr
                assert all(f in rerun.stderr for f in stale), (stale, rerun.stderr)
            final = census(db)
            added = {k: v for k, v in final.items() if k not in base.census}
            assert _unchanged(final, base.census, name), where
            if name == "gate":  # the gate replaces the spec's run of its candidate
                assert _spec_runs(final) == _spec_runs(base.census), where
            else:
                assert len(added) == 1, where
            assert leftovers(db.parent) == [], f"{where}: files left {leftovers(db.parent)}"
        kills += killed
    assert kills >= 20, f"only {kills} runs were still running when killed"


# A wrapper around the CLI that stops a command at a chosen point of its work, says "working"
# on stderr, and waits there for the test's SIGINT: "stage" (simulate: every chunk is in the
# staging file, the store untouched) or "commit" (any writer: every row is inserted in the
# store's transaction, DuckDB queries run just before COMMIT).
HOOKED_CLI = """
import signal, sys, time
from contextlib import contextmanager
# Ctrl-C as in a terminal, even when this suite was started with SIGINT ignored (a background
# job of a non-interactive shell inherits an ignored SIGINT, and so would this process)
signal.signal(signal.SIGINT, signal.default_int_handler)
import abkit.data.store as store
import abkit.simulate.writer as writer

def working():
    print("working", file=sys.stderr, flush=True)

if sys.argv[1] == "stage":
    def write_experiment(self):
        working()
        time.sleep(120)
    writer.SimulationWriter.write_experiment = write_experiment
else:
    original = store.Store.transaction
    @contextmanager
    def transaction(self):
        with original(self) as con:
            yield con
            if self.path.name == "store.duckdb":
                working()
                while True:  # short queries: a SIGINT lands in one (or between two)
                    con.execute("SELECT count(*) FROM range(20000000)").fetchall()
    store.Store.transaction = transaction
from abkit.cli.main import main
sys.argv = ["abkit", *sys.argv[2:]]
main()
"""


def _wait_for_line(stream, text: str) -> list[str]:
    """Lines of ``stream`` up to the first containing ``text`` (fails at EOF)."""
    seen = []
    while True:
        line = stream.readline()
        assert line, f"the process ended before saying {text!r}: {seen}"
        seen.append(line)
        if text in line:
            return seen


@pytest.mark.parametrize(
    ("name", "point"),
    [("simulate", "stage"), ("simulate", "commit"), ("ingest", "commit"), ("replay", "commit")],
)
def test_sigint_while_working_exits_130_and_leaves_the_store(
    base: Base, tmp_path: Path, name: str, point: str
) -> None:
    """Ctrl-C exits 130 with one line, and the store holds what it held before. Before the
    store is opened for writing ("stage") its bytes are identical; interrupted inside the
    store's transaction ("commit") DuckDB has already written the uncommitted rows' blocks
    into the file, and the rollback leaves them unused, so the bytes may differ but the
    content (every row of every table) is the same: that is what is asserted there."""
    db = tmp_path / "store.duckdb"
    shutil.copy(base.store, db)
    before, digest = content(db), file_digest(db)
    args = base.command(name, db, 1)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOOKED_CLI, point, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        _wait_for_line(proc.stderr, "working")
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err == "error: interrupted; nothing was written\n"
    assert content(db) == before
    if point == "stage":
        assert file_digest(db) == digest
    assert leftovers(tmp_path) == []  # the staging files went too


def test_a_writer_waits_for_a_reader_with_wait_and_fails_fast_without(
    base: Base, tmp_path: Path
) -> None:
    """A notebook's read-only connection blocks writers. Without --wait the writer fails
    before its work with one line naming the reader, store unchanged; with --wait it says it
    waits, and succeeds once the reader has closed."""
    from typer.testing import CliRunner

    db = tmp_path / "store.duckdb"
    shutil.copy(base.store, db)
    digest = file_digest(db)
    args = base.command("replay", db, 1)
    with holding_write_lock(db, read_only=True) as reader:
        refused = CliRunner().invoke(app, args)
        assert refused.exit_code == 2
        message = refused.stderr
        assert message.startswith(f"error: {db}: the database is locked by process {reader} (")
        assert message.endswith("); pass --wait SECONDS to wait for it, or another --db\n")
        assert message.count("\n") == 1
        assert file_digest(db) == digest
        writer = subprocess.Popen(
            cli(*args, "--wait", "100"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert writer.stderr is not None
            said = _wait_for_line(writer.stderr, "waiting up to 100 s")
            assert f"locked by process {reader}" in said[-1]
        except BaseException:
            writer.kill()
            writer.communicate()
            raise
    _, err = writer.communicate(timeout=TIMEOUT)  # the reader has closed: the writer goes on
    assert writer.returncode == 0, err
    assert [k for k in census(db) if k not in base.census and k.startswith("run:k1:")]
