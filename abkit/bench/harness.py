"""Measure one task in a fresh subprocess: wall time and peak memory, run after run.

Why a subprocess per run: peak memory is only honest when nothing else has touched the
process before. A task (an abkit workload, or the reference a user would otherwise pick) runs
either as ``python -m abkit.bench.worker`` (:func:`measure`: the child times only its *timed
region*, the work, not the interpreter start, imports or loading a trained model, with
:func:`time.perf_counter`) or as a whole command line (:func:`measure_command`: the wall time
from starting the process to reaping it, interpreter start and imports included: what a user
waits for). The parent reaps the child with :func:`os.wait4`, whose ``ru_maxrss`` is that
child's own peak resident set size (kilobytes on Linux).

Peak memory therefore includes the interpreter and the libraries each side imports (about
100-250 MB for duckdb / pandas / torch); ``setup_rss_bytes`` (the resident size just before the
timed region; 0 for a whole process) is reported too, so the growth caused by the work itself
can be read off. :func:`combine` folds several runs of one task into one :class:`Measurement`:
the median time (what a line's verdict is on), the minimum, every run's time and start, the
largest peak.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Clock",
    "Measurement",
    "SkipTask",
    "TaskFailed",
    "TaskOutcome",
    "combine",
    "measure",
    "measure_command",
    "vm_rss_bytes",
]

Scope = Literal["region", "process"]


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """What one task did, in one or (after :func:`combine`) several runs of its own process.

    ``seconds`` is the median over the runs of the wall time (of the timed region when
    ``scope`` is ``region``, of the whole process when ``process``) multiplied by
    ``extrapolation`` (1.0 when measured as is; a reference too slow to run whole runs on a
    subsample and is scaled up linearly, and says so in ``note``); ``min_seconds`` the fastest
    run; ``samples`` every run's seconds in the order they ran and ``started`` when each began
    (seconds since its line began). ``peak_rss_bytes`` is the largest peak of the runs.
    ``units`` is the work done at full size (events, users, sequences...), so
    ``rate = units / seconds``. ``check`` is a value the workload and its reference must
    agree on (an NDCG, a number of conversions), or None.
    """

    task: str
    seconds: float
    peak_rss_bytes: int
    setup_rss_bytes: int
    units: float
    check: float | None
    extrapolation: float
    note: str
    min_seconds: float = 0.0
    samples: tuple[float, ...] = ()
    started: tuple[float, ...] = ()
    scope: Scope = "region"

    def __post_init__(self) -> None:
        if not self.samples:  # a single run: its time is its median and its minimum
            object.__setattr__(self, "samples", (self.seconds,))
            object.__setattr__(self, "min_seconds", self.seconds)
        if not self.started:
            object.__setattr__(self, "started", (0.0,) * len(self.samples))

    @property
    def rate(self) -> float:
        return self.units / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["samples"] = list(self.samples)
        out["started"] = list(self.started)
        out["rate"] = self.rate
        return out


def combine(runs: Sequence[Measurement], started: Sequence[float] | None = None) -> Measurement:
    """Several runs of one task as one measurement: the median of their times (the line's
    verdict is on it), the minimum, every run's time, the largest peak memory. ``started``:
    when each run began (seconds since the line began). The check value and the other fields
    are the first run's; a run whose check differs from the first's is named in ``note``."""
    if not runs:
        raise ValueError("combine needs at least one run")
    times = tuple(s for run in runs for s in run.samples)
    first = runs[0]
    note = first.note
    differ = [i for i, run in enumerate(runs) if run.check != first.check]
    if differ:
        note = (note + "; " if note else "") + (
            f"run(s) {', '.join(str(i + 1) for i in differ)} gave another check value"
        )
    return replace(
        first,
        seconds=float(statistics.median(times)),
        min_seconds=min(times),
        samples=times,
        started=tuple(started) if started is not None else tuple(0.0 for _ in times),
        peak_rss_bytes=max(run.peak_rss_bytes for run in runs),
        note=note,
    )


class SkipTask(Exception):
    """Raised inside a task when an optional package is missing; the message is the reason,
    ``install`` the exact line that makes the task runnable."""

    def __init__(self, reason: str, install: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.install = install


class TaskFailed(Exception):
    """A task's subprocess failed; ``message`` is its last line of stderr."""

    def __init__(self, task: str, message: str) -> None:
        super().__init__(f"{task}: {message}")
        self.task = task
        self.message = message


@dataclass(frozen=True, kw_only=True)
class TaskOutcome:
    """What a task function returns from inside the worker: the work done and a check value.

    ``extrapolation`` multiplies the measured time (see :class:`Measurement`).
    """

    units: float
    check: float | None = None
    extrapolation: float = 1.0
    note: str = ""


def vm_rss_bytes() -> int:
    """Current resident set size of this process (``VmRSS`` in ``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:  # not Linux: fall back to the peak so far
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class Clock:
    """The timed region of a task: ``with clock: work()``; may be entered several times and
    accumulates (e.g. a warm-up outside, the measured repetitions inside)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.setup_rss_bytes = 0
        self._t0 = 0.0

    def __enter__(self) -> Clock:
        if not self.setup_rss_bytes:
            self.setup_rss_bytes = vm_rss_bytes()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._t0


# A task: (params, clock) -> outcome, run inside the worker process.
TaskFunction = Callable[[Mapping[str, Any], Clock], TaskOutcome]


