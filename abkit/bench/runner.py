"""``run_bench``: every workload against its reference, in one run, on this machine.

Results are *ratios within one run* (both sides measured minutes apart on the same machine and
data), so they carry over between machines far better than absolute times. Each line pairs an
abkit measurement with a reference measurement (or a machine probe) and evaluates one target
of issue 6. The lines, what each compares and its target are declared in
:mod:`abkit.bench.lines` (``LINES``); this module measures them.

Decisions: abkit and its references are *interleaved* (abkit, reference, abkit, reference,
... for ``sizes.repeats`` rounds, at least three), each in a fresh process; each side's time is
the median of its runs; a speed-up is the median of the per-pair ratios (abkit's i-th run
against the reference's i-th, back to back under the same load), and the line's verdict is
on that median, with the ratio of the minima and the machine's 1-minute load average
(``os.getloadavg``, read before every run and after the last) shown next to it, so a
reader sees how disturbed the line was.
Imports and loading a trained model are setup on both sides of a timed-region line, not
timed; the compare lines time whole processes (what a user waits for). References too slow to
run whole (OBP's bootstrap, the per-row loop) run on a subsample and are extrapolated
linearly. Sizes: :class:`BenchSizes`; ``scale`` multiplies users, events and rounds while
catalogue and model sizes stay fixed, so two scales show how cost grows with users and events.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from abkit._util import unknown_choice
from abkit.bench.harness import (
    Measurement,
    ParseOutput,
    SkipTask,
    TaskFailed,
    combine,
    measure,
    measure_command,
)
from abkit.bench.lines import LINES, Direction, LineSpec, spec
from abkit.errors import InputError

__all__ = [
    "WORKLOADS",
    "BenchLine",
    "BenchReport",
    "BenchSizes",
    "run_bench",
]

#: workload names accepted by ``--only``, in the order they run (that of their lines)
WORKLOADS: tuple[str, ...] = tuple(dict.fromkeys(line.workload for line in LINES))

GB = 1e9

Status = Literal["ok", "skipped", "failed"]


@dataclass(frozen=True, kw_only=True)
class BenchSizes:
    """Problem sizes of one run. ``for_scale`` gives the default sizes times ``scale``
    (users, events, rounds; catalogue and model sizes fixed) or the tiny ``--quick`` ones.
    ``repeats``: interleaved rounds per line (at least 3). The ALS model keeps abkit's
    defaults at every size (the line is about them)."""

    sim_users: int
    sim_items: int = 1_000
    sim_days: int = 14
    sim_pre_days: int = 7
    ingest_rows: int
    als_users: int
    als_items: int
    als_per_user: float = 20.0
    lstm_users: int
    lstm_items: int
    lstm_seq_len: int = 20
    lstm_embedding: int = 64
    lstm_hidden: int = 128
    offpolicy_rounds: int
    offpolicy_actions: int = 80
    offpolicy_bootstrap: int = 1_000
    offpolicy_subsample: int
    k: int = 10
    seed: int = 7
    repeats: int = 3

    @classmethod
    def for_scale(cls, scale: float, *, quick: bool = False) -> BenchSizes:
        if quick:
            return cls(
                sim_users=int(max(100, 500 * scale)),
                sim_items=100,
                sim_days=5,
                sim_pre_days=2,
                ingest_rows=int(max(500, 5_000 * scale)),
                als_users=int(max(100, 500 * scale)),
                als_items=300,
                lstm_users=int(max(50, 300 * scale)),
                lstm_items=200,
                lstm_embedding=8,
                lstm_hidden=16,
                offpolicy_rounds=int(max(2_000, 20_000 * scale)),
                offpolicy_bootstrap=20,
                offpolicy_subsample=2_000,
            )
        return cls(
            sim_users=int(200_000 * scale),
            ingest_rows=int(2_000_000 * scale),
            als_users=int(50_000 * scale),
            als_items=10_000,
            lstm_users=int(10_000 * scale),
            lstm_items=10_000,
            offpolicy_rounds=int(10_000_000 * scale),
            offpolicy_subsample=min(100_000, int(10_000_000 * scale)),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class BenchLine:
    """One line of the report: abkit against a reference, and one target.

    ``value`` is what the target is evaluated on, from the *median* times (``metric`` says
    what it is: ``speedup`` = reference seconds / abkit seconds, so > 1 means abkit is faster;
    ``peak_gb``; ``peak_ratio``; ``seconds``; ``abs_diff`` of the two check values);
    ``value_min`` is the same from each side's fastest run. ``load_1m`` is the lowest and
    highest 1-minute load average seen while the line's runs ran (None where the platform has
    none); ``rounds`` how many interleaved rounds it took. ``holds`` is None when the line
    could not be measured (``status`` skipped or failed, ``message`` says why; a skipped
    reference names the pip line that enables it) or has no target (``direction`` info).
    ``agree`` says whether abkit and the reference computed the same result (the same
    conversions, the same NDCG, the same top items), None when there is nothing to compare.
    """

    name: str
    workload: str
    description: str
    abkit: Measurement | None
    reference_name: str | None
    reference: Measurement | None
    metric: str
    value: float | None
    target: str
    threshold: float
    direction: Direction
    holds: bool | None
    agree: bool | None
    status: Status
    message: str = ""
    value_min: float | None = None
    load_1m: tuple[float, float] | None = None
    rounds: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["abkit"] = self.abkit.to_dict() if self.abkit else None
        out["reference"] = self.reference.to_dict() if self.reference else None
        out["load_1m"] = list(self.load_1m) if self.load_1m is not None else None
        out["threshold"] = self.threshold if math.isfinite(self.threshold) else None
        return out


@dataclass(frozen=True, kw_only=True)
class BenchReport:
    """A whole run: the lines, the sizes, the machine, the wall time."""

    scale: float
    quick: bool
    sizes: BenchSizes
    machine: dict[str, Any]
    lines: tuple[BenchLine, ...]
    seconds: float
    command: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "quick": self.quick,
            "command": self.command,
            "seconds": self.seconds,
            "machine": dict(self.machine),
            "sizes": self.sizes.to_dict(),
            "lines": [line.to_dict() for line in self.lines],
            "notes": list(self.notes),
        }


def evaluate(value: float | None, threshold: float, direction: Direction) -> bool | None:
    """Whether ``value`` meets the target; None when there is no value or no target."""
    if direction == "info" or value is None or not math.isfinite(value):
        return None
    return bool(value >= threshold if direction == "at_least" else value <= threshold)


def speedup(abkit: Measurement | None, reference: Measurement | None) -> float | None:
    """Reference seconds / abkit seconds (> 1: abkit is faster): the median of the ratios of
    the interleaved pairs (abkit's i-th run and the reference's i-th, which ran back to back
    under the same load), or the ratio of the medians when the runs do not pair up."""
    if abkit is None or reference is None or abkit.seconds <= 0:
        return None
    pairs = list(zip(abkit.samples, reference.samples, strict=False))
    if len(abkit.samples) == len(reference.samples) > 1 and all(a > 0 for a, _ in pairs):
        return float(statistics.median(r / a for a, r in pairs))
    return reference.seconds / abkit.seconds


def _agree(
    abkit: Measurement | None, reference: Measurement | None, *, tol: float = 1e-9
) -> bool | None:
    if abkit is None or reference is None or abkit.check is None or reference.check is None:
        return None
    scale = max(1.0, abs(reference.check))
    return abs(abkit.check - reference.check) <= tol * scale


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    import duckdb
    import numpy as np

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "duckdb": duckdb.__version__,
    }
    load = load_average()
    if load is not None:
        info["load_average_1m"] = load
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


#: workloads that run only when ``--only`` names them (Spark needs the `spark` extra, Java and
#: a minute of JVM start-up per measured process)
OPT_IN_WORKLOADS: tuple[str, ...] = ("spark",)


def parse_only(only: Sequence[str] | None) -> tuple[str, ...]:
    """The workloads to run, in :data:`WORKLOADS` order; every name checked. Without
    ``only``: every workload but the opt-in ones (:data:`OPT_IN_WORKLOADS`)."""
    if not only:
        return tuple(w for w in WORKLOADS if w not in OPT_IN_WORKLOADS)
    chosen = set()
    for raw in only:
        name = raw.strip()
        if not name:
            continue
        if name not in WORKLOADS:
            raise InputError("--only: " + unknown_choice("workload", name, WORKLOADS))
        chosen.add(name)
    if not chosen:
        raise InputError("--only: give at least one workload name")
    return tuple(w for w in WORKLOADS if w in chosen)


Outcome = tuple[Measurement | None, str, Status]

#: one runnable side of a line: (task name, a function that runs it once and measures it)
Task = tuple[str, Callable[[], Measurement]]


@dataclass(frozen=True)
class Interleaved:
    """What :meth:`_Run.interleave` measured: one outcome per task (its runs combined), the
    order the runs went in (task names), the load average range and the number of rounds."""

    outcomes: tuple[Outcome, ...]
    order: tuple[str, ...]
    load_1m: tuple[float, float] | None
    rounds: int


def interleave(
    tasks: Sequence[Task],
    rounds: int,
    *,
    before: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    load: Callable[[], float | None] = load_average,
) -> Interleaved:
    """Run the tasks in turn, ``rounds`` times (abkit, reference, abkit, reference, ...) and
    combine each task's runs (:func:`~abkit.bench.harness.combine`: median, minimum, largest
    peak). The load average is read before every run and after the last.

    On a shared machine the load changes from second to second; interleaving puts both sides
    under the same conditions, and the median ignores the odd run that another process
    disturbed. ``before`` runs before every run (e.g. to remove the database file the previous
    run wrote). A task that fails or is skipped is not run again; its outcome says why.
    """
    runs: list[list[Measurement]] = [[] for _ in tasks]
    starts: list[list[float]] = [[] for _ in tasks]
    errors: list[Outcome | None] = [None for _ in tasks]
    loads: list[float] = []
    order: list[str] = []
    t0 = clock()
    for _ in range(max(1, rounds)):
        for side, (name, run) in enumerate(tasks):
            if errors[side] is not None:
                continue
            if before is not None:
                before()
            value = load()
            if value is not None:
                loads.append(value)
            starts[side].append(clock() - t0)
            order.append(name)
            try:
                runs[side].append(run())
            except SkipTask as skip:
                errors[side] = (None, f"{skip.reason}: {skip.install}", "skipped")
            except TaskFailed as failed:
                errors[side] = (None, f"{failed.task} failed: {failed.message}", "failed")
    value = load()
    if value is not None:
        loads.append(value)
    outcomes: list[Outcome] = []
    for side in range(len(tasks)):
        error = errors[side]
        if error is not None:
            outcomes.append(error)
        else:
            outcomes.append((combine(runs[side], starts[side]), "", "ok"))
    return Interleaved(
        outcomes=tuple(outcomes),
        order=tuple(order),
        load_1m=(min(loads), max(loads)) if loads else None,
        rounds=max(1, rounds),
    )


class _Run:
    """One bench run: the work folder, the measured lines, the callbacks."""

    def __init__(
        self,
        sizes: BenchSizes,
        work: Path,
        on_line: Callable[[BenchLine], None] | None,
        on_step: Callable[[str], None] | None,
        timeout_s: float,
    ) -> None:
        self.sizes = sizes
        self.work = work
        self.on_line = on_line
        self.on_step = on_step
        self.timeout_s = timeout_s
        self.with_ingest = True
        self.lines: list[BenchLine] = []
        self.sim_info: dict[str, Any] | None = None
        self.sim_measurement: Measurement | None = None
        self.sim_error: str | None = None
        self.sim_load: tuple[float, float] | None = None

    def path(self, name: str) -> str:
        return str(self.work / name)

    def step(self, text: str) -> None:
        if self.on_step is not None:
            self.on_step(text)

    def task(self, name: str, params: dict[str, Any]) -> Measurement:
        return measure(name, params, timeout_s=self.timeout_s)

    def worker(self, name: str, params: dict[str, Any]) -> Task:
        """A timed-region task of :mod:`abkit.bench.worker`."""
        return name, lambda: self.task(name, params)

    def command(
        self, name: str, argv: Sequence[str], *, units: float, parse: ParseOutput | None = None
    ) -> Task:
        """A whole-process task: ``argv`` from start to exit."""
        return name, lambda: measure_command(
            name, argv, units=units, parse=parse, timeout_s=self.timeout_s
        )

    def attempt(self, name: str, params: dict[str, Any]) -> Outcome:
        """Run a task once; (measurement, message, status) instead of raising."""
        try:
            return self.task(name, params), "", "ok"
        except SkipTask as skip:
            return None, f"{skip.reason}: {skip.install}", "skipped"
        except TaskFailed as failed:
            return None, f"{failed.task} failed: {failed.message}", "failed"

    def interleave(
        self, tasks: Sequence[Task], *, before: Callable[[], None] | None = None
    ) -> Interleaved:
        return interleave(tasks, self.sizes.repeats, before=before)

    def add(
        self,
        name: str,
        *,
        abkit: Outcome,
        reference: Outcome | None = None,
        measured: Interleaved | None = None,
        value: ValueFunction | None = None,
        note: str = "",
        **numbers: Any,
    ) -> None:
        """Report the line declared as ``name`` in :data:`~abkit.bench.lines.LINES`.

        The run supplies only what it measured: abkit's outcome, the reference's (exactly
        when the line declares a reference), how they were ``measured`` (load, rounds),
        ``value`` when the metric has no default in :data:`VALUES`, a ``note``, and
        ``numbers``: every field of the line's templates.
        """
        line_spec = spec(name)
        if (reference is None) != (line_spec.reference_name is None):
            raise ValueError(
                f"bench line {name!r}: a reference outcome is given exactly when the line "
                "declares a reference_name"
            )
        value = value if value is not None else VALUES.get(line_spec.metric)
        if value is None:
            raise ValueError(f"bench line {name!r}: metric {line_spec.metric!r} needs value=")
        description, reference_name = _fill(line_spec, numbers)
        a, a_msg, a_status = abkit
        r, r_msg, r_status = reference if reference is not None else (None, "", "ok")
        status: Status = "ok"
        messages = [m for m in (a_msg, r_msg) if m]
        if a_status != "ok" or r_status != "ok":
            status = "failed" if "failed" in (a_status, r_status) else "skipped"
        v = v_min = None
        if a is not None and (reference is None or r is not None):
            v = value(a, r)
            v_min = value(_fastest(a), _fastest(r) if r is not None else None)
        line = BenchLine(
            name=name,
            workload=line_spec.workload,
            description=description,
            abkit=a,
            reference_name=reference_name,
            reference=r,
            metric=line_spec.metric,
            value=v,
            target=line_spec.target,
            threshold=line_spec.threshold,
            direction=line_spec.direction,
            holds=evaluate(v, line_spec.threshold, line_spec.direction),
            agree=_agree(a, r) if line_spec.check else None,
            status=status,
            message="; ".join([*messages, note] if note else messages),
            value_min=v_min,
            load_1m=measured.load_1m if measured is not None else None,
            rounds=measured.rounds if measured is not None else 1,
        )
        self.lines.append(line)
        if self.on_line is not None:
            self.on_line(line)

    # -- the shared simulated dataset ---------------------------------------------------------

    def simulated(self) -> dict[str, Any] | None:
        """Simulate once (measured: it is the simulator benchmark) and export the files."""
        if self.sim_info is not None or self.sim_error is not None:
            return self.sim_info
        s = self.sizes
        self.step(f"simulating {s.sim_users:,} users")
        params: dict[str, Any] = {
            "users": s.sim_users,
            "items": s.sim_items,
            "days": s.sim_days,
            "pre_days": s.sim_pre_days,
            "seed": s.seed,
            "dataset": "bench",
            "experiment": "carousel",
            "db": self.path("sim.duckdb"),
            "info": self.path("sim.json"),
        }
        try:
            before = load_average()
            self.sim_measurement = self.task("abkit-simulate", params)
            after = load_average()
            if before is not None and after is not None:
                self.sim_load = (min(before, after), max(before, after))
            self.sim_info = json.loads(Path(params["info"]).read_text())
            self.step("exporting the simulated rows to Parquet and CSV")
            self.task(
                "prep-export",
                {
                    "db": params["db"],
                    "dataset": "bench",
                    "experiment": "carousel",
                    # the ingest sources only when the ingest workload runs
                    "ingest_rows": s.ingest_rows if self.with_ingest else 0,
                    "ingest_csv": self.path("ingest.csv"),
                    "ingest_parquet": self.path("ingest.parquet"),
                },
            )
        except (SkipTask, TaskFailed) as exc:
            self.sim_error = str(exc)
            return None
        return self.sim_info


def _fastest(m: Measurement) -> Measurement:
    """The measurement as its fastest run alone (for ``value_min``)."""
    return replace(m, seconds=m.min_seconds, samples=(m.min_seconds,), started=(0.0,))


ValueFunction = Callable[[Measurement, Measurement | None], float | None]


def _gb(m: Measurement, _: Measurement | None) -> float:
    return m.peak_rss_bytes / GB


def _peak_ratio(a: Measurement, r: Measurement | None) -> float | None:
    return None if r is None or r.peak_rss_bytes <= 0 else a.peak_rss_bytes / r.peak_rss_bytes


def _speed(a: Measurement, r: Measurement | None) -> float | None:
    return speedup(a, r)


def _seconds(a: Measurement, _: Measurement | None) -> float:
    return a.seconds


def _abs_diff(a: Measurement, r: Measurement | None) -> float | None:
    if r is None or a.check is None or r.check is None:
        return None
    return abs(a.check - r.check)


#: a line's value from its two measurements, by metric (``projected_peak_gb`` has none: the
#: simulate workload supplies it)
VALUES: dict[str, ValueFunction] = {
    "speedup": _speed,
    "peak_gb": _gb,
    "peak_ratio": _peak_ratio,
    "seconds": _seconds,
    "abs_diff": _abs_diff,
}


def _fill(line: LineSpec, numbers: dict[str, Any]) -> tuple[str, str | None]:
    """The line's description and reference name with the run's numbers filled in; every
    number used, every field filled."""
    templates = [t for t in (line.description, line.reference_name) if t is not None]
    fields = {f for t in templates for _, f, _, _ in string.Formatter().parse(t) if f}
    if fields != set(numbers):
        raise ValueError(
            f"bench line {line.name!r}: its templates need {sorted(fields)}, "
            f"the run gave {sorted(numbers)}"
        )
    reference = line.reference_name.format(**numbers) if line.reference_name else None
    return line.description.format(**numbers), reference


def _simulate(run: _Run) -> None:
    """The simulator at the run's size and at a quarter of it: events/s, and peak memory
    projected to 1M users along the line through the two measured peaks. One run each: the
    line is about memory, and the full-size run (a minute) also makes the data of the other
    workloads."""
    s = run.sizes
    small_users = max(2, s.sim_users // 4)
    run.step(f"simulating {small_users:,} users (second point for the memory projection)")
    small = run.attempt(
        "abkit-simulate",
        {
            "users": small_users,
            "items": s.sim_items,
            "days": s.sim_days,
            "pre_days": s.sim_pre_days,
            "seed": s.seed,
            "dataset": "bench",
            "experiment": "carousel",
            "db": run.path("sim-small.duckdb"),
            "info": run.path("sim-small.json"),
        },
    )
    Path(run.path("sim-small.duckdb")).unlink(missing_ok=True)
    info = run.simulated()
    m = run.sim_measurement
    result: Outcome = (m, "", "ok") if m is not None else (None, run.sim_error or "", "failed")
    target_users = 1_000_000
    first = small[0]

    def projected(a: Measurement, _: Measurement | None) -> float | None:
        if first is None:
            return None
        slope = max(0.0, (a.peak_rss_bytes - first.peak_rss_bytes) / (s.sim_users - small_users))
        return (a.peak_rss_bytes + slope * (target_users - s.sim_users)) / GB

    small_peak = f"{first.peak_rss_bytes / GB:.2f} GB" if first is not None else "?"
    measured = Interleaved(outcomes=(result,), order=("abkit-simulate",), load_1m=run.sim_load,
                           rounds=1)  # fmt: skip
    run.add(
        "simulate",
        abkit=result,
        measured=measured,
        value=projected,
        note=f"projection: the line through the peaks at {small_users:,} users ({small_peak}) "
        f"and {s.sim_users:,} users; one run (memory line)" + (f"; {small[1]}" if small[1] else ""),
        users=s.sim_users,
        events=info["events"] if info else 0,
        target_users=target_users,
    )


def _ingest(run: _Run) -> None:
    if run.simulated() is None:
        _failed_workload(run, "ingest", run.sim_error)
        return
    for fmt in ("csv", "parquet"):
        source = run.path(f"ingest.{fmt}")
        dbs = [Path(run.path(f"ingest-{fmt}.duckdb")), Path(run.path(f"copy-{fmt}.duckdb"))]

        def remove_dbs(paths: list[Path] = dbs) -> None:
            for db in paths:
                db.unlink(missing_ok=True)
                db.with_name(db.name + ".wal").unlink(missing_ok=True)

        run.step(f"ingest {fmt}: abkit and bare DuckDB, interleaved")
        measured = run.interleave(
            [
                run.worker("abkit-ingest", {"path": source, "db": str(dbs[0])}),
                run.worker("ref-duckdb-copy", {"path": source, "format": fmt, "db": str(dbs[1])}),
            ],
            before=remove_dbs,
        )
        remove_dbs()
        a, r = measured.outcomes
        run.add(
            f"ingest-{fmt}", abkit=a, reference=r, measured=measured, rows=run.sizes.ingest_rows
        )


def _python_argv(code: str, *args: str, flags: Sequence[str] = ()) -> list[str]:
    return [sys.executable, *flags, "-c", code, *args]


#: ``abkit ARGS`` as the console script runs it (``abkit = "abkit.cli.main:main"``)
ABKIT_MAIN = "import sys; from abkit.cli.main import main; sys.exit(main())"


def _abkit_compare_check(stdout: str, _: str) -> tuple[float | None, float | None]:
    """The check of a compare line: the sum of the arms' conversion rates in the JSON."""
    report = json.loads(stdout)
    comparison = report["comparisons"][0]
    return float(comparison["control_value"] + comparison["treatment_value"]), None


