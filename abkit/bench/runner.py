"""``run_bench``: every workload against its reference, in one run, on this machine.

Results are *ratios within one run* (both sides measured minutes apart on the same machine and
data), so they carry over between machines far better than absolute times. Each line pairs an
abkit measurement with a reference measurement (or a machine probe) and evaluates one target
of issue 6. The lines, what each compares and its target are declared in
:mod:`abkit.bench.lines` (``LINES``); this module measures them.

Decisions: abkit and its references alternate for ``sizes.repeats`` rounds and each keeps its
fastest time (and its largest peak), the usual defence on a shared machine; imports and loading
a trained model are setup on both sides, not timed; the per-row loop runs on a subsample and
is extrapolated linearly (it would take hours whole). Sizes: :class:`BenchSizes`; ``scale``
multiplies users, events and rounds while catalogue and model sizes stay fixed, so two scales
show how cost grows with users and events.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import string
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from abkit._util import unknown_choice
from abkit.bench.harness import Measurement, SkipTask, TaskFailed, measure
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
    (users, events, rounds; catalogue and model sizes fixed) or the tiny ``--quick`` ones."""

    sim_users: int
    sim_items: int = 1_000
    sim_days: int = 14
    sim_pre_days: int = 7
    ingest_rows: int
    als_users: int
    als_items: int
    als_per_user: float = 20.0
    als_factors: int = 64
    als_iterations: int = 5
    gemm_n: int = 2_048
    gemm_repeats: int = 5
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
    repeats: int = 2

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
                als_factors=8,
                als_iterations=1,
                gemm_n=128,
                gemm_repeats=2,
                lstm_users=int(max(50, 300 * scale)),
                lstm_items=200,
                lstm_embedding=8,
                lstm_hidden=16,
                offpolicy_rounds=int(max(2_000, 20_000 * scale)),
                offpolicy_bootstrap=20,
                offpolicy_subsample=2_000,
                repeats=1,
            )
        return cls(
            sim_users=int(200_000 * scale),
            ingest_rows=int(2_000_000 * scale),
            als_users=int(25_000 * scale),
            als_items=20_000,
            lstm_users=int(10_000 * scale),
            lstm_items=10_000,
            offpolicy_rounds=int(10_000_000 * scale),
            offpolicy_subsample=min(200_000, int(10_000_000 * scale)),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class BenchLine:
    """One line of the report: abkit against a reference, and one target.

    ``value`` is what the target is evaluated on (``metric`` says what it is: ``speedup`` =
    reference seconds / abkit seconds, so > 1 means abkit is faster; ``peak_gb``; ``seconds``;
    ``fraction`` of the probe's throughput; ``abs_diff`` of the two check values).
    ``holds`` is None when the line could not be measured (``status`` skipped or failed,
    ``message`` says why; a skipped reference names the pip line that enables it).
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

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["abkit"] = self.abkit.to_dict() if self.abkit else None
        out["reference"] = self.reference.to_dict() if self.reference else None
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
    """Whether ``value`` meets the target; None when there is no value."""
    if value is None or not math.isfinite(value):
        return None
    return bool(value >= threshold if direction == "at_least" else value <= threshold)


def speedup(abkit: Measurement | None, reference: Measurement | None) -> float | None:
    """Reference seconds / abkit seconds (> 1: abkit is faster)."""
    if abkit is None or reference is None or abkit.seconds <= 0:
        return None
    return reference.seconds / abkit.seconds


def _agree(
    abkit: Measurement | None, reference: Measurement | None, *, tol: float = 1e-9
) -> bool | None:
    if abkit is None or reference is None or abkit.check is None or reference.check is None:
        return None
    scale = max(1.0, abs(reference.check))
    return abs(abkit.check - reference.check) <= tol * scale


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
    try:
        load = os.getloadavg()
        info["load_average_1m"] = round(load[0], 2)
    except OSError:
        pass
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

    def path(self, name: str) -> str:
        return str(self.work / name)

    def step(self, text: str) -> None:
        if self.on_step is not None:
            self.on_step(text)

    def task(self, name: str, params: dict[str, Any]) -> Measurement:
        return measure(name, params, timeout_s=self.timeout_s)

    def attempt(self, name: str, params: dict[str, Any]) -> tuple[Measurement | None, str, Status]:
        """Run a task; (measurement, message, status) instead of raising."""
        try:
            return self.task(name, params), "", "ok"
        except SkipTask as skip:
            return None, f"{skip.reason}: {skip.install}", "skipped"
        except TaskFailed as failed:
            return None, f"{failed.task} failed: {failed.message}", "failed"

    def alternate(
        self,
        tasks: Sequence[tuple[str, dict[str, Any]]],
        *,
        repeats: int | None = None,
        before: Callable[[], None] | None = None,
    ) -> list[Outcome]:
        """Run abkit's task and its references in turn, ``repeats`` rounds (default
        ``sizes.repeats``); for each, its best time and its largest peak memory.

        On a shared machine the load changes from second to second; alternating the sides and
        keeping each one's fastest run is the usual defence (the minimum is the run least
        disturbed by other processes). ``before`` runs before every task (e.g. to remove the
        database file the previous run wrote). A task that fails or is skipped is not retried.
        """
        rounds = repeats if repeats is not None else self.sizes.repeats
        results: list[list[Outcome]] = [[] for _ in tasks]
        for _ in range(max(1, rounds)):
            for side, (task, params) in enumerate(tasks):
                if results[side] and results[side][-1][0] is None:
                    continue
                if before is not None:
                    before()
                results[side].append(self.attempt(task, params))
        return [_best(r) for r in results]

    def add(
        self,
        name: str,
        *,
        abkit: Outcome,
        reference: Outcome | None = None,
        value: ValueFunction | None = None,
        note: str = "",
        **numbers: Any,
    ) -> None:
        """Report the line declared as ``name`` in :data:`~abkit.bench.lines.LINES`.

        The run supplies only what it measured: abkit's outcome, the reference's (exactly
        when the line declares a reference), ``value`` when the metric has no default in
        :data:`VALUES`, a ``note``, and ``numbers``: every field of the line's templates.
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
        v = None
        if a is not None and (reference is None or r is not None):
            v = value(a, r)
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
            self.sim_measurement = self.task("abkit-simulate", params)
            import json

            self.sim_info = json.loads(Path(params["info"]).read_text())
            self.step("exporting the simulated rows to Parquet and CSV")
            self.task(
                "prep-export",
                {
                    "db": params["db"],
                    "dataset": "bench",
                    "experiment": "carousel",
                    "events_parquet": self.path("events.parquet"),
                    "assignments_parquet": self.path("assignments.parquet"),
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


Outcome = tuple[Measurement | None, str, Status]


def _best(outcomes: list[Outcome]) -> Outcome:
    """The fastest measured run, with the largest peak memory of all runs."""
    measured = [o[0] for o in outcomes if o[0] is not None]
    if not measured or len(measured) < len(outcomes):
        return next(o for o in outcomes if o[0] is None)
    fastest = min(measured, key=lambda m: m.seconds)
    if len(measured) == 1:
        return fastest, "", "ok"
    note = f"best of {len(measured)} runs" + (f"; {fastest.note}" if fastest.note else "")
    peak = max(m.peak_rss_bytes for m in measured)
    return replace(fastest, peak_rss_bytes=peak, note=note), "", "ok"


ValueFunction = Callable[[Measurement, Measurement | None], float | None]


def _gb(m: Measurement, _: Measurement | None) -> float:
    return m.peak_rss_bytes / GB


def _speed(a: Measurement, r: Measurement | None) -> float | None:
    return speedup(a, r)


def _seconds(a: Measurement, _: Measurement | None) -> float:
    return a.seconds


def _fraction(a: Measurement, r: Measurement | None) -> float | None:
    return None if r is None else a.rate / r.rate


def _abs_diff(a: Measurement, r: Measurement | None) -> float | None:
    if r is None or a.check is None or r.check is None:
        return None
    return abs(a.check - r.check)


#: a line's value from its two measurements, by metric (``projected_peak_gb`` has none: the
#: simulate workload supplies it)
VALUES: dict[str, ValueFunction] = {
    "speedup": _speed,
    "peak_gb": _gb,
    "seconds": _seconds,
    "fraction": _fraction,
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
    projected to 1M users along the line through the two measured peaks."""
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
    result: tuple[Measurement | None, str, Status] = (
        (m, "", "ok") if m is not None else (None, run.sim_error or "", "failed")
    )
    target_users = 1_000_000
    first = small[0]

    def projected(a: Measurement, _: Measurement | None) -> float | None:
        if first is None:
            return None
        slope = max(0.0, (a.peak_rss_bytes - first.peak_rss_bytes) / (s.sim_users - small_users))
        return (a.peak_rss_bytes + slope * (target_users - s.sim_users)) / GB

    small_peak = f"{first.peak_rss_bytes / GB:.2f} GB" if first is not None else "?"
    run.add(
        "simulate",
        abkit=result,
        value=projected,
        note=f"projection: the line through the peaks at {small_users:,} users ({small_peak}) "
        f"and {s.sim_users:,} users" + (f"; {small[1]}" if small[1] else ""),
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

        run.step(f"ingest {fmt}: abkit and bare DuckDB")
        a, r = run.alternate(
            [
                ("abkit-ingest", {"path": source, "db": str(dbs[0])}),
                ("ref-duckdb-copy", {"path": source, "format": fmt, "db": str(dbs[1])}),
            ],
            before=remove_dbs,
        )
        remove_dbs()
        run.add(f"ingest-{fmt}", abkit=a, reference=r, rows=run.sizes.ingest_rows)


def _compare(run: _Run) -> None:
    info = run.simulated()
    if info is None:
        _failed_workload(run, "compare", run.sim_error)
        return
    common = {
        "db": run.path("sim.duckdb"),
        "dataset": info["dataset"],
        "experiment": info["experiment"],
        "events": info["events"],
        "start": info["start"],
        "end": info["end"],
    }
    run.step("compare: abkit, pandas, bare DuckDB GROUP BY")
    a, p, d = run.alternate(
        [
            ("abkit-compare", common),
            (
                "ref-pandas-compare",
                {
                    **common,
                    "events_parquet": run.path("events.parquet"),
                    "assignments_parquet": run.path("assignments.parquet"),
                    "control": info["arms"][0],
                    "treatment": info["arms"][1],
                },
            ),
            ("ref-duckdb-group-by", common),
        ]
    )
    run.add("compare-pandas", abkit=a, reference=p, events=info["events"], users=info["users"])
    run.add("compare-duckdb", abkit=a, reference=d, events=info["events"], users=info["users"])
    run.add("compare-memory", abkit=a, events=info["events"])


def _als(run: _Run) -> None:
    s = run.sizes
    params = {
        "users": s.als_users,
        "items": s.als_items,
        "per_user": s.als_per_user,
        "factors": s.als_factors,
        "iterations": s.als_iterations,
        "seed": s.seed,
        "k": s.k,
        "arrays_npz": run.path("als-arrays.npz"),
        "split_npz": run.path("als-split.npz"),
        "model_npz": run.path("als-model.npz"),
        "factors_npz": run.path("als-model.npz"),
    }
    run.step(f"als: training one model ({s.als_users:,} users x {s.als_items:,} items)")
    prep = run.attempt("prep-als", params)
    if prep[0] is None:
        _failed_workload(run, "als", prep[1])
        return
    run.step("als: abkit full-ranking replay and implicit's ranking_metrics_at_k")
    a, r = run.alternate([("abkit-als-ranking", params), ("ref-implicit-ranking", params)])
    run.add(
        "als-ranking",
        abkit=a,
        reference=r,
        k=s.k,
        items=s.als_items,
        users=s.als_users,
        factors=s.als_factors,
    )
    run.add("als-ndcg", abkit=a, reference=r, k=s.k)
    run.step("als: scoring GEMM and the float32 matmul probe")
    g, probe = run.alternate(
        [
            ("abkit-als-gemm", params),
            ("ref-gemm-probe", {"n": s.gemm_n, "repeats": s.gemm_repeats}),
        ]
    )
    run.add(
        "als-gemm", abkit=g, reference=probe, factors=s.als_factors, items=s.als_items, n=s.gemm_n
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
    run.step("lstm: abkit (onnxruntime) and torch eager")
    a, r = run.alternate([("abkit-lstm", params), ("ref-torch-lstm", params)])
    run.add(
        "lstm",
        abkit=a,
        reference=r,
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
    run.step("offpolicy: abkit and a per-row Python loop (on a subsample)")
    # one round: the gap is orders of magnitude, and each round costs about a minute
    a, r = run.alternate([("abkit-offpolicy", params), ("ref-obp-loop-ips", params)], repeats=1)
    numbers: dict[str, Any] = {"bootstrap": s.offpolicy_bootstrap, "rounds": s.offpolicy_rounds}
    run.add("offpolicy", abkit=a, reference=r, **numbers)
    run.add("offpolicy-time", abkit=a, **numbers)


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
        on_spark, on_duckdb = run.alternate(
            [
                (
                    "abkit-compare-engine",
                    {**common, "engine": "spark", "source": run.path(f"spark-{size}")},
                ),
                ("abkit-compare-engine", {**common, "engine": "duckdb", "db": db}),
            ]
        )
        measured[size] = (on_spark, on_duckdb)
        numbers: dict[str, Any] = {"events": meta["events"], "users": meta["users"]}
        if size == "small":
            spark_m = on_spark[0]
            startup = _note_seconds(spark_m.note if spark_m else "", "startup")
            run.add("spark-compare-small", abkit=on_spark, reference=on_duckdb, startup=startup,
                    **numbers)  # fmt: skip
        else:
            (small_spark, small_duck), big = measured["small"], measured["large"]

            def growth(a: Outcome, b: Outcome) -> float:
                return b[0].seconds / a[0].seconds if a[0] and b[0] else math.nan

            run.add(
                "spark-compare-large",
                abkit=on_spark,
                reference=on_duckdb,
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
