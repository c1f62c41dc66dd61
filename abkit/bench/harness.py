"""Measure one task in a fresh subprocess: wall time of its timed region and peak memory.

Why a subprocess per task: peak memory is only honest when nothing else has touched the
process before. Each task (an abkit workload, or the reference a user would otherwise pick) runs
as ``python -m abkit.bench.worker``; the parent reaps it with :func:`os.wait4`, whose
``ru_maxrss`` is that child's own peak resident set size (kilobytes on Linux). The child times
only its *timed region* (the work, not the interpreter start, imports or loading a trained model)
with :func:`time.perf_counter` and reports it, with the work done and a value both sides must
agree on, in a small JSON file.

Peak memory therefore includes the interpreter and the libraries each side imports (about
100-250 MB for duckdb / pandas / torch); ``setup_rss_bytes`` (the resident size just before the
timed region) is reported too, so the growth caused by the work itself can be read off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from abkit.errors import InputError

__all__ = [
    "Clock",
    "Measurement",
    "SkipTask",
    "TaskFailed",
    "TaskOutcome",
    "measure",
    "vm_rss_bytes",
]


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """What one task did in its own process.

    ``seconds`` is the wall time of the timed region multiplied by ``extrapolation`` (1.0 when
    measured as is; a reference too slow to run whole runs on a subsample and is scaled up
    linearly, and says so in ``note``). ``units`` is the work done at full size (events, users,
    sequences...), so ``rate = units / seconds``. ``check`` is a value the workload and its
    reference must agree on (an NDCG, a number of conversions), or None.
    """

    task: str
    seconds: float
    peak_rss_bytes: int
    setup_rss_bytes: int
    units: float
    check: float | None
    extrapolation: float
    note: str

    @property
    def rate(self) -> float:
        return self.units / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rate"] = self.rate
        return out


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


def run_worker(spec_json: str, tasks: Mapping[str, TaskFunction]) -> int:
    """The body of the worker process: run one task, write its result file, return the exit
    status. Called by ``python -m abkit.bench.worker``."""
    spec = json.loads(spec_json)
    result = Path(spec["result"])
    function = tasks.get(spec["task"])
    if function is None:
        raise InputError(f"unknown bench task {spec['task']!r}")
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