def _peer_check(stdout: str, _: str) -> tuple[float | None, float | None]:
    """A peer program prints one JSON object; its ``check``."""
    return float(json.loads(stdout.strip().splitlines()[-1])["check"]), None


def import_seconds(_: str, stderr: str) -> tuple[float | None, float | None]:
    """The import time of a ``python -X importtime`` process: the cumulative microseconds of
    its top-level imports (names not indented) summed, in seconds, from the end of the
    interpreter's own start-up (the top-level ``site`` import and those before it, which every
    Python process pays) on."""
    total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue  # the header line
        name = parts[2]
        if name.startswith(" ") and not name.startswith("  "):  # one space: top level
            if name.strip() == "site":
                total = 0  # start-up ends here
                continue
            total += int(parts[1])
    return None, total / 1e6


def _compare(run: _Run) -> None:
    info = run.simulated()
    if info is None:
        _failed_workload(run, "compare", run.sim_error)
        return
    db = run.path("sim.duckdb")
    compare_args = ["compare", "--db", db, "--dataset", info["dataset"], "--experiment",
                    info["experiment"], "--json"]  # fmt: skip
    peer = {
        "db": db,
        "dataset": info["dataset"],
        "experiment": info["experiment"],
        "start": info["start"],
        "end": info["end"],
        "control": info["arms"][0],
    }
    events = float(info["events"])
    run.step("compare: abkit, tea-tasting (pandas), tea-tasting (Ibis-DuckDB), interleaved")
    measured = run.interleave(
        [
            run.command(
                "abkit-compare",
                _python_argv(ABKIT_MAIN, *compare_args),
                units=events,
                parse=_abkit_compare_check,
            ),
            run.command(
                "ref-tea-pandas",
                [sys.executable, str(PEERS), "tea-pandas", json.dumps(peer)],
                units=events,
                parse=_peer_check,
            ),
            run.command(
                "ref-tea-ibis",
                [sys.executable, str(PEERS), "tea-ibis", json.dumps(peer)],
                units=events,
                parse=_peer_check,
            ),
            run.command(
                "abkit-compare-imports",
                _python_argv(ABKIT_MAIN, *compare_args, flags=["-X", "importtime"]),
                units=events,
                parse=import_seconds,
            ),
        ]
    )
    a, tea, ibis, imports = measured.outcomes
    numbers = {"events": info["events"], "users": info["users"]}
    versions = peer_versions()
    run.add("compare-tea-pandas", abkit=a, reference=_skip_missing(tea),
            measured=measured, tea_version=versions["tea_tasting"], **numbers)  # fmt: skip
    run.add(
        "compare-tea-ibis",
        abkit=a,
        reference=_skip_missing(ibis),
        measured=measured,
        tea_version=versions["tea_tasting"],
        ibis_version=versions["ibis"],
        **numbers,
    )
    run.add("compare-import", abkit=imports, measured=measured)
    run.add("compare-memory", abkit=a, measured=measured, events=info["events"])


