"""``python -m abkit.bench.worker SPEC``: run one bench task in this (fresh) process.

SPEC is JSON ``{"task": name, "params": {...}, "result": path}``; the result file receives the
timed seconds, the work done and the check value (see :func:`abkit.bench.harness.run_worker`).

``$ABKIT_BENCH_HIDE_MODULES`` (comma-separated import names) makes those packages unimportable
in the worker, to see what a machine without them reports (``torch`` -> the LSTM reference is
skipped with its install line); the tests use it.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Mapping
from importlib import import_module
from typing import cast

from abkit.bench.harness import TaskFunction, run_worker
from abkit.errors import InputError

_W, _R, _O = "abkit.bench.workloads", "abkit.bench.references", "abkit.bench.ope"

#: task name -> (module, function); a worker imports only its task's module, so a light
#: reference does not carry abkit's heavier modules in its time or its peak memory
TASKS: Mapping[str, tuple[str, str]] = {
    # data preparation (not reported)
    "prep-export": (_W, "prep_export"),
    "prep-als": (_W, "prep_als"),
    "prep-lstm": (_W, "prep_lstm"),
    "prep-offpolicy": (_O, "prep_offpolicy"),
    "prep-spark-export": (_W, "prep_spark_export"),
    # abkit
    "abkit-simulate": (_W, "abkit_simulate"),
    "abkit-ingest": (_W, "abkit_ingest"),
    "abkit-compare-engine": (_W, "abkit_compare_engine"),
    "abkit-als-replay": (_W, "abkit_als_replay"),
    "abkit-als-topk": (_W, "abkit_als_topk"),
    "abkit-als-gemm": (_W, "abkit_als_gemm"),
    "abkit-lstm": (_W, "abkit_lstm"),
    "abkit-offpolicy": (_O, "abkit_offpolicy"),
    "selfcheck-allocate": (_W, "allocate"),
    # references
    "ref-duckdb-copy": (_R, "duckdb_copy"),
    "ref-implicit-replay": (_R, "implicit_replay"),
    "ref-torch-lstm": (_R, "torch_lstm"),
    "ref-numpy-poisson-ips": (_O, "numpy_ips"),
    "ref-obp-ips": (_O, "obp_ips"),
    "ref-loop-ips": (_O, "loop_ips"),
}


def task_function(name: str) -> TaskFunction:
    """The function of task ``name``, its module imported now."""
    if name not in TASKS:
        raise InputError(f"unknown bench task {name!r}")
    module, function = TASKS[name]
    return cast(TaskFunction, getattr(import_module(module), function))


HIDE_ENV = "ABKIT_BENCH_HIDE_MODULES"


class _Hidden(importlib.abc.MetaPathFinder):
    """Makes ``import NAME`` fail for the hidden top-level packages, as on a machine without
    them (libraries that merely look into ``sys.modules`` are not disturbed)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


def main() -> int:
    hidden = {n.strip() for n in os.environ.get(HIDE_ENV, "").split(",") if n.strip()}
    if hidden:
        sys.meta_path.insert(0, _Hidden(hidden))
    return run_worker(sys.argv[1], task_function)


if __name__ == "__main__":
    sys.exit(main())