def measure(
    task: str,
    params: Mapping[str, Any],
    *,
    timeout_s: float = 1800.0,
    env: Mapping[str, str] | None = None,
) -> Measurement:
    """Run ``task`` (a name in :data:`abkit.bench.worker.TASKS`) in a fresh Python process.

    Raises :class:`SkipTask` when the task reports a missing optional package and
    :class:`TaskFailed` when the process fails or runs past ``timeout_s``.
    """
    with tempfile.TemporaryDirectory(prefix="abkit-bench-task-") as tmp:
        result_path = Path(tmp) / "result.json"
        stderr_path = Path(tmp) / "stderr.txt"
        spec = json.dumps({"task": task, "params": dict(params), "result": str(result_path)})
        child_env = dict(os.environ)
        child_env.update(env or {})
        with open(stderr_path, "wb") as stderr, open(os.devnull, "wb") as devnull:
            proc = subprocess.Popen(
                [sys.executable, "-m", "abkit.bench.worker", spec],
                stdout=devnull,
                stderr=stderr,
                env=child_env,
            )
            status, rusage = _wait_with_rusage(proc, timeout_s)
        if status is None:
            raise TaskFailed(task, f"ran past its time limit of {timeout_s:.0f} s and was stopped")
        payload: dict[str, Any] = {}
        if result_path.exists():
            payload = json.loads(result_path.read_text())
        if "skipped" in payload:
            raise SkipTask(payload["skipped"], payload["install"])
        if status != 0 or "seconds" not in payload:
            lines = [ln for ln in stderr_path.read_text(errors="replace").splitlines() if ln]
            raise TaskFailed(task, lines[-1] if lines else f"exit status {status}")
    # ru_maxrss is in kilobytes on Linux (bytes on macOS; abkit's bench targets Linux).
    peak = int(rusage.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
    return Measurement(
        task=task,
        seconds=float(payload["seconds"]) * float(payload["extrapolation"]),
        peak_rss_bytes=peak,
        setup_rss_bytes=int(payload["setup_rss_bytes"]),
        units=float(payload["units"]),
        check=None if payload["check"] is None else float(payload["check"]),
        extrapolation=float(payload["extrapolation"]),
        note=str(payload["note"]),
    )


#: what a command's output says: (check value, seconds of its own timed part or None)
ParseOutput = Callable[[str, str], tuple[float | None, float | None]]


def measure_command(
    task: str,
    argv: Sequence[str],
    *,
    units: float,
    parse: ParseOutput | None = None,
    timeout_s: float = 1800.0,
    env: Mapping[str, str] | None = None,
    note: str = "",
) -> Measurement:
    """Run ``argv`` as a whole process: its wall time from start to exit (interpreter start
    and imports included: what a user waits for) and its peak memory.

    ``parse(stdout, stderr)`` reads the check value from the output and, for a command that
    times a part of itself (``python -X importtime``), the seconds that replace the wall time.
    Raises :class:`TaskFailed` when the command fails or runs past ``timeout_s``.
    """
    with tempfile.TemporaryDirectory(prefix="abkit-bench-cmd-") as tmp:
        out_path, err_path = Path(tmp) / "stdout.txt", Path(tmp) / "stderr.txt"
        child_env = dict(os.environ)
        child_env.update(env or {})
        with open(out_path, "wb") as stdout, open(err_path, "wb") as stderr:
            t0 = time.perf_counter()
            proc = subprocess.Popen(list(argv), stdout=stdout, stderr=stderr, env=child_env)
            status, rusage = _wait_with_rusage(proc, timeout_s)
            wall = time.perf_counter() - t0
        out = out_path.read_text(errors="replace")
        err = err_path.read_text(errors="replace")
    if status is None:
        raise TaskFailed(task, f"ran past its time limit of {timeout_s:.0f} s and was stopped")
    if status != 0:
        lines = [ln for ln in err.splitlines() if ln]
        raise TaskFailed(task, lines[-1] if lines else f"exit status {status}")
    check, own = parse(out, err) if parse is not None else (None, None)
    peak = int(rusage.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
    return Measurement(
        task=task,
        seconds=wall if own is None else own,
        peak_rss_bytes=peak,
        setup_rss_bytes=0,
        units=units,
        check=check,
        extrapolation=1.0,
        note=note,
        scope="process",
    )


def _wait_with_rusage(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int | None, Any]:
    """Reap ``proc`` with wait4 (its own rusage); None as status when it timed out."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            code = os.waitstatus_to_exitcode(status)
            proc.returncode = code  # reaped here, so Popen must not wait for it again
            return code, rusage
        if time.monotonic() > deadline:
            proc.kill()
            _, status, rusage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return None, rusage
        time.sleep(0.02)


def run_worker(spec_json: str, task_function: Callable[[str], TaskFunction]) -> int:
    """The body of the worker process: run one task, write its result file, return the exit
    status. Called by ``python -m abkit.bench.worker``."""
    spec = json.loads(spec_json)
    result = Path(spec["result"])
    function = task_function(spec["task"])
    clock = Clock()
    try:
        outcome = function(spec["params"], clock)
    except SkipTask as skip:
        result.write_text(json.dumps({"skipped": skip.reason, "install": skip.install}))
        return 0
    result.write_text(
        json.dumps(
            {
                "seconds": clock.seconds,
                "setup_rss_bytes": clock.setup_rss_bytes,
                "units": outcome.units,
                "check": outcome.check,
                "extrapolation": outcome.extrapolation,
                "note": outcome.note,
            }
        )
    )
    return 0