def _skip_missing(outcome: Outcome) -> Outcome:
    """A peer program that failed because its package is missing is a skipped reference
    with the install line, not a failure."""
    _, message, status = outcome
    for module in ("tea_tasting", "ibis", "pandas"):
        if status == "failed" and f"No module named '{module}'" in message:
            return None, f"{module} is not installed: {BENCH_INSTALL}", "skipped"
    return outcome


BENCH_INSTALL = 'pip install "abkit-lift[bench]"'

#: the peer programs (tea-tasting, Ibis), run by path so they import nothing of abkit
PEERS = Path(__file__).with_name("peers.py")


def peer_versions() -> dict[str, str]:
    """Installed versions of the peer packages ("not installed" when missing)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for key, dist in (("tea_tasting", "tea-tasting"), ("ibis", "ibis-framework"),
                      ("implicit", "implicit")):  # fmt: skip
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = "(not installed)"
    return out


def _als(run: _Run) -> None:
    s = run.sizes
    params = {
        "users": s.als_users,
        "items": s.als_items,
        "per_user": s.als_per_user,
        "seed": s.seed,
        "k": s.k,
        "arrays_npz": run.path("als-arrays.npz"),
        "split_npz": run.path("als-split.npz"),
        "model_npz": run.path("als-model.npz"),
        "info_json": run.path("als-info.json"),
    }
    run.step(f"als: data, and one model for the top-K line ({s.als_users:,} x {s.als_items:,})")
    prep = run.attempt("prep-als", params)
    if prep[0] is None:
        _failed_workload(run, "als", prep[1])
        return
    defaults = json.loads(Path(str(params["info_json"])).read_text())
    run.step("als: abkit fit + replay and implicit fit + ranking_metrics_at_k, interleaved")
    measured = run.interleave(
        [run.worker("abkit-als-replay", params), run.worker("ref-implicit-replay", params)]
    )
    a, r = measured.outcomes
    run.add(
        "als-replay",
        abkit=a,
        reference=r,
        measured=measured,
        k=s.k,
        items=s.als_items,
        users=s.als_users,
        factors=defaults["factors"],
        iterations=defaults["iterations"],
        implicit_version=peer_versions()["implicit"],
    )
    run.add("als-ndcg", abkit=a, reference=r, measured=measured, k=s.k)
    run.step("als: top-K selection and the scoring GEMM on the same chunks, interleaved")
    parts = run.interleave(
        [run.worker("abkit-als-topk", params), run.worker("abkit-als-gemm", params)]
    )
    t, g = parts.outcomes
    run.add(
        "als-topk",
        abkit=t,
        reference=g,
        measured=parts,
        k=s.k,
        chunk=defaults["chunk"],
        items=s.als_items,
        factors=defaults["factors"],
    )


def _lstm(run: _Run) -> None:
    s = run.sizes
    params = {
        "users": s.lstm_users,
        "items": s.lstm_items,
        "seq_len": s.lstm_seq_len,
        "embedding": s.lstm_embedding,
        "hidden": s.lstm_hidden,
        "k": s.k,
        "seed": s.seed,
        "weights_npz": run.path("lstm-weights.npz"),
        "arrays_npz": run.path("lstm-arrays.npz"),
        "model_onnx": run.path("lstm.onnx"),
    }
    run.step("lstm: building the model")
    prep = run.attempt("prep-lstm", params)
    if prep[0] is None:
        _failed_workload(run, "lstm", prep[1])
        return
    run.step("lstm: abkit (onnxruntime) and torch eager, interleaved")
    measured = run.interleave(
        [run.worker("abkit-lstm", params), run.worker("ref-torch-lstm", params)]
    )
    a, r = measured.outcomes
    run.add(
        "lstm",
        abkit=a,
        reference=r,
        measured=measured,
        k=s.k,
        users=s.lstm_users,
        seq_len=s.lstm_seq_len,
        items=s.lstm_items,
        embedding=s.lstm_embedding,
        hidden=s.lstm_hidden,
    )


def _offpolicy(run: _Run) -> None:
    s = run.sizes
    params = {
        "rounds": s.offpolicy_rounds,
        "actions": s.offpolicy_actions,
        "bootstrap": s.offpolicy_bootstrap,
        "subsample": s.offpolicy_subsample,
        "seed": s.seed,
        "offpolicy_npz": run.path("offpolicy.npz"),
    }
    run.step(f"offpolicy: logging {s.offpolicy_rounds:,} rounds")
    prep = run.attempt("prep-offpolicy", params)
    if prep[0] is None:
        _failed_workload(run, "offpolicy", prep[1])
        return
    run.step("offpolicy: abkit, plain numpy, OBP's code path, a per-row loop, interleaved")
    measured = run.interleave(
        [
            run.worker("abkit-offpolicy", params),
            run.worker("ref-numpy-poisson-ips", params),
            run.worker("ref-obp-ips", params),
            run.worker("ref-loop-ips", params),
        ]
    )
    a, numpy_ref, obp, loop = measured.outcomes
    numbers: dict[str, Any] = {"bootstrap": s.offpolicy_bootstrap, "rounds": s.offpolicy_rounds}
    run.add("offpolicy-numpy", abkit=a, reference=numpy_ref, measured=measured, **numbers)
    run.add("offpolicy-memory", abkit=a, reference=numpy_ref, measured=measured,
            rounds=s.offpolicy_rounds)  # fmt: skip
    sub: dict[str, Any] = {"subsample": min(s.offpolicy_subsample, s.offpolicy_rounds)}
    run.add("offpolicy-obp", abkit=a, reference=obp, measured=measured, **numbers, **sub)
    run.add("offpolicy-loop", abkit=a, reference=loop, measured=measured, **numbers, **sub)
    run.add("offpolicy-time", abkit=a, measured=measured, **numbers)


def _failed_workload(run: _Run, workload: str, message: str | None) -> None:
    run.lines.append(
        BenchLine(
            name=workload,
            workload=workload,
            description="data preparation failed",
            abkit=None,
            reference_name=None,
            reference=None,
            metric="",
            value=None,
            target="",
            threshold=math.nan,
            direction="at_least",
            holds=None,
            agree=None,
            status="failed",
            message=message or "",
        )
    )
    if run.on_line is not None:
        run.on_line(run.lines[-1])


def _spark(run: _Run) -> None:
    """Spark local vs DuckDB on the same exported data, at a quarter of the run's size and at
    the run's size: the overhead ratio at each, and how each engine's time grows."""
    s = run.sizes
    info = run.simulated()
    if info is None:
        _failed_workload(run, "spark", run.sim_error)
        return
    small_users = max(2, s.sim_users // 4)
    run.step(f"spark: simulating {small_users:,} users (the small size)")
    small_db = run.path("spark-small.duckdb")
    try:
        run.task(
            "abkit-simulate",
            {
                "users": small_users,
                "items": s.sim_items,
                "days": s.sim_days,
                "pre_days": s.sim_pre_days,
                "seed": s.seed,
                "dataset": info["dataset"],
                "experiment": info["experiment"],
                "db": small_db,
                "info": run.path("spark-small.json"),
            },
        )
        small_info = json.loads(Path(run.path("spark-small.json")).read_text())
        for db, out in ((small_db, "spark-small"), (run.path("sim.duckdb"), "spark-large")):
            run.task("prep-spark-export", {"db": db, "out": run.path(out)})
    except (SkipTask, TaskFailed) as exc:
        _failed_workload(run, "spark", str(exc))
        return
    measured: dict[str, tuple[Outcome, Outcome]] = {}
    for size, db, meta in (
        ("small", small_db, small_info),
        ("large", run.path("sim.duckdb"), info),
    ):
        common = {
            "dataset": meta["dataset"],
            "experiment": meta["experiment"],
            "events": meta["events"],
        }
        run.step(f"spark: compare at {meta['events']:,} events, Spark local and DuckDB")
        timed = run.interleave(
            [
                run.worker(
                    "abkit-compare-engine",
                    {**common, "engine": "spark", "source": run.path(f"spark-{size}")},
                ),
                run.worker("abkit-compare-engine", {**common, "engine": "duckdb", "db": db}),
            ]
        )
        on_spark, on_duckdb = timed.outcomes
        measured[size] = (on_spark, on_duckdb)
        numbers: dict[str, Any] = {"events": meta["events"], "users": meta["users"]}
        if size == "small":
            spark_m = on_spark[0]
            startup = _note_seconds(spark_m.note if spark_m else "", "startup")
            run.add("spark-compare-small", abkit=on_spark, reference=on_duckdb, measured=timed,
                    startup=startup, **numbers)  # fmt: skip
        else:
            (small_spark, small_duck), big = measured["small"], measured["large"]

            def growth(a: Outcome, b: Outcome) -> float:
                return b[0].seconds / a[0].seconds if a[0] and b[0] else math.nan

            run.add(
                "spark-compare-large",
                abkit=on_spark,
                reference=on_duckdb,
                measured=timed,
                spark_growth=growth(small_spark, big[0]),
                duckdb_growth=growth(small_duck, big[1]),
                data_growth=meta["events"] / max(1, small_info["events"]),
                **numbers,
            )


def _note_seconds(note: str, key: str) -> float:
    """A ``key=seconds`` entry of a task's note (NaN when absent)."""
    for part in note.replace("; ", ";").split(";"):
        name, _, value = part.partition("=")
        if name.strip() == key:
            return float(value)
    return math.nan


_STEPS: dict[str, Callable[[_Run], None]] = {
    "simulate": _simulate,
    "ingest": _ingest,
    "compare": _compare,
    "spark": _spark,
    "als": _als,
    "lstm": _lstm,
    "offpolicy": _offpolicy,
}


def byte_compile() -> None:
    """Byte-compile abkit's packages (``abkit``, ``abkit_recommenders``) where they are not.

    pip compiles a package's modules when it installs it, so the peers (and an abkit installed
    from a wheel) import from ``.pyc`` files; an editable install under
    ``PYTHONDONTWRITEBYTECODE`` (set on some CI machines) would instead compile abkit's sources
    in every process the bench times, a cost no user pays twice. Best effort: a folder that
    cannot be written is left as it is."""
    import compileall
    import contextlib
    import importlib.util

    for package in ("abkit", "abkit_recommenders"):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            with contextlib.suppress(OSError):
                compileall.compile_dir(folder, quiet=2)


def run_bench(
    *,
    scale: float = 1.0,
    quick: bool = False,
    only: Sequence[str] | None = None,
    work_dir: str | Path | None = None,
    on_line: Callable[[BenchLine], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    timeout_s: float = 1800.0,
) -> BenchReport:
    """Run the selected workloads (default all) and their references; return the report.

    Data is generated into a fresh folder inside ``work_dir`` (default: the system's temp
    folder) and removed afterwards, whatever happens. ``on_line`` is called with each line
    as soon as it is measured, ``on_step`` with a short description of what runs next.
    """
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
        raise InputError(f"--scale must be a positive number, got {scale!r}")
    workloads = parse_only(only)
    sizes = BenchSizes.for_scale(float(scale), quick=quick)
    parent = Path(work_dir) if work_dir is not None else Path(tempfile.gettempdir())
    if not parent.is_dir():
        raise InputError(f"--db-dir {parent}: not an existing folder")
    started = time.perf_counter()
    byte_compile()
    work = Path(tempfile.mkdtemp(prefix="abkit-bench-", dir=parent))
    try:
        run = _Run(sizes, work, on_line, on_step, timeout_s)
        run.with_ingest = "ingest" in workloads
        for name in workloads:
            _STEPS[name](run)
        lines = tuple(run.lines)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BenchReport(
        scale=float(scale),
        quick=quick,
        sizes=sizes,
        machine=machine_info(),
        lines=lines,
        seconds=time.perf_counter() - started,
    )


def with_command(report: BenchReport, command: str) -> BenchReport:
    """The report with the command line that produced it (for the JSON)."""
    return replace(report, command=command)
